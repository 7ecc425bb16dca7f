"""Pagination that never counts a large table.

Django's admin paginator runs SELECT COUNT(*) on every changelist. On PostgreSQL that scans
every matching row: seconds at a million rows. Above ADMIN_ESTIMATED_COUNT_THRESHOLD we use
the planner's estimate instead: pg_class.reltuples for an unfiltered table (kept fresh by
autovacuum / ANALYZE), and the row estimate of EXPLAIN for a filtered queryset. Small results
are counted exactly, so a narrow filter still shows its true number of pages.
"""

import json

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


def estimated_table_rows(*, using: str, table: str) -> int | None:
    """The planner's estimate of rows in `table`, or None where there is none (not
    PostgreSQL, or never analysed)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table]
        )
        row = cursor.fetchone()
    if not row or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def estimated_query_rows(queryset) -> int | None:
    """Rows the PostgreSQL planner expects `queryset` to return (EXPLAIN, not executed)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    try:
        sql, params = queryset.order_by().query.sql_with_params()
    except EmptyResultSet:
        return 0  # .none(), an empty IN (): nothing to estimate, and nothing to count
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is not None and not query.distinct:
            threshold = settings.ADMIN_ESTIMATED_COUNT_THRESHOLD
            if not query.where:
                estimate = estimated_table_rows(
                    using=queryset.db, table=queryset.model._meta.db_table
                )
            else:
                estimate = estimated_query_rows(queryset)
            if estimate is not None and estimate >= threshold:
                return estimate
        return super().count
