"""SyncRun, SyncState and JobLock now belong to payments (payments/migrations/0007 took over
their tables and renamed them): drop them from this app's state only. No SQL."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("management", "0002_verbose_names"),
        ("payments", "0007_sync_runs_from_management"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="JobLock"),
                migrations.DeleteModel(name="SyncState"),
                migrations.DeleteModel(name="SyncRun"),
            ],
            database_operations=[],
        ),
    ]
