"""A paginator for the refund queue's default order that never sorts the whole table.

ORDER BY priority_rank, created_at makes PostgreSQL compute the CASE for every matching row
and top-N sort them (100k pending requests: a parallel seq scan, ~80 ms on an idle machine).
But each rank is a plain range of columns, served in created_at order by the
(status, created_at, id) index. So a page is read as UNION ALL of one index range scan per
rank, each with LIMIT <end of page>, ordered by rank: a few index probes whatever the table
size. That union is a subquery (`id IN (...)`) of the admin's own queryset, so its joins and
annotations stay, and the page is still one query whose ORDER BY sorts only the page's rows.

Used only for the default order on databases that allow ORDER BY / LIMIT inside a UNION
(PostgreSQL); any other order, or SQLite, pages the ordinary way.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import IntegerField, Q, Value
from django.db.models.expressions import RawSQL
from django.utils.functional import cached_property

from backoffice.pagination import EstimatedCountPaginator
from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q

DEFAULT_ORDER = ("priority_rank", "created_at", "id")


class PriorityQueuePaginator(EstimatedCountPaginator):
    @cached_property
    def count(self) -> int:
        # EXPLAIN of an empty queryset (`.none()`, e.g. an over-long search) raises
        # EmptyResultSet in EstimatedCountPaginator on PostgreSQL: nothing to count anyway.
        query = getattr(self.object_list, "query", None)
        if query is not None and query.is_empty():
            return 0
        return super().count

    def _fast_path(self) -> bool:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None or query.is_empty():
            return False
        # The admin's ChangeList appends the queryset's own ordering to the one it chose, so
        # the default order arrives twice; any column the user sorts by comes first.
        if tuple(dict.fromkeys(query.order_by)) != DEFAULT_ORDER:
            return False
        features = connections[queryset.db].features
        return bool(features.supports_slicing_ordering_in_compound)

    def page(self, number):
        if not self._fast_path():
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        # One query: the admin's own queryset (its joins and annotations), restricted to the
        # page's ids; its ORDER BY then sorts only those few rows.
        ids_sql, params = self.page_ids_queryset(bottom, top).query.sql_with_params()
        rows = self.object_list.filter(
            pk__in=RawSQL(f"SELECT page_ids.id FROM ({ids_sql}) AS page_ids", params)
        )
        return self._get_page(list(rows), number, self)

    def page_ids_queryset(self, bottom: int, top: int):
        """(id, created_at, rank) of rows bottom..top of the priority order, as one query."""
        base = self.object_list.order_by().values_list("id", "created_at")
        # Not pending: an IN list, because `status <> 'pending'` would walk the whole index.
        decided = [status for status in RefundRequest.Status.values if status != "pending"]
        tiers = [(priority_q(value), rank) for value, rank in Priority.RANK.items()] + [
            (Q(status__in=decided), Priority.NONE_RANK)
        ]
        parts = [
            base.filter(condition)
            .annotate(rank=Value(rank, output_field=IntegerField()))
            .order_by("created_at", "id")[:top]
            for condition, rank in tiers
        ]
        union = parts[0].union(*parts[1:], all=True).order_by("rank", "created_at", "id")
        return union[bottom:top]
