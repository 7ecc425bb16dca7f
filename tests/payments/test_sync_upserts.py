"""payments.sync upserts, fed gateway dataclasses built from Stripe-shaped payloads.

Disputes and issuer decline codes do not exist in localstripe, so these tests map real
Stripe-shaped dicts (as a webhook's data.object carries them) through the public mappers and
upsert the result: the same path the webhook handlers and the sync take.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import sync
from payments.gateway import (
    dispute_from_stripe,
    payment_intent_from_stripe,
    refund_from_stripe,
)
from payments.models import Customer, Dispute, Payment, PaymentMethod, Refund
from payments.signals import payment_succeeded
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

T0 = 1_790_000_000  # a Stripe `created` (unix seconds)


def intent_payload(pi_id="pi_1", *, status="succeeded", amount=10_000, **extra) -> dict:
    """A PaymentIntent as Stripe returns it with latest_charge.balance_transaction and
    payment_method expanded."""
    charge = {
        "id": "ch_" + pi_id[3:],
        "object": "charge",
        "status": "succeeded" if status == "succeeded" else "failed",
        "created": T0 + 5,
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": extra.pop("amount_refunded", 0),
        "disputed": False,
        "payment_method_details": {"type": "card"},
        "billing_details": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "balance_transaction": {
            "id": "txn_" + pi_id[3:],
            "object": "balance_transaction",
            "amount": amount,
            "currency": "usd",
            "fee": 320,
            "net": amount - 320,
            "exchange_rate": None,
        }
        if status == "succeeded"
        else None,
    }
    payload = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "status": status,
        "created": T0,
        "livemode": False,
        "customer": "cus_1",
        "description": "Python for Data Analysis",
        "metadata": {"order_id": "ord_1"},
        "latest_charge": charge,
        "payment_method": {
            "id": "pm_1",
            "object": "payment_method",
            "type": "card",
            "customer": "cus_1",
            "created": T0 - 100,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        },
        "last_payment_error": None,
    }
    payload.update(extra)
    return payload


@pytest.fixture
def customer():
    return CustomerFactory(stripe_id="cus_1")


def test_new_succeeded_intent_is_mirrored_with_fees_net_and_foreign_keys(customer, settings):
    settings.PLATFORM_FEE_BPS = 2000
    result = sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    assert result.as_dict() == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 0}
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_status == "succeeded"
    assert payment.stripe_charge_id == "ch_1"
    assert payment.customer == customer
    assert payment.payment_method == PaymentMethod.objects.get(stripe_id="pm_1")
    assert payment.payment_method.customer == customer
    assert (payment.amount, payment.stripe_fee, payment.platform_fee) == (10_000, 320, 2000)
    assert payment.net == 10_000 - 320 - 2000
    assert payment.succeeded_at == datetime.fromtimestamp(T0 + 5, tz=UTC)
    assert payment.created == datetime.fromtimestamp(T0, tz=UTC)
    assert payment.metadata == {"order_id": "ord_1"}
    assert payment.billing_details["name"] == "Ada Lovelace"
    assert payment.history.count() == 1


def test_second_upsert_of_the_same_snapshot_changes_nothing(customer):
    rows = [payment_intent_from_stripe(intent_payload(f"pi_{i}")) for i in range(5)]
    sync.upsert_payment_intents(rows)
    before = list(Payment.objects.order_by("pk").values())
    result = sync.upsert_payment_intents(rows)
    assert result.as_dict() == {"created": 0, "updated": 0, "unchanged": 5, "skipped": 0}
    assert list(Payment.objects.order_by("pk").values()) == before


def test_declined_intent_is_failed_with_decline_code():
    payload = intent_payload(
        "pi_declined",
        status="requires_payment_method",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    )
    sync.upsert_payment_intents([payment_intent_from_stripe(payload)])
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.FAILED
    assert (payment.failure_code, payment.decline_code) == ("card_declined", "insufficient_funds")
    assert payment.failure_message == "Your card has insufficient funds."
    assert payment.failed_at is not None
    assert (payment.stripe_fee, payment.platform_fee, payment.net) == (0, 0, 0)
    # No local customer row yet: the foreign key stays empty rather than failing.
    assert payment.customer is None


def test_stale_processing_snapshot_does_not_overwrite_succeeded(customer):
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    stale = intent_payload(status="processing")
    result = sync.upsert_payment_intents([payment_intent_from_stripe(stale)])
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_status == "succeeded"
    assert result.updated == 0


def test_payment_succeeded_signal_is_sent_once_after_commit(
    customer, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, payment, **kwargs):
        received.append(payment.stripe_payment_intent_id)

    payment_succeeded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync.upsert_payment_intents(
                [payment_intent_from_stripe(intent_payload(status="processing"))]
            )
        assert received == []
        with django_capture_on_commit_callbacks(execute=True):
            sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
        with django_capture_on_commit_callbacks(execute=True):
            sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
        assert received == ["pi_1"]
    finally:
        payment_succeeded.disconnect(receiver)


def test_no_signal_for_backfills(customer, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, payment, **kwargs):
        received.append(payment)

    payment_succeeded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync.upsert_payment_intents(
                [payment_intent_from_stripe(intent_payload())], send_signals=False
            )
        assert received == []
    finally:
        payment_succeeded.disconnect(receiver)


def refund_payload(re_id, *, amount, status="succeeded", pi_id="pi_1") -> dict:
    return {
        "id": re_id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "payment_intent": pi_id,
        "charge": "ch_" + pi_id[3:],
        "created": T0 + 60,
        "reason": "requested_by_customer",
        "metadata": {"refund_request": "7"},
    }


def test_refunds_derive_partially_refunded_then_refunded(customer, settings):
    settings.PLATFORM_FEE_BPS = 2000
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    result = sync.upsert_refunds([refund_from_stripe(refund_payload("re_1", amount=4000))])
    assert result.created == 1
    payment = Payment.objects.get()
    assert (payment.status, payment.amount_refunded) == (Payment.Status.PARTIALLY_REFUNDED, 4000)
    refund = Refund.objects.get()
    assert (refund.payment, refund.amount, refund.status) == (payment, 4000, "succeeded")
    assert refund.reason == "requested_by_customer"

    sync.upsert_refunds([refund_from_stripe(refund_payload("re_2", amount=6000))])
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == (Payment.Status.REFUNDED, 10_000)
    # Fees stay: a refund does not return Stripe's fee.
    assert payment.stripe_fee == 320

    # A stale intent snapshot (taken before the refunds) does not lower amount_refunded.
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == (Payment.Status.REFUNDED, 10_000)


def test_refund_that_fails_after_succeeding_lowers_amount_refunded(customer):
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    sync.upsert_refunds([refund_from_stripe(refund_payload("re_1", amount=4000))])
    sync.upsert_refunds([refund_from_stripe(refund_payload("re_1", amount=4000, status="failed"))])
    payment = Payment.objects.get()
    assert (payment.status, payment.amount_refunded) == (Payment.Status.SUCCEEDED, 0)


def test_refund_of_unknown_payment_is_skipped_and_reported():
    result = sync.upsert_refunds(
        [refund_from_stripe(refund_payload("re_x", amount=10, pi_id="pi_x"))]
    )
    assert (result.skipped, result.missing_parents) == (1, {"pi_x"})
    assert not Refund.objects.exists()


def dispute_payload(status="needs_response", **extra) -> dict:
    """A charge.dispute.* data.object as Stripe sends it (localstripe has no disputes)."""
    return {
        "id": "dp_1",
        "object": "dispute",
        "amount": 10_000,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "status": status,
        "reason": "fraudulent",
        "created": T0 + 3600,
        "evidence_details": {"due_by": T0 + 86400 * 7, "has_evidence": False},
        **extra,
    }


def test_dispute_marks_payment_disputed_and_a_won_dispute_releases_it(customer):
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    result = sync.upsert_disputes([dispute_from_stripe(dispute_payload())])
    assert result.created == 1
    dispute = Dispute.objects.get()
    assert dispute.evidence_due_by == datetime.fromtimestamp(T0 + 86400 * 7, tz=UTC)
    assert Payment.objects.get().status == Payment.Status.DISPUTED
    # The sync re-reading the intent keeps it disputed (derived from local disputes).
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    assert Payment.objects.get().status == Payment.Status.DISPUTED

    sync.upsert_disputes([dispute_from_stripe(dispute_payload(status="won"))])
    dispute.refresh_from_db()
    assert dispute.closed_at is not None
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    again = sync.upsert_disputes([dispute_from_stripe(dispute_payload(status="won"))])
    assert again.unchanged == 1


def test_dispute_found_by_charge_when_payment_intent_is_missing(customer):
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    sync.upsert_disputes([dispute_from_stripe(dispute_payload(payment_intent=None))])
    assert Dispute.objects.get().payment.stripe_payment_intent_id == "pi_1"


def test_customers_upsert_and_default_payment_method():
    from payments.gateway import customer_from_stripe, payment_method_from_stripe

    payload = {
        "id": "cus_9",
        "object": "customer",
        "email": "Ada@Example.com",
        "name": "Ada",
        "created": T0,
        "livemode": False,
        "invoice_settings": {"default_payment_method": "pm_b"},
    }
    assert sync.upsert_customers([customer_from_stripe(payload)]).created == 1
    methods = [
        payment_method_from_stripe(
            {"id": pm, "type": "card", "customer": "cus_9", "created": T0, "card": {}}
        )
        for pm in ("pm_a", "pm_b")
    ]
    assert sync.upsert_payment_methods(methods).created == 2
    sync.upsert_customers([customer_from_stripe(payload)])
    assert list(
        PaymentMethod.objects.filter(is_default=True).values_list("stripe_id", flat=True)
    ) == ["pm_b"]
    payload["invoice_settings"]["default_payment_method"] = "pm_a"
    payload["name"] = "Ada L."
    result = sync.upsert_customers([customer_from_stripe(payload)])
    assert result.updated == 1
    assert Customer.objects.get().email == "ada@example.com"
    assert list(
        PaymentMethod.objects.filter(is_default=True).values_list("stripe_id", flat=True)
    ) == ["pm_a"]


def test_a_page_costs_a_fixed_number_of_statements(customer):
    """<= 2 statements per object: the statement count does not grow with the page."""

    def statements(n, prefix):
        rows = [payment_intent_from_stripe(intent_payload(f"pi_{prefix}{i}")) for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            sync.upsert_payment_intents(rows)
        return len(ctx.captured_queries)

    statements(1, "warm")  # mirrors the shared payment method pm_1 once
    small, large = statements(5, "a"), statements(100, "b")
    assert large == small
    assert large <= 2 * 100


def test_a_lost_dispute_comes_off_the_instructors_net_with_stripes_fee_mirrored(customer):
    """Stripe's dispute fee is the sum of the dispute's balance transactions' fees (the
    withdrawal carries it); a lost dispute takes the disputed amount off the net."""
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload())])
    before = Payment.objects.get().net
    withdrawal = {"id": "txn_1", "amount": -10_000, "currency": "usd", "fee": 1500}
    payload = dispute_payload(status="lost", balance_transactions=[withdrawal])
    mapped = dispute_from_stripe(payload)
    assert mapped.fee == 1500
    sync.upsert_disputes([mapped])
    assert Dispute.objects.get().fee == 1500
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.DISPUTED
    assert payment.net == before - 10_000
