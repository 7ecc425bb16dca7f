"""On PostgreSQL an unfiltered changelist never counts the whole table."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CHANGELIST = reverse("admin:payments_payment_changelist")
COUNT = re.compile(r"SELECT\s+COUNT\(\*\)", re.IGNORECASE)


def payment_counts(queries):
    return [q["sql"] for q in queries if COUNT.search(q["sql"]) and "payments_payment" in q["sql"]]


@pytest.fixture
def analysed_payments(db):
    PaymentFactory.create_batch(40)
    PaymentFactory.create_batch(5, failed=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_payment")


def test_unfiltered_changelist_uses_the_planner_estimate(admin_client, analysed_payments, settings):
    settings.ADMIN_ESTIMATED_COUNT_THRESHOLD = 10
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert payment_counts(ctx.captured_queries) == []
    assert response.context["cl"].result_count == 45  # reltuples is exact after ANALYZE here


def test_large_filtered_results_use_the_planner_estimate(admin_client, analysed_payments, settings):
    settings.ADMIN_ESTIMATED_COUNT_THRESHOLD = 10
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST, {"status__exact": "succeeded"})
    assert payment_counts(ctx.captured_queries) == []
    assert any(q["sql"].startswith("EXPLAIN") for q in ctx.captured_queries)
    assert response.context["cl"].result_count >= 10


def test_narrow_filters_are_counted_for_real(admin_client, analysed_payments, settings):
    settings.ADMIN_ESTIMATED_COUNT_THRESHOLD = 10
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST, {"status__exact": "failed"})
    counts = payment_counts(ctx.captured_queries)
    assert len(counts) == 1 and "WHERE" in counts[0]
    assert response.context["cl"].result_count == 5


def test_small_tables_are_counted_exactly(admin_client, analysed_payments, settings):
    settings.ADMIN_ESTIMATED_COUNT_THRESHOLD = 1000
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST)
    assert len(payment_counts(ctx.captured_queries)) == 1
    assert response.context["cl"].result_count == 45


def test_a_search_that_can_match_nothing_is_not_a_500(admin_client, analysed_payments, settings):
    """payment_search returns .none() for absurd terms; EXPLAIN has no SQL to run then."""
    settings.ADMIN_ESTIMATED_COUNT_THRESHOLD = 10
    response = admin_client.get(CHANGELIST, {"q": "x" * 5000})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
