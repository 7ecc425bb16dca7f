"""Payments changelist on PostgreSQL at 1M rows: our admin against a stock Django ModelAdmin on
the same table in the same run.

Run: scripts/bench.sh tests/benchmarks/bench_changelist.py   (prints figures, asserts nothing
about speed). BENCH_PAYMENTS=100000,1000000 (default 1000000: sizes are filled in turn),
BENCH_REPEAT=30. Rows are seeded with one INSERT ... SELECT over generate_series (a minute for
1M), customers likewise, then VACUUM ANALYZE as autovacuum would leave the table.

Every view is the whole admin request (filters, count, page query, rendering) through the test
client. "stock" is `django.contrib.admin.ModelAdmin` on a throwaway AdminSite mounted only in
this benchmark: the default paginator (COUNT(*) and OFFSET), the default "N total" count,
`search_fields` with icontains and the plain column filters; the site's templates are the ones
the project installs (Unfold's), so the ratio compares the server work, not the look. The
stock deep page is `?p=` at the same depth as our cursor (OFFSET); ours is a keyset cursor.
Target (DESIGN.md, issue 14): p95 <= 250 ms for every view of ours at 1M, <= 10 queries, no
full-table COUNT(*); "ratio" is our p95 divided by the stock admin's.
"""

import os
import statistics
import time
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from django.utils import timezone
from unfold.sites import UnfoldAdminSite

import backoffice.urls
from backoffice.pagination import CURSOR_VAR, LAST, KeysetPaginator
from payments.models import Payment

pytestmark = [pytest.mark.benchmark, pytest.mark.postgres]
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
DAYS = 365

# Unfold's site only because the installed admin templates are Unfold's and need its URLs (the
# search); the ModelAdmin on it is the stock one.
stock_site = UnfoldAdminSite(name="stock")


class StockPaymentAdmin(admin.ModelAdmin):
    """What `admin.site.register(Payment)` with filters and search would give."""

    list_filter = ["status", "currency", "created"]
    search_fields = ["stripe_payment_intent_id", "customer__email"]


stock_site.register(Payment, StockPaymentAdmin)
urlpatterns = [path("stock/", stock_site.urls), path("", include(backoffice.urls))]

SEED_CUSTOMERS = """
INSERT INTO payments_customer (stripe_id, email, name, livemode, created, created_at, updated_at,
                               block_reason)
SELECT 'cus_bench' || g,
       (ARRAY['ada', 'grace', 'alan', 'edsger', 'barbara'])[1 + g %% 5] || '.' || g
           || '@example.com',
       'Customer ' || g, false, now() - interval '400 days', now(), now(), ''
FROM generate_series(%(first)s::bigint, %(last)s) AS g
ON CONFLICT DO NOTHING
"""

# One INSERT ... SELECT: payments over a year, a realistic status / currency / method mix, one
# customer per 8 payments.
SEED_PAYMENTS = """
INSERT INTO payments_payment (
    stripe_payment_intent_id, stripe_charge_id, customer_id, amount, currency, amount_refunded,
    stripe_fee, platform_fee, net, status, stripe_status, payment_method_type, failure_code,
    decline_code, failure_message, product_kind, description, billing_details, metadata,
    livemode, created, created_at, updated_at, stripe_amount_refunded, charge_disputed,
    product_id, product_name, coupon_code, booking_id, metadata_problems)
SELECT
    'pi_bench' || g, 'ch_bench' || g, c.id, amount, currency, 0,
    CASE WHEN captured THEN amount * 3 / 100 + 30 ELSE 0 END,
    CASE WHEN captured THEN amount / 5 ELSE 0 END,
    CASE WHEN captured THEN amount - (amount * 3 / 100 + 30) - amount / 5 ELSE 0 END,
    status, 'succeeded', method,
    CASE WHEN status = 'failed' THEN 'card_declined' ELSE '' END,
    CASE WHEN status = 'failed' THEN 'insufficient_funds' ELSE '' END,
    '', 'course', 'Course ' || g %% 50, '{}', '{}', false, s.created, now(), now(), 0, false,
    '', '', '', '', '[]'
FROM (
    SELECT g,
        500 + (g * 7919) %% 40000 AS amount,
        (ARRAY['usd', 'usd', 'usd', 'eur', 'gbp', 'jpy'])[1 + g %% 6] AS currency,
        (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
               'succeeded', 'succeeded', 'failed', 'canceled'])[1 + (g * 31) %% 10] AS status,
        (ARRAY['card', 'card', 'card', 'wallet', 'sepa_debit'])[1 + (g * 13) %% 5] AS method,
        now() - ((g * 104729) %% (%(days)s * 86400)) * interval '1 second'
            - (g %% 1000) * interval '1 microsecond' AS created,
        'cus_bench' || (1 + g / 8) AS customer_stripe_id
    FROM generate_series(%(first)s::bigint, %(last)s) AS g
) AS s
JOIN payments_customer AS c ON c.stripe_id = s.customer_stripe_id,
LATERAL (SELECT status = 'succeeded' AS captured) AS l
"""


def seed(first: int, last: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(SEED_CUSTOMERS, {"first": 1 + first // 8, "last": 1 + last // 8})
        cursor.execute(SEED_PAYMENTS, {"first": first, "last": last, "days": DAYS})


def deep_cursor(depth: int) -> str:
    """Our cursor to the page after row `depth` of the default order (what following Next
    from page 1 would reach), built the way the pager builds it."""
    row = Payment.objects.order_by("-created", "-id")[depth]
    return KeysetPaginator(Payment.objects.order_by("-created", "-id"), 50).encode(row, "a")


def scenarios(size: int):
    """{name: (our query, the stock admin's query)} for the same rows."""
    today = timezone.localdate()
    week = {"created_from": str(today - timedelta(days=7)), "created_to": str(today)}
    depth = size // 2
    first_pi = Payment.objects.order_by("id").values_list("stripe_payment_intent_id", flat=True)[0]
    return {
        "unfiltered, page 1": ({}, {}),
        f"deep page (row {depth:,})": (
            {CURSOR_VAR: deep_cursor(depth)},
            {"p": str(depth // StockPaymentAdmin.list_per_page + 1)},
        ),
        "last page": ({CURSOR_VAR: LAST}, {"p": str(size // StockPaymentAdmin.list_per_page)}),
        "status=failed": ({"status__exact": "failed"}, {"status__exact": "failed"}),
        "currency=eur": ({"currency": "eur"}, {"currency__exact": "eur"}),
        "last 7 days": (
            week,
            {
                "created__gte": week["created_from"],
                "created__lt": str(today + timedelta(days=1)),
            },
        ),
        "amount 100-200": (
            {"amount_from": "100", "amount_to": "200"},
            {"amount__gte": "10000", "amount__lte": "20000"},
        ),
        "search email prefix": ({"q": "ada.1"}, {"q": "ada.1"}),
        "search pi id": ({"q": first_pi}, {"q": first_pi}),
    }


def measure(client, url, params):
    client.get(url, params)  # warm-up
    timings = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, params, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    full_counts = [
        q["sql"]
        for q in ctx.captured_queries
        if "COUNT(*)" in q["sql"].upper()
        and "payments_payment" in q["sql"]
        and "WHERE" not in q["sql"].upper()
    ]
    timings.sort()
    return {
        "median": statistics.median(timings),
        "p95": timings[max(0, int(len(timings) * 0.95) - 1)],
        "queries": len(ctx.captured_queries),
        "full_counts": len(full_counts),
    }


@pytest.fixture
def production_template_rendering(monkeypatch):
    """pytest-django instruments every template render (a signal per template) for test
    assertions; a server doesn't, so measure without it."""
    from django.template import Template
    from django.test.utils import _TestState

    saved = getattr(_TestState, "saved_data", None)
    if saved is not None:
        monkeypatch.setattr(Template, "_render", saved.template_render)


@override_settings(ROOT_URLCONF=__name__)
def test_payments_changelist_at_scale(
    admin_client, transactional_db, production_template_rendering
):
    sizes = [int(s) for s in os.environ.get("BENCH_PAYMENTS", "1000000").split(",")]
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
            f"{REPEAT} requests per view; ours {50} rows a page, stock "
            f"{StockPaymentAdmin.list_per_page} =="
        )
        print(
            f"{'view':<26}{'ours p50':>9}{'p95':>8}{'queries':>8}{'fullCOUNT':>10}"
            f"{'stock p50':>10}{'p95':>8}{'queries':>8}{'fullCOUNT':>10}{'ratio':>7}"
        )
        for name, (ours_params, stock_params) in scenarios(size).items():
            ours = measure(admin_client, "/admin/payments/payment/", ours_params)
            stock = measure(admin_client, "/stock/payments/payment/", stock_params)
            print(
                f"{name:<26}{ours['median']:>9.1f}{ours['p95']:>8.1f}{ours['queries']:>8}"
                f"{ours['full_counts']:>10}{stock['median']:>10.1f}{stock['p95']:>8.1f}"
                f"{stock['queries']:>8}{stock['full_counts']:>10}"
                f"{ours['p95'] / stock['p95']:>7.2f}"
            )
