"""Append-only triggers on the ledgers (backoffice/append_only.py): EarningEntry and
BalanceEntry rows are written once; PostgreSQL refuses UPDATE and DELETE on them."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0026_coupons'),
    ]

    operations = [
        pgtrigger.migrations.AddTrigger(
            model_name='balanceentry',
            trigger=pgtrigger.compiler.Trigger(name='append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'Append-only table: % on % refused (rows are written once)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';", hash='1cdfaf85d098f4d5dcf5e77a15f4cff1f96c6e36', operation='UPDATE OR DELETE', pgid='pgtrigger_append_only_0aa36', table='payments_balanceentry', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='earningentry',
            trigger=pgtrigger.compiler.Trigger(name='append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'Append-only table: % on % refused (rows are written once)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';", hash='e7cabb3ffae1b4e50a50a7a7cbedc3ad63ac1564', operation='UPDATE OR DELETE', pgid='pgtrigger_append_only_44106', table='payments_earningentry', when='BEFORE')),
        ),
    ]
