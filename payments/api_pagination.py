"""Cursor pages for API lists whose order starts with an annotation (unresolved alerts
first) or a nullable column (disputes by deadline, nulls filtered out): the generic keyset
(backoffice.api.pagination) takes only plain non-null columns, so these lists vouch for
their own order: the core's pagination with another `paginator_class`. The seek is the same
(backoffice.pagination.KeysetPaginator): one definition of "rows after this boundary", here
on the given keys."""

from __future__ import annotations

from backoffice.api.pagination import KeysetCursorPagination
from backoffice.pagination import KeysetPaginator


class OrderKeysetPaginator(KeysetPaginator):
    """A keyset paginator over the queryset's own order_by, taken as it is: the view makes
    sure every key is non-null in the rows it lists (a filter on a nullable column) and the
    last is the primary key. Names in `integer_annotations` are integer annotations."""

    integer_annotations: frozenset[str] = frozenset()

    @property
    def keys(self):
        return [
            (name.lstrip("-"), name.startswith("-")) for name in self.object_list.query.order_by
        ]

    def key_value(self, row, name: str) -> str:
        if name in self.integer_annotations:
            return str(getattr(row, name))
        return super().key_value(row, name)

    def parse_value(self, name: str, raw):
        if name in self.integer_annotations:
            return int(raw)
        return super().parse_value(name, raw)


def keyset_pagination(paginator_class: type[KeysetPaginator]) -> type[KeysetCursorPagination]:
    """The API's cursor pagination with `paginator_class` doing the seeks."""
    return type(
        f"{paginator_class.__name__}Pagination",
        (KeysetCursorPagination,),
        {"paginator_class": paginator_class, "__module__": __name__},
    )
