"""--fix-inconsistencies checks the instructors' earnings against the payments (each captured
payment's entries sum to its net) and writes what is missing, never editing an entry; the
payments stored before the ledger existed get their history there (the backfill)."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from backoffice.models import AdminAction
from management.maintenance import ACTION_FIX_EARNINGS
from payments.models import EarningEntry, Payment
from tests.factories import InstructorFactory, PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = StringIO()
    call_command("manage_payments", "--fix-inconsistencies", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _total(payment) -> int:
    return payment.earning_entries.aggregate(total=Sum("amount"))["total"] or 0


def test_payments_stored_before_the_ledger_get_their_earnings():
    payment = PaymentFactory(amount=5000)  # net 38.25 after 1.75 + 10.00 in fees
    PaymentFactory(failed=True)  # never captured: owes nothing
    result = run()["earnings"]
    assert result["payments_off"] == 1 and result["entries_written"] == 1
    assert result["instructors"] == [payment.instructor_id]
    assert result["examples"][0]["payment"] == payment.stripe_payment_intent_id
    entry = EarningEntry.objects.get()
    assert (entry.kind, entry.amount, entry.reference) == (
        EarningEntry.Kind.EARNING,
        payment.net,
        f"payment:{payment.stripe_payment_intent_id}:earning",
    )
    # Long past its hold: available at once.
    assert entry.available_at == payment.succeeded_at + timedelta(days=7)
    audit = AdminAction.objects.get(action=ACTION_FIX_EARNINGS)
    assert audit.target_id == str(payment.pk)
    assert audit.reason == (
        f"earnings of {payment.stripe_payment_intent_id}: entries made $0.00, "
        "the payment's net is $38.25"
    )
    assert run()["earnings"]["payments_off"] == 0  # idempotent


def test_a_backfilled_refund_has_its_own_entry():
    payment = PaymentFactory(amount=5000)
    RefundFactory(payment=payment, amount=2000)
    run()  # the payment's columns are repaired, and its entries written with them
    payment.refresh_from_db()
    kinds = sorted(payment.earning_entries.values_list("kind", flat=True))
    assert kinds == [EarningEntry.Kind.EARNING, EarningEntry.Kind.REFUND]
    assert _total(payment) == payment.net
    assert run()["earnings"]["payments_off"] == 0


def test_drift_is_reported_and_corrected_without_editing_entries():
    payment = PaymentFactory(amount=5000)
    run()
    earning = EarningEntry.objects.get()
    # Someone wrote a row around the services (a bad import, a manual SQL fix).
    EarningEntry.objects.create(
        instructor=payment.instructor,
        currency="usd",
        amount=999,
        kind=EarningEntry.Kind.CORRECTION,
        reference="manual:oops",
        payment=payment,
        occurred_at=timezone.now(),
        available_at=timezone.now(),
    )
    dry = run("--dry-run")["earnings"]
    assert dry["payments_off"] == 1 and dry["entries_written"] == 0
    assert dry["entries_missing"] == 1
    assert dry["examples"][0]["entries"] == payment.net + 999
    assert EarningEntry.objects.count() == 2
    result = run()["earnings"]
    assert result["examples"][0]["written"] == [
        {
            "reference": f"payment:{payment.stripe_payment_intent_id}:correction:1",
            "instructor_id": payment.instructor_id,
            "amount": -999,
        }
    ]
    assert _total(payment) == payment.net
    earning.refresh_from_db()
    assert earning.amount == payment.net  # untouched


def test_entries_of_a_payment_that_owes_nothing_are_brought_to_zero():
    payment = PaymentFactory(amount=5000)
    run()
    other = InstructorFactory()
    Payment.objects.filter(pk=payment.pk).update(instructor=other)
    result = run()["earnings"]
    assert result["instructors"] == sorted([payment.instructor_id, other.pk])
    assert (
        payment.earning_entries.filter(instructor=payment.instructor).aggregate(
            total=Sum("amount")
        )["total"]
        == 0
    )
    assert (
        payment.earning_entries.filter(instructor=other).aggregate(total=Sum("amount"))["total"]
        == payment.net
    )
    assert run()["earnings"]["payments_off"] == 0
