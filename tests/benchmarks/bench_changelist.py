"""Payments changelist on PostgreSQL at 100k and 1M rows: server time and query count.

Run: scripts/bench.sh tests/benchmarks/bench_changelist.py   (prints figures, asserts nothing
about speed). Sizes: BENCH_PAYMENTS=100000,1000000 (default). Targets from DESIGN.md: <= 10
queries, no full-table COUNT(*), p95 <= 250 ms at 1M rows.
"""

import os
import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from management.demo_data import DemoGenerator, DemoSize
from payments.models import Payment

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))


def scenarios():
    today = timezone.localdate()
    return {
        "unfiltered, page 1": {},
        "unfiltered, page 200": {"p": "200"},
        "status=failed": {"status__exact": "failed"},
        "currency=eur": {"currency": "eur"},
        "last 7 days": {"created_from": str(today - timedelta(days=7)), "created_to": str(today)},
        "amount 100-200": {"amount_from": "100", "amount_to": "200"},
        "search email prefix": {"q": "ada."},
        "search pi id": {
            "q": Payment.objects.order_by("id")
            .values_list("stripe_payment_intent_id", flat=True)
            .first()
        },
    }


def measure(client, params):
    url = reverse("admin:payments_payment_changelist")
    client.get(url, params)  # warm-up
    timings = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        client.get(url, params)
    full_counts = [
        q["sql"]
        for q in ctx.captured_queries
        if "COUNT(*)" in q["sql"].upper()
        and "payments_payment" in q["sql"]
        and "WHERE" not in q["sql"].upper()
    ]
    timings.sort()
    return (
        statistics.median(timings),
        timings[int(len(timings) * 0.95) - 1],
        len(ctx.captured_queries),
        len(full_counts),
    )


@pytest.fixture
def production_template_rendering(monkeypatch):
    """pytest-django instruments every template render (a signal per template) for test
    assertions; a server doesn't, so measure without it."""
    from django.template import Template
    from django.test.utils import _TestState

    saved = getattr(_TestState, "saved_data", None)
    if saved is not None:
        monkeypatch.setattr(Template, "_render", saved.template_render)


def test_payments_changelist_at_scale(
    admin_client, transactional_db, production_template_rendering
):
    sizes = [int(s) for s in os.environ.get("BENCH_PAYMENTS", "100000,1000000").split(",")]
    generator = DemoGenerator(seed=11)
    have = 0
    print()
    for size in sizes:
        started = time.perf_counter()
        generator.run(DemoSize(payments=size - have, customers=max(50, (size - have) // 8)))
        have = size
        # Committed rows and a VACUUM, as autovacuum leaves a production table: index-only
        # scans then skip the heap (the data is truncated again after the test).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"\n== {size:,} payments (filled in {time.perf_counter() - started:.0f} s) ==")
        print(f"{'scenario':<24}{'median ms':>10}{'p95 ms':>9}{'queries':>9}{'full COUNT':>11}")
        for name, params in scenarios().items():
            median, p95, queries, full_counts = measure(admin_client, params)
            print(f"{name:<24}{median:>10.1f}{p95:>9.1f}{queries:>9}{full_counts:>11}")
