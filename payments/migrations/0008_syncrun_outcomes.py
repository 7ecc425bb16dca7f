"""SyncRun.outcomes: how each object type's pass ended (a failed type no longer stops the
others). Runs recorded before have {} and show no outcome per type."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0007_sync_runs_from_management"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="outcomes",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
