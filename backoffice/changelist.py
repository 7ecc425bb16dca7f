"""Changelist search and filter checks shared by every back-office list.

Search (`SearchSpec`, applied by `ChangelistMixin.get_search_results`):
- A term that starts with a known Stripe id prefix (`pi_`, `cus_` ...; any case) is matched as
  a WHOLE id ignoring case: `UPPER(column) = UPPER(term)`. Stripe ids are case-sensitive, but
  unique ignoring case in practice, and staff paste them from e-mails that changed the case.
  Each searched id column has a functional index on UPPER(column) (both databases), so the
  match is one index probe, never a scan.
- A `#123` / `123` term is a row number where the list has one (refund requests).
- Anything else is a case-insensitive SUBSTRING of the text columns (customer name and
  e-mail): Django's `icontains`, i.e. `UPPER(col::text) LIKE UPPER('%term%')`. On PostgreSQL
  a pg_trgm GIN index on exactly that expression (payments migration
  0019_customer_search_trigram) serves it; SQLite scans with LIKE (fine at test sizes).
  Accents are not folded: "lopez" finds "Lopez" and "maria.lopez@", not "López".
Every search is one WHERE clause: the changelist's query count does not change.

Filters (`ChangelistMixin.changelist_view`): before the admin builds the list, every query
string parameter is checked against the list's filters and the model's fields. An unknown
filter, an unknown choice (`?status__exact=bogus`), a value that does not parse (a bad date,
`?id__in=99999999999999999999999`) is dropped with a message saying so, and the browser is
redirected to the list without it: never a silent empty list, a 400, or a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, reduce
from operator import or_
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import prepare_lookup_value
from django.contrib.admin.views.main import (
    ALL_VAR,
    ERROR_FLAG,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
)
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection, models
from django.db.models import Q, QuerySet
from django.db.models.functions import Upper
from django.http import HttpResponseRedirect
from django.utils.dateparse import parse_time
from unfold.utils import parse_date_str

# Longest search term we look at: Stripe ids are < 255 chars; anything longer matches nothing.
MAX_SEARCH_LENGTH = 255

# Messages (the page shows them above the list after the redirect).
ERR_UNKNOWN_FILTER = "Unknown filter '{name}': showing {things} without it."
ERR_UNKNOWN_VALUE = "Unknown {label} '{value}': showing {things} without this filter."
ERR_NUL = "A filter value holds a NUL character."
ERR_BAD_VALUE = "Not a valid {label}: '{value}'. Showing {things} without this filter."

# Query string parameters the changelist itself uses (page, ordering, search ...).
_CHANGELIST_PARAMS = frozenset(
    {
        ALL_VAR,
        ORDER_VAR,
        PAGE_VAR,
        SEARCH_VAR,
        ERROR_FLAG,
        IS_POPUP_VAR,
        TO_FIELD_VAR,
        IS_FACETS_VAR,
        "_changelist_filters",
    }
)
# Lookups whose value is free text: any string is valid.
_TEXT_LOOKUPS = frozenset(
    {"contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"}
)
# Lookups a hand-typed URL may use; others (regex: a bad pattern is a database error) are
# refused as unknown filters.
_ALLOWED_LOOKUPS = _TEXT_LOOKUPS | {
    "exact",
    "iexact",
    "in",
    "isnull",
    "gt",
    "gte",
    "lt",
    "lte",
}
# A Stripe id: a lower-case prefix, an underscore, then letters, digits and underscores.
_STRIPE_ID_RE = re.compile(r"^[a-z]+_[a-z0-9_]+$", re.IGNORECASE)
# Range filters' parameters: `<field>_from` / `_to` (dates, numbers), and unfold's date-time
# range's date (`_0`) and time (`_1`) halves.
_RANGE_SUFFIXES = ("_from", "_to", "_from_0", "_from_1", "_to_0", "_to_1")
_VALUE_SHOWN = 40  # characters of a bad value repeated in a message


@dataclass(frozen=True)
class SearchSpec:
    """What a changelist's search box searches.

    ids: (prefix, lookup) pairs; a term starting with `prefix` (any case) is matched as a whole
        id, ignoring case, in every lookup whose prefix it starts with. The prefix "" means any
        term shaped like a Stripe id (a webhook event's object id can be of any kind).
    text: lookups searched as case-insensitive substrings (customer name, e-mail ...).
    number: the lookup a `#123` / `123` term is matched against (an integer primary key).
    help_text: the line shown under the box ("Searches: ...").
    """

    ids: tuple[tuple[str, str], ...] = ()
    text: tuple[str, ...] = ()
    number: str | None = None
    help_text: str = ""


def stripe_id_q(lookup: str, term: str, *, alias: str) -> tuple[dict, Q]:
    """(alias kwargs, condition) matching `lookup` equal to `term` ignoring case:
    UPPER(lookup) = UPPER(term), the expression the UPPER(...) functional index holds."""
    return {alias: Upper(lookup)}, Q(**{alias: term.upper()})


def search_queryset(queryset: QuerySet, spec: SearchSpec, term: str) -> QuerySet:
    """`queryset` narrowed to what `term` means under `spec` (see the module docstring)."""
    term = (term or "").strip()
    if not term:
        return queryset
    if len(term) > MAX_SEARCH_LENGTH or "\x00" in term:
        return queryset.none()  # no id is that long; PostgreSQL refuses NUL in a string
    digits = term.removeprefix("#")
    if spec.number and digits.isdigit():
        # An integer primary key: 18 digits always fit a bigint.
        if len(digits) > 18:
            return queryset.none()
        return queryset.filter(**{spec.number: int(digits)})
    lowered = term.lower()
    looks_like_id = bool(_STRIPE_ID_RE.match(term))
    prefixed = [lookup for prefix, lookup in spec.ids if prefix and lowered.startswith(prefix)]
    # A known prefix means an id of that kind, nothing else; an id-shaped term without one
    # (prefix "") may also be a word ("auditor_ada"), so the text columns are searched too.
    id_lookups = prefixed or [lookup for prefix, lookup in spec.ids if not prefix and looks_like_id]
    aliases, conditions = {}, []
    for index, lookup in enumerate(id_lookups):
        alias, condition = stripe_id_q(lookup, term, alias=f"_search_id_{index}")
        aliases.update(alias)
        conditions.append(condition)
    if not prefixed:
        conditions += [Q(**{f"{lookup}__icontains": term}) for lookup in spec.text]
    if not conditions:
        return queryset.none()
    return queryset.alias(**aliases).filter(reduce(or_, conditions))


def _shown(value: str) -> str:
    value = str(value)
    return value if len(value) <= _VALUE_SHOWN else value[: _VALUE_SHOWN - 1] + "…"


def _label(model_field) -> str:
    return str(getattr(model_field, "verbose_name", None) or model_field.name)


def _value_problem(model_field, lookup: str, value) -> str | None:
    """Why `value` is not a valid `lookup` value for `model_field`: "unknown" (not one of its
    choices), "bad" (does not parse, or out of the column's range), or None when valid."""
    if lookup == "isnull" or lookup in _TEXT_LOOKUPS:
        return None
    if model_field.choices and lookup in ("exact", "iexact", "in"):
        keys = {str(key) for key, _ in model_field.flatchoices}
        if lookup == "iexact":
            return None if str(value).lower() in {k.lower() for k in keys} else "unknown"
        return None if str(value) in keys else "unknown"
    internal_type = model_field.get_internal_type()
    if "Integer" in internal_type or internal_type.endswith("AutoField"):
        try:
            number = int(str(value).strip())
        except ValueError:
            return "bad"
        low, high = connection.ops.integer_field_range(internal_type)
        if (low is not None and number < low) or (high is not None and number > high):
            return "bad"
        return None
    try:
        model_field.to_python(value)
    except (ValidationError, ValueError, TypeError):
        return "bad"
    return None


def _resolve(model, key: str):
    """(field, lookup) for a query string key such as `status__exact` or
    `requested_by__id__exact`, or None when the key names no field and lookup we accept."""
    parts = key.split("__")
    opts = model._meta
    model_field = None
    index = 0
    while index < len(parts):
        try:
            candidate = opts.get_field(parts[index])
        except FieldDoesNotExist:
            break
        model_field = candidate
        index += 1
        if not candidate.is_relation:
            break
        opts = candidate.related_model._meta
    if model_field is None:
        return None
    rest = parts[index:]
    if len(rest) > 1:
        return None  # a transform (created__date__gte ...): not offered by any of our lists
    lookup = rest[0] if rest else "exact"
    if lookup not in _ALLOWED_LOOKUPS:
        return None
    if model_field.is_relation:
        # `customer__exact=5` / `customer__in=1,2` compare the related row's primary key.
        model_field = getattr(model_field, "target_field", None) or opts.pk
    if model_field.get_lookup(lookup) is None:
        return None
    return model_field, lookup


class CheckedChangelistAdmin:
    """Mixed into every ModelAdmin by the admin site (BackofficeAdminSite.register): the list
    it builds answers a date hierarchy value past the calendar (`?created__year=99999999999`,
    an OverflowError in Django's datetime()), or a NUL in a filter's value, as Django answers
    any other bad lookup: the redirect to `?e=1`, not a 500. A search with a NUL finds
    nothing."""

    def get_changelist(self, request, **kwargs):
        return _checked(super().get_changelist(request, **kwargs))

    def get_search_results(self, request, queryset, search_term):
        if "\x00" in search_term:
            return queryset.none(), False  # PostgreSQL refuses NUL in a string; nothing has one
        return super().get_search_results(request, queryset, search_term)


@cache
def _checked(changelist_class):
    if issubclass(changelist_class, _OverflowCheckedChangeList):
        return changelist_class
    return type(changelist_class.__name__, (_OverflowCheckedChangeList, changelist_class), {})


class _OverflowCheckedChangeList:
    def get_filters(self, request):
        params = self.get_filters_params()
        if any("\x00" in value for values in params.values() for value in values):
            # PostgreSQL refuses NUL in a string (a DataError, not an empty list).
            raise IncorrectLookupParameters(ERR_NUL)
        try:
            return super().get_filters(request)
        except OverflowError as error:
            raise IncorrectLookupParameters(error) from error


class ChangelistMixin:
    """Put in front of unfold's ModelAdmin: the search of `search_spec` with its help line, and
    query string filters checked before the list is built (see the module docstring)."""

    search_spec: SearchSpec | None = None
    # Query string parameters the list reads itself besides Django's and its filters' (a
    # pagination cursor, a view switch ...): never reported as unknown filters.
    extra_query_params: frozenset[str] = frozenset()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.search_spec is not None:
            # Unfold shows the box only when search_fields is set; the spec does the work.
            self.search_fields = self.search_fields or ["pk"]
            self.search_help_text = self.search_spec.help_text

    def get_search_results(self, request, queryset, search_term):
        if self.search_spec is None:
            return super().get_search_results(request, queryset, search_term)
        return search_queryset(queryset, self.search_spec, search_term), False

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            problems = self.changelist_filter_problems(request)
            if problems:
                for message in problems.values():
                    messages.warning(request, message)
                kept = [
                    (key, value)
                    for key, values in request.GET.lists()
                    if key not in problems and key != ERROR_FLAG
                    for value in values
                ]
                return HttpResponseRedirect(f"{request.path}?{urlencode(kept)}")
        return super().changelist_view(request, extra_context)

    def changelist_filter_problems(self, request) -> dict[str, str]:
        """{query string key: message} for every parameter the list cannot apply."""
        things = str(self.model._meta.verbose_name_plural)
        simple_filters = {}
        range_keys: dict[str, str] = {}  # query string key -> field path
        self_checked = set()  # keys of filters that report their own bad values
        for entry in self.get_list_filter(request):
            if isinstance(entry, (list, tuple)):
                path, filter_class = entry[0], entry[1]
                if _is_range(filter_class):
                    keys = {f"{path}{suffix}": path for suffix in _RANGE_SUFFIXES}
                    if getattr(filter_class, "checks_own_values", False):
                        self_checked |= set(keys)
                    else:
                        range_keys.update(keys)
            elif isinstance(entry, type) and issubclass(entry, admin.SimpleListFilter):
                simple_filters[entry.parameter_name] = entry
                if _is_range(entry):
                    for suffix in ("_from", "_to"):
                        simple_filters[f"{entry.parameter_name}{suffix}"] = entry
        problems: dict[str, str] = {}
        for key, values in request.GET.lists():
            if key in _CHANGELIST_PARAMS or key in self.extra_query_params or key in self_checked:
                continue
            if key in simple_filters:
                message = _simple_filter_problem(
                    self, request, simple_filters[key], key, values, things
                )
            elif key in range_keys:
                message = self._range_problem(range_keys[key], key, values, things)
            else:
                message = self._lookup_problem(request, key, values, things)
            if message:
                problems[key] = message
        return problems

    def _range_problem(self, path, key, values, things) -> str | None:
        resolved = _resolve(self.model, path)
        if resolved is None:
            return None
        model_field = resolved[0]
        suffix = key[len(path) :]
        for value in values:
            if value == "":
                continue
            if suffix.endswith("_1"):  # the time half of a date-time range (HH:MM)
                valid = _parses_as_time(value)
            elif isinstance(model_field, models.DateField):  # DateTimeField is one too
                valid = parse_date_str(value) is not None
            else:
                valid = _value_problem(model_field, "gte", value) is None
            if not valid:
                end = "from" if suffix.startswith("_from") else "to"
                return ERR_BAD_VALUE.format(
                    label=f"{_label(model_field)} ({end})", value=_shown(value), things=things
                )
        return None

    def _lookup_problem(self, request, key, values, things) -> str | None:
        resolved = _resolve(self.model, key)
        if resolved is None or not self.lookup_allowed(key, values[-1], request):
            return ERR_UNKNOWN_FILTER.format(name=_shown(key), things=things)
        model_field, lookup = resolved
        for value in values:
            prepared = prepare_lookup_value(key, value)
            for item in prepared if isinstance(prepared, list) else [prepared]:
                problem = _value_problem(model_field, lookup, item)
                if problem:
                    template = ERR_UNKNOWN_VALUE if problem == "unknown" else ERR_BAD_VALUE
                    return template.format(
                        label=_label(model_field), value=_shown(item), things=things
                    )
        return None


def _parses_as_time(value: str) -> bool:
    try:
        return parse_time(value) is not None
    except ValueError:  # well formed but impossible: "25:99"
        return False


def _is_range(filter_class) -> bool:
    # Unfold's range filters (RangeDateFilter, RangeNumericListFilter ...) and ours built on
    # them take `<name>_from` / `<name>_to`.
    return any("Range" in base.__name__ for base in filter_class.__mro__)


def _simple_filter_problem(model_admin, request, filter_class, key, values, things):
    if _is_range(filter_class):
        return None  # our range list filters (amount) check their bounds and say what they ignored
    value = values[-1]
    if value == "":
        return None
    accepts = getattr(filter_class, "accepts_value", None)
    if accepts is not None:
        valid = accepts(value)
    else:
        params = {k: list(v) for k, v in request.GET.lists()}
        spec = filter_class(request, params, model_admin.model, model_admin)
        valid = value in {str(choice) for choice, _ in spec.lookup_choices}
    if valid:
        return None
    return ERR_UNKNOWN_VALUE.format(
        label=str(filter_class.title), value=_shown(value), things=things
    )
