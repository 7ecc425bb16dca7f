"""Cursor pagination for the API's lists: keyset seeks over an indexed order, never a COUNT.

A list's queryset is ordered on non-null columns ending in the primary key (the transactions'
`-created, -id`, behind an index); a page is one query of page_size + 1 rows: the rows after
(or before) the boundary row named by the cursor, plus one that only says whether there is
more. Page 1 and page 10,000 cost the same, and a client paging while payments arrive neither
repeats nor skips a row (new rows land before page 1; rows sharing a `created` are split by
id). The cursor is opaque to clients: follow `next` and `previous`.

The seek itself is the admin's (backoffice.pagination.KeysetPaginator): one definition of
the boundary condition for pages and the API. Its `page()` would validate the number against a
count; the API asks it for the rows of a first page or of a seek directly, which count
nothing.

Named in settings.REST_FRAMEWORK, so this module imports no viewset."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from backoffice.pagination import KeysetPage, KeysetPaginator

from .errors import ApiError

ERR_BAD_CURSOR = "This cursor is not valid for this list; start again from its first page."
ERR_BAD_PAGE_SIZE = "page_size must be a whole number from 1 to {max}."
ERR_NOT_SEEKABLE = (
    "{view}: an API list must be ordered on non-null columns ending in the primary key "
    "(e.g. order_by('-created', '-id')) to be cursor-paginated."
)


class KeysetCursorPagination(BasePagination):
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    # What does the seeks. A list whose order the generic keys cannot describe (an
    # annotation first, a nullable column filtered to non-null) names a subclass that vouches
    # for its own keys (payments/api_pagination.py).
    paginator_class: type[KeysetPaginator] = KeysetPaginator

    def get_page_size(self, request) -> int:
        maximum = settings.API_MAX_PAGE_SIZE
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return api_settings.PAGE_SIZE
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= maximum:
            raise ApiError(
                "invalid",
                ERR_BAD_PAGE_SIZE.format(max=maximum),
                400,
                fields={self.page_size_query_param: [ERR_BAD_PAGE_SIZE.format(max=maximum)]},
            )
        return size

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        paginator = self.paginator_class(queryset, self.get_page_size(request))
        if queryset.query.is_empty():
            # .none() (a search that can match nothing): an empty page, no query at all.
            self.page = KeysetPage([], 1, paginator)
            return []
        if paginator.keys is None:
            raise ImproperlyConfigured(ERR_NOT_SEEKABLE.format(view=type(view).__name__))
        cursor = request.query_params.get(self.cursor_query_param)
        if not cursor:
            page = paginator._offset_page(1)
        else:
            decoded = paginator.decode(cursor)
            if decoded is None:
                raise ApiError(
                    "invalid_cursor",
                    ERR_BAD_CURSOR,
                    400,
                    fields={self.cursor_query_param: [ERR_BAD_CURSOR]},
                )
            direction, values = decoded
            page = paginator._seek_page(values, forward=direction == "a")
        self.page = page
        return list(page.object_list)

    def _link(self, cursor: str) -> str | None:
        if not cursor:
            return None
        return replace_query_param(
            self.request.build_absolute_uri(), self.cursor_query_param, cursor
        )

    def get_next_link(self):
        return self._link(self.page.next_cursor)

    def get_previous_link(self):
        return self._link(self.page.previous_cursor)

    def get_paginated_response(self, data):
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {
                    "type": "string",
                    "format": "uri",
                    "nullable": True,
                    "description": "The next page (older rows); null on the last page.",
                },
                "previous": {
                    "type": "string",
                    "format": "uri",
                    "nullable": True,
                    "description": "The previous page (newer rows); null on the first page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a previous page's `next` or `previous`.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": (
                    f"Rows per page (default {api_settings.PAGE_SIZE}, "
                    f"at most {settings.API_MAX_PAGE_SIZE})."
                ),
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
