"""Filters the API's lists share beyond the transactions': an amount range in major units,
applied per currency exponent (payments.selectors.amount_major_range_q, the admin's rule),
for any model with `amount` (minor units) and `currency` columns; the admin's search as `q`."""

from __future__ import annotations

from decimal import Decimal

from django_filters import rest_framework as filters

from backoffice.changelist import MAX_SEARCH_LENGTH, SearchSpec, search_queryset

from .selectors import amount_major_range_q

MAX_AMOUNT = Decimal("1e12")


class AmountRangeFilterMixin(filters.FilterSet):
    """`amount_min` / `amount_max` in major units (12.50), per the row's currency."""

    amount_min = filters.NumberFilter(
        method="filter_amount",
        min_value=Decimal(0),
        max_value=MAX_AMOUNT,
        help_text="Major units (12.50), inclusive, in each row's currency.",
    )
    amount_max = filters.NumberFilter(
        method="filter_amount",
        min_value=Decimal(0),
        max_value=MAX_AMOUNT,
        help_text="Major units (99.99), inclusive, in each row's currency.",
    )

    def filter_amount(self, queryset, name, value):
        # Both ends in one condition, applied once (with amount_min when both are given): each
        # currency's branch then bounds the amount twice (an index range on (currency,
        # amount)) rather than OR-ing two partial ranges.
        low = self.form.cleaned_data.get("amount_min")
        high = self.form.cleaned_data.get("amount_max")
        if name == "amount_max" and low is not None:
            return queryset
        return queryset.filter(amount_major_range_q(low=low, high=high))


def admin_search_filter(spec: SearchSpec) -> filters.CharFilter:
    """`q`: the admin changelist's search (backoffice.changelist.search_queryset with the
    list's SearchSpec): the same terms find the same rows in the admin and the API."""

    def search(queryset, name, value):
        return search_queryset(queryset, spec, value)

    return filters.CharFilter(method=search, max_length=MAX_SEARCH_LENGTH, help_text=spec.help_text)
