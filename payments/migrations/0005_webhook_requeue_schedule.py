"""The django-q2 schedule of the webhook safety net (payments.tasks.webhook_events_requeue_stale):
every 10 minutes, enqueue events a lost task or a dead worker left behind."""

from django.db import migrations

NAME = "payments: requeue stale webhook events"
FUNC = "payments.tasks.webhook_events_requeue_stale"


def add_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": FUNC, "args": "", "kwargs": "", "schedule_type": "I", "minutes": 10,
                  "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_payment_retry_permission"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
