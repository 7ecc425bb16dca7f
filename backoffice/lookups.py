"""`__in` on an integer column ignores values the column cannot hold.

Django already answers `exact`, `gt`, `gte`, `lt` and `lte` with an integer past the column's
range without asking the database (IntegerFieldOverflow: nothing matches, or everything does).
Its `in` does not: `?id__in=99999999999999999999999` reached SQLite as an OverflowError at
query time, a 500 from any list, API filter or view that passes ids through. Such a value
matches no row, so it is dropped from the list (an all-dropped list matches nothing, as an
empty one does). Registered for every integer field and every foreign key to one, in
BackofficeConfig.ready(): one place for the admin's lists (ours and the libraries'), the
API's filters and any code that filters by ids it was given.
"""

from __future__ import annotations

from django.db.models import ForeignKey, IntegerField
from django.db.models.fields.related_lookups import RelatedIn
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
