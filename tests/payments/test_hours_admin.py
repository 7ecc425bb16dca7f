"""The hours pages: the balance page and the customer page's section (every finance role
sees them), the ledger and lessons lists, and the lessons import page (upload, preview with
every bad row, confirm: all or nothing)."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payments import hours, lessons
from payments.admin import hours as hours_admin
from payments.models import BalanceEntry, Lesson, StudentBalance
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

FINANCE_ROLES = [
    "Finance staff",
    "Read-only auditors",
    "Refund requesters",
    "Refund approvers",
    "Senior refund approvers",
]


@pytest.fixture
def student():
    customer = CustomerFactory(email="ada@example.com", stripe_id="cus_ada")
    for ref, minutes, days in (("soon", 120, 3), ("later", 600, 200)):
        hours.credit_minutes(
            customer_id=customer.pk,
            minutes=minutes,
            kind=BalanceEntry.Kind.ADJUSTMENT,
            reference=ref,
            note=f"package {ref}",
            expires_at=timezone.now() + timedelta(days=days),
        )
    lessons.lessons_import(
        [
            {
                "student": "cus_ada",
                "booking_id": "bk1",
                "minutes": "60",
                "date": "2026-11-20",
                "status": "consumed",
            },
            {
                "student": "cus_ada",
                "booking_id": "bk2",
                "minutes": "30",
                "date": "2026-12-20",
                "status": "reserved",
            },
        ]
    )
    return customer


def member(*groups: str):
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory()
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


@pytest.mark.parametrize("role", FINANCE_ROLES)
def test_every_finance_role_sees_the_balance_page(client, student, role):
    client.force_login(member(role))
    balance = StudentBalance.objects.get(customer=student)
    page = client.get(reverse("admin:payments_studentbalance_change", args=[balance.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for key, text in (
        ("purchased", "0 h"),
        ("adjusted", "12 h"),
        ("consumed", "1 h"),
        ("reserved", "0.5 h"),
        ("expired", "0 h"),
        ("remaining", "10.5 h"),
    ):
        figure = html.split(f'data-testid="figure-{key}"')[1].split("</div>")[0]
        assert f">{text}<" in figure, (key, figure)
    # The package expiring in 3 days is highlighted, with its days to expiry.
    assert 'data-state="near_expiry"' in html
    assert 'data-state="active"' in html
    assert "Expires soon" in html
    # The ledger: newest first.
    ledger = html.split('data-testid="hours-ledger"')[1]
    assert ledger.index("Lesson reserved") < ledger.index("Lesson taken")
    assert "lesson:bk1:consumed" in ledger
    changelist = client.get(reverse("admin:payments_studentbalance_changelist"))
    assert changelist.status_code == 200


@pytest.mark.parametrize("role", ["Finance staff", "Read-only auditors", "Refund approvers"])
def test_the_ledger_and_lessons_lists_are_open_to_finance_roles(client, student, role):
    client.force_login(member(role))
    for name in ("balanceentry", "lesson"):
        assert client.get(reverse(f"admin:payments_{name}_changelist")).status_code == 200


def test_staff_without_a_finance_role_see_no_balance(client, student):
    client.force_login(UserFactory())
    balance = StudentBalance.objects.get(customer=student)
    page = client.get(reverse("admin:payments_studentbalance_change", args=[balance.pk]))
    assert page.status_code == 403


def test_the_customer_page_shows_the_hours(client, student):
    client.force_login(member("Finance staff"))
    page = client.get(reverse("admin:payments_customer_change", args=[student.pk]))
    html = page.content.decode()
    assert 'data-testid="hours-overview"' in html
    assert 'data-testid="balance-page-link"' in html


# --- the import page -----------------------------------------------------------------------


def csv_upload(text: str, name="lessons.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


IMPORT_URL = "/admin/payments/lesson/import/"
HEADER = "student,booking_id,minutes,date,status\n"


def test_only_importers_may_open_the_import_page(client):
    client.force_login(member("Read-only auditors"))
    assert client.get(IMPORT_URL).status_code == 403
    client.force_login(member("Finance staff"))
    page = client.get(IMPORT_URL)
    assert page.status_code == 200
    assert "student, booking_id, minutes, date, status" in page.content.decode()


def test_a_file_with_bad_rows_is_previewed_row_by_row_and_nothing_is_applied(client, student):
    client.force_login(member("Finance staff"))
    before = list(BalanceEntry.objects.values_list("reference", flat=True))
    text = (
        HEADER
        + "ada@example.com,bk3,60,2026-11-21,consumed\n"
        + "nobody@example.com,bk4,60,2026-11-21,consumed\n"
        + "cus_ada,bk5,sixty,2026-11-21,consumed\n"
    )
    page = client.post(IMPORT_URL, {"format": "0", "import_file": csv_upload(text)})
    html = page.content.decode()
    assert page.status_code == 200
    assert "2 bad rows of 3: nothing was applied" in html
    errors = html.split('data-testid="lesson-import-errors"')[1]
    assert (
        lessons.ERR_STUDENT_UNKNOWN.format(kind="e-mail", value="nobody@example.com").replace(
            "'", "&#x27;"
        )
        in errors
    )
    assert lessons.ERR_MINUTES.format(value="sixty").replace("'", "&#x27;") in errors
    assert 'data-testid="lesson-import-confirm"' not in html
    assert list(BalanceEntry.objects.values_list("reference", flat=True)) == before


def test_unicode_digits_in_minutes_are_previewed_as_a_row_error(client, student):
    client.force_login(member("Finance staff"))
    before = list(BalanceEntry.objects.values_list("reference", flat=True))
    text = HEADER + "ada@example.com,bk3,\u00b2,2026-11-21,consumed\n"
    page = client.post(IMPORT_URL, {"format": "0", "import_file": csv_upload(text)})
    assert page.status_code == 200
    message = lessons.ERR_MINUTES.format(value="\u00b2").replace("'", "&#x27;")
    assert message in page.content.decode()
    assert list(BalanceEntry.objects.values_list("reference", flat=True)) == before


def test_a_good_file_is_previewed_then_applied_on_confirmation(client, student):
    user = member("Finance staff")
    client.force_login(user)
    text = (
        HEADER + "ada@example.com,bk2,30,2026-12-20,consumed\ncus_ada,bk9,45,2026-11-22,consumed\n"
    )
    preview = client.post(IMPORT_URL, {"format": "0", "import_file": csv_upload(text)})
    assert 'data-testid="lesson-import-confirm"' in preview.content.decode()
    assert not Lesson.objects.filter(booking_id="bk9").exists()  # a preview applies nothing
    confirm = preview.context["confirm_form"]
    response = client.post(
        IMPORT_URL,
        {
            "confirm": "1",
            "token": confirm.initial["token"],
            "format": confirm.initial["format"],
            "file_name": confirm.initial["file_name"],
        },
    )
    assert response.status_code == 302
    assert dict(Lesson.objects.values_list("booking_id", "status")) == {
        "bk1": "consumed",
        "bk2": "consumed",
        "bk9": "consumed",
    }
    # The stashed file is gone: the same confirmation cannot run twice.
    again = client.post(
        IMPORT_URL,
        {"confirm": "1", "token": confirm.initial["token"], "format": "csv", "file_name": "x"},
    )
    assert again.status_code == 302
    assert BalanceEntry.objects.filter(reference="lesson:bk9:consumed").count() == 1


def _preview_good_file(client):
    text = HEADER + "cus_ada,bk9,45,2026-11-22,consumed\n"
    preview = client.post(IMPORT_URL, {"format": "0", "import_file": csv_upload(text)})
    confirm = preview.context["confirm_form"]
    return {"confirm": "1", **confirm.initial}


def test_a_preview_is_confirmed_only_by_who_previewed_it(client, student):
    client.force_login(member("Finance staff"))
    body = _preview_good_file(client)
    other = Client()
    other.force_login(member("Finance staff"))
    response = other.post(IMPORT_URL, body, follow=True)
    assert hours_admin.ERR_UPLOAD_GONE in response.content.decode().replace("&#x27;", "'")
    assert not Lesson.objects.filter(booking_id="bk9").exists()
    # Who previewed it still can.
    assert client.post(IMPORT_URL, body).status_code == 302
    assert Lesson.objects.filter(booking_id="bk9").exists()


def test_a_confirmation_whose_file_went_meanwhile_is_no_error(client, student, monkeypatch):
    """Two confirmations of one preview at once: the second finds the file gone."""
    client.force_login(member("Finance staff"))
    body = _preview_good_file(client)
    real = lessons.lessons_import

    def import_while_another_finishes(*args, **kwargs):
        for name in os.listdir(hours_admin._upload_dir()):
            if name.startswith(hours_admin.UPLOAD_PREFIX):
                os.unlink(os.path.join(hours_admin._upload_dir(), name))
        return real(*args, **kwargs)

    monkeypatch.setattr(lessons, "lessons_import", import_while_another_finishes)
    assert client.post(IMPORT_URL, body).status_code == 302


def test_a_preview_deletes_abandoned_previews(client, student, monkeypatch, tmp_path):
    monkeypatch.setattr(hours_admin, "_upload_dir", lambda: str(tmp_path))
    old = tmp_path / f"{hours_admin.UPLOAD_PREFIX}abandoned"
    old.write_text("student,booking_id\nada@example.com,bk1\n")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    recent = tmp_path / f"{hours_admin.UPLOAD_PREFIX}recent"
    recent.write_text("x")
    other = tmp_path / "someone-elses-file"
    other.write_text("x")
    os.utime(other, (two_hours_ago, two_hours_ago))
    client.force_login(member("Finance staff"))
    _preview_good_file(client)
    assert not old.exists()
    assert recent.exists() and other.exists()


def test_an_xlsx_file_imports_the_same_way(client, student):
    client.force_login(member("Finance staff"))
    book = openpyxl.Workbook()
    book.active.append(["student", "booking_id", "minutes", "date", "status"])
    book.active.append(["cus_ada", "bkx", 60, "2026-11-23", "reserved"])
    buffer = io.BytesIO()
    book.save(buffer)
    upload = SimpleUploadedFile("lessons.xlsx", buffer.getvalue())
    preview = client.post(IMPORT_URL, {"format": "1", "import_file": upload})
    confirm = preview.context["confirm_form"]
    assert confirm.initial["format"] == "xlsx"
    client.post(IMPORT_URL, {"confirm": "1", **confirm.initial})
    assert Lesson.objects.get(booking_id="bkx").status == "reserved"


def test_a_file_without_the_columns_is_refused_on_the_form(client):
    client.force_login(member("Finance staff"))
    page = client.post(IMPORT_URL, {"format": "0", "import_file": csv_upload("a,b\n1,2\n")})
    assert "The file has no column student" in page.content.decode()
