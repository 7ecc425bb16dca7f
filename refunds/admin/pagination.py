"""A paginator for the refund queue's default order that never sorts the whole table.

ORDER BY priority_rank, created_at makes PostgreSQL compute the CASE for every matching row
and top-N sort them (100k pending requests: a parallel seq scan, ~80 ms idle). But each rank
is a plain range of columns, served in created_at order by the (status, created_at, id)
index. So a page is read as UNION ALL of one index range scan per rank, each with
LIMIT <end of page>, ordered by rank: a few index probes whatever the table size. The rows
are then loaded through the admin's own queryset (annotations, select_related) by primary key.

Used only for the default order on databases that allow ORDER BY / LIMIT inside a UNION
(PostgreSQL); any other order, or SQLite, pages the ordinary way.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import IntegerField, Q, Value
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
        ids = self._page_ids(bottom, top)
        by_id = {row.pk: row for row in self.object_list.order_by().filter(pk__in=ids)}
        return self._get_page([by_id[pk] for pk in ids if pk in by_id], number, self)

    def _page_ids(self, bottom: int, top: int) -> list[int]:
        return [pk for pk, *_ in self.page_ids_queryset(bottom, top)]

    def page_ids_queryset(self, bottom: int, top: int):
        """(id, created_at, rank) of rows bottom..top of the priority order, as one query."""
        base = self.object_list.order_by().values_list("pk", "created_at")
        tiers = [(priority_q(value), rank) for value, rank in Priority.RANK.items()] + [
            (~Q(status=RefundRequest.Status.PENDING), Priority.NONE_RANK)
        ]
        parts = [
            base.filter(condition)
            .annotate(rank=Value(rank, output_field=IntegerField()))
            .order_by("created_at", "id")[:top]
            for condition, rank in tiers
        ]
        union = parts[0].union(*parts[1:], all=True).order_by("rank", "created_at", "id")
        return union[bottom:top]
