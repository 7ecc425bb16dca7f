"""On PostgreSQL the audit trail and the ledgers are append-only (backoffice/append_only.py):
every way to change or remove a row, ORM or raw SQL, this process or a shell, is refused by
the database; inserts work; a deliberate repair under pgtrigger.ignore works."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pgtrigger
import pytest
from django.db import ProgrammingError, connection, transaction
from django.utils import timezone

from backoffice.append_only import ERR_APPEND_ONLY
from backoffice.audit import audit_record
from backoffice.models import AdminAction
from payments.models import BalanceEntry, EarningEntry, StudentBalance
from tests.factories import CustomerFactory, InstructorFactory, PaymentFactory

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _earning_entry(reference="test:1"):
    now = timezone.now()
    return EarningEntry.objects.create(
        instructor=InstructorFactory(),
        currency="usd",
        amount=2500,
        kind=EarningEntry.Kind.EARNING,
        reference=reference,
        occurred_at=now - timedelta(days=1),
        available_at=now,
    )


def _balance_entry(reference="test:1"):
    balance = StudentBalance.objects.create(customer=CustomerFactory(), minutes=600)
    return BalanceEntry.objects.create(
        balance=balance, kind=BalanceEntry.Kind.PURCHASE, minutes=600, reference=reference
    )


def _audit_row(reference="test:1"):
    return audit_record(acting_user=None, action="test", target=PaymentFactory(), reason=reference)


# model, a row maker, an integer or text column to change
TABLES = {
    "earning_entry": (EarningEntry, _earning_entry, "amount", 1),
    "balance_entry": (BalanceEntry, _balance_entry, "minutes", 1),
    "admin_action": (AdminAction, _audit_row, "reason", "forged"),
}
LEDGERS = ["earning_entry", "balance_entry"]  # AdminAction's ORM refuses before the database


def refused(model, op):
    message = ERR_APPEND_ONLY.format(op=op, table=model._meta.db_table)
    return pytest.raises(ProgrammingError, match=re.escape(message))


@pytest.mark.django_db
@pytest.mark.parametrize("table", TABLES)
def test_inserts_work(table):
    model, make, _, _ = TABLES[table]
    make("test:1")
    make("test:2")
    assert model.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("table", LEDGERS)
def test_orm_save_and_delete_of_a_ledger_entry_are_refused(table):
    model, make, field, value = TABLES[table]
    row = make()
    before = getattr(row, field)
    setattr(row, field, value)
    with refused(model, "UPDATE"), transaction.atomic():
        row.save()
    with refused(model, "DELETE"), transaction.atomic():
        row.delete()
    assert getattr(model.objects.get(pk=row.pk), field) == before


@pytest.mark.django_db
@pytest.mark.parametrize("table", LEDGERS)
def test_queryset_update_and_delete_of_ledger_entries_are_refused(table):
    model, make, field, value = TABLES[table]
    row = make()
    with refused(model, "UPDATE"), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{field: value})
    with refused(model, "DELETE"), transaction.atomic():
        model.objects.all().delete()
    assert model.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("table", TABLES)
def test_the_orm_paths_past_python_guards_are_refused(table):
    """QuerySet._update / _raw_delete skip AdminAction's queryset guards and every signal."""
    model, make, field, value = TABLES[table]
    row = make()
    with refused(model, "UPDATE"), transaction.atomic():
        model.objects.filter(pk=row.pk)._update([(model._meta.get_field(field), None, value)])
    with refused(model, "DELETE"), transaction.atomic():
        model.objects.filter(pk=row.pk)._raw_delete(using="default")
    assert model.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("table", TABLES)
def test_raw_sql_updates_and_deletes_are_refused(table):
    model, make, field, value = TABLES[table]
    row = make()
    db_table = model._meta.db_table
    column = model._meta.get_field(field).column
    with refused(model, "UPDATE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {db_table} SET {column} = %s WHERE id = %s", [value, row.pk])
    with refused(model, "DELETE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {db_table} WHERE id = %s", [row.pk])
    assert model.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
def test_a_deliberate_repair_names_the_trigger_it_passes():
    row = _earning_entry()
    with pgtrigger.ignore("payments.EarningEntry:append_only"), transaction.atomic():
        EarningEntry.objects.filter(pk=row.pk).update(description="repaired")
    assert EarningEntry.objects.get(pk=row.pk).description == "repaired"
    # Only inside the block:
    with refused(EarningEntry, "UPDATE"), transaction.atomic():
        EarningEntry.objects.filter(pk=row.pk).update(description="again")


SHELL_SCRIPT = """
from django.db import connection, transaction
from payments.models import EarningEntry, BalanceEntry
from backoffice.models import AdminAction
attempts = [
    lambda: EarningEntry.objects.filter(pk={earning}).update(amount=1),
    lambda: EarningEntry.objects.filter(pk={earning}).delete(),
    lambda: BalanceEntry.objects.filter(pk={balance}).update(minutes=1),
    lambda: BalanceEntry.objects.filter(pk={balance}).delete(),
    lambda: connection.cursor().execute("DELETE FROM backoffice_adminaction"),
    lambda: connection.cursor().execute("UPDATE backoffice_adminaction SET reason = 'x'"),
]
for attempt in attempts:
    try:
        with transaction.atomic():
            attempt()
        print("ALLOWED")
    except Exception as exc:
        print("REFUSED", type(exc).__name__, str(exc).splitlines()[0])
"""


@pytest.mark.django_db(transaction=True)
def test_a_shell_session_is_refused_too():
    """`manage.py shell` is a separate connection with no test harness in between: what it
    cannot do, nobody with the application's credentials can."""
    earning, balance = _earning_entry(), _balance_entry()
    _audit_row()
    db = connection.settings_dict
    url = (
        f"postgres://{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}"
        f"@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    script = SHELL_SCRIPT.format(earning=earning.pk, balance=balance.pk)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 6, done.stderr
    assert all(line.startswith("REFUSED ProgrammingError Append-only table:") for line in lines)
    assert EarningEntry.objects.get(pk=earning.pk).amount == 2500
    assert BalanceEntry.objects.get(pk=balance.pk).minutes == 600
    assert AdminAction.objects.count() == 1
