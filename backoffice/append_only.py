"""Append-only tables: PostgreSQL itself refuses UPDATE and DELETE on the rows that record
money and staff actions (the audit trail, the instructors' earnings ledger, the hours ledger).

Python guards (AdminAction.save()/delete(), its queryset) stop mistakes in our code; they do
not stop raw SQL, `QuerySet._raw_delete`, a shell session, another program or a careless
migration. A row-level trigger does, whoever connects. TRUNCATE is not a row operation, so the
test runner's flush still empties these tables. On SQLite (development, tests) the trigger is
not installed: the Python guards are all there is.

A deliberate repair says so in code, inside its own transaction or migration:

    with pgtrigger.ignore("payments.EarningEntry:append_only"):
        ...  # the one UPDATE/DELETE, and an audit row saying why

(the usual repair is not that: it is a new, compensating row, e.g. an EarningEntry of kind
CORRECTION, or a new AdminAction).
"""

import pgtrigger

TRIGGER_NAME = "append_only"

# What the database answers; tests match on it. `%` are PL/pgSQL placeholders.
ERR_APPEND_ONLY = "Append-only table: {op} on {table} refused (rows are written once)"


class AppendOnly(pgtrigger.Protect):
    """`pgtrigger.Protect` of UPDATE and DELETE, raising ERR_APPEND_ONLY with SQLSTATE 42501
    (insufficient_privilege: Django raises it as ProgrammingError, a DatabaseError)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("name", TRIGGER_NAME)
        kwargs.setdefault("operation", pgtrigger.Update | pgtrigger.Delete)
        super().__init__(**kwargs)

    def get_func(self, model):
        message = ERR_APPEND_ONLY.format(op="%", table="%")
        return self.format_sql(
            f"RAISE EXCEPTION '{message}', TG_OP, TG_TABLE_NAME"
            " USING ERRCODE = 'insufficient_privilege';"
        )
