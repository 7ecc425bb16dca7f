"""The webhook safety-net schedule is installed by migrate and runs under django-q2."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule, Success

from payments.models import WebhookEvent
from tests.payments.webhook_support import make_event

pytestmark = pytest.mark.django_db

NAME = "payments: requeue stale webhook events"


def test_migrate_installs_the_requeue_schedule():
    schedule = Schedule.objects.get(name=NAME)
    assert schedule.func == "payments.tasks.webhook_events_requeue_stale"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 10, -1)


def test_the_schedule_requeues_a_lost_event(monkeypatch):
    from django_q.scheduler import scheduler

    from payments import webhooks

    calls = []
    monkeypatch.setitem(webhooks.HANDLERS, "customer.updated", calls.append)
    old = timezone.now() - timedelta(hours=1)
    lost = WebhookEvent.objects.create(
        stripe_id="evt_lost",
        type="customer.updated",
        created=old,
        received_at=old,
        payload=make_event("customer.updated", {"id": "cus_lost"}),
    )
    # Only this schedule in the pass (others are not under test), and due now.
    Schedule.objects.exclude(name=NAME).delete()
    Schedule.objects.filter(name=NAME).update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler()
    lost.refresh_from_db()
    assert lost.status == WebhookEvent.Status.PROCESSED
    assert [e.pk for e in calls] == [lost.pk]
    assert Success.objects.filter(func="payments.tasks.webhook_events_requeue_stale").exists()
