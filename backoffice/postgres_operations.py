"""Migration operations for what only PostgreSQL has (pg_trgm GIN indexes).

The migration state (what `makemigrations` compares the models with) stays the models'
`Meta.indexes`: these indexes are not declared there, because SQLite cannot build them. So
the operation changes the database only, and only on PostgreSQL.
"""

from __future__ import annotations

from django.contrib.postgres.operations import TrigramExtension
from django.db.migrations.operations.base import Operation


class TrigramExtensionOnPostgreSQL(TrigramExtension):
    """CREATE EXTENSION pg_trgm on PostgreSQL. Django's CreateExtension skips other databases
    going forwards but not backwards (it queries pg_extension on SQLite)."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class AddIndexOnPostgreSQL(Operation):
    """CREATE INDEX on PostgreSQL; nothing elsewhere, and no change to the migration state."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, index):
        self.model_name = model_name
        self.index = index

    def state_forwards(self, app_label, state):
        pass

    def _applies(self, schema_editor, model) -> bool:
        return schema_editor.connection.vendor == "postgresql" and self.allow_migrate_model(
            schema_editor.connection.alias, model
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self._applies(schema_editor, model) and not self._exists(schema_editor, model):
            schema_editor.add_index(model, self.index)

    def _exists(self, schema_editor, model) -> bool:
        # On a large live table the index may have been built beforehand with CREATE INDEX
        # CONCURRENTLY under the same name (README): then there is nothing left to do.
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        return self.index.name in constraints

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self._applies(schema_editor, model):
            schema_editor.remove_index(model, self.index)

    def describe(self):
        return f"Create index {self.index.name} on {self.model_name} (PostgreSQL only)"

    def deconstruct(self):
        return (
            self.__class__.__qualname__,
            [],
            {"model_name": self.model_name, "index": self.index},
        )
