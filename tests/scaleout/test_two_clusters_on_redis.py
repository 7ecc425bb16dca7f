"""Scale-out on real engines: two q clusters at once on a real redis-server, one PostgreSQL,
localstripe as Stripe. 10,000 signed webhook events go through the real endpoint and 500
approved refunds through the refund service (from two push processes for the events, as two
gunicorn instances would, and one for the approvals); every event is processed once, every
refund is made once at the peer (one Stripe refund per request), and both clusters did work.

The registry's own schedules run in both clusters meanwhile (the refund safety net works the
same approved requests as their tasks, the Stripe sync re-reads the same payments as the
events), and a schedule row edited in SQL to run os.system is set aside by one of the two
scheduler passes: recorded failed, audited once, nothing ran.

Stripe peer: localstripe (real HTTP; it checks no idempotency keys, so a refund sent twice
would show there as two refunds). Run by scripts/test.sh in the PostgreSQL pass (it installs
redis-server); alone:
    d=$(mktemp -d); export "$(.venv/bin/python scripts/pgcluster.py start $d)"
    .venv/bin/python -m pytest -q -m "postgres and redis" tests/scaleout
    .venv/bin/python scripts/pgcluster.py stop $d
SCALEOUT_EVENTS / SCALEOUT_REFUNDS shrink the run while working on it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from django_q.models import Failure, Schedule, Success

from backoffice.models import AdminAction
from management.demo_refunds import demo_payment_create
from management.schedule_rules import AUDIT_SCHEDULE_SET_ASIDE
from payments.models import Payment, WebhookEvent
from refunds.models import RefundRequest
from refunds.services import AUDIT_PROCESS, refund_request_create
from tests.factories import UserFactory
from tests.scaleout.cluster_support import (
    database_url,
    process_env,
    run_driver,
    start_cluster,
    start_redis,
    stop_all,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.stripe,
    pytest.mark.django_db(transaction=True),
]

EVENTS = int(os.environ.get("SCALEOUT_EVENTS", "10000"))
REFUNDS = int(os.environ.get("SCALEOUT_REFUNDS", "500"))
REFUNDS_PER_PAYMENT = 5
PRICE = 5000  # minor units; five refunds of 5.00 leave half of each payment
REFUND_AMOUNT = 500
PUSHERS = 2
DEADLINE_SECONDS = 900

WEBHOOK_TASK = "payments.tasks.webhook_event_process_task"
REFUND_TASK = "refunds.tasks.refund_request_process_task"


@pytest.fixture
def redis_url(tmp_path):
    server = start_redis(tmp_path / "redis")
    yield server.url
    server.stop()


def _user(username, *codenames):
    user = UserFactory(username=username)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


def _seed(tmp_path):
    """Payments made at localstripe (mirrored by the sync's upserts), and REFUNDS pending
    refund requests on them, five per payment."""
    payments = [
        demo_payment_create(amount=PRICE, email=f"s{i}@example.com", name=f"S {i}", key=f"so{i}")
        for i in range(REFUNDS // REFUNDS_PER_PAYMENT)
    ]
    requester = _user("requester", "add_refundrequest", "view_refundrequest", "view_payment")
    approver = _user("approver", "approve_refundrequest", "view_refundrequest", "view_payment")
    for payment in payments:
        for _ in range(REFUNDS_PER_PAYMENT):
            refund_request_create(payment=payment, amount=REFUND_AMOUNT, acting_user=requester)
    spec = {
        "run": "scale",
        "payment_intents": [p.stripe_payment_intent_id for p in payments],
        "customers": sorted({p.customer.stripe_id for p in payments}),
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    return payments, approver, spec_path


def _plant_os_system_schedule(marker):
    """A schedule row pointed at os.system by an UPDATE in SQL (no save check runs)."""
    row = Schedule.objects.create(
        name="edited in SQL",
        func="payments.tasks.webhook_events_requeue_stale",
        next_run=timezone.now() - timedelta(minutes=1),
    )
    Schedule.objects.filter(pk=row.pk).update(func="os.system", args=repr(f"touch {marker}"))
    return row


def _driver_result(log_path):
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines, log_path.read_text()[-3000:]
    return json.loads(lines[-1])


def _wait(condition, *, clusters, what, deadline):
    while not condition():
        for cluster in clusters:
            assert cluster.alive(), f"a q cluster died:\n{cluster.log_path.read_text()[-3000:]}"
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(1)


def _refunds_at_the_peer(base):
    """Every refund localstripe holds (its list pages by starting_after)."""
    refunds, after = [], None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        response = requests.get(
            f"{base}/v1/refunds", params=params, auth=("sk_test_localstripe", ""), timeout=30
        )
        response.raise_for_status()
        page = response.json()
        refunds += page["data"]
        if not page["has_more"] or not page["data"]:
            return refunds
        after = page["data"][-1]["id"]


def test_two_clusters_on_redis_process_every_event_and_refund_exactly_once(
    localstripe, redis_url, settings, tmp_path
):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    started = time.monotonic()
    payments, approver, spec_path = _seed(tmp_path)
    marker = tmp_path / "os-system-ran"
    planted = _plant_os_system_schedule(marker)
    seeded = time.monotonic()

    env = process_env(
        database=database_url(connection.settings_dict),
        redis_url=redis_url,
        stripe_api_base=localstripe,
        # Keep every task's result: each one is counted below.
        Q_SAVE_LIMIT="0",
    )
    # INFO: django-q2 logs each task a cluster's worker takes (counted per cluster below).
    cluster_env = {**env, "LOG_LEVEL": "INFO"}
    clusters = [start_cluster(cluster_env, tmp_path / f"cluster{n}.log") for n in (1, 2)]
    try:
        per_pusher = EVENTS // PUSHERS
        drivers = [
            run_driver(
                env,
                "webhooks",
                str(spec_path),
                str(n * per_pusher),
                str(per_pusher if n < PUSHERS - 1 else EVENTS - n * per_pusher),
                log_path=tmp_path / f"push{n}.log",
            )
            for n in range(PUSHERS)
        ]
        drivers.append(run_driver(env, "approve", str(approver.pk), log_path=tmp_path / "ok.log"))
        for driver in drivers:
            assert driver.wait(timeout=DEADLINE_SECONDS) == 0, driver.args
        pushed = time.monotonic()

        deadline = started + DEADLINE_SECONDS
        done = WebhookEvent.DONE_STATUSES | {WebhookEvent.Status.FAILED}
        final = [RefundRequest.Status.PROCESSED, RefundRequest.Status.FAILED]
        _wait(
            lambda: (
                WebhookEvent.objects.filter(status__in=done).count() == EVENTS
                and not RefundRequest.objects.exclude(status__in=final).exists()
            ),
            clusters=clusters,
            what="the events and refunds",
            deadline=deadline,
        )
        processed = time.monotonic()
        # The scheduler passes come every 30 s: the planted row is handled by the first.
        _wait(
            lambda: Schedule.objects.get(pk=planted.pk).repeats == 0,
            clusters=clusters,
            what="a scheduler pass",
            deadline=deadline,
        )
    finally:
        stop_all(clusters)
    for cluster in clusters:
        assert not cluster.group_alive()
    print(
        f"\nscale-out: seed {seeded - started:.0f}s, push {pushed - seeded:.0f}s, "
        f"processed {processed - seeded:.0f}s after the clusters started; "
        f"total {time.monotonic() - started:.0f}s"
    )

    # The pushes: every delivery answered 200, none was a duplicate.
    for n in range(PUSHERS):
        result = _driver_result(tmp_path / f"push{n}.log")
        assert result["statuses"] == {"200": result["posted"]}, result
        assert result["duplicates"] == 0
    assert _driver_result(tmp_path / "ok.log")["approved"] == REFUNDS

    # Every event processed once: one row each, processed at the first attempt, and one task
    # run per event (a task delivered twice would show as a second result).
    events = WebhookEvent.objects.all()
    assert events.count() == EVENTS
    assert Counter(events.values_list("status", flat=True)) == {
        WebhookEvent.Status.PROCESSED: EVENTS
    }
    assert not events.exclude(attempts=1).exists()
    webhook_tasks = Counter(
        Success.objects.filter(func=WEBHOOK_TASK).values_list("name", flat=True)
    )
    assert len(webhook_tasks) == EVENTS and set(webhook_tasks.values()) == {1}
    assert not Failure.objects.filter(func=WEBHOOK_TASK).exists()

    # Every refund made once: one Stripe refund per request, of its amount, recorded on it.
    requests_by_pk = {r.pk: r for r in RefundRequest.objects.all()}
    assert len(requests_by_pk) == REFUNDS
    assert {r.status for r in requests_by_pk.values()} == {RefundRequest.Status.PROCESSED}
    at_peer = _refunds_at_the_peer(localstripe)
    per_request = Counter(int(r["metadata"]["refund_request_id"]) for r in at_peer)
    assert set(per_request) == set(requests_by_pk)
    assert set(per_request.values()) == {1}
    for refund in at_peer:
        row = requests_by_pk[int(refund["metadata"]["refund_request_id"])]
        assert (refund["id"], refund["amount"]) == (row.stripe_refund_id, REFUND_AMOUNT)
    processed_audits = Counter(
        AdminAction.objects.filter(action=AUDIT_PROCESS).values_list("target_id", flat=True)
    )
    assert len(processed_audits) == REFUNDS and set(processed_audits.values()) == {1}
    # The mirror converged with Stripe whatever order refunds and re-reads landed in.
    refunded = set(
        Payment.objects.filter(pk__in=[p.pk for p in payments]).values_list(
            "amount_refunded", flat=True
        )
    )
    assert refunded == {REFUND_AMOUNT * REFUNDS_PER_PAYMENT}

    # Both clusters took a share of the events.
    for cluster in clusters:
        share = len(re.findall(r"processing webhook evt_", cluster.log_path.read_text()))
        assert share >= EVENTS // 10, (cluster.log_path, share)

    # The schedule edited in SQL: set aside by one scheduler pass, recorded failed, nothing ran.
    planted.refresh_from_db()
    assert not marker.exists()
    assert "os.system is not in the job registry" in Failure.objects.get(id=planted.task).result
    assert AdminAction.objects.filter(action=AUDIT_SCHEDULE_SET_ASIDE).count() == 1
