"""The sync's concurrency guarantees on PostgreSQL, where row locks are real.

- Two webhook handlers (or a handler and the sync) upserting the same "now succeeded"
  snapshot at once: the second waits on the first's row lock, sees "succeeded" and sends no
  second payment_succeeded signal.
- Two sync runs started at once: one runs, the other is recorded as skipped.
"""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from payments import sync
from payments.gateway import payment_intent_from_stripe
from payments.models import JobLock, Payment, SyncRun
from payments.signals import payment_succeeded
from payments.sync_runs import LOCK_NAME
from tests.payments.test_sync_upserts import intent_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(n, target):
    barrier = threading.Barrier(n)
    errors = []

    def worker():
        try:
            barrier.wait()
            target()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_concurrent_upserts_of_a_newly_succeeded_payment_signal_once():
    sync.upsert_payment_intents([payment_intent_from_stripe(intent_payload(status="processing"))])
    received = []

    def receiver(sender, payment, **kwargs):
        received.append(payment.pk)

    payment_succeeded.connect(receiver)
    try:
        snapshot = payment_intent_from_stripe(intent_payload())
        run_in_threads(8, lambda: sync.upsert_payment_intents([snapshot]))
    finally:
        payment_succeeded.disconnect(receiver)
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert received == [payment.pk]
    # One history row for the insert, one for the change to succeeded: no duplicates.
    assert payment.history.count() == 2


def test_concurrent_lock_acquisition_has_one_winner():
    tokens = []
    run_in_threads(
        8, lambda: tokens.append(JobLock.objects.acquire(LOCK_NAME, ttl=timedelta(minutes=5)))
    )
    assert len([t for t in tokens if t]) == 1
    assert JobLock.objects.count() == 1


def test_a_sync_run_while_another_holds_the_lock_is_skipped_on_postgres():
    from payments.sync_runs import stripe_sync

    token = JobLock.objects.acquire(LOCK_NAME, ttl=timedelta(minutes=5))
    assert stripe_sync().status == "skipped"
    assert SyncRun.objects.get().status == SyncRun.Status.SKIPPED
    JobLock.objects.release(LOCK_NAME, token)
