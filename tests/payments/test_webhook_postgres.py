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


def test_a_disputes_events_processed_at_once_end_in_the_latest_state(monkeypatch):
    """The older snapshot must never win over the newer one, however the two handlers
    interleave: each round delivers two events at once, and the two re-reads answer an older
    and a newer state of the dispute (the first re-read the older one in even rounds, the
    newer one in odd rounds). Both upserts lock the payment first, so the second one reads
    the first one's row and keeps the later status."""
    from payments.models import Dispute, Payment
    from tests.factories import PaymentFactory
    from tests.payments.test_dispute_mirror import DISPUTE, snapshot

    answers_by_call: list = []
    lock = threading.Lock()

    def retrieve(*, dispute_id, client=None):
        with lock:
            return answers_by_call.pop(0)

    monkeypatch.setattr(webhooks.gateway, "stripe_dispute_retrieve", retrieve)
    payment = PaymentFactory(stripe_payment_intent_id="pi_disputed", stripe_charge_id="ch_disputed")
    finals = set()
    for round_ in range(8):
        Dispute.objects.all().delete()
        WebhookEvent.objects.all().delete()
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)
        older, newer = snapshot("needs_response"), snapshot("lost")
        answers_by_call[:] = [older, newer] if round_ % 2 == 0 else [newer, older]
        pair = [
            make_event("charge.dispute.created", {"id": DISPUTE, "object": "dispute"}),
            make_event("charge.dispute.closed", {"id": DISPUTE, "object": "dispute"}),
        ]
        answers = post_concurrently(pair)
        assert answers == [(200, False)] * 2
        assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
        finals.add((Dispute.objects.get().status, Payment.objects.get(pk=payment.pk).status))
    assert finals == {("lost", Payment.Status.DISPUTED)}
