"""POST /api/v1/lessons/: the booking system's batches through the lessons import service
(payments/lessons.py): the same checks and messages per row as the file import, all or
nothing, idempotent; GET lists the lessons. Permission matrix over the roles."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from payments import hours, lessons
from payments.api_lessons import ERR_INVALID_ROWS, MAX_BATCH_ROWS
from payments.models import BalanceEntry, Lesson
from tests.api.harness import FINANCE_VIEWERS, assert_matrix, read_matrix, write_matrix
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/lessons/"
IMPORTERS = frozenset({"superuser", "finance", "senior"})
_bookings = itertools.count(1)


@pytest.fixture
def student():
    customer = CustomerFactory(email="ada@example.com", stripe_id="cus_ada")
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=6000,
        kind=BalanceEntry.Kind.ADJUSTMENT,
        reference="pkg",
        expires_at=timezone.now() + timedelta(days=30),
    )
    return customer


def lesson(booking, status="consumed", minutes=60, student="ada@example.com"):
    return {
        "student": student,
        "booking_id": booking,
        "minutes": minutes,
        "date": "2026-11-30",
        "status": status,
    }


def test_reads_and_writes_matrix(api_roles, student):
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(URL))

    def call(client):
        body = {"lessons": [lesson(f"bk-matrix-{next(_bookings)}")]}
        return client.post(URL, body, format="json")

    assert_matrix(api_roles, write_matrix(IMPORTERS), call)
    assert Lesson.objects.count() == 3


def test_a_batch_is_applied_with_each_rows_outcome(api_roles, student):
    client = api_roles["finance"]
    body = {"lessons": [lesson("bk1", "reserved"), lesson("bk1"), lesson("bk2", minutes="45")]}
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 200
    data = answer.json()
    assert (data["applied"], data["rows"], data["reserved"], data["consumed"]) == (True, 3, 1, 2)
    assert data["results"] == [
        {"row": 1, "booking_id": "bk1", "outcome": "reserved"},
        {"row": 2, "booking_id": "bk1", "outcome": "consumed"},
        {"row": 3, "booking_id": "bk2", "outcome": "consumed"},
    ]
    # The same batch again changes nothing.
    again = client.post(URL, body, format="json").json()
    assert [r["outcome"] for r in again["results"]] == ["unchanged", "unchanged", "unchanged"]
    assert Lesson.objects.get(booking_id="bk2").source == Lesson.Source.API
    listed = client.get(URL + "?status=consumed").json()
    assert {row["booking_id"] for row in listed["results"]} == {"bk1", "bk2"}


def test_bad_rows_are_answered_row_by_row_and_nothing_is_applied(api_roles, student):
    client = api_roles["finance"]
    before = BalanceEntry.objects.count()
    body = {
        "lessons": [
            lesson("ok"),
            lesson("bad", minutes=0),
            {"booking_id": "nobody", "minutes": 60, "date": "2026-11-30", "status": "consumed"},
            lesson("late", status="taken"),
        ]
    }
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_rows"
    assert error["message"] == ERR_INVALID_ROWS.format(bad=3, rows=4)
    assert error["fields"] == {
        "lessons.2": [lessons.ERR_MINUTES.format(value="0")],
        "lessons.3": [lessons.ERR_MISSING.format(column="student")],
        "lessons.4": [lessons.ERR_STATUS.format(value="taken")],
    }
    assert BalanceEntry.objects.count() == before
    assert not Lesson.objects.exists()


def test_unicode_digits_in_minutes_are_a_row_error(api_roles, student):
    answer = api_roles["finance"].post(
        URL, {"lessons": [lesson("sup", minutes="\u00b2")]}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {
        "lessons.1": [lessons.ERR_MINUTES.format(value="\u00b2")]
    }


def test_a_dry_run_applies_nothing(api_roles, student):
    answer = api_roles["finance"].post(
        URL, {"lessons": [lesson("bk1")], "dry_run": True}, format="json"
    )
    assert answer.status_code == 200
    assert (answer.json()["applied"], answer.json()["dry_run"]) == (False, True)
    assert not Lesson.objects.exists()


def test_a_replayed_key_gets_the_first_answer(api_roles, student):
    client = api_roles["finance"]
    body = {"lessons": [lesson("bk1")]}
    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="lessons-1")
    second = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="lessons-1")
    assert second.get("Idempotent-Replayed") == "true"
    assert first.json() == second.json()
    assert first.json()["results"][0]["outcome"] == "consumed"
    assert BalanceEntry.objects.filter(reference="lesson:bk1:consumed").count() == 1


def test_a_batch_has_a_size_limit(api_roles, student):
    body = {"lessons": [lesson(f"b{i}", minutes=1) for i in range(MAX_BATCH_ROWS + 1)]}
    answer = api_roles["finance"].post(URL, body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {
        "lessons.non_field_errors": [
            f"Ensure this field has no more than {MAX_BATCH_ROWS} elements."
        ]
    }
    assert not Lesson.objects.exists()
