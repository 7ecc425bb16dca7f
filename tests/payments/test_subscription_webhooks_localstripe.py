"""Subscription webhooks delivered by the peer itself: the project's localstripe launcher signs
and POSTs customer.subscription.* and invoice.* over real HTTP to our live server; each
handler re-reads the subscription through the gateway and lands it through the sync's upsert.
The mirror follows a subscription through its life (created, set to end, a declined renewal,
canceled), a replayed event changes nothing, and the sync run afterwards agrees (0 changes).

One event family is let through at a time (see test_webhook_disputes_localstripe.py: the
live server's in-memory SQLite fails, rather than waits, on concurrent writers)."""

import pytest
import requests

from payments import gateway, webhooks
from payments.models import Customer, Subscription, WebhookEvent
from payments.sync_runs import stripe_sync
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.subscription_support import CARD_DECLINES, monthly_price, renew, subscribe
from tests.payments.webhook_support import PRIMARY_SECRET

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

HOOK_ID = "wh_backoffice_subscription_tests"


@pytest.fixture
def peer(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    return localstripe


@pytest.fixture
def deliver(localstripe, live_server):
    url = f"{live_server.url}/stripe/webhook/"

    let_earlier_events_pass()

    def only(*types):
        requests.post(
            f"{localstripe}/_config/webhooks/{HOOK_ID}",
            json={"url": url, "secret": PRIMARY_SECRET, "events": list(types)},
            timeout=5,
        ).raise_for_status()

    yield only
    stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)


def wait_for(condition, timeout=15.0):
    wait_until(
        condition,
        timeout=timeout,
        describe=lambda: f"events: {list(WebhookEvent.objects.values('type', 'status', 'error'))}",
    )


def processed(event_type):
    return WebhookEvent.objects.filter(type=event_type, status="processed").exists()


def test_a_subscription_s_life_reaches_the_mirror_through_its_events(peer, deliver):
    price = monthly_price()
    deliver("customer.subscription.created")
    customer, _, made = subscribe(email="ada@example.com", price=price, key="ada")
    wait_for(lambda: processed("customer.subscription.created"))
    row = Subscription.objects.get(stripe_id=made.id)
    # The customer was not mirrored yet: the handler brought it first.
    assert row.customer == Customer.objects.get(stripe_id=customer.id)
    assert (row.status, row.amount, row.currency, row.latest_invoice_status) == (
        "active",
        4900,
        "usd",
        "paid",
    )

    deliver("customer.subscription.updated")
    gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=made.id, cancel=True, comment="Moving abroad", idempotency_key="ada:end"
    )
    wait_for(lambda: Subscription.objects.filter(cancel_at_period_end=True).exists())
    row.refresh_from_db()
    assert (row.cancellation_reason, row.cancellation_comment) == (
        "cancellation_requested",
        "Moving abroad",
    )
    gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=made.id, cancel=False, idempotency_key="ada:resume"
    )
    wait_for(lambda: Subscription.objects.filter(cancel_at_period_end=False).exists())

    # A declined renewal: invoice.payment_failed re-reads the subscription, now past due.
    declining = gateway.stripe_payment_method_attach(
        payment_method_id=CARD_DECLINES, customer_id=customer.id, idempotency_key="ada:bad"
    )
    gateway.stripe_customer_default_payment_method_set(
        customer_id=customer.id, payment_method_id=declining.id, idempotency_key="ada:default2"
    )
    deliver("invoice.payment_failed")
    renew(made.id)
    wait_for(lambda: processed("invoice.payment_failed"))
    row.refresh_from_db()
    assert (row.status, row.latest_invoice_status) == ("past_due", "open")
    assert row.latest_invoice_amount_due == 4900

    deliver("customer.subscription.deleted")
    gateway.stripe_subscription_cancel(
        subscription_id=made.id, comment="Card keeps failing", idempotency_key="ada:cancel"
    )
    wait_for(lambda: Subscription.objects.filter(status="canceled").exists())
    row.refresh_from_db()
    assert row.ended_at is not None and row.cancellation_comment == "Card keeps failing"

    # Handled again (a replay): the same state.
    event = WebhookEvent.objects.get(type="invoice.payment_failed")
    webhooks.handle_invoice(event)
    row.refresh_from_db()
    assert row.status == "canceled"  # an invoice event re-reads the current state
    history = row.history.count()
    webhooks.handle_invoice(event)
    assert row.history.count() == history  # nothing changed, nothing written
    # The sync afterwards agrees with what the events left.
    report = stripe_sync()
    assert report.counts["subscription"]["updated"] == 0
    assert report.counts["subscription"]["created"] == 0


def test_invoice_paid_refreshes_the_subscription_it_bills(peer, deliver):
    price = monthly_price()
    _, _, trial = subscribe(email="tim@example.com", price=price, key="tim", trial_days=7)
    deliver("invoice.paid")
    renew(trial.id)  # the trial ends; the first invoice is paid
    wait_for(lambda: processed("invoice.paid"))
    row = Subscription.objects.get(stripe_id=trial.id)
    assert (row.status, row.latest_invoice_status, row.latest_invoice_amount_paid) == (
        "active",
        "paid",
        4900,
    )
