"""Concurrent deliveries on PostgreSQL: real transactions in real threads."""

import threading

import pytest
from django.db import connection
from django.test import Client

from payments import webhooks
from payments.models import WebhookEvent
from tests.payments.webhook_support import make_event, post_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def effects(monkeypatch):
    calls, lock = [], threading.Lock()

    def handler(event):
        with lock:
            calls.append(event.stripe_id)

    monkeypatch.setitem(webhooks.HANDLERS, "customer.updated", handler)
    return calls


def post_concurrently(events):
    """POST each event from its own thread (own connection), all released at once."""
    barrier = threading.Barrier(len(events))
    answers, errors = [], []

    def deliver(event):
        try:
            barrier.wait(timeout=10)
            response = post_event(Client(), event)
            answers.append((response.status_code, response.json()["duplicate"]))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return answers


def test_same_event_posted_10_times_at_once_gives_one_row_and_one_effect(effects):
    event = make_event("customer.updated", {"id": "cus_concurrent"})
    answers = post_concurrently([event] * 10)
    assert sorted(answers) == [(200, False)] + [(200, True)] * 9
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert effects == [event["id"]]


def test_ten_different_events_at_once_are_all_kept(effects):
    events = [make_event("customer.updated", {"id": f"cus_{i}"}) for i in range(10)]
    answers = post_concurrently(events)
    assert answers == [(200, False)] * 10
    assert WebhookEvent.objects.filter(status="processed").count() == 10
    assert sorted(effects) == sorted(e["id"] for e in events)


def test_a_disputes_events_processed_at_once_end_in_the_latest_state():
    """The older snapshot must never win over the newer one, however the two handlers
    interleave (each round: both events at once, in both list orders)."""
    from payments.models import Dispute, Payment
    from tests.factories import PaymentFactory
    from tests.payments.test_webhook_processing import dispute_events

    payment = PaymentFactory(stripe_payment_intent_id="pi_disputed", stripe_charge_id="ch_disputed")
    created, _, _, closed = dispute_events(base=1_790_000_000)
    finals = set()
    for round_ in range(8):
        Dispute.objects.all().delete()
        WebhookEvent.objects.all().delete()
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)
        pair = [created, closed] if round_ % 2 else [closed, created]
        # Fresh event ids each round, same created / payload.
        pair = [{**e, "id": f"{e['id']}_{round_}"} for e in pair]
        answers = post_concurrently(pair)
        assert answers == [(200, False)] * 2
        finals.add(Dispute.objects.get().status)
    assert finals == {"lost"}
