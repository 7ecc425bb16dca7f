"""Pagination that never counts a whole large table.

Django's admin paginator runs SELECT COUNT(*) on every changelist. On PostgreSQL that is a
full scan: seconds at a million rows. For an unfiltered queryset we read the planner's row
estimate from pg_class instead (kept fresh by autovacuum / ANALYZE); filtered querysets are
counted for real, since their WHERE is served by an index.
"""

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


def estimated_table_rows(*, using: str, table: str) -> int | None:
    """The planner's estimate of rows in `table`, or None where there is none (not PG,
    never analysed)."""
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


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is not None and not query.where and not query.distinct:
            estimate = estimated_table_rows(using=queryset.db, table=queryset.model._meta.db_table)
            if estimate is not None and estimate >= settings.ADMIN_ESTIMATED_COUNT_THRESHOLD:
                return estimate
        return super().count
