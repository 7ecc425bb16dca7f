"""On PostgreSQL, the database itself refuses UPDATE and DELETE on the audit trail.

AdminAction.save()/delete() and its queryset refuse in Python, but raw SQL, another program
or a careless migration would not pass through them. A row-level trigger does (TRUNCATE,
which the test runner's flush uses, is not a row operation and still works). A deliberate
repair must say so: `ALTER TABLE backoffice_adminaction DISABLE TRIGGER adminaction_append_only`
in its own migration, and enable it again. SQLite (development, tests) relies on Python.
"""

from django.db import migrations

CREATE = """
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

DROP = """
DROP TRIGGER IF EXISTS adminaction_append_only ON backoffice_adminaction;
DROP FUNCTION IF EXISTS backoffice_adminaction_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # raw: the body has a literal %


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
