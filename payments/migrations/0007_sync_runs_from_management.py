"""SyncRun, SyncState and JobLock move from the management app to payments, rows included.

State: the models are created here over the existing management_* tables (no SQL), then
AlterModelTable renames the tables to payments_* (one ALTER TABLE ... RENAME each; rows,
ids and indexes stay). management/migrations/0003 then drops the models from management's
state, again without SQL. On a new database management/0001 creates the tables first and the
same steps run.

The content types (and so the permissions and the groups holding them, and admin log
entries) are relabelled `management` -> `payments`, so that `management.view_syncrun`
granted to a group becomes `payments.view_syncrun` without re-granting anything.
"""

import django.utils.timezone
from django.db import migrations, models

MODELS = ("joblock", "syncstate", "syncrun")


def relabel_content_types(apps, schema_editor, *, old="management", new="payments"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    db = schema_editor.connection.alias
    for model in MODELS:
        moving = ContentType.objects.using(db).filter(app_label=old, model=model).first()
        if moving is None:
            continue  # a new database: post_migrate creates the new labels later
        existing = ContentType.objects.using(db).filter(app_label=new, model=model).first()
        if existing is None:
            moving.app_label = new
            moving.save(update_fields=["app_label"])
            continue
        # Both exist (post_migrate of a half-applied run created the new ones): keep the new
        # rows, hand them the old rows' grants, then drop the old.
        for permission in Permission.objects.using(db).filter(content_type=moving):
            target = Permission.objects.using(db).filter(
                content_type=existing, codename=permission.codename
            ).first()
            if target is None:
                permission.content_type = existing
                permission.save(update_fields=["content_type"])
                continue
            for group in permission.group_set.all():
                group.permissions.add(target)
            for user in permission.user_set.all():
                user.user_permissions.add(target)
        moving.delete()


def relabel_back(apps, schema_editor):
    relabel_content_types(apps, schema_editor, old="payments", new="management")


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0006_fraud_alerts"),
        ("management", "0002_verbose_names"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="JobLock",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100, unique=True)),
                        ("owner", models.CharField(max_length=64)),
                        ("acquired_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField()),
                    ],
                    options={"db_table": "management_joblock"},
                ),
                migrations.CreateModel(
                    name="SyncState",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("object_type", models.CharField(choices=[("customer", "Customers"), ("payment_method", "Payment methods"), ("payment_intent", "Payment intents"), ("refund", "Refunds"), ("dispute", "Disputes")], max_length=32, unique=True)),
                        ("watermark", models.DateTimeField(blank=True, null=True)),
                        ("cursor", models.CharField(blank=True, max_length=255)),
                        ("pass_floor", models.DateTimeField(blank=True, null=True)),
                        ("pass_high_water", models.DateTimeField(blank=True, null=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={"ordering": ["object_type"], "db_table": "management_syncstate"},
                ),
                migrations.CreateModel(
                    name="SyncRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("status", models.CharField(choices=[("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed"), ("skipped", "Skipped (another run held the lock)")], default="running", max_length=16)),
                        ("mode", models.CharField(choices=[("incremental", "Incremental"), ("full", "Full backfill"), ("since", "Window (--since)")], default="incremental", max_length=16)),
                        ("trigger", models.CharField(choices=[("command", "Command"), ("schedule", "Schedule"), ("admin", "Admin")], default="command", max_length=16)),
                        ("since", models.DateField(blank=True, null=True)),
                        ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("duration_ms", models.PositiveIntegerField(blank=True, null=True, verbose_name="Duration (ms)")),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("objects_changed", models.PositiveIntegerField(default=0)),
                        ("api_calls", models.PositiveIntegerField(default=0, verbose_name="API calls")),
                        ("api_retries", models.PositiveIntegerField(default=0, verbose_name="API retries")),
                        ("pages", models.PositiveIntegerField(default=0)),
                        ("error", models.TextField(blank=True)),
                    ],
                    options={
                        "ordering": ["-started_at", "-id"],
                        "indexes": [
                            models.Index(fields=["-started_at", "-id"], name="syncrun_started_idx"),
                            models.Index(fields=["status", "-started_at"], name="syncrun_status_started_idx"),
                        ],
                        "db_table": "management_syncrun",
                    },
                ),
            ],
            database_operations=[],
        ),
        # Now the tables get the names Django gives payments' models (payments_joblock ...).
        migrations.AlterModelTable(name="joblock", table=None),
        migrations.AlterModelTable(name="syncstate", table=None),
        migrations.AlterModelTable(name="syncrun", table=None),
        migrations.RunPython(relabel_content_types, relabel_back),
    ]
