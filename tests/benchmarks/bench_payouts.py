"""Benchmark: `manage_payments --create-payouts` over 10,000 instructors and 1M payments on
PostgreSQL. Prints seconds and SQL statements of the run, for a small ledger first and then
the full one (the statement count must not change with the number of instructors), and the
bare GROUP BY the run cannot do without, for scale. Asserts the query count, never time.

    DATABASE_URL=postgres://... PAYOUT_BENCH_PAYMENTS=1000000 PAYOUT_BENCH_INSTRUCTORS=10000 \\
        .venv/bin/python -m pytest -m benchmark -s -q tests/benchmarks/bench_payouts.py

The ledger is seeded with set-based SQL in the shape payments/earnings.py writes it: one
`payment:<pi>:earning` entry per succeeded payment (its net, available PAYOUT_HOLD_DAYS after
it), a `refund:<id>` entry for one payment in twenty (sharing the payment's available_at).
Payments are spread over 90 days, so the last week's earnings are still on hold.
"""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.models import Payout

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres, pytest.mark.django_db]

PAYMENTS = int(os.environ.get("PAYOUT_BENCH_PAYMENTS", "1000000"))
INSTRUCTORS = int(os.environ.get("PAYOUT_BENCH_INSTRUCTORS", "10000"))
SMALL = 0.01  # the first pass: this share of the instructors and payments
DAYS = 90

SEED_INSTRUCTORS = """
INSERT INTO payments_instructor (
    created_at, updated_at, name, email, stripe_account_id, external_id, bank_account)
SELECT now(), now(), 'Instructor ' || g, 'instructor' || g || '@bench.example.com',
    -- two in three have a connected account; the others are paid by bank transfer
    CASE WHEN g %% 3 = 0 THEN '' ELSE 'acct_bench' || g END, 'ext' || g,
    CASE WHEN g %% 3 = 0 THEN 'DE' || lpad(g::text, 20, '0') ELSE '' END
FROM generate_series(%(first)s::bigint, %(last)s) AS g
"""

SEED_PAYMENTS = """
INSERT INTO payments_payment (
    stripe_payment_intent_id, stripe_charge_id, instructor_id, amount, currency,
    amount_refunded, stripe_fee, platform_fee, net, status, stripe_status, payment_method_type,
    failure_code, decline_code, failure_message, product_kind, description, billing_details,
    metadata, livemode, created, succeeded_at, created_at, updated_at, stripe_amount_refunded,
    charge_disputed, product_id, product_name, coupon_code, booking_id, metadata_problems,
    card_fingerprint)
SELECT
    'pi_pbench' || g, 'ch_pbench' || g, i.id, amount, currency, 0,
    CASE WHEN captured THEN amount * 3 / 100 + 30 ELSE 0 END,
    CASE WHEN captured THEN amount / 5 ELSE 0 END,
    CASE WHEN captured THEN amount - (amount * 3 / 100 + 30) - amount / 5 ELSE 0 END,
    status, 'succeeded', 'card', '', '', '', 'course', 'Course ' || g %% 50, '{}', '{}',
    false, s.created, CASE WHEN captured THEN s.created END, now(), now(), 0, false,
    '', '', '', '', '[]', ''
FROM (
    SELECT g,
        500 + (g * 7919) %% 40000 AS amount,
        -- each pass over the instructors changes currency: everyone earns in all four
        (ARRAY['usd', 'usd', 'usd', 'eur', 'gbp', 'jpy'])[1 + (g / %(instructors)s) %% 6]
            AS currency,
        (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
               'succeeded', 'succeeded', 'failed', 'canceled'])[1 + (g * 31) %% 10] AS status,
        now() - ((g * 104729) %% (%(days)s * 86400)) * interval '1 second' AS created,
        'instructor' || (%(first_instructor)s + (g * 7) %% %(instructors)s)
            || '@bench.example.com' AS instructor_email
    FROM generate_series(%(first)s::bigint, %(last)s) AS g
) AS s
JOIN payments_instructor AS i ON i.email = s.instructor_email,
LATERAL (SELECT status = 'succeeded' AS captured) AS l
"""

SEED_EARNINGS = """
INSERT INTO payments_earningentry (
    instructor_id, currency, amount, kind, reference, payment_id, occurred_at, available_at,
    created_at, description)
SELECT instructor_id, currency, net, 'earning',
    'payment:' || stripe_payment_intent_id || ':earning', id, succeeded_at,
    succeeded_at + %(hold)s * interval '1 day', now(), ''
FROM payments_payment
WHERE stripe_payment_intent_id LIKE 'pi_pbench%%' AND status = 'succeeded' AND net <> 0
    AND id > %(after)s
UNION ALL
-- a refund of a third of the net for one payment in twenty, on the payment's availability
SELECT instructor_id, currency, -(net / 3), 'refund', 'refund:re_pbench' || id, id,
    succeeded_at + interval '1 day', succeeded_at + %(hold)s * interval '1 day', now(), ''
FROM payments_payment
WHERE stripe_payment_intent_id LIKE 'pi_pbench%%' AND status = 'succeeded' AND net / 3 <> 0
    AND id %% 20 = 0 AND id > %(after)s
"""

# What the run cannot do without: the ledger summed per instructor and currency.
BARE_SQL = """
SELECT instructor_id, currency, sum(amount),
       sum(amount) FILTER (WHERE available_at <= now())
FROM payments_earningentry GROUP BY 1, 2
"""


def _seed(*, first_instructor: int, instructors: int, first: int, last: int) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM payments_payment")
        after = cursor.fetchone()[0]
        cursor.execute(
            SEED_INSTRUCTORS,
            {"first": first_instructor, "last": first_instructor + instructors - 1},
        )
        cursor.execute(
            SEED_PAYMENTS,
            {
                "first": first,
                "last": last,
                "days": DAYS,
                "first_instructor": first_instructor,
                "instructors": instructors,
            },
        )
        cursor.execute(SEED_EARNINGS, {"hold": 7, "after": after})
        cursor.execute("ANALYZE payments_instructor")
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE payments_earningentry")
    return time.perf_counter() - started


SLOWEST: list = []


def _create_payouts(*args: str) -> tuple[dict, float, int]:
    out = io.StringIO()
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        call_command("manage_payments", "--create-payouts", "--json", *args, stdout=out)
        seconds = time.perf_counter() - started
    SLOWEST[:] = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:4]
    return json.loads(out.getvalue()), seconds, len(ctx.captured_queries)


def _print_slowest() -> None:
    for query in SLOWEST:
        print(f"      {float(query['time']):6.2f} s  {query['sql'][:90]}")


def _bare_seconds() -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BARE_SQL)
        cursor.fetchall()
    return time.perf_counter() - started


def _count(sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def _report(label: str, result: dict, seconds: float, queries: int) -> None:
    totals = ", ".join(
        f"{currency} {t['count']:,} payouts" for currency, t in sorted(result["totals"].items())
    )
    print(
        f"  {label:<34} {seconds:7.2f} s  {queries:3d} SQL statements  "
        f"{result['payouts_created']:,} payouts ({totals or 'none'})"
    )


def test_create_payouts_benchmark():
    assert connection.vendor == "postgresql"
    small_instructors = max(1, int(INSTRUCTORS * SMALL))
    small_payments = max(1, int(PAYMENTS * SMALL))
    seeded = _seed(first_instructor=1, instructors=small_instructors, first=1, last=small_payments)
    print(
        f"\nPayout run benchmark (PostgreSQL): seeded {small_instructors:,} instructors, "
        f"{small_payments:,} payments in {seeded:.1f} s"
    )
    small_dry = _create_payouts("--dry-run")
    small = _create_payouts()
    _report(f"{small_instructors:,} instructors, dry run", *small_dry)
    _report(f"{small_instructors:,} instructors", *small)
    # Pay them, so that the second pass meets a ledger with payouts in it (and no open ones).
    Payout.objects.update(status=Payout.Status.PAID)

    seeded = _seed(
        first_instructor=small_instructors + 1,
        instructors=INSTRUCTORS - small_instructors,
        first=small_payments + 1,
        last=PAYMENTS,
    )
    entries = _count("SELECT count(*) FROM payments_earningentry")
    print(
        f"  seeded up to {INSTRUCTORS:,} instructors, {PAYMENTS:,} payments, "
        f"{entries:,} ledger entries in {seeded:.1f} s"
    )
    bare = _bare_seconds()
    full_dry = _create_payouts("--dry-run")
    full = _create_payouts()
    _report(f"{INSTRUCTORS:,} instructors, dry run", *full_dry)
    _report(f"{INSTRUCTORS:,} instructors", *full)
    _print_slowest()
    print(f"  {'bare GROUP BY of the ledger':<34} {bare:7.2f} s")
    again = _create_payouts()
    _report("re-run (every balance paid)", *again)
    _print_slowest()

    # A constant number of statements, not one per instructor or payout.
    assert full[2] == small[2]
    assert full_dry[2] == small_dry[2]
    assert full[0]["payouts_created"] == _count(
        f"SELECT count(*) FROM payments_payout WHERE run_id = {full[0]['run_id']}"
    )
    assert again[0]["payouts_created"] == 0
    # Every payout has its entry: the balances paid are zero or below the minimum now.
    assert _count("SELECT count(*) FROM payments_earningentry WHERE kind = 'payout'") == (
        _count("SELECT count(*) FROM payments_payout")
    )
