"""Subscriptions at the project's localstripe launcher, through the gateway: made, changed
(cancel at period end, undo it, cancel now), renewed (paid, declined -> past due), listed
with their latest invoice; the sync's subscription pass mirrors every status, a re-run
changes nothing, and a change to a subscription older than the window is found through its
events."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from payments import gateway
from payments.exceptions import InvalidRequest
from payments.models import Customer, Subscription, SyncObjectType, SyncState
from payments.sync_runs import stripe_sync
from tests.management.stripe_peer import setup_peer
from tests.payments.subscription_support import (
    CARD_DECLINES,
    monthly_price,
    renew,
    subscribe,
)

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def test_the_gateway_makes_changes_and_reads_subscriptions(peer):
    price = monthly_price()
    assert (price.unit_amount, price.currency, price.interval, price.nickname) == (
        4900,
        "usd",
        "month",
        "Monthly tutoring",
    )
    customer, _, sub = subscribe(email="ada@example.com", price=price, key="ada")
    assert (sub.status, sub.customer_id, sub.amount, sub.currency, sub.interval) == (
        "active",
        customer.id,
        4900,
        "usd",
        "month",
    )
    assert (sub.price_id, sub.plan_name, sub.latest_invoice_status) == (
        price.id,
        "Monthly tutoring",
        "paid",
    )
    assert sub.current_period_end > sub.current_period_start

    scheduled = gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=sub.id, cancel=True, comment="Moving abroad", idempotency_key="k:1"
    )
    assert scheduled.cancel_at_period_end and scheduled.status == "active"
    assert scheduled.cancel_at == sub.current_period_end
    assert (scheduled.cancellation_reason, scheduled.cancellation_comment) == (
        "cancellation_requested",
        "Moving abroad",
    )
    # The same key again: Stripe answers the first answer.
    again = gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=sub.id, cancel=True, comment="Moving abroad", idempotency_key="k:1"
    )
    assert again == scheduled

    resumed = gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=sub.id, cancel=False, idempotency_key="k:2"
    )
    assert (resumed.cancel_at_period_end, resumed.cancel_at, resumed.canceled_at) == (
        False,
        None,
        None,
    )

    canceled = gateway.stripe_subscription_cancel(
        subscription_id=sub.id, comment="Chargeback on the first payment", idempotency_key="k:3"
    )
    assert canceled.status == "canceled"
    assert canceled.canceled_at and canceled.ended_at
    assert canceled.cancellation_comment == "Chargeback on the first payment"
    with pytest.raises(InvalidRequest):
        gateway.stripe_subscription_cancel(subscription_id=sub.id, idempotency_key="k:4")
    with pytest.raises(InvalidRequest):
        gateway.stripe_subscription_cancel_at_period_end(
            subscription_id=sub.id, cancel=True, idempotency_key="k:5"
        )
    assert gateway.stripe_subscription_retrieve(subscription_id=sub.id).status == "canceled"


def test_a_trial_and_a_declined_renewal(peer):
    price = monthly_price()
    _, _, trial = subscribe(email="tim@example.com", price=price, key="tim", trial_days=14)
    assert trial.status == "trialing"
    assert trial.trial_end == trial.current_period_end
    assert trial.trial_end - trial.current_period_start == timedelta(days=14)

    customer, _, sub = subscribe(email="pat@example.com", price=price, key="pat")
    declining = gateway.stripe_payment_method_attach(
        payment_method_id=CARD_DECLINES, customer_id=customer.id, idempotency_key="pat:bad"
    )
    gateway.stripe_customer_default_payment_method_set(
        customer_id=customer.id, payment_method_id=declining.id, idempotency_key="pat:default2"
    )
    renew(sub.id)
    past_due = gateway.stripe_subscription_retrieve(subscription_id=sub.id)
    assert (past_due.status, past_due.latest_invoice_status) == ("past_due", "open")
    assert past_due.latest_invoice_id != sub.latest_invoice_id
    assert past_due.latest_invoice_amount_due == 4900
    assert past_due.latest_invoice_amount_paid == 0

    # The trial ends: the first invoice is paid with the card on file.
    renew(trial.id)
    assert gateway.stripe_subscription_retrieve(subscription_id=trial.id).status == "active"


def test_the_sync_mirrors_every_status_and_a_rerun_changes_nothing(peer):
    price = monthly_price()
    _, _, active = subscribe(email="ann@example.com", price=price, key="ann")
    _, _, trial = subscribe(email="tom@example.com", price=price, key="tom", trial_days=7)
    _, _, ending = subscribe(email="eve@example.com", price=price, key="eve")
    gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=ending.id, cancel=True, idempotency_key="eve:cancel"
    )
    _, _, gone = subscribe(email="gus@example.com", price=price, key="gus")
    gateway.stripe_subscription_cancel(subscription_id=gone.id, idempotency_key="gus:cancel")
    _, _, failing = subscribe(email="ivy@example.com", price=price, key="ivy", card=CARD_DECLINES)

    report = stripe_sync()
    assert report.status == "succeeded", report.error
    rows = {s.stripe_id: s for s in Subscription.objects.select_related("customer")}
    assert {sid: row.status for sid, row in rows.items()} == {
        active.id: "active",
        trial.id: "trialing",
        ending.id: "active",
        gone.id: "canceled",
        failing.id: "incomplete",
    }
    assert rows[ending.id].cancel_at_period_end and rows[ending.id].cancel_at
    assert rows[active.id].customer.email == "ann@example.com"
    assert (rows[active.id].amount, rows[active.id].currency, rows[active.id].plan_name) == (
        4900,
        "usd",
        "Monthly tutoring",
    )
    assert rows[active.id].latest_invoice_status == "paid"
    assert rows[failing.id].latest_invoice_status == "open"
    assert report.counts["subscription"]["created"] == 5

    again = stripe_sync()
    assert again.counts["subscription"]["created"] == 0
    assert again.counts["subscription"]["updated"] == 0


def test_a_change_to_a_subscription_older_than_the_window_is_found_through_its_events(
    peer, settings
):
    settings.STRIPE_SYNC_OVERLAP_SECONDS = 0
    price = monthly_price()
    _, _, sub = subscribe(email="old@example.com", price=price, key="old")
    stripe_sync()
    # The watermark is the subscription's creation: the next pass lists none (overlap 0).
    state = SyncState.objects.get(object_type=SyncObjectType.SUBSCRIPTION)
    assert state.watermark == sub.created
    time.sleep(1.1)  # Stripe's times are whole seconds: the change comes a second later
    gateway.stripe_subscription_cancel_at_period_end(
        subscription_id=sub.id, cancel=True, idempotency_key="old:cancel"
    )
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert report.counts["subscription"]["updated"] == 1
    assert Subscription.objects.get(stripe_id=sub.id).cancel_at_period_end


def test_a_subscription_of_a_customer_outside_the_window_brings_its_customer(peer, settings):
    price = monthly_price()
    customer, _, sub = subscribe(email="late@example.com", price=price, key="late")
    # The customers' pass has run past this customer (its watermark is later).
    SyncState.objects.create(
        object_type=SyncObjectType.CUSTOMER, watermark=timezone.now() + timedelta(days=1)
    )
    settings.STRIPE_SYNC_OVERLAP_SECONDS = 0
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    row = Subscription.objects.get(stripe_id=sub.id)
    assert row.customer == Customer.objects.get(stripe_id=customer.id)
