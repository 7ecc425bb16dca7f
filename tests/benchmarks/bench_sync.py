"""Benchmark: sync N payment intents from localstripe (N = BENCH_SYNC_N, default 5000).

Prints list calls, SQL statements per object and seconds for a first (backfill) run and a
second run over the same window (which must change 0 rows). Figures, not asserts on time:
run with `.venv/bin/python -m pytest -q -s -m benchmark tests/benchmarks/bench_sync.py`.
"""

import math
import os
import time

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import gateway
from payments.models import Payment
from payments.sync_runs import stripe_sync

pytestmark = [pytest.mark.benchmark, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

N = int(os.environ.get("BENCH_SYNC_N", "5000"))
CUSTOMERS = 20


def seed(url: str, n: int) -> float:
    """N confirmed payment intents (plain HTTP in one session: the SDK adds ~nothing)."""
    started = time.perf_counter()
    session = requests.Session()
    session.auth = ("sk_test_localstripe", "")
    customers = []
    for i in range(CUSTOMERS):
        customer = session.post(f"{url}/v1/customers", data={"email": f"b{i}@example.com"}).json()
        method = session.post(
            f"{url}/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": "2031",
                "card[cvc]": "123",
            },
        ).json()
        session.post(
            f"{url}/v1/payment_methods/{method['id']}/attach", data={"customer": customer["id"]}
        )
        customers.append((customer["id"], method["id"]))
    for i in range(n):
        customer_id, method_id = customers[i % CUSTOMERS]
        response = session.post(
            f"{url}/v1/payment_intents",
            data={
                "amount": 1000 + i,
                "currency": "usd",
                "customer": customer_id,
                "payment_method": method_id,
                "confirm": "true",
            },
        )
        response.raise_for_status()
    return time.perf_counter() - started


class PeerClock:
    """Seconds spent inside Stripe calls (waiting on localstripe), to split the run time."""

    def __init__(self, monkeypatch):
        self.seconds = 0.0
        original = gateway.StripeClient.call
        clock = self

        def timed(self, fn, **kwargs):
            started = time.perf_counter()
            try:
                return original(self, fn, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - started

        monkeypatch.setattr(gateway.StripeClient, "call", timed)


def measure(peer_clock, **kwargs):
    peer_clock.seconds = 0.0
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        report = stripe_sync(**kwargs)
    return report, len(queries.captured_queries), time.perf_counter() - started


def test_sync_benchmark(localstripe, settings, monkeypatch):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    seed_seconds = seed(localstripe, N)
    peer_clock = PeerClock(monkeypatch)

    first, first_sql, first_seconds = measure(peer_clock)
    first_peer = peer_clock.seconds
    assert first.status == "succeeded", first.error
    assert Payment.objects.count() == N
    objects = sum(c["created"] + c["updated"] + c["unchanged"] for c in first.counts.values())

    second, second_sql, second_seconds = measure(peer_clock)
    second_peer = peer_clock.seconds
    assert second.status == "succeeded"
    assert second.objects_changed == 0

    pages = math.ceil(N / 100)
    print()
    print(
        f"bench_sync: N={N} payment intents, {CUSTOMERS} customers (seeded in {seed_seconds:.1f}s)"
    )
    print(
        f"  first run : {first.api_calls} API calls (intent pages: ceil(N/100) = {pages}; "
        f"+ customer pages, one payment-method list per customer, refunds), "
        f"{first_sql} SQL statements for {objects} objects = "
        f"{first_sql / max(1, objects):.3f} per object, {first_seconds:.2f}s "
        f"({N / first_seconds:,.0f} intents/s; {first_peer:.2f}s waiting on localstripe, "
        f"{first_seconds - first_peer:.2f}s ours: {N / (first_seconds - first_peer):,.0f} "
        f"intents/s)"
    )
    print(
        f"  second run: {second.api_calls} API calls, {second.objects_changed} rows changed, "
        f"{second_sql} SQL statements = {second_sql / max(1, objects):.3f} per object, "
        f"{second_seconds:.2f}s ({second_peer:.2f}s waiting on localstripe, "
        f"{second_seconds - second_peer:.2f}s ours)"
    )
