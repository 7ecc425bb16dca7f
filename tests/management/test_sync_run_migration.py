"""The move of SyncRun, SyncState and JobLock from management to payments keeps the rows and
the grants, and the schedule rows are repointed at the job registry: the database is taken
back to before the move with Django's MigrationExecutor, filled the old way, then migrated
forward."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.models import Schedule

from payments.models import SyncRun, SyncState

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("management", "0002_verbose_names"),
    ("payments", "0006_fraud_alerts"),
    ("refunds", "0002_process_pending_schedule"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_rows_grants_and_schedules_survive_the_move():
    # post_migrate gave the test database payments' content types and a group may hold
    # payments.view_syncrun; going back relabels them `management`, as they were.
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(
        Permission.objects.get(content_type__app_label="payments", codename="view_syncrun")
    )
    try:
        old = migrate(BEFORE)
        assert "management_syncrun" in connection.introspection.table_names()
        assert "payments_syncrun" not in connection.introspection.table_names()
        OldRun = old.get_model("management", "SyncRun")
        OldState = old.get_model("management", "SyncState")
        run = OldRun.objects.create(status="failed", counts={"refund": {"created": 2}}, error="x")
        OldState.objects.create(object_type="refund", cursor="re_42")
        assert set(
            Group.objects.get(name="auditors").permissions.values_list(
                "content_type__app_label", "codename"
            )
        ) == {("management", "view_syncrun")}
        Schedule.objects.update_or_create(
            name="reports: refresh analytics",
            defaults={"func": "reports.jobs.refresh_analytics", "schedule_type": "I", "minutes": 5},
        )
        refund_schedule = Schedule.objects.get(name="refunds: process pending refunds")
        refund_schedule.func = "refunds.jobs.process_pending_refunds"
        refund_schedule.save()
    finally:
        migrate(latest())

    tables = connection.introspection.table_names()
    assert {"payments_syncrun", "payments_syncstate", "payments_joblock"} <= set(tables)
    assert not {"management_syncrun", "management_syncstate", "management_joblock"} & set(tables)
    moved = SyncRun.objects.get(pk=run.pk)
    assert (moved.status, moved.counts, moved.error) == ("failed", {"refund": {"created": 2}}, "x")
    assert moved.outcomes == {}  # added after the move, empty for old runs
    assert SyncState.objects.get(object_type="refund").cursor == "re_42"
    # New runs continue the ids.
    assert SyncRun.objects.create().pk > run.pk
    # The group's grant followed the model: nothing to re-grant.
    assert set(
        Group.objects.get(name="auditors").permissions.values_list(
            "content_type__app_label", "codename"
        )
    ) == {("payments", "view_syncrun")}
    funcs = dict(Schedule.objects.values_list("name", "func"))
    assert funcs["reports: refresh analytics"] == "management.jobs.refresh_analytics"
    assert (
        funcs["refunds: process pending refunds"]
        == "management.jobs.process_pending_refunds_scheduled"
    )
