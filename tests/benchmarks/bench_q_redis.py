"""Webhook events per second through the Redis broker with 1 and then 2 q clusters.

Run: scripts/bench.sh tests/benchmarks/bench_q_redis.py   (a throwaway PostgreSQL and Debian's
redis-server; or `pytest -m benchmark -s` on this file with DATABASE_URL on PostgreSQL).
Prints events/s for each and the ratio; asserts only correctness (every event processed once).

Each round: BENCH_Q_EVENTS signed events go through the real endpoint (two push processes,
tests/scaleout/driver.py) into Redis while no cluster runs, then the clusters start and work
the queue off. The rate is taken over the middle 80% of the events' processed_at times, so
cluster start-up and the last stragglers are not in it. Handlers are the real ones: each
event re-reads its payment intent or customer from localstripe and upserts it into PostgreSQL.

Knobs: BENCH_Q_EVENTS (1500 per round), BENCH_Q_WORKERS (2 workers per cluster, production's
Q_WORKERS default). The machine is shared: the load average is printed beside the figures,
and a ratio well under 2 on a 2-core machine says the cores, not the broker, were the limit.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from management.demo_refunds import demo_payment_create
from payments.models import WebhookEvent
from tests.scaleout.cluster_support import (
    database_url,
    process_env,
    run_driver,
    start_cluster,
    start_redis,
    stop_all,
)

pytestmark = [
    pytest.mark.benchmark,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.stripe,
    pytest.mark.django_db(transaction=True),
]

EVENTS = int(os.environ.get("BENCH_Q_EVENTS", "1500"))
WORKERS = os.environ.get("BENCH_Q_WORKERS", "2")
PAYMENTS = 20
PUSHERS = 2
DEADLINE_SECONDS = 1800


def _push(env, spec_path, tmp_path, run):
    per_pusher = EVENTS // PUSHERS
    drivers = [
        run_driver(
            env,
            "webhooks",
            str(spec_path),
            str(n * per_pusher),
            str(per_pusher if n < PUSHERS - 1 else EVENTS - n * per_pusher),
            log_path=tmp_path / f"{run}-push{n}.log",
        )
        for n in range(PUSHERS)
    ]
    for driver in drivers:
        assert driver.wait(timeout=DEADLINE_SECONDS) == 0, driver.args
    assert WebhookEvent.objects.count() == EVENTS


def _steady_rate() -> float:
    """Events per second between the 10th and the 90th percentile of processed_at."""
    times = sorted(WebhookEvent.objects.values_list("processed_at", flat=True))
    low, high = times[len(times) // 10], times[len(times) * 9 // 10]
    return (len(times) * 0.8) / max((high - low).total_seconds(), 1e-6)


def _round(env, spec, tmp_path, clusters_count) -> float:
    WebhookEvent.objects.all().delete()
    run = f"bench{clusters_count}"
    spec_path = tmp_path / f"{run}.json"
    spec_path.write_text(json.dumps({**spec, "run": run}))
    _push(env, spec_path, tmp_path, run)
    clusters = [
        start_cluster(env, tmp_path / f"{run}-cluster{n}.log") for n in range(clusters_count)
    ]
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        done = WebhookEvent.DONE_STATUSES | {WebhookEvent.Status.FAILED}
        while WebhookEvent.objects.filter(status__in=done).count() < EVENTS:
            assert all(c.alive() for c in clusters), "a q cluster died"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.5)
    finally:
        stop_all(clusters)
    events = WebhookEvent.objects.all()
    assert events.filter(status=WebhookEvent.Status.PROCESSED, attempts=1).count() == EVENTS
    return _steady_rate()


def test_webhook_events_per_second_with_one_and_two_clusters(localstripe, settings, tmp_path):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    payments = [
        demo_payment_create(amount=5000, email=f"b{i}@example.com", name=f"B {i}", key=f"b{i}")
        for i in range(PAYMENTS)
    ]
    spec = {
        "payment_intents": [p.stripe_payment_intent_id for p in payments],
        "customers": sorted({p.customer.stripe_id for p in payments}),
    }
    # The clusters work the events only: the registry's schedules (a Stripe sync, receipts...)
    # would take the first round's workers and flatter the ratio.
    Schedule.objects.update(next_run=timezone.now() + timedelta(days=1))
    redis = start_redis(tmp_path / "redis")
    try:
        env = process_env(
            database=database_url(connection.settings_dict),
            redis_url=redis.url,
            stripe_api_base=localstripe,
            Q_WORKERS=WORKERS,
        )
        one = _round(env, spec, tmp_path, 1)
        two = _round(env, spec, tmp_path, 2)
    finally:
        redis.stop()
    load = os.getloadavg()
    print(
        f"\nq2 on Redis, {EVENTS} webhook events per round, {WORKERS} workers per cluster "
        f"(load average {load[0]:.1f} on {os.cpu_count()} cores):\n"
        f"  1 cluster : {one:7.1f} events/s\n"
        f"  2 clusters: {two:7.1f} events/s\n"
        f"  ratio     : {two / one:7.2f}"
    )
