"""On PostgreSQL, the lists whose order starts with an annotation page through every row once,
in the order of the plain ORDER BY: the refund queue (the admin's union of index ranges per
priority tier) and the fraud worklist (unresolved first), forwards and back."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from payments.models import FraudAlert
from refunds.models import RefundRequest
from refunds.selectors import refund_request_queue
from tests.factories import PaymentFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _walk(client, url):
    """Every page forwards (following next), then backwards from the last (previous)."""
    forward, pages, last = [], [], None
    while url:
        body = client.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        forward += pages[-1]
        last = body
        url = body["next"]
    backward, url = [], last["previous"]
    while url:
        body = client.get(url).json()
        backward = [row["id"] for row in body["results"]] + backward
        url = body["previous"]
    return forward, backward + pages[-1]


def test_the_refund_queue_pages_in_priority_order(api_roles, settings):
    settings.REFUND_LARGE_AMOUNT = {"usd": "50", "jpy": "7500"}
    rng = random.Random(13)
    user = UserFactory()
    payments = [PaymentFactory(amount=10**7, currency=c) for c in ("usd", "jpy")]
    rows = RefundRequest.objects.bulk_create(
        [
            RefundRequest(
                payment=(payment := rng.choice(payments)),
                amount=rng.choice([40, 6000, 9000]),
                currency=payment.currency,
                status=rng.choice(["pending"] * 5 + ["approved", "rejected"]),
                requested_by=user,
            )
            for _ in range(120)
        ]
    )
    now = timezone.now()
    for row in rows:
        RefundRequest.objects.filter(pk=row.pk).update(
            created_at=now - timedelta(hours=rng.randint(0, 24 * 5))
        )
    expected = list(
        refund_request_queue(queryset=RefundRequest.objects.filter(status="pending")).values_list(
            "pk", flat=True
        )
    )
    forward, backward = _walk(api_roles["finance"], "/api/v1/refund-requests/queue/?page_size=9")
    assert forward == expected
    assert backward == expected


def test_the_fraud_worklist_pages_unresolved_first(api_roles):
    rng = random.Random(5)
    payment = PaymentFactory()
    now = timezone.now()
    FraudAlert.objects.bulk_create(
        [
            FraudAlert(
                payment=payment,
                source=FraudAlert.Source.STAFF,
                status=rng.choice(list(FraudAlert.Status.values)),
                # Ties on `created` too: the id breaks them.
                created=now - timedelta(minutes=rng.randint(0, 40)),
            )
            for _ in range(90)
        ]
    )
    expected = list(
        FraudAlert.objects.annotate(
            rank=Case(
                When(status__in=FraudAlert.UNRESOLVED_STATUSES, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "-created", "-id")
        .values_list("pk", flat=True)
    )
    forward, backward = _walk(api_roles["auditor"], "/api/v1/fraud-alerts/?page_size=7")
    assert forward == expected
    assert backward == expected


def test_the_ledger_and_the_instructors_page_through_every_row_once(api_roles):
    """Earning entries newest first (ties on occurred_at broken by id); instructors by name
    (shared names broken by id), each page with its own rows' balances."""
    from payments.models import EarningEntry, Instructor

    rng = random.Random(7)
    now = timezone.now()
    instructors = Instructor.objects.bulk_create(
        [Instructor(name=rng.choice(["Ada", "Bea", "Cy"]), email=f"i{n}@x.org") for n in range(40)]
    )
    EarningEntry.objects.bulk_create(
        [
            EarningEntry(
                instructor=rng.choice(instructors),
                currency=rng.choice(["usd", "eur"]),
                amount=rng.randint(1, 5000),
                kind=EarningEntry.Kind.EARNING,
                reference=f"test:{n}",
                occurred_at=(at := now - timedelta(minutes=rng.randint(0, 30))),
                available_at=at,
            )
            for n in range(150)
        ]
    )
    expected = list(
        EarningEntry.objects.order_by("-occurred_at", "-id").values_list("pk", flat=True)
    )
    forward, backward = _walk(api_roles["auditor"], "/api/v1/earning-entries/?page_size=11")
    assert forward == backward == expected
    client = api_roles["auditor"]
    expected = list(Instructor.objects.order_by("name", "id").values_list("pk", flat=True))
    forward, backward = _walk(client, "/api/v1/instructors/?page_size=6")
    assert forward == backward == expected
    page = client.get("/api/v1/instructors/?page_size=6").json()["results"]
    for row in page:
        sums = {balance["currency"]: balance["balance"]["amount"] for balance in row["balances"]}
        entries = EarningEntry.objects.filter(instructor_id=row["id"])
        assert sums == {
            currency: sum(e.amount for e in entries if e.currency == currency)
            for currency in {e.currency for e in entries}
        }
