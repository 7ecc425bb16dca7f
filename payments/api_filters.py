"""Filters the API's lists share: an amount range in major units, applied per currency
exponent as the admin's AmountRangeFilter does (12.50 means 12.50 USD, 12.500 KWD, 12 JPY)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q
from django_filters import rest_framework as filters

from .money import THREE_DECIMAL_CURRENCIES, ZERO_DECIMAL_CURRENCIES


def amount_range_q(low: Decimal | None, high: Decimal | None, *, field: str = "amount") -> Q:
    """`field` (minor units) between `low` and `high` major units of each row's currency,
    both ends inclusive (a minimum rounds up to the next minor unit, a maximum down)."""

    def bounds(places: int) -> Q:
        q = Q()
        if low is not None:
            q &= Q(**{f"{field}__gte": int(-(-low.scaleb(places) // 1))})
        if high is not None:
            q &= Q(**{f"{field}__lte": int(high.scaleb(places) // 1)})
        return q

    zero, three = sorted(ZERO_DECIMAL_CURRENCIES), sorted(THREE_DECIMAL_CURRENCIES)
    return (
        (Q(currency__in=zero) & bounds(0))
        | (Q(currency__in=three) & bounds(3))
        | (~Q(currency__in=zero + three) & bounds(2))
    )


class AmountRangeFilterMixin(filters.FilterSet):
    """`amount_min` / `amount_max` in major units (12.50), per the row's currency."""

    amount_min = filters.NumberFilter(
        method="filter_amount", min_value=Decimal(0), help_text="Major units, e.g. 12.50."
    )
    amount_max = filters.NumberFilter(
        method="filter_amount", min_value=Decimal(0), help_text="Major units, e.g. 99.99."
    )

    def filter_amount(self, queryset, name, value):
        if value is None:
            return queryset
        if name == "amount_min":
            return queryset.filter(amount_range_q(value, None))
        return queryset.filter(amount_range_q(None, value))
