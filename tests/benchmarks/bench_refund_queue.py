"""Benchmark: the refund queue ordered by priority with many pending requests on PostgreSQL.

Prints p50/p95 server time (the whole admin request: query, count, rendering, without the
test client's template instrumentation) and the query count for 50 and 200 rows a page, for
the default queue, each pending preset and a deep keyset page (a cursor after row 50,000).
Target: p95 <= 250 ms and the same query count for both page sizes. Never asserts on time.

    DATABASE_URL=postgres://... REFUND_BENCH_ROWS=100000 \
        .venv/bin/python -m pytest -m benchmark -s -q tests/benchmarks/bench_refund_queue.py
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.pagination import CURSOR_VAR
from payments.models import Customer, Payment
from refunds.admin.pagination import PriorityQueuePaginator
from refunds.models import RefundRequest
from tests.factories import UserFactory

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres, pytest.mark.django_db]

ROWS = int(os.environ.get("REFUND_BENCH_ROWS", "100000"))
REPEATS = int(os.environ.get("REFUND_BENCH_REPEATS", "30"))
PAGE_SIZES = (50, 200)
VIEWS = [
    ("queue (default order)", ""),
    ("all pending", "?status__exact=pending"),
    ("urgent pending", "?status__exact=pending&priority=urgent"),
    ("high pending", "?status__exact=pending&priority=high"),
    ("large pending", "?status__exact=pending&priority=large"),
]
DEEP_ROW = 50_000  # the deep page: a cursor after this row of "all pending"
BATCH = 10_000


def _seed(rows: int) -> None:
    rng = random.Random(7)
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [
            Customer(stripe_id=f"cus_bench{i}", email=f"b{i}@example.com", created=now)
            for i in range(200)
        ]
    )
    payments = Payment.objects.bulk_create(
        [
            Payment(
                stripe_payment_intent_id=f"pi_bench{i:07d}",
                customer=customers[i % len(customers)],
                amount=10**7,
                currency=currency,
                status=Payment.Status.SUCCEEDED,
                created=now - timedelta(days=30),
            )
            for i, currency in enumerate(
                rng.choice(["usd", "usd", "usd", "eur", "jpy"]) for _ in range(2000)
            )
        ],
        batch_size=BATCH,
    )
    requester = UserFactory(username="bench-requester")
    batch = []
    for i in range(rows):
        payment = payments[i % len(payments)]
        batch.append(
            RefundRequest(
                payment=payment,
                amount=rng.randint(100, 20000)
                if payment.currency != "jpy"
                else rng.randint(10, 200),
                currency=payment.currency,
                requested_by=requester,
            )
        )
        if len(batch) == BATCH:
            RefundRequest.objects.bulk_create(batch)
            batch = []
    if batch:
        RefundRequest.objects.bulk_create(batch)


def _fix_created_at(rows: int) -> None:
    """created_at is auto_now_add: spread the ages over 10 days in one UPDATE (about 70%
    urgent, 20% high, 10% large or normal), then refresh the planner's statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE refunds_refundrequest SET created_at = now() - (random() * interval '10 days')"
        )
        cursor.execute("ANALYZE refunds_refundrequest")
        cursor.execute("ANALYZE payments_payment")


def _p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


@pytest.fixture
def production_template_rendering(monkeypatch):
    """pytest-django instruments every template render (a signal per template) for test
    assertions; a server doesn't, so measure without it."""
    from django.template import Template
    from django.test.utils import _TestState

    saved = getattr(_TestState, "saved_data", None)
    if saved is not None:
        monkeypatch.setattr(Template, "_render", saved.template_render)


def deep_cursor(model_admin) -> str:
    """The cursor Next would carry after row DEEP_ROW of the pending queue."""
    queryset = model_admin.get_queryset(None).filter(status="pending")
    row = queryset[DEEP_ROW]
    return PriorityQueuePaginator(queryset, 50).encode(row, "a")


def test_refund_queue_benchmark(client, production_template_rendering):
    started = time.perf_counter()
    _seed(ROWS)
    _fix_created_at(ROWS)
    seeded = time.perf_counter() - started
    boss = UserFactory(username="bench-boss", is_superuser=True)
    client.force_login(boss)
    model_admin = admin.site._registry[RefundRequest]
    url = reverse("admin:refunds_refundrequest_changelist")
    original = model_admin.list_per_page
    print(
        f"\nrefund queue benchmark: {ROWS:,} pending requests (seeded in {seeded:.1f} s), "
        f"{REPEATS} requests per view"
    )
    print(
        f"{'view':<24}{'page':>6}{'queries':>9}{'p50 ms':>9}{'p95 ms':>9}{'sql ms':>9}"
        f"{'page sql':>9}{'rows':>6}"
    )
    views = [
        *VIEWS,
        (
            f"pending, after row {DEEP_ROW:,}",
            f"?status__exact=pending&{CURSOR_VAR}={deep_cursor(model_admin)}",
        ),
    ]
    try:
        for label, query in views:
            for size in PAGE_SIZES:
                model_admin.list_per_page = size
                client.get(url + query)  # warm caches
                timings = []
                for _ in range(REPEATS):
                    t0 = time.perf_counter()
                    response = client.get(url + query)
                    timings.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
                with CaptureQueriesContext(connection) as ctx:
                    response = client.get(url + query)
                shown = response.content.decode().count('class="data-row')
                # Database time of that one request, in total and of its slowest query (the
                # page itself); the rest of the server time is Python (admin, templates).
                query_ms = [float(q["time"]) * 1000 for q in ctx.captured_queries]
                print(
                    f"{label:<24}{size:>6}{len(ctx.captured_queries):>9}"
                    f"{statistics.median(timings):>9.1f}{_p(timings, 0.95):>9.1f}"
                    f"{sum(query_ms):>9.1f}{max(query_ms):>9.1f}{shown:>6}"
                )
                if (label, size) == ("urgent pending", 50):
                    slowest = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))
    finally:
        model_admin.list_per_page = original
    print("where the SQL time of one request goes (urgent pending, 50 rows), slowest first:")
    for q in slowest[:5]:
        print(f"  {float(q['time']) * 1000:7.1f} ms  {q['sql'][:150]}")
    with connection.cursor() as cursor:
        sql, params = (
            model_admin.get_queryset(None).filter(status="pending")[:50].query.sql_with_params()
        )
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print("plan of the first page of the pending queue, plain ORDER BY:\n" + plan)
    paginator = PriorityQueuePaginator(model_admin.get_queryset(None).filter(status="pending"), 50)
    sql, params = paginator.page_ids_queryset(0, 50).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE) " + sql, params)
        rows = [row[0] for row in cursor.fetchall()]
    print("the same page through PriorityQueuePaginator (ids), summary:\n" + "\n".join(rows[-3:]))
