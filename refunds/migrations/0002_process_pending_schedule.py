"""The django-q2 schedule of the refund safety net (refunds.jobs.process_pending_refunds):
every 5 minutes, process approved requests whose on-commit task was lost and resume those a
dead worker or an unknown Stripe outcome left in PROCESSING. Safe beside the on-commit task:
a request is claimed under a row lock, and a resume looks the refund up in Stripe first."""

from django.db import migrations

NAME = "refunds: process pending refunds"
FUNC = "refunds.jobs.process_pending_refunds"


def add_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": FUNC,
            "args": "",
            "kwargs": "",
            "schedule_type": "I",
            "minutes": 5,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
