"""The transactions endpoint (/api/v1/transactions/) on PostgreSQL at 1M payments.

Run: scripts/bench.sh tests/benchmarks/bench_api.py   (prints figures). BENCH_PAYMENTS
(default 1000000; several sizes are filled in turn, e.g. 100000,1000000), BENCH_REPEAT=30.
Rows are seeded as bench_changelist.py seeds them (INSERT ... SELECT over generate_series,
then VACUUM ANALYZE).

Every request is the whole API request through the test client with an auditor's token (the
group's view permissions, as a BI tool's login would have): token lookup, permissions,
filters, the keyset page, serialisation to JSON. "deep" is the page after row size/2 in
(-created, -id) order, the cursor a client reaches by following `next`; "next" is the real
`next` link of page 1. What must hold (asserted: these are behaviour, not speed):
the same number of queries for page 1 and the deep page, and no COUNT over the payments table
in any request. Target: p95 <= 250 ms at 1M, as the payments changelist's (DESIGN.md).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from backoffice.api.tokens import api_token_create
from backoffice.pagination import KeysetPaginator
from payments.models import Payment
from tests.benchmarks.bench_changelist import seed
from tests.factories import UserFactory

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
URL = "/api/v1/transactions/"


def deep_cursor(depth: int) -> str:
    """The cursor to the page after row `depth`, as the API's `next` link would carry it."""
    ordered = Payment.objects.order_by("-created", "-id")
    return KeysetPaginator(ordered, 50).encode(ordered[depth], "a")


def scenarios(client, size: int) -> dict[str, tuple[str, dict]]:
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    first_pi = Payment.objects.order_by("id").values_list("stripe_payment_intent_id", flat=True)[0]
    page_one = client.get(URL).json()
    return {
        "page 1": (URL, {}),
        "next (page 2, its link)": (page_one["next"], {}),
        f"deep (after row {size // 2:,})": (URL, {"cursor": deep_cursor(size // 2)}),
        "page 1, 200 rows": (URL, {"page_size": 200}),
        "status=failed": (URL, {"status": "failed"}),
        "status=failed, deep": (URL, {"status": "failed", "cursor": deep_cursor(size // 2)}),
        "currency=eur": (URL, {"currency": "eur"}),
        "last 7 days": (URL, {"created_after": week_ago}),
        "amount 100-200": (URL, {"amount_min": "100", "amount_max": "200"}),
        "search e-mail part": (URL, {"q": "ada.1"}),
        "search pi id": (URL, {"q": first_pi.upper()}),
        "detail": (f"{URL}{Payment.objects.order_by('id').values_list('id', flat=True)[0]}/", {}),
    }


def measure(client, url, params) -> dict:
    client.get(url, params)  # warm-up (and the token's last use written, once a minute)
    timings = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, params, response.content[:300])
    with CaptureQueriesContext(connection) as captured:
        client.get(url, params)
    sqls = [query["sql"] for query in captured.captured_queries]
    timings.sort()
    return {
        "median": statistics.median(timings),
        "p95": timings[max(0, int(len(timings) * 0.95) - 1)],
        "queries": len(sqls),
        "counts": sum(1 for sql in sqls if "COUNT(" in sql.upper() and "payments_payment" in sql),
        "rows": len(response.json().get("results", [])) if "results" in response.json() else 1,
    }


def test_transactions_endpoint_at_scale(transactional_db):
    sizes = [int(s) for s in os.environ.get("BENCH_PAYMENTS", "1000000").split(",")]
    # A BI tool's login: an auditor (view permissions through a group, read from the
    # database per request, as for any non-superuser).
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(username="bench-api")
    user.groups.set(Group.objects.filter(name="Read-only auditors"))
    issued = api_token_create(
        user=user, name="bench", expires_at=timezone.now() + timedelta(days=1), acting_user=user
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    have = 0
    print()
    for size in sizes:
        started = time.perf_counter()
        seed(have + 1, size)
        have = size
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(
            f"\n== {size:,} payments (seeded in {time.perf_counter() - started:.0f} s), "
            f"{REPEAT} requests each, 50 rows a page unless said =="
        )
        print(f"{'request':<30}{'p50 ms':>8}{'p95 ms':>8}{'queries':>9}{'COUNTs':>8}{'rows':>6}")
        results = {}
        for name, (url, params) in scenarios(client, size).items():
            result = results[name] = measure(client, url, params)
            print(
                f"{name:<30}{result['median']:>8.1f}{result['p95']:>8.1f}"
                f"{result['queries']:>9}{result['counts']:>8}{result['rows']:>6}"
            )
        deep = next(value for key, value in results.items() if key.startswith("deep"))
        assert deep["queries"] == results["page 1"]["queries"]
        assert all(result["counts"] == 0 for result in results.values())
