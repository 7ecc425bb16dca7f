"""Changelist filters that accept anything in the query string without a 500: values that do
not parse are ignored and the staff member is told why."""

from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.utils import timezone
from unfold.contrib.filters.admin import DropdownFilter, RangeDateFilter, RangeNumericListFilter
from unfold.utils import parse_date_str

from payments.money import is_known_currency
from payments.selectors import amount_major_range_q

# Currencies offered in the filter; a fixed list keeps the filter free of a SELECT DISTINCT
# over the whole payments table.
FILTER_CURRENCIES = ("usd", "eur", "gbp", "jpy", "cad", "aud")
WARN_UNKNOWN_CURRENCY_FILTER = (
    "'{currency}' is not a currency we know: showing only rows stored with it."
)


class CurrencyFilter(DropdownFilter):
    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        return [(code, code.upper()) for code in FILTER_CURRENCIES]

    @staticmethod
    def accepts_value(value: str) -> bool:
        """A three-letter code in any case, not only the ones offered (a link may carry
        another); backoffice.changelist drops anything else ("xx") with a message."""
        return len(value) == 3 and value.isascii() and value.isalpha()

    def queryset(self, request, queryset):
        value = (self.value() or "").lower()
        if not value:
            return queryset
        if not is_known_currency(value):
            # Rows stored before the boundary checks may carry one (DESIGN decision 15): show
            # them, and say why the list may be empty.
            messages.warning(request, WARN_UNKNOWN_CURRENCY_FILTER.format(currency=value))
        return queryset.filter(currency=value)


class CreatedDateRangeFilter(RangeDateFilter):
    """Date range on a DateTimeField, both ends inclusive in the site's time zone."""

    # A date that does not parse is ignored with a message here (backoffice.changelist).
    checks_own_values = True

    def queryset(self, request, queryset):
        filters = {}
        for suffix, lookup in (("_from", "gte"), ("_to", "lt")):
            raw = self.used_parameters.get(f"{self.parameter_name}{suffix}")
            if raw in (None, ""):
                continue
            day = parse_date_str(raw) if isinstance(raw, str) else None
            if day is None:
                messages.warning(request, f"Ignored the date {raw!r}: use YYYY-MM-DD.")
                continue
            if suffix == "_to":
                day += timedelta(days=1)
            filters[f"{self.parameter_name}__{lookup}"] = timezone.make_aware(
                datetime.combine(day, time.min)
            )
        return queryset.filter(**filters)


def _parse_major(raw, request, label):
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw).replace(",", "").strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > Decimal("1e12"):
        messages.warning(request, f"Ignored the {label} amount {raw!r}: enter a number.")
        return None
    return value


class AmountRangeFilter(RangeNumericListFilter):
    """Amount range in major units (12.50), applied per currency exponent, so the same range
    means 12.50 USD, 12.500 KWD and 12 JPY."""

    title = "amount"
    parameter_name = "amount"

    def queryset(self, request, queryset):
        low = _parse_major(self.used_parameters.get("amount_from"), request, "minimum")
        high = _parse_major(self.used_parameters.get("amount_to"), request, "maximum")
        if low is None and high is None:
            return queryset
        return queryset.filter(amount_major_range_q(low=low, high=high))
