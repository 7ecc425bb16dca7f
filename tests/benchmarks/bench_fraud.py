"""`manage_payments --detect-fraud` over FRAUD_BENCH_ROWS payments on PostgreSQL: seconds and
queries. Prints figures; asserts only that the planted patterns are found and that the query
count does not grow with the data (set-based SQL, no Python loop over payments).

    DATABASE_URL=postgres://... FRAUD_BENCH_ROWS=1000000 \\
        .venv/bin/python -m pytest -m benchmark -s -q tests/benchmarks/bench_fraud.py

FRAUD_BENCH_ROWS: payments spread over 90 days (default 100000), one customer per 8 payments,
one card per customer, an IP on 60 % of payments; raw rows seeded with INSERT ... SELECT over
generate_series. Then PATTERNS of each kind are planted, spread over the last 48 hours (so
about half fall in the hourly run's 24-hour lookback): failed bursts, rapid bursts, new
accounts paying a large amount, one card on 3 customers, one IP on 5 customers, customers
adding 4 payment methods. Measured: the hourly run (last 24 h), the same run again (nothing new
to open), `--since` 90 days back (every payment is an anchor), and the event hook for one
payment's customer, card and IP.
"""

from __future__ import annotations

import io
import json
import os
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments import fraud_rules
from payments.models import Customer, FraudAlert, Payment

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]
ROWS = int(os.environ.get("FRAUD_BENCH_ROWS", "100000"))
PATTERNS = int(os.environ.get("FRAUD_BENCH_PATTERNS", "100"))
DAYS = 90

# Columns every payment row needs (the rest have database defaults or are nullable).
PAYMENT_COLUMNS = """
    stripe_payment_intent_id, stripe_charge_id, customer_id, amount, currency, amount_refunded,
    stripe_fee, platform_fee, net, status, stripe_status, payment_method_type, failure_code,
    decline_code, failure_message, product_kind, description, billing_details, metadata,
    livemode, created, created_at, updated_at, stripe_amount_refunded, charge_disputed,
    product_id, product_name, coupon_code, booking_id, metadata_problems, card_fingerprint,
    ip_address
"""
PAYMENT_VALUES = """
    %(prefix)s || g, 'ch' || %(prefix)s || g, customer_id, amount, currency, 0,
    0, 0, 0, status, CASE WHEN status = 'failed' THEN 'requires_payment_method'
                          ELSE 'succeeded' END, 'card',
    CASE WHEN status = 'failed' THEN 'card_declined' ELSE '' END, '', '', 'course', '', '{}',
    '{}', false, created, now(), now(), 0, false, '', '', '', '', '[]', fingerprint, ip
"""

SEED_CUSTOMERS = """
INSERT INTO payments_customer (stripe_id, email, name, livemode, created, created_at, updated_at)
SELECT 'cus_bench' || g, 'c' || g || '@bench.example.com', 'Customer ' || g, false,
       now() - interval '100 days' - (g %% 200) * interval '1 day', now(), now()
FROM generate_series(1::bigint, %(customers)s) AS g
"""

SEED_METHODS = """
INSERT INTO payments_paymentmethod (stripe_id, customer_id, type, card_brand, card_last4,
    card_exp_month, card_exp_year, is_default, created, created_at, updated_at, card_fingerprint)
SELECT 'pm_bench' || c.id, c.id, 'card', 'visa', '4242', 12, 2030, true, c.created, now(),
       now(), 'fp' || c.id
FROM payments_customer AS c
"""

# The bulk: ROWS payments over DAYS days; each customer pays with its own card.
SEED_PAYMENTS = f"""
INSERT INTO payments_payment ({PAYMENT_COLUMNS})
SELECT {PAYMENT_VALUES}
FROM (
    SELECT g, c.customer_id,
        500 + (g * 7919) %% 40000 AS amount,
        (ARRAY['usd', 'usd', 'usd', 'eur', 'gbp', 'jpy'])[1 + g %% 6] AS currency,
        (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
               'succeeded', 'succeeded', 'failed', 'canceled'])[1 + (g * 31) %% 10] AS status,
        now() - ((g * 104729) %% (%(days)s * 86400)) * interval '1 second' AS created,
        'fp' || c.customer_id AS fingerprint,
        CASE WHEN g %% 5 < 3 THEN '10.0.0.0'::inet + c.customer_id ELSE NULL END AS ip
    FROM generate_series(1::bigint, %(rows)s) AS g,
         LATERAL (SELECT %(first)s + (g * 7) %% %(customers)s AS customer_id) AS c
) AS s
"""

# Planted patterns, pattern k at now - (k %% 48) hours: half inside the 24-hour lookback.
PLANT_FAILED = f"""
INSERT INTO payments_payment ({PAYMENT_COLUMNS})
SELECT {PAYMENT_VALUES} FROM (
    SELECT k * 10 + m AS g, %(first)s + (k * 97) %% %(customers)s AS customer_id, 4900 AS amount,
        'usd' AS currency, 'failed' AS status,
        now() - (k %% 48) * interval '1 hour' - m * interval '4 minutes' AS created,
        '' AS fingerprint, NULL::inet AS ip
    FROM generate_series(1, %(n)s) AS k, generate_series(0, 2) AS m
) AS s
"""
PLANT_RAPID = f"""
INSERT INTO payments_payment ({PAYMENT_COLUMNS})
SELECT {PAYMENT_VALUES} FROM (
    SELECT k * 10 + m AS g, %(first)s + (k * 89 + 13) %% %(customers)s AS customer_id,
        2900 AS amount, 'eur' AS currency, 'succeeded' AS status,
        now() - (k %% 48) * interval '1 hour' - m * interval '1 minute' AS created,
        '' AS fingerprint, NULL::inet AS ip
    FROM generate_series(1, %(n)s) AS k, generate_series(0, 4) AS m
) AS s
"""
PLANT_SHARED = f"""
INSERT INTO payments_payment ({PAYMENT_COLUMNS})
SELECT {PAYMENT_VALUES} FROM (
    SELECT k * 10 + m AS g, %(first)s + (k * 83 + m * 7 + 29) %% %(customers)s AS customer_id,
        3900 AS amount, 'gbp' AS currency, 'succeeded' AS status,
        now() - (k %% 48) * interval '1 hour' - m * interval '7 minutes' AS created,
        CASE WHEN m < 3 THEN 'fpshared' || k ELSE '' END AS fingerprint,
        '192.0.2.0'::inet + k AS ip
    FROM generate_series(1, %(n)s) AS k, generate_series(0, 4) AS m
) AS s
"""
PLANT_NEW_ACCOUNTS = (
    """
WITH fresh AS (
    INSERT INTO payments_customer (stripe_id, email, name, livemode, created, created_at,
                                   updated_at)
    SELECT 'cus_new' || k, 'new' || k || '@bench.example.com', 'New ' || k, false,
           now() - (k %% 48) * interval '1 hour' - interval '2 days', now(), now()
    FROM generate_series(1, %(n)s) AS k
    RETURNING id, created
)
INSERT INTO payments_payment ("""
    + PAYMENT_COLUMNS.replace("%", "%%")
    + """)
SELECT 'pi_newacct' || id, 'ch_newacct' || id, id, 90000, 'usd', 0, 0, 0, 0, 'succeeded',
       'succeeded', 'card', '', '', '', 'course', '', '{}', '{}', false,
       created + interval '2 days', now(), now(), 0, false, '', '', '', '', '[]', '', NULL
FROM fresh
"""
)
PLANT_METHODS = """
INSERT INTO payments_paymentmethod (stripe_id, customer_id, type, card_brand, card_last4,
    card_exp_month, card_exp_year, is_default, created, created_at, updated_at, card_fingerprint)
SELECT 'pm_many' || k || '_' || m, p.customer_id, 'card', 'visa', '0000', 1, 2031, false,
       p.created - m * interval '1 hour', now(), now(), 'fpmany' || k || '_' || m
FROM generate_series(1, %(n)s) AS k, generate_series(0, 3) AS m,
     LATERAL (SELECT customer_id, created FROM payments_payment
              WHERE stripe_payment_intent_id = 'pi_rapid' || (k * 10)) AS p
"""


def _execute(sql: str, **params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _seed() -> tuple[int, float]:
    started = time.perf_counter()
    customers = max(50, ROWS // 8)
    _execute(SEED_CUSTOMERS, customers=customers)
    first_id = Customer.objects.order_by("id").values_list("id", flat=True).first()
    _execute(SEED_METHODS)
    common = {"first": first_id, "customers": customers}
    _execute(SEED_PAYMENTS, prefix="pi_bench", rows=ROWS, days=DAYS, **common)
    _execute(PLANT_FAILED, prefix="pi_failed", n=PATTERNS, **common)
    _execute(PLANT_RAPID, prefix="pi_rapid", n=PATTERNS, **common)
    _execute(PLANT_SHARED, prefix="pi_shared", n=PATTERNS, **common)
    _execute(PLANT_NEW_ACCOUNTS, n=PATTERNS)
    _execute(PLANT_METHODS, n=PATTERNS)
    with connection.cursor() as cursor:
        for table in ("payments_customer", "payments_paymentmethod", "payments_payment"):
            cursor.execute(f"ANALYZE {table}")
    return Payment.objects.count(), time.perf_counter() - started


def _detect(*args: str) -> tuple[dict, float, int]:
    out = io.StringIO()
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        call_command("manage_payments", "--detect-fraud", "--json", *args, stdout=out)
        seconds = time.perf_counter() - started
    return json.loads(out.getvalue()), seconds, len(ctx.captured_queries)


def _line(label: str, result: dict, seconds: float, queries: int) -> str:
    hits = sum(result["hits"].values())
    opened = sum(result["opened"].values())
    per_rule = ", ".join(f"{k} {v:.2f}" for k, v in result["rule_seconds"].items())
    return (
        f"{label}: {seconds:.2f} s, {queries} queries, {hits} hits, {opened} alerts opened "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result['opened'].items())) or 'none'})\n"
        f"    seconds per rule: {per_rule}"
    )


def test_detect_fraud_benchmark(db):
    assert connection.vendor == "postgresql"
    total, seeded = _seed()
    print(
        f"\nfraud benchmark: {total:,} payments over {DAYS} days, {PATTERNS} planted patterns "
        f"of each kind (seeded in {seeded:.1f} s)"
    )
    hourly, seconds, queries = _detect()
    print(_line("--detect-fraud (hourly: last 24 h)", hourly, seconds, queries))
    assert hourly["status"] == "succeeded", hourly["errors"]
    for rule in (
        "failed_attempts",
        "rapid_attempts",
        "shared_card",
        "shared_ip",
        "new_account_high_amount",
        "many_payment_methods",
    ):
        assert hourly["opened"].get(rule, 0) >= PATTERNS // 2 - 1, (rule, hourly["opened"])

    again, seconds, queries_again = _detect()
    print(_line("--detect-fraud again (nothing new)", again, seconds, queries_again))
    assert sum(again["opened"].values()) == 0

    since = (timezone.now() - timedelta(days=DAYS + 1)).date().isoformat()
    full, seconds, queries_full = _detect("--since", since)
    print(_line(f"--detect-fraud --since {since} (every payment)", full, seconds, queries_full))
    assert full["status"] == "succeeded", full["errors"]
    assert queries_full == queries, "the query count must not grow with the data"

    payment = Payment.objects.filter(ip_address__isnull=False).exclude(card_fingerprint="")
    payment = payment.order_by("-created").first()
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        fraud_rules.fraud_detect_touched(
            customer_ids=[payment.customer_id],
            fingerprints=[payment.card_fingerprint],
            ips=[payment.ip_address],
            payment_intent_ids=[payment.stripe_payment_intent_id],
        )
        seconds = time.perf_counter() - started
    print(
        f"event hook (one payment's customer, card and IP): {seconds * 1000:.1f} ms, "
        f"{len(ctx.captured_queries)} queries"
    )
    print(f"alerts in the table: {FraudAlert.objects.count():,}")
