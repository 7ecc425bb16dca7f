"""The audit trail's append-only trigger, now declared on the model (django-pgtrigger,
backoffice/append_only.py) like the ledgers' ones, instead of 0002's hand-written SQL.

Same behaviour: UPDATE and DELETE refused row by row with SQLSTATE insufficient_privilege,
TRUNCATE allowed. 0002's trigger is dropped first so that a row is never checked twice;
going back re-creates it.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

DROP_HAND_WRITTEN = """
DROP TRIGGER IF EXISTS adminaction_append_only ON backoffice_adminaction;
DROP FUNCTION IF EXISTS backoffice_adminaction_append_only();
"""

# 0002's SQL, for going back.
CREATE_HAND_WRITTEN = """
CREATE FUNCTION backoffice_adminaction_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'Audit rows are written once: % on backoffice_adminaction refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER adminaction_append_only
    BEFORE UPDATE OR DELETE ON backoffice_adminaction
    FOR EACH ROW EXECUTE FUNCTION backoffice_adminaction_append_only();
"""


def drop_hand_written(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_HAND_WRITTEN, params=None)


def create_hand_written(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_HAND_WRITTEN, params=None)  # raw: a literal %


class Migration(migrations.Migration):

    dependencies = [
        ('backoffice', '0006_money_action_guard'),
    ]

    operations = [
        migrations.RunPython(drop_hand_written, create_hand_written),
        pgtrigger.migrations.AddTrigger(
            model_name='adminaction',
            trigger=pgtrigger.compiler.Trigger(name='append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'Append-only table: % on % refused (rows are written once)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';", hash='32273adfddbcdbceef4b0508b3cd00c7d23f64ee', operation='UPDATE OR DELETE', pgid='pgtrigger_append_only_5685d', table='backoffice_adminaction', when='BEFORE')),
        ),
    ]
