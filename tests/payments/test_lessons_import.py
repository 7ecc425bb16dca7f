"""payments/lessons.py: the one import service for lesson rows (file, API, benchmark):
idempotent, bad rows reported row by row, nothing half-applied."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pytest
from django.db.models import Sum
from django.utils import timezone

from backoffice.models import AdminAction
from payments import hours, hours_selectors, lessons
from payments.models import BalanceEntry, HourPackage, Lesson, StudentBalance
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
Kind = BalanceEntry.Kind


@pytest.fixture
def student():
    customer = CustomerFactory(email="ada@example.com", stripe_id="cus_ada")
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=120,
        kind=Kind.ADJUSTMENT,
        reference="first",
        expires_at=timezone.now() + timedelta(days=5),
    )
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=600,
        kind=Kind.ADJUSTMENT,
        reference="second",
        expires_at=timezone.now() + timedelta(days=50),
    )
    return customer


def row(booking="bk1", status="reserved", minutes=60, student="ada@example.com", day="2026-11-30"):
    return {
        "student": student,
        "booking_id": booking,
        "minutes": str(minutes),
        "date": day,
        "status": status,
    }


def ledger(customer):
    balance = StudentBalance.objects.get(customer=customer)
    assert balance.minutes == (balance.entries.aggregate(t=Sum("minutes"))["t"] or 0)
    return hours_selectors.balance_figures(balance)


def snapshot():
    return (
        list(BalanceEntry.objects.order_by("id").values_list("reference", "minutes")),
        list(HourPackage.objects.order_by("id").values_list("remaining", flat=True)),
        list(Lesson.objects.order_by("id").values_list("booking_id", "status")),
    )


def test_a_booking_moves_reserved_to_consumed_and_a_reimport_changes_nothing(student):
    result = lessons.lessons_import([row("bk1"), row("bk2", minutes=30)])
    assert result.applied and result.counts["reserved"] == 2
    assert ledger(student).reserved == 90
    result = lessons.lessons_import([row("bk1", "consumed"), row("bk2", "canceled", minutes=30)])
    assert (result.counts["consumed"], result.counts["canceled"]) == (1, 1)
    figures = ledger(student)
    assert (figures.reserved, figures.consumed, figures.remaining) == (0, 60, 660)
    before = snapshot()
    again = lessons.lessons_import([row("bk1", "consumed"), row("bk2", "canceled", minutes=30)])
    assert again.applied and again.counts[lessons.UNCHANGED] == 2
    assert snapshot() == before
    assert dict(Lesson.objects.values_list("booking_id", "status")) == {
        "bk1": "consumed",
        "bk2": "canceled",
    }
    assert AdminAction.objects.filter(action=lessons.AUDIT_IMPORT).count() == 3


def test_consumption_draws_from_the_package_expiring_first(student):
    lessons.lessons_import([row("bk1", "consumed", minutes=150, student="cus_ada")])
    assert dict(HourPackage.objects.values_list("reference", "remaining")) == {
        "first": 0,
        "second": 570,
    }


def test_bad_rows_are_reported_row_by_row_and_nothing_is_applied(student):
    CustomerFactory(email="twin@example.com")
    CustomerFactory(email="twin@example.com")
    lessons.lessons_import([row("done", "consumed")])
    before = snapshot()
    result = lessons.lessons_import(
        [
            row("ok1"),
            row("bad-minutes", minutes="ninety"),
            row("nobody", student="nobody@example.com"),
            row("twin", student="twin@example.com"),
            row("bad id!"),
            row("bad-date", day="30/11/2026"),
            row("bad-status", status="taken"),
            {**row("missing"), "student": ""},
            row("done", "canceled"),
            row("ok1", "consumed", minutes=45),
            row("too-much", "consumed", minutes=1000),
            row("ok2", "consumed"),
        ]
    )
    assert not result.applied
    assert [(e.row, e.booking_id, e.message) for e in result.errors] == [
        (2, "bad-minutes", lessons.ERR_MINUTES.format(value="ninety")),
        (
            3,
            "nobody",
            lessons.ERR_STUDENT_UNKNOWN.format(kind="e-mail", value="nobody@example.com"),
        ),
        (4, "twin", lessons.ERR_STUDENT_AMBIGUOUS.format(count=2, value="twin@example.com")),
        (5, "bad id!", lessons.ERR_BOOKING_ID.format(value="bad id!")),
        (6, "bad-date", lessons.ERR_DATE.format(value="30/11/2026")),
        (7, "bad-status", lessons.ERR_STATUS.format(value="taken")),
        (8, "missing", lessons.ERR_MISSING.format(column="student")),
        (9, "done", lessons.ERR_FINAL.format(booking="done", before="consumed", status="canceled")),
        (10, "ok1", lessons.ERR_OTHER_MINUTES.format(booking="ok1", before=60, minutes=45)),
        (
            11,
            "too-much",
            hours.ERR_NOT_ENOUGH_MINUTES.format(available=600, minutes=1000),
        ),
    ]
    assert result.error_count == 10 and result.rows == 12
    assert snapshot() == before  # the good rows (ok1, ok2) were rolled back with the rest
    assert AdminAction.objects.filter(action=lessons.AUDIT_IMPORT).count() == 1


def test_a_late_reservation_row_changes_nothing_and_a_booking_never_goes_back(student):
    lessons.lessons_import([row("bk1"), row("bk1", "consumed"), row("bk2"), row("bk2", "canceled")])
    before = snapshot()
    result = lessons.lessons_import([row("bk1"), row("bk2")])
    assert result.applied and result.counts[lessons.UNCHANGED] == 2
    refused = lessons.lessons_import([row("bk2", "consumed")])
    assert [e.message for e in refused.errors] == [
        lessons.ERR_FINAL.format(booking="bk2", before="canceled", status="consumed")
    ]
    assert snapshot() == before


def test_a_booking_keeps_its_student(student):
    CustomerFactory(email="bob@example.com")
    lessons.lessons_import([row("bk1")])
    result = lessons.lessons_import([row("bk1", "consumed", student="bob@example.com")])
    assert [e.message for e in result.errors] == [
        lessons.ERR_OTHER_STUDENT.format(booking="bk1", student="bob@example.com")
    ]


def test_a_preview_checks_everything_and_applies_nothing(student):
    before = snapshot()
    result = lessons.lessons_import([row("bk1"), row("bk1", "consumed")], dry_run=True)
    assert (result.dry_run, result.applied, result.error_count) == (True, False, 0)
    assert (result.counts["reserved"], result.counts["consumed"]) == (1, 1)
    assert snapshot() == before


def test_rows_of_one_file_apply_in_order_across_chunks(student, monkeypatch):
    monkeypatch.setattr(lessons, "CHUNK", 2)
    result = lessons.lessons_import(
        [
            row("a"),
            row("b", minutes=30),
            row("a", "consumed"),
            row("b", "canceled", minutes=30),
            row("a", "consumed"),
        ]
    )
    assert result.applied, result.errors
    assert result.counts == {"reserved": 2, "consumed": 1, "canceled": 1, "unchanged": 1}
    figures = ledger(student)
    assert (figures.consumed, figures.reserved, figures.remaining) == (60, 0, 660)


def test_more_rows_than_allowed_is_refused_whole(student, settings):
    settings.LESSON_IMPORT_MAX_ROWS = 3
    with pytest.raises(lessons.LessonFileError) as refused:
        lessons.lessons_import([row(f"bk{i}", minutes=1) for i in range(4)])
    assert str(refused.value) == lessons.ERR_TOO_MANY_ROWS.format(max=3)
    assert not Lesson.objects.exists()


# --- files ---------------------------------------------------------------------------------------


def test_csv_and_xlsx_files_read_the_same_rows():
    csv_bytes = (
        "\ufeffStudent,Booking_ID,Minutes,Date,Status,Room\n"
        "ada@example.com,bk1,60,2026-11-30,reserved,R1\n"
        "\n"
    ).encode()
    from_csv = list(lessons.read_lesson_file(io.BytesIO(csv_bytes), "csv"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["student", "booking_id", "minutes", "date", "status", "room"])
    sheet.append(["ada@example.com", "bk1", 60, timezone.datetime(2026, 11, 30), "reserved", "R1"])
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    from_xlsx = list(lessons.read_lesson_file(buffer, "xlsx"))
    assert len(from_csv) == len(from_xlsx) == 1
    parsed = [lessons._parse(1, r) for r in (from_csv[0], from_xlsx[0])]
    assert parsed[0] == parsed[1]
    assert parsed[0].minutes == 60 and parsed[0].status == "reserved"


def test_a_file_without_the_columns_is_refused():
    with pytest.raises(lessons.LessonFileError) as refused:
        list(lessons.read_lesson_file(io.BytesIO(b"student,minutes\nx,1\n"), "csv"))
    assert str(refused.value) == lessons.ERR_COLUMNS.format(missing="booking_id, date, status")


@pytest.mark.parametrize("minutes", ["\u00b2", "\u2460", "\u0663\u0660", "9" * 5000, "00060"])
def test_minutes_other_than_plain_digits_are_a_row_error(student, minutes):
    """str.isdigit() accepts superscripts and other scripts' digits int() refuses, and int()
    refuses more than 4300 digits: each is the row's error, never an exception."""
    result = lessons.lessons_import([row("bk1", minutes=minutes)])
    assert [(r.row, r.message) for r in result.errors] == [
        (1, lessons.ERR_MINUTES.format(value=minutes[:80]))
    ]
    assert not Lesson.objects.exists()
