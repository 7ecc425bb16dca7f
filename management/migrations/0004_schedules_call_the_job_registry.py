"""django-q2 schedule rows store a dotted function path. refunds/jobs.py is gone and
reports/jobs.py was renamed: rows naming them would fail on every run. Point them at the job
registry, management.jobs, which is what management/schedules.py creates from now on.

Matched by func, not by name: a schedule someone added by hand with an old path is fixed too.
The refund safety net's new entry point raises when requests are left with an unknown Stripe
outcome, so the task shows failed (the old one returned counts and always "succeeded")."""

from django.db import migrations

RENAMED = {
    "refunds.jobs.process_pending_refunds": "management.jobs.process_pending_refunds_scheduled",
    "reports.jobs.refresh_analytics": "management.jobs.refresh_analytics",
    "reports.jobs.issue_missing_receipts": "management.jobs.issue_missing_receipts",
}


def rewrite(apps, schema_editor, *, mapping=RENAMED):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    for old, new in mapping.items():
        Schedule.objects.using(db).filter(func=old).update(func=new)


def rewrite_back(apps, schema_editor):
    rewrite(apps, schema_editor, mapping={new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("management", "0003_sync_runs_moved_to_payments"),
        # It creates the refund schedule with the old path on a new database.
        ("refunds", "0002_process_pending_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(rewrite, rewrite_back)]
