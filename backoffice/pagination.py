"""Pagination that never counts a large table, and keyset (seek) pages that cost the same at
any depth.

Counting. Django's admin paginator runs SELECT COUNT(*) on every changelist. On PostgreSQL
that scans every matching row: seconds at a million rows. Above
ADMIN_ESTIMATED_COUNT_THRESHOLD we use the planner's estimate instead: pg_class.reltuples for
an unfiltered table (kept fresh by autovacuum / ANALYZE), and the row estimate of EXPLAIN for
a filtered queryset. Small results are counted exactly, so a narrow filter still shows its
true number of pages.

Keyset pages (KeysetPaginationMixin, used by the payments list). OFFSET n makes the database
walk and throw away n rows, so page 10,000 of a million payments costs 10,000 times page 1.
A keyset page instead starts from the last row the user saw: "rows after (created, id) =
(2026-11-30 12:00:00.123456, 81234) in the order (-created, -id)" is one index range scan with
LIMIT, whatever the depth. How it fits Django admin's page-numbered ChangeList:

- The URL carries the boundary, not server state: `?cursor=a.<token>` (the page after a row),
  `?cursor=b.<token>` (the page before a row) or `?cursor=last`. The token is the boundary
  row's values of the ordering columns with the ordering's own column names (base64 JSON), so a
  link is shareable, survives a restart and means the same rows for everyone. Filters, search
  and the sort column stay ordinary query parameters beside it; every filter, search and sort
  link drops the cursor (back to the first page), as the admin drops `p`.
- The bar shows First, Previous, Next and Last. Page numbers still work by OFFSET for the first
  KEYSET_MAX_OFFSET_PAGE pages (old bookmarks, `?p=3`), where skipping is cheap; a deeper `p`
  shows the first page with a message instead of an OFFSET that grows with the depth.
- The seek works for any ordering on non-null columns of the model ending in the primary key
  (the ChangeList makes every ordering end in it): the boundary becomes
  `k1 <op> v1 OR (k1 = v1 AND k2 <op> v2) OR ...` plus a redundant `k1 <op>= v1` so that
  PostgreSQL turns it into an index range; with an index behind the ordering (the payments'
  (-created, -id) and (<filter>, -created, -id) indexes) a page is an index range scan of
  per_page + 1 rows. An ordering on an annotation, a relation or a nullable column pages by
  OFFSET, as before.
- One query per page: per_page + 1 rows are read, the extra one only says whether there is
  a next (or previous) page. Previous and Last read the reversed order and flip the rows.
- Stable under inserts: new payments arrive at the top; a page reached by its cursor keeps the
  rows it had, with no row repeated or skipped across the boundary (rows sharing a `created`
  are split by id).
"""

import base64
import binascii
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections
from django.db.models import Q
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


CURSOR_VAR = "cursor"
# Page numbers beyond this are refused: OFFSET grows with the depth; Next / Last do not.
KEYSET_MAX_OFFSET_PAGE = 20
LAST = "last"
MSG_BAD_CURSOR = (
    "That page link is not valid for this list (changed or cut short): showing the first page."
)
MSG_TOO_DEEP = (
    "Page numbers go up to {max}: use Next, Previous and Last, or a Created date range, to go "
    "deeper. Showing the first page."
)


class KeysetPage(Page):
    """A page with the cursors of its neighbours ("" where there is none)."""

    def __init__(self, object_list, number, paginator, *, previous_cursor="", next_cursor=""):
        super().__init__(object_list, number, paginator)
        self.previous_cursor = previous_cursor
        self.next_cursor = next_cursor

    def has_next(self):
        return bool(self.next_cursor)

    def has_previous(self):
        return bool(self.previous_cursor)


class KeysetPaginator(EstimatedCountPaginator):
    """EstimatedCountPaginator whose pages after the first are seeks from a boundary row (see
    the module docstring). `cursor` is the raw value of the URL's CURSOR_VAR."""

    template_name = "admin/keyset_pagination.html"

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, cursor=""):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.cursor = cursor or ""
        self.notice = ""  # a message for the staff member (a bad cursor, a page too deep)
        self.current_page = None

    @cached_property
    def keys(self) -> list[tuple[str, bool]] | None:
        """[(attname, descending), ...] of the queryset's ordering, ending in the primary key,
        or None when that ordering cannot be sought (annotations, relations, NULLs)."""
        query = getattr(self.object_list, "query", None)
        if query is None or query.is_empty() or query.distinct:
            return None
        opts = self.object_list.model._meta
        keys, seen = [], set()
        for item in query.order_by or opts.ordering:
            if not isinstance(item, str) or item == "?":
                return None
            descending, name = item.startswith("-"), item.lstrip("-")
            if name == "pk":
                name = opts.pk.name
            try:
                field = opts.get_field(name)
            except Exception:  # an annotation or a relation path: OFFSET
                return None
            if not field.concrete or field.null or field.is_relation:
                return None
            if field.attname in seen:  # the admin repeats the default ordering after a sort
                continue
            seen.add(field.attname)
            keys.append((field.attname, descending))
            if field.primary_key:
                return keys
        return None

    # --- cursors --------------------------------------------------------------------------

    def _signature(self) -> list[str]:
        return [("-" if desc else "") + name for name, desc in self.keys]

    def key_value(self, row, name: str) -> str:
        """The boundary row's value of ordering column `name`, as text for the cursor."""
        field = self.object_list.model._meta.get_field(name)
        return str(getattr(row, name)) if field.primary_key else field.value_to_string(row)

    def parse_value(self, name: str, raw):
        """A cursor's text back into the value of column `name` (raises ValidationError)."""
        return self.object_list.model._meta.get_field(name).to_python(raw)

    def encode(self, row, direction: str) -> str:
        values = [self.key_value(row, name) for name, _ in self.keys]
        raw = json.dumps({"o": self._signature(), "v": values}, separators=(",", ":"))
        return f"{direction}." + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[str, list] | None:
        """(direction "a" or "b", typed values) of a cursor, or None when it is not one of this
        ordering's (tampered, cut short, or made for another sort)."""
        direction, _, token = cursor.partition(".")
        if direction not in ("a", "b") or not token or len(token) > 2000:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if data["o"] != self._signature() or len(data["v"]) != len(self.keys):
                return None
            values = [
                self.parse_value(name, value)
                for (name, _), value in zip(self.keys, data["v"], strict=True)
            ]
        except (ValueError, TypeError, KeyError, binascii.Error, ValidationError):
            return None
        if any(value is None for value in values):
            return None
        return direction, values

    # --- pages ----------------------------------------------------------------------------

    def _seek(self, values, *, forward: bool) -> Q:
        """Rows strictly after (forward) or before the boundary `values` in this ordering."""
        condition = Q()
        equal = Q()
        for (name, desc), value in zip(self.keys, values, strict=True):
            beyond = "lt" if desc == forward else "gt"
            condition |= equal & Q(**{f"{name}__{beyond}": value})
            equal &= Q(**{name: value})
        first_name, first_desc = self.keys[0]
        bound = "lte" if first_desc == forward else "gte"
        return Q(**{f"{first_name}__{bound}": values[0]}) & condition

    def _reversed(self):
        return self.object_list.order_by(
            *[("" if desc else "-") + name for name, desc in self.keys]
        )

    def page(self, number):
        if self.keys is None:
            return super().page(number)
        if self.cursor:
            decoded = None if self.cursor == LAST else self.decode(self.cursor)
            if self.cursor == LAST:
                page = self._last_page()
            elif decoded is None:
                self.notice = MSG_BAD_CURSOR
                page = self._offset_page(1)
            else:
                direction, values = decoded
                page = self._seek_page(values, forward=direction == "a")
        else:
            if isinstance(number, int) and number > KEYSET_MAX_OFFSET_PAGE:
                self.notice = MSG_TOO_DEEP.format(max=KEYSET_MAX_OFFSET_PAGE)
                number = 1
            number = self.validate_number(number)
            page = self._offset_page(number)
        self.current_page = page
        return page

    # The three reads a page is made of; a subclass with a faster plan for its ordering (the
    # refund queue's union of index ranges) overrides them and keeps the rest.

    def rows_at(self, bottom: int, limit: int) -> list:
        """`limit` rows from row `bottom` on (OFFSET), in the page's order."""
        return list(self.object_list[bottom : bottom + limit])

    def rows_after(self, values, limit: int) -> list:
        """`limit` rows after the boundary `values`, in the page's order."""
        return list(self.object_list.filter(self._seek(values, forward=True))[:limit])

    def rows_before(self, values, limit: int) -> list:
        """`limit` rows before the boundary `values` (None: the end), nearest first."""
        queryset = self._reversed()
        if values is not None:
            queryset = queryset.filter(self._seek(values, forward=False))
        return list(queryset[:limit])

    def _offset_page(self, number: int) -> KeysetPage:
        rows = self.rows_at((number - 1) * self.per_page, self.per_page + 1)
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        more = len(rows) > self.per_page
        rows = rows[: self.per_page]
        return KeysetPage(
            rows,
            number,
            self,
            previous_cursor=self.encode(rows[0], "b") if rows and number > 1 else "",
            next_cursor=self.encode(rows[-1], "a") if more else "",
        )

    def _seek_page(self, values, *, forward: bool) -> KeysetPage:
        if forward:
            rows = self.rows_after(values, self.per_page + 1)
            more = len(rows) > self.per_page
            rows = rows[: self.per_page]
            return KeysetPage(
                rows,
                2,
                self,
                previous_cursor=self.encode(rows[0], "b") if rows else "",
                next_cursor=self.encode(rows[-1], "a") if more else "",
            )
        rows = self.rows_before(values, self.per_page + 1)
        more = len(rows) > self.per_page
        rows = rows[: self.per_page][::-1]
        return KeysetPage(
            rows,
            2 if more else 1,
            self,
            previous_cursor=self.encode(rows[0], "b") if more else "",
            next_cursor=self.encode(rows[-1], "a") if rows else "",
        )

    def _last_page(self) -> KeysetPage:
        rows = self.rows_before(None, self.per_page + 1)
        more = len(rows) > self.per_page
        rows = rows[: self.per_page][::-1]
        return KeysetPage(
            rows, 2 if more else 1, self, previous_cursor=self.encode(rows[0], "b") if more else ""
        )


class KeysetChangeList(ChangeList):
    """Drops the cursor from the filters and from every link but the pager's, normalises the
    ordering so the tie-breaker follows the sorted column, and builds the pager's links."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(CURSOR_VAR, None)
        return lookup_params

    def get_query_string(self, new_params=None, remove=None):
        new_params = {CURSOR_VAR: None, **(new_params or {})}
        return super().get_query_string(new_params, remove)

    def get_ordering(self, request, queryset):
        ordering = super().get_ordering(request, queryset)
        # The admin appends the default ordering after a clicked column: (created, -created,
        # -id) for "oldest first". Keep each column once, and let the primary key follow the
        # first column's direction when only the two remain, so one index serves both ways.
        kept, seen = [], set()
        for item in ordering:
            name = item.lstrip("-") if isinstance(item, str) else None
            if name is None or name not in seen:
                kept.append(item)
            if name is not None:
                seen.add(name)
        pk_names = {"pk", self.lookup_opts.pk.name}
        if (
            len(kept) == 2
            and all(isinstance(item, str) for item in kept)
            and kept[1].lstrip("-") in pk_names
        ):
            kept[1] = ("-" if kept[0].startswith("-") else "") + kept[1].lstrip("-")
        return kept

    def get_results(self, request):
        super().get_results(request)
        paginator, page = self.paginator, getattr(self.paginator, "current_page", None)
        if getattr(paginator, "notice", ""):
            messages.warning(request, paginator.notice)
        self.keyset_links = {}
        if page is not None:
            self.keyset_links = {
                "first": self.get_query_string() if page.has_previous() else "",
                "previous": self.get_query_string({CURSOR_VAR: page.previous_cursor})
                if page.has_previous()
                else "",
                "next": self.get_query_string({CURSOR_VAR: page.next_cursor})
                if page.has_next()
                else "",
                "last": self.get_query_string({CURSOR_VAR: LAST}) if page.has_next() else "",
            }


class KeysetPaginationMixin:
    """For a ModelAdmin: keyset pages past the first (module docstring)."""

    paginator = KeysetPaginator

    def get_changelist(self, request, **kwargs):
        return KeysetChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            cursor=request.GET.get(CURSOR_VAR, ""),
        )
