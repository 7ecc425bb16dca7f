"""Changelist rows rendered with the work per column done once per page, not once per cell.

Profiled on the refund queue at 200 rows, the server spent most of its time in Unfold's
`items_for_result`, not in SQL (the page query is under a millisecond): per cell it looks the
column up again (`lookup_field` tries the model's fields before the admin's method), rebuilds
the same CSS classes, evaluates the lazy "empty value" string, renders a template for each
action checkbox and each label badge, and per row reverses the change URL and merges the
preserved filters into it (a `resolve()` of that URL). Then the results template renders
each cell through its own variable node.

`FastChangeListRowsMixin` keeps Unfold's markup byte for byte (tests/backoffice/
test_admin_rows.py compares both renderers on every cell of the payments list and the refund
queue) but plans each column once per page: the display method, its flags and classes, the
change URL of the link column with a placeholder for the primary key, and label badges
memoised by value (a status has a handful of values). Each row's cells are joined in Python
and the results template prints one string per row.

Columns this planner does not know how to make faster (list_editable forms, a
`@display(dropdown=True)` cell, an admin with `ordering_field` or `list_sections`) make the
whole page fall back to Unfold's own renderer, so nothing is lost, only not sped up.
"""

from __future__ import annotations

import datetime

from django.contrib.admin.templatetags.admin_list import _coerce_field_name
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import _get_non_gfk_field, quote
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.urls import NoReverseMatch
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from unfold.templatetags import unfold_list
from unfold.utils import (
    display_for_field,
    display_for_header,
    display_for_label,
    display_for_value,
)

# Stands for the row's primary key in the change URL planned once per page. Letters only:
# the admin's quote() escapes "_" and other punctuation, so this survives it unchanged.
PK_PLACEHOLDER = "ROWPKPLACEHOLDER"


class FastChangeListRowsMixin:
    """For a ModelAdmin: render changelist rows with the column plan of this module. The
    template extends the site's own change_list.html and replaces only the results table."""

    change_list_template = "admin/fast_change_list.html"


class _Column:
    __slots__ = ("attr", "classes", "empty", "field", "flags", "label_cache", "link", "name")


def _plan_columns(cl) -> list[_Column] | None:
    """One _Column per list_display entry, or None when a column needs Unfold's renderer."""
    model_admin = cl.model_admin
    if (
        getattr(model_admin, "ordering_field", None)
        or getattr(model_admin, "list_sections", None)
        or getattr(cl, "formset", None)
        or cl.is_popup
        or cl.list_display_links is None
    ):
        return None
    empty_default = str(model_admin.get_empty_value_display())
    links = cl.list_display_links or list(cl.list_display)[:1]
    plan = []
    for index, name in enumerate(cl.list_display):
        column = _Column()
        column.name = name
        column.label_cache = {}
        column.link = name in links
        classes = [f"field-{_coerce_field_name(name, index)}", *unfold_list.TABLE_CELL_CLASSES]
        try:
            column.field = _get_non_gfk_field(cl.lookup_opts, name)
            column.attr = None
        except FieldDoesNotExist:
            column.field = None
            if callable(name) or not hasattr(model_admin, name) or name == "__str__":
                return None  # model properties and the like: Unfold's renderer
            column.attr = getattr(model_admin, name)
        except Exception:  # a foreign-key column name (customer_id) and the like
            return None
        if column.field is not None and (column.field.auto_created or column.field.is_relation):
            return None
        attr = column.attr
        column.empty = str(getattr(attr, "empty_value_display", empty_default))
        if attr is not None:
            if getattr(attr, "dropdown", False):
                return None
            if name == "action_checkbox":
                classes = list(unfold_list.TABLE_ACTION_CELL_CLASSES)
            if getattr(attr, "formatting", None) == "price":
                classes.append("!text-end")
            column.flags = (
                getattr(attr, "boolean", False),
                getattr(attr, "label", False),
                getattr(attr, "header", False),
            )
        elif isinstance(column.field, models.DateField | models.TimeField):
            classes.append("nowrap")
        column.classes = classes
        plan.append(column)
    return plan


def _link_pattern(cl) -> str | None:
    """The change URL of the row PK_PLACEHOLDER, preserved filters merged in, as the admin's
    own url_for_result + add_preserved_filters would build it for each row."""
    try:
        url = cl.url_for_result(_PlaceholderRow(cl.lookup_opts.pk.attname))
    except NoReverseMatch:
        return None
    return add_preserved_filters({"preserved_filters": cl.preserved_filters, "opts": cl.opts}, url)


class _PlaceholderRow:
    def __init__(self, attname: str):
        setattr(self, attname, PK_PLACEHOLDER)


def _cell_repr(column: _Column, result):
    """(html or text, extra classes) of one cell, as Unfold's items_for_result computes it."""
    try:
        if column.attr is None:
            value = getattr(result, column.name)
            return display_for_field(value, column.field, column.empty), ()
        value = column.attr(result)
    except ObjectDoesNotExist:
        return column.empty, ()
    boolean, label, header = column.flags
    extra = ("nowrap",) if isinstance(value, datetime.date | datetime.time) else ()
    if label:
        try:
            return column.label_cache[value], extra
        except KeyError:
            pass
        except TypeError:  # an unhashable value: render it, don't memoise
            return display_for_label(value, column.empty, label), extra
        column.label_cache[value] = display_for_label(value, column.empty, label)
        return column.label_cache[value], extra
    if header:
        return display_for_header(value, column.empty), extra
    return display_for_value(value, column.empty, boolean), extra


def fast_rows(cl) -> list | None:
    """Each row of the page as an UnfoldResultList whose `html` is its cells joined; None when
    the page must go through Unfold's renderer instead."""
    plan = _plan_columns(cl)
    if plan is None:
        return None
    link = _link_pattern(cl)
    link_classes = " ".join(unfold_list.LINK_CLASSES)
    pk_attname = cl.lookup_opts.pk.attname
    class_attr = {id(column): " ".join(column.classes) for column in plan}
    rows = []
    for result in cl.result_list:
        cells = []
        first = True
        for column in plan:
            text, extra = _cell_repr(column, result)
            classes = class_attr[id(column)]
            if extra:
                classes = f"{classes} {' '.join(extra)}"
            tag = "td"
            if column.link:
                tag = "th" if first else "td"
                first = False
            if column.link and link is not None:
                url = link.replace(PK_PLACEHOLDER, str(quote(getattr(result, pk_attname))))
                content = format_html(
                    '<a href="{}" class="{}" >{}</a>', url, link_classes, conditional_escape(text)
                )
            else:
                content = conditional_escape(text)
            cells.append(f'<{tag} class="{classes}">{content}</{tag}>')
        row = unfold_list.UnfoldResultList(result, None, [mark_safe(cell) for cell in cells])
        row.html = SafeString("".join(cells))
        rows.append(row)
    return rows
