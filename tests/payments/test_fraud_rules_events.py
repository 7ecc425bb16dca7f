"""The fraud rules run after every upsert of payment intents (webhook or sync), scoped to what
it touched; a rule error never fails the webhook. Card fingerprints and the buyer's IP reach
the mirror from Stripe-shaped objects (mapper -> upsert)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import fraud_rules, gateway, sync, webhooks
from payments.gateway import StripePaymentIntent
from payments.metadata import MSG_BAD_IP, parse_payment_metadata
from payments.models import FraudAlert, FraudRuleFailure, Payment, PaymentMethod, WebhookEvent
from tests.factories import CustomerFactory, PaymentFactory
from tests.payments.webhook_support import make_event, post_event


def stripe_intent(pi: str, customer_id: str, *, status="requires_payment_method", **extra):
    """A payment intent as Stripe returns it, latest charge expanded."""
    failed = status == "requires_payment_method"
    return {
        "id": pi,
        "object": "payment_intent",
        "amount": 5000,
        "currency": "usd",
        "status": status,
        "created": int(timezone.now().timestamp()),
        "customer": customer_id,
        "metadata": {"client_ip": "198.51.100.23", **extra.pop("metadata", {})},
        "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"}
        if failed
        else None,
        "latest_charge": {
            "id": "ch_" + pi[3:],
            "object": "charge",
            "status": "failed" if failed else "succeeded",
            "created": int(timezone.now().timestamp()),
            "payment_method_details": {"type": "card", "card": {"fingerprint": "Xt5EWLLDS7FJjR1c"}},
        },
        **extra,
    }


# --- mapping: fingerprint and IP ---------------------------------------------------------------


def test_the_mapper_reads_the_charges_card_fingerprint():
    row = gateway.payment_intent_from_stripe(stripe_intent("pi_map", "cus_x"))
    assert row.card_fingerprint == "Xt5EWLLDS7FJjR1c"
    method = gateway.payment_method_from_stripe(
        {"id": "pm_1", "type": "card", "card": {"last4": "4242", "fingerprint": "fpPM"}}
    )
    assert method.card_fingerprint == "fpPM"


def test_the_metadata_contract_validates_client_ip():
    assert parse_payment_metadata({"client_ip": " 2001:DB8::1 "}).client_ip == "2001:db8::1"
    bad = parse_payment_metadata({"client_ip": "999.1.1.1"})
    assert bad.client_ip == "" and MSG_BAD_IP.format(value="999.1.1.1") in bad.problems
    missing = parse_payment_metadata({})
    assert missing.client_ip == "" and not any("client_ip" in p for p in missing.problems)


@pytest.mark.django_db
def test_the_upserts_fill_fingerprint_and_ip_and_keep_them(django_capture_on_commit_callbacks):
    customer = CustomerFactory(stripe_id="cus_fp")
    row = gateway.payment_intent_from_stripe(stripe_intent("pi_fp", customer.stripe_id))
    with django_capture_on_commit_callbacks(execute=True):
        sync.upsert_payment_intents([row])
    payment = Payment.objects.get(stripe_payment_intent_id="pi_fp")
    assert (payment.card_fingerprint, payment.ip_address) == ("Xt5EWLLDS7FJjR1c", "198.51.100.23")
    # A later snapshot without charge details or metadata does not erase them.
    bare = StripePaymentIntent(
        id="pi_fp", amount=5000, currency="usd", status="canceled", created=row.created
    )
    sync.upsert_payment_intents([bare], detect_fraud=False)
    payment.refresh_from_db()
    assert (payment.card_fingerprint, payment.ip_address) == ("Xt5EWLLDS7FJjR1c", "198.51.100.23")
    method = gateway.payment_method_from_stripe(
        {"id": "pm_fp", "type": "card", "customer": "cus_fp", "card": {"fingerprint": "fpPM"}}
    )
    sync.upsert_payment_methods([method])
    assert PaymentMethod.objects.get(stripe_id="pm_fp").card_fingerprint == "fpPM"


# --- the hook after an upsert ------------------------------------------------------------------


def two_earlier_failures(customer):
    for minutes in (5, 3):
        PaymentFactory(
            customer=customer, failed=True, created=timezone.now() - timedelta(minutes=minutes)
        )


@pytest.mark.django_db
def test_a_sync_upsert_runs_the_rules_for_the_customers_it_touched(
    django_capture_on_commit_callbacks,
):
    customer = CustomerFactory(stripe_id="cus_burst")
    two_earlier_failures(customer)
    # Another customer's burst nobody touched: the scoped pass leaves it to the hourly run.
    two_earlier_failures(other := CustomerFactory())
    PaymentFactory(customer=other, failed=True, created=timezone.now())
    row = gateway.payment_intent_from_stripe(stripe_intent("pi_third", customer.stripe_id))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sync.upsert_payment_intents([row])
    assert len(callbacks) == 1
    (alert,) = FraudAlert.objects.all()
    assert alert.rule == "failed_attempts" and alert.customer == customer
    assert alert.payment.stripe_payment_intent_id == "pi_third"


@pytest.mark.django_db
def test_a_bulk_load_can_leave_detection_to_one_pass(django_capture_on_commit_callbacks):
    customer = CustomerFactory(stripe_id="cus_bulk")
    two_earlier_failures(customer)
    row = gateway.payment_intent_from_stripe(stripe_intent("pi_bulk", customer.stripe_id))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sync.upsert_payment_intents([row], detect_fraud=False)
    assert callbacks == [] and not FraudAlert.objects.exists()


@pytest.mark.django_db
def test_the_hook_can_be_switched_off(settings, django_capture_on_commit_callbacks):
    settings.FRAUD_DETECT_ON_EVENTS = False
    customer = CustomerFactory(stripe_id="cus_off")
    two_earlier_failures(customer)
    row = gateway.payment_intent_from_stripe(stripe_intent("pi_off", customer.stripe_id))
    with django_capture_on_commit_callbacks(execute=True):
        sync.upsert_payment_intents([row])
    assert not FraudAlert.objects.exists()


# --- through the webhook -----------------------------------------------------------------------


@pytest.fixture
def stripe_has(monkeypatch):
    """gateway.stripe_payment_intent_retrieve answers from these Stripe-shaped intents."""
    intents: dict[str, dict] = {}

    def retrieve(*, payment_intent_id):
        return gateway.payment_intent_from_stripe(intents[payment_intent_id])

    monkeypatch.setattr(webhooks.gateway, "stripe_payment_intent_retrieve", retrieve)
    return intents


def failed_event(stripe_has, pi, customer):
    stripe_has[pi] = stripe_intent(pi, customer.stripe_id)
    return make_event("payment_intent.payment_failed", {"id": pi, "object": "payment_intent"})


# transaction=True: the endpoint enqueues in on_commit, and the hook runs on commit too.
@pytest.mark.django_db(transaction=True)
def test_a_payment_failed_webhook_opens_the_rule_alert(client, stripe_has):
    customer = CustomerFactory(stripe_id="cus_webhook")
    two_earlier_failures(customer)
    assert post_event(client, failed_event(stripe_has, "pi_wh3", customer)).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    (alert,) = FraudAlert.objects.all()
    assert (alert.rule, alert.numbers["count"]) == ("failed_attempts", 3)
    assert alert.payment.ip_address == "198.51.100.23"


@pytest.mark.django_db(transaction=True)
def test_a_rule_error_never_breaks_the_webhook(client, stripe_has, monkeypatch):
    def broken(scope):
        raise RuntimeError("rule bug")

    monkeypatch.setitem(fraud_rules.RULES, "unusual_amount", broken)
    customer = CustomerFactory(stripe_id="cus_err")
    two_earlier_failures(customer)
    assert post_event(client, failed_event(stripe_has, "pi_err", customer)).status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.error) == (WebhookEvent.Status.PROCESSED, "")
    assert Payment.objects.filter(stripe_payment_intent_id="pi_err").exists()
    failure = FraudRuleFailure.objects.get()
    assert (failure.rule, failure.trigger, failure.error) == (
        "unusual_amount",
        "event",
        "RuntimeError: rule bug",
    )
    # The other rules still ran.
    assert FraudAlert.objects.get().rule == "failed_attempts"


@pytest.mark.django_db(transaction=True)
def test_even_a_broken_pass_never_breaks_the_webhook(client, stripe_has, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(fraud_rules, "fraud_rules_run", broken)
    customer = CustomerFactory(stripe_id="cus_err2")
    assert post_event(client, failed_event(stripe_has, "pi_err2", customer)).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert FraudRuleFailure.objects.get().trigger == "event"
