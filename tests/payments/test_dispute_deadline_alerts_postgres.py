"""Dispute deadline alerts run twice at once on PostgreSQL (real transactions in real
threads): every alert is recorded and mailed exactly once between the two runs."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection

from payments.models import DisputeDeadlineAlert
from payments.services.dispute_alerts import dispute_deadline_alerts_send
from tests.factories import DisputeFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_two_runs_at_once_send_each_alert_once(settings):
    settings.DISPUTE_ALERT_DAYS = [7, 3, 1]
    settings.DISPUTE_ALERT_GROUP = "Finance staff"
    settings.DISPUTE_ALERT_EMAILS = []
    group, _ = Group.objects.get_or_create(name="Finance staff")
    UserFactory(username="fiona", email="fiona@example.com").groups.add(group)
    disputes = [
        DisputeFactory(evidence_due_by=NOW + timedelta(hours=h)) for h in (5, 30, 60, 100, 150)
    ]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(dispute_deadline_alerts_send(now=NOW))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sum(result["sent"] for result in results) == len(disputes)
    assert DisputeDeadlineAlert.objects.count() == len(disputes)
    mailed = [d.stripe_id for d in disputes for m in mail.outbox if d.stripe_id in m.body]
    assert sorted(mailed) == sorted(d.stripe_id for d in disputes)
