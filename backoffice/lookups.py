"""Lookups on integer columns answer values the column cannot hold without asking the database.

Django already answers `exact`, `gt`, `gte`, `lt` and `lte` with an integer past the column's
range without asking the database (IntegerFieldOverflow: nothing matches, or everything does).
Its `in` does not, nor do a foreign key's lookups (`payment_id=`, `customer__in=`):
`?id__in=99999999999999999999999` reached SQLite as an OverflowError at query time (PostgreSQL:
NumericValueOutOfRange), a 500 from any list, API filter or view that passes ids through.
Such a value matches no row, so `in` drops it (an all-dropped list matches nothing, as an empty
one does), and a foreign key's comparisons follow Django's integer ones (nothing, or
everything). Registered for every integer field and every foreign key to one, in
BackofficeConfig.ready(): one place for the admin's lists (ours and the libraries'), the
API's filters and any code that filters by ids it was given.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db.models import ForeignKey, IntegerField
from django.db.models.fields.related_lookups import (
    RelatedExact,
    RelatedGreaterThan,
    RelatedGreaterThanOrEqual,
    RelatedIn,
    RelatedLessThan,
    RelatedLessThanOrEqual,
)
from django.db.models.lookups import In


def _integer_range(field, connection) -> tuple[int | None, int | None] | None:
    """The (low, high) bounds of the integer column `field` stores to, or None."""
    while field.is_relation and getattr(field, "target_field", None) is not None:
        field = field.target_field
    try:
        return connection.ops.integer_field_range(field.get_internal_type())
    except KeyError:  # not an integer column (a foreign key to a text key ...)
        return None


class _DropsOutOfRange:
    def process_rhs(self, compiler, connection):
        if self.rhs_is_direct_value():
            bounds = _integer_range(self.lhs.output_field, connection)
            if bounds is not None:
                low, high = bounds
                self.rhs = [
                    value
                    for value in self.rhs
                    if not isinstance(value, int)
                    or ((low is None or value >= low) and (high is None or value <= high))
                ]
        return super().process_rhs(compiler, connection)


@IntegerField.register_lookup
class IntegerFieldIn(_DropsOutOfRange, In):
    pass


@ForeignKey.register_lookup
class ForeignKeyIn(_DropsOutOfRange, RelatedIn):
    pass


class _ComparesInRange:
    """Django's IntegerFieldOverflow for a foreign key, whose own type names no range."""

    underflow_exception = EmptyResultSet
    overflow_exception = EmptyResultSet

    def process_rhs(self, compiler, connection):
        if isinstance(self.rhs, int):
            bounds = _integer_range(self.lhs.output_field, connection)
            if bounds is not None:
                low, high = bounds
                if low is not None and self.rhs < low:
                    raise self.underflow_exception
                if high is not None and self.rhs > high:
                    raise self.overflow_exception
        return super().process_rhs(compiler, connection)


@ForeignKey.register_lookup
class ForeignKeyExact(_ComparesInRange, RelatedExact):
    pass


@ForeignKey.register_lookup
class ForeignKeyGreaterThan(_ComparesInRange, RelatedGreaterThan):
    underflow_exception = FullResultSet


@ForeignKey.register_lookup
class ForeignKeyGreaterThanOrEqual(_ComparesInRange, RelatedGreaterThanOrEqual):
    underflow_exception = FullResultSet


@ForeignKey.register_lookup
class ForeignKeyLessThan(_ComparesInRange, RelatedLessThan):
    overflow_exception = FullResultSet


@ForeignKey.register_lookup
class ForeignKeyLessThanOrEqual(_ComparesInRange, RelatedLessThanOrEqual):
    overflow_exception = FullResultSet
