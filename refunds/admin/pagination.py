"""A paginator for the refund queue's default order that never sorts the whole table, and whose
pages past the first are keyset seeks (backoffice/pagination.py) in that order.

ORDER BY priority_rank, created_at makes PostgreSQL compute the CASE for every matching row
and top-N sort them (100k pending requests: a parallel seq scan, ~80 ms on an idle machine).
But each rank is a plain range of columns, served in created_at order by the
(status, created_at, id) index. So a page is read as UNION ALL of one index range scan per
rank, each with LIMIT <rows wanted>, ordered by rank: a few index probes whatever the table
size. That union is a subquery (`id IN (...)`) of the admin's own queryset, so its joins and
annotations stay, and the page is still one query whose ORDER BY sorts only the page's rows.

Pages: the first KEYSET_MAX_OFFSET_PAGE by number (each tier's LIMIT is then the end of the
page); past them, and for Next / Previous / Last, a cursor (rank, created_at, id) of the
boundary row: the boundary's tier continues after (created_at, id), the later tiers start at
their beginning, the earlier ones are left out, each with LIMIT per_page + 1. So page 2,000 of
100k pending requests costs what page 1 does. The ranks come from the clock (a request
becomes urgent as it ages): a cursor keeps the ranks of the page it came from, so a request
that changed tier between two clicks may move across the boundary, as it would under OFFSET.

Used only for the default order on databases that allow ORDER BY / LIMIT inside a UNION
(PostgreSQL); any other order, or SQLite, pages through the generic KeysetPaginator (seek
where the order is on plain columns, else OFFSET).
"""

from __future__ import annotations

from django.db import connections
from django.db.models import IntegerField, Q, Value
from django.db.models.expressions import RawSQL
from django.utils.functional import cached_property

from backoffice.pagination import KeysetPaginator
from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q

DEFAULT_ORDER = ("priority_rank", "created_at", "id")


class PriorityQueuePaginator(KeysetPaginator):
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

    @cached_property
    def keys(self):
        if self._fast_path():
            return [(name, False) for name in DEFAULT_ORDER]
        return super().keys

    def key_value(self, row, name: str) -> str:
        if name == "priority_rank":
            return str(row.priority_rank)
        return super().key_value(row, name)

    def parse_value(self, name: str, raw):
        if name == "priority_rank":
            rank = int(raw)
            if not 0 <= rank <= Priority.NONE_RANK:
                raise ValueError(rank)
            return rank
        return super().parse_value(name, raw)

    def _page_rows(self, ids_queryset, *, nearest_first: bool = False) -> list:
        """The admin queryset's rows (its joins and annotations) whose ids `ids_queryset`
        selects, in the queue's order; one query."""
        ids_sql, params = ids_queryset.query.sql_with_params()
        rows = list(
            self.object_list.filter(
                pk__in=RawSQL(f"SELECT page_ids.id FROM ({ids_sql}) AS page_ids", params)
            )
        )
        return rows[::-1] if nearest_first else rows

    def rows_at(self, bottom: int, limit: int) -> list:
        if not self._fast_path():
            return super().rows_at(bottom, limit)
        return self._page_rows(self.page_ids_queryset(bottom, bottom + limit))

    def rows_after(self, values, limit: int) -> list:
        if not self._fast_path():
            return super().rows_after(values, limit)
        return self._page_rows(self._tier_union(values, limit, forward=True))

    def rows_before(self, values, limit: int) -> list:
        if not self._fast_path():
            return super().rows_before(values, limit)
        return self._page_rows(self._tier_union(values, limit, forward=False), nearest_first=True)

    def _tiers(self):
        # Not pending: an IN list, because `status <> 'pending'` would walk the whole index.
        decided = [status for status in RefundRequest.Status.values if status != "pending"]
        return [(priority_q(value), rank) for value, rank in Priority.RANK.items()] + [
            (Q(status__in=decided), Priority.NONE_RANK)
        ]

    def _tier_union(self, boundary, limit: int, *, forward: bool):
        """Ids of the `limit` rows after (forward) or before the boundary (rank, created_at,
        id), None meaning the end of the queue: one LIMITed index range per tier."""
        base = self.object_list.order_by().values_list("id", "created_at")
        sign = "" if forward else "-"
        parts = []
        for condition, rank in self._tiers():
            if boundary is not None:
                b_rank, b_created, b_id = boundary
                if (rank < b_rank) if forward else (rank > b_rank):
                    continue
                if rank == b_rank:
                    op = "gt" if forward else "lt"
                    condition &= Q(**{f"created_at__{op}e": b_created}) & (
                        Q(**{f"created_at__{op}": b_created})
                        | Q(created_at=b_created, **{f"id__{op}": b_id})
                    )
            parts.append(
                base.filter(condition)
                .annotate(rank=Value(rank, output_field=IntegerField()))
                .order_by(f"{sign}created_at", f"{sign}id")[:limit]
            )
        # Never empty: the last tier (rank 4) is after every boundary, the first before; one
        # tier alone is already in order and LIMITed.
        if len(parts) == 1:
            return parts[0]
        union = parts[0].union(*parts[1:], all=True)
        return union.order_by(f"{sign}rank", f"{sign}created_at", f"{sign}id")[:limit]

    def page_ids_queryset(self, bottom: int, top: int):
        """(id, created_at, rank) of rows bottom..top of the priority order, as one query."""
        base = self.object_list.order_by().values_list("id", "created_at")
        parts = [
            base.filter(condition)
            .annotate(rank=Value(rank, output_field=IntegerField()))
            .order_by("created_at", "id")[:top]
            for condition, rank in self._tiers()
        ]
        union = parts[0].union(*parts[1:], all=True).order_by("rank", "created_at", "id")
        return union[bottom:top]
