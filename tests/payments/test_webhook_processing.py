"""Processing stored events: retries, failure, ignored types (disputes: test_dispute_mirror.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from payments import webhooks
from payments.models import WebhookEvent
from payments.tasks import webhook_event_process_task
from payments.webhooks import (
    ERROR_MISSING_PARENT,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    TASK_PATH,
    webhook_events_requeue_stale,
)
from tests.payments.webhook_support import make_event, post_event

# transaction=True: the endpoint enqueues in on_commit (never fired inside a test transaction).
pytestmark = pytest.mark.django_db(transaction=True)


class Flaky:
    """A handler that fails `failures` times, then works; counts its calls."""

    def __init__(self, failures):
        self.failures = failures
        self.calls = 0

    def __call__(self, event):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"boom {self.calls}")


@pytest.fixture
def flaky(monkeypatch):
    def install(failures):
        handler = Flaky(failures)
        monkeypatch.setitem(webhooks.HANDLERS, "customer.updated", handler)
        return handler

    return install


def test_failure_is_recorded_and_scheduled_for_retry(client, flaky):
    handler = flaky(1)
    before = timezone.now()
    post_event(client, make_event("customer.updated", {"id": "cus_1"}))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.RETRYING
    assert event.attempts == 1
    assert event.error == "RuntimeError: boom 1"
    assert event.next_attempt_at >= before + RETRY_DELAYS[0]
    retry = Schedule.objects.get(func=TASK_PATH)
    assert retry.schedule_type == Schedule.ONCE
    assert retry.next_run == event.next_attempt_at
    assert handler.calls == 1


def test_the_scheduled_retry_runs_through_django_q_and_succeeds(client, flaky):
    handler = flaky(1)
    post_event(client, make_event("customer.updated", {"id": "cus_1"}))
    # Only our retry in this scheduler pass (other apps' schedules are not under test here).
    Schedule.objects.exclude(func=TASK_PATH).delete()
    Schedule.objects.update(next_run=timezone.now() - timedelta(seconds=1))
    from django_q.scheduler import scheduler

    assert Conf.SYNC  # the scheduler runs the due task inline
    scheduler()
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.error == ""
    assert event.attempts == 2
    assert handler.calls == 2


def test_after_max_attempts_the_event_is_failed(client, flaky):
    handler = flaky(100)
    post_event(client, make_event("customer.updated", {"id": "cus_1"}))
    event = WebhookEvent.objects.get()
    for _ in range(MAX_ATTEMPTS - 1):
        webhook_event_process_task(event.pk)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.attempts == MAX_ATTEMPTS
    assert event.error == f"RuntimeError: boom {MAX_ATTEMPTS}"
    assert handler.calls == MAX_ATTEMPTS
    # Failed events wait for a replay; nothing schedules them again, and a leftover
    # scheduled retry does not run them.
    assert Schedule.objects.filter(func=TASK_PATH).count() == MAX_ATTEMPTS - 1
    assert webhook_event_process_task(event.pk) is None
    assert handler.calls == MAX_ATTEMPTS


def test_a_processed_event_is_not_processed_again(client, flaky):
    handler = flaky(0)
    post_event(client, make_event("customer.updated", {"id": "cus_1"}))
    event = WebhookEvent.objects.get()
    assert webhook_event_process_task(event.pk) is None
    assert handler.calls == 1


def test_a_fresh_processing_claim_is_not_taken_over(flaky):
    handler = flaky(0)
    event = WebhookEvent.objects.create(
        stripe_id="evt_busy",
        type="customer.updated",
        created=timezone.now(),
        payload=make_event("customer.updated", {"id": "c"}),
        status=WebhookEvent.Status.PROCESSING,
        processing_started_at=timezone.now(),
    )
    assert webhook_event_process_task(event.pk) is None
    assert handler.calls == 0


def test_requeue_picks_up_lost_stale_and_due_events(flaky):
    handler = flaky(0)
    now = timezone.now()
    old = now - timedelta(hours=1)

    def event(stripe_id, **fields):
        return WebhookEvent.objects.create(
            stripe_id=stripe_id,
            type="customer.updated",
            created=old,
            payload=make_event("customer.updated", {"id": stripe_id}),
            **fields,
        )

    lost = event("evt_lost", received_at=old)
    dead = event("evt_dead", status="processing", processing_started_at=old, received_at=old)
    due = event("evt_due", status="retrying", next_attempt_at=now - timedelta(seconds=5))
    event("evt_fresh")  # just received: its own task is on the way
    event("evt_later", status="retrying", next_attempt_at=now + timedelta(minutes=5))
    assert webhook_events_requeue_stale(now=now) == {"requeued": 3}
    done = set(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED).values_list(
            "pk", flat=True
        )
    )
    assert done == {lost.pk, dead.pk, due.pk}
    assert handler.calls == 3


def test_refund_of_an_unknown_payment_retries_with_a_clear_error(client, monkeypatch):
    from payments.gateway import StripeRefund

    refund = StripeRefund(
        id="re_1",
        payment_intent_id="",
        charge_id="ch_unknown",
        amount=100,
        currency="usd",
        status="succeeded",
        created=timezone.now(),
    )
    monkeypatch.setattr(webhooks.gateway, "stripe_refund_retrieve", lambda refund_id: refund)
    post_event(client, make_event("refund.created", {"id": "re_1", "charge": "ch_unknown"}))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.RETRYING
    assert event.error == "MissingParent: " + ERROR_MISSING_PARENT.format(ids=["ch_unknown"])
