"""Benchmarks for reports on PostgreSQL: rollups against the bare GROUP BY, streamed CSV against
a raw cursor -> csv.writer loop. Prints ratios measured in one run; asserts nothing on speed.

    DATABASE_URL=postgres://... REPORTS_BENCH_ROWS=1000000 \\
        .venv/bin/python -m pytest -m benchmark -s -q tests/benchmarks/bench_reports.py

REPORTS_BENCH_ROWS: payments spread over a year (default 100000, modest). The CSV export is
measured at 100k rows and at REPORTS_BENCH_ROWS rows (when larger). Targets (DESIGN.md):
rollup within 2x the bare SQL; CSV flat memory (<= +50 MB from 100k to 1M rows) and >= 50 %
of the raw loop's rows/s.
"""

from __future__ import annotations

import csv
import os
import statistics
import threading
import time
import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from payments.models import Payment
from reports.export_columns import PAYMENT_COLUMNS
from reports.exports import csv_rows, json_rows
from reports.models import DailyRollup
from reports.rollups import day_bounds, generate_analytics

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]
ROWS = int(os.environ.get("REPORTS_BENCH_ROWS", "100000"))
REPEAT = int(os.environ.get("REPORTS_BENCH_REPEAT", "3"))
DAYS = 365

# One INSERT ... SELECT: a year of payments with a realistic status / currency / method mix.
SEED_SQL = """
INSERT INTO payments_payment (
    stripe_payment_intent_id, stripe_charge_id, amount, currency, amount_refunded, stripe_fee,
    platform_fee, net, status, stripe_status, payment_method_type, failure_code, decline_code,
    failure_message, product_kind, description, billing_details, metadata, livemode, created,
    created_at, updated_at, stripe_amount_refunded, charge_disputed, product_id, product_name,
    coupon_code, booking_id, metadata_problems)
SELECT
    'pi_bench' || g, 'ch_bench' || g, amount, currency, 0,
    CASE WHEN captured THEN amount * 3 / 100 + 30 ELSE 0 END,
    CASE WHEN captured THEN amount / 5 ELSE 0 END,
    CASE WHEN captured THEN amount - (amount * 3 / 100 + 30) - amount / 5 ELSE 0 END,
    status, 'succeeded', method,
    CASE WHEN status = 'failed' THEN 'card_declined' ELSE '' END,
    CASE WHEN status = 'failed' THEN
        (ARRAY['insufficient_funds', 'generic_decline', 'expired_card', ''])[1 + g % 4]
        ELSE '' END,
    '', 'course', CASE WHEN g % 1000 = 0 THEN '=HYPERLINK("x")' ELSE 'Course ' || g % 50 END,
    '{}', '{}', false, created, now(), now(), 0, false, '', '', '', '', '[]'
FROM (
    SELECT g,
        500 + (g * 7919) % 40000 AS amount,
        (ARRAY['usd', 'usd', 'usd', 'eur', 'gbp', 'jpy'])[1 + g % 6] AS currency,
        (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
               'succeeded', 'succeeded', 'failed', 'canceled'])[1 + (g * 31) % 10] AS status,
        (ARRAY['card', 'card', 'card', 'wallet', 'sepa_debit'])[1 + (g * 13) % 5] AS method,
        now() - ((g * 104729) % (%(days)s * 86400)) * interval '1 second' AS created
    FROM generate_series(1::bigint, %(rows)s) AS g
) AS s, LATERAL (SELECT status = 'succeeded' AS captured) AS c
"""

# The one aggregate the rollup cannot do without: the same counters and sums per day, currency
# and method over the range, written by hand.
BARE_SQL = """
SELECT (created AT TIME ZONE %(tz)s)::date AS day, currency, payment_method_type,
       count(*),
       count(*) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded',
                                          'disputed')),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'canceled'),
       sum(amount) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded',
                                            'disputed')),
       sum(stripe_fee) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded',
                                                'disputed')),
       sum(platform_fee) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded',
                                                  'disputed')),
       sum(net) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded',
                                         'disputed'))
FROM payments_payment
WHERE created >= %(lo)s AND created < %(hi)s
GROUP BY 1, 2, 3
"""


class _Echo:
    """csv.writer target that hands each line back (the raw loop's sink)."""

    def write(self, value: str) -> str:
        return value


def _seed(rows: int) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL.replace("%(days)s", str(DAYS)).replace("%(rows)s", str(rows)))
        cursor.execute("ANALYZE payments_payment")
    return time.perf_counter() - started


def _median_seconds(fn, repeat: int = REPEAT) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


class RssSampler:
    """Peak resident memory (whole process, C allocations included) while a block runs."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline = self.rss()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def _ours(queryset) -> tuple[int, float, float]:
    """Consume the streamed CSV as the HTTP server would; (rows, seconds, peak delta MB)."""
    rows = 0
    with RssSampler() as memory:
        started = time.perf_counter()
        for chunk in csv_rows(queryset, PAYMENT_COLUMNS):
            rows += chunk.count("\n")
        seconds = time.perf_counter() - started
    return rows - 1, seconds, memory.delta_mb


def _traced_peak_mb(queryset, rows_of=csv_rows) -> float:
    """Peak Python allocations while the whole CSV is produced (tracemalloc: exact for
    Python objects, unlike RSS, which reuses memory the process freed earlier). A separate
    pass: tracing slows the loop down, so it is not timed."""
    tracemalloc.start()
    try:
        for _chunk in rows_of(queryset, PAYMENT_COLUMNS):
            pass
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _raw(queryset) -> tuple[int, float, float]:
    """The floor: the same SELECT through a server-side cursor straight into csv.writer."""
    paths = list(dict.fromkeys(column.path for column in PAYMENT_COLUMNS if column.path))
    sql, params = queryset.values_list(*paths).query.sql_with_params()
    writer = csv.writer(_Echo())
    rows = 0
    with RssSampler() as memory:
        started = time.perf_counter()
        with connection.connection.cursor(name="bench_raw") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql, params)
            for row in cursor:
                writer.writerow(row)
                rows += 1
        seconds = time.perf_counter() - started
    return rows, seconds, memory.delta_mb


def test_reports_benchmark(db):
    assert connection.vendor == "postgresql"
    seeded = _seed(ROWS)
    today = timezone.localdate()
    start = today - timedelta(days=DAYS)
    lo, hi = day_bounds(start, today)
    print(f"\nreports benchmark: {ROWS:,} payments over {DAYS} days (seeded in {seeded:.1f} s)")

    # --- Rollup vs the bare GROUP BY ----------------------------------------------------------
    def bare():
        with connection.cursor() as cursor:
            cursor.execute(
                BARE_SQL, {"tz": str(timezone.get_default_timezone()), "lo": lo, "hi": hi}
            )
            cursor.fetchall()

    bare()  # warm the cache for both
    started = time.perf_counter()
    first = generate_analytics(start=start, end=today)
    first_s = time.perf_counter() - started
    # Interleaved, so that load from other processes hits both sides alike.
    bare_times, rerun_times = [], []
    for _ in range(REPEAT):
        bare_times.append(_median_seconds(bare, 1))
        rerun_times.append(_median_seconds(lambda: generate_analytics(start=start, end=today), 1))
    bare_s, rerun_s = statistics.median(bare_times), statistics.median(rerun_times)
    print(
        f"rollup, {DailyRollup.objects.count():,} rows for {DAYS + 1} days: "
        f"bare GROUP BY {bare_s * 1000:.0f} ms | generate_analytics first run "
        f"{first_s * 1000:.0f} ms ({first_s / bare_s:.2f}x, {first.created} rows written) | "
        f"re-run {rerun_s * 1000:.0f} ms ({rerun_s / bare_s:.2f}x, 0 rows written) "
        f"[target <= 2x]"
    )

    # --- Streamed CSV vs raw cursor -> csv.writer -------------------------------------------
    sizes = sorted({min(100_000, ROWS), ROWS})
    memory_at = {}
    for size in sizes:
        queryset = Payment.objects.order_by("-created", "-id")[:size]
        _raw(queryset)  # warm
        raw_runs, our_runs = [], []
        for _ in range(REPEAT):  # interleaved, medians
            raw_runs.append(_raw(queryset))
            our_runs.append(_ours(queryset))
        raw_rows, raw_s = raw_runs[0][0], statistics.median(r[1] for r in raw_runs)
        our_rows, our_s = our_runs[0][0], statistics.median(r[1] for r in our_runs)
        raw_mb = max(r[2] for r in raw_runs)
        our_mb = max(r[2] for r in our_runs)
        assert our_rows == raw_rows == size
        traced_mb = _traced_peak_mb(queryset)
        memory_at[size] = traced_mb
        print(
            f"CSV {size:,} rows: streamed {size / our_s:,.0f} rows/s, peak RSS +{our_mb:.1f} MB, "
            f"peak Python allocations {traced_mb:.1f} MB | "
            f"raw cursor {size / raw_s:,.0f} rows/s, peak RSS +{raw_mb:.1f} MB | "
            f"speed {raw_s / our_s * 100:.0f} % of raw [target >= 50 %]"
        )
    if len(sizes) == 2:
        print(
            f"CSV memory growth (peak Python allocations) {sizes[0]:,} -> {sizes[1]:,} rows: "
            f"{memory_at[sizes[1]] - memory_at[sizes[0]]:+.1f} MB [target <= +50 MB]"
        )

    # --- Streamed JSON (the API's and the ledger's exports): the same row loop ----------------
    json_memory_at = {}
    for size in sizes:
        queryset = Payment.objects.order_by("-created", "-id")[:size]
        runs = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            produced = sum(len(chunk) for chunk in json_rows(queryset, PAYMENT_COLUMNS))
            runs.append(time.perf_counter() - started)
        json_memory_at[size] = _traced_peak_mb(queryset, json_rows)
        print(
            f"JSON {size:,} rows: streamed {size / statistics.median(runs):,.0f} rows/s "
            f"({produced / 2**20:,.0f} MB of JSON), peak Python allocations "
            f"{json_memory_at[size]:.1f} MB"
        )
    if len(sizes) == 2:
        print(
            f"JSON memory growth (peak Python allocations) {sizes[0]:,} -> {sizes[1]:,} rows: "
            f"{json_memory_at[sizes[1]] - json_memory_at[sizes[0]]:+.1f} MB [target <= +50 MB]"
        )
