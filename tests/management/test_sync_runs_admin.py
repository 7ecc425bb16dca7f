"""The sync run record in the admin, the job lock, and the sync's django-q2 schedule."""

import ast
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from management import jobs
from management.schedules import SYNC_SCHEDULE_FUNC, SYNC_SCHEDULE_NAME, ensure_job_schedules
from payments.admin.sync_run import sync_failed_badge
from payments.models import JobLock, SyncRun

pytestmark = pytest.mark.django_db


def make_runs(n, **kwargs):
    now = timezone.now()
    SyncRun.objects.bulk_create(
        [
            SyncRun(
                started_at=now - timedelta(minutes=15 * i),
                finished_at=now - timedelta(minutes=15 * i) + timedelta(seconds=3),
                duration_ms=3000,
                status=kwargs.get("status", SyncRun.Status.SUCCEEDED),
                counts={
                    "payment_intent": {"created": i, "updated": 0, "unchanged": 5, "skipped": 0}
                },
                objects_changed=i,
                api_calls=4,
            )
            for i in range(n)
        ]
    )


def test_changelist_shows_status_badges_and_counts(admin_client):
    make_runs(2)
    SyncRun.objects.create(status=SyncRun.Status.FAILED, error="GatewayServerError: boom")
    response = admin_client.get(reverse("admin:payments_syncrun_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Succeeded" in html and "Failed" in html
    assert "GatewayServerError: boom" in html
    assert "payment intent +1 ~0 =5" in html


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    def count(n):
        SyncRun.objects.all().delete()
        make_runs(n)
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(reverse("admin:payments_syncrun_changelist")).status_code == 200
        return len(ctx.captured_queries)

    assert count(10) == count(100)


def test_detail_is_read_only_and_runs_cannot_be_added_or_deleted(admin_client):
    make_runs(1)
    run = SyncRun.objects.get()
    response = admin_client.get(reverse("admin:payments_syncrun_change", args=[run.pk]))
    assert response.status_code == 200
    assert "Unchanged" in response.content.decode()
    assert admin_client.get(reverse("admin:payments_syncrun_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:payments_syncrun_delete", args=[run.pk])).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:payments_syncstate_changelist")).status_code == 200


def test_bad_filter_values_do_not_500(admin_client):
    url = reverse("admin:payments_syncrun_changelist")
    for query in ("?status=nonsense", "?started_at_from=garbage", "?q=%00", "?o=99"):
        assert admin_client.get(url + query).status_code in (200, 302)


def test_sidebar_badge_follows_the_latest_real_run(rf):
    assert sync_failed_badge(rf.get("/")) is None
    SyncRun.objects.create(status=SyncRun.Status.FAILED)
    assert sync_failed_badge(rf.get("/")) == "failed"
    SyncRun.objects.create(status=SyncRun.Status.SKIPPED)
    assert sync_failed_badge(rf.get("/")) == "failed"
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED)
    assert sync_failed_badge(rf.get("/")) is None


# --- lock ---------------------------------------------------------------------------------------


def test_lock_is_exclusive_renewable_and_released_by_its_owner_only():
    ttl = timedelta(minutes=5)
    token = JobLock.objects.acquire("job", ttl=ttl)
    assert token and JobLock.objects.acquire("job", ttl=ttl) is None
    assert JobLock.objects.renew("job", token, ttl=ttl)
    JobLock.objects.release("job", "someone-else")
    assert JobLock.objects.acquire("job", ttl=ttl) is None
    JobLock.objects.release("job", token)
    assert JobLock.objects.acquire("job", ttl=ttl)


def test_an_expired_lock_is_taken_over_and_its_old_owner_cannot_renew():
    old = JobLock.objects.acquire("job", ttl=timedelta(seconds=-1))
    new = JobLock.objects.acquire("job", ttl=timedelta(minutes=5))
    assert new and new != old
    assert not JobLock.objects.renew("job", old, ttl=timedelta(minutes=5))


# --- schedule -----------------------------------------------------------------------------------


def test_schedule_exists_after_migrate_and_ensuring_it_again_is_idempotent(settings):
    assert Schedule.objects.filter(name=SYNC_SCHEDULE_NAME).count() == 1  # from post_migrate
    settings.STRIPE_SYNC_SCHEDULE_MINUTES = 30
    ensure_job_schedules()
    ensure_job_schedules()
    schedule = Schedule.objects.get(name=SYNC_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        SYNC_SCHEDULE_FUNC,
        Schedule.MINUTES,
        30,
    )
    # The job's own kwargs, and the name django-q2 gives each task it starts (the job's).
    assert ast.literal_eval(schedule.kwargs) == {
        "trigger": "schedule",
        "q_options": {"task_name": "Stripe sync"},
    }
    assert schedule.repeats == -1


def test_scheduled_job_raises_when_the_sync_fails(monkeypatch):
    monkeypatch.setattr(
        jobs, "stripe_sync", lambda **kw: {"status": "failed", "error": "GatewayError: x"}
    )
    with pytest.raises(jobs.JobFailed, match="GatewayError: x"):
        jobs.stripe_sync_scheduled()
    monkeypatch.setattr(jobs, "stripe_sync", lambda **kw: {"status": "succeeded", "error": ""})
    assert jobs.stripe_sync_scheduled()["status"] == "succeeded"


def test_the_q2_scheduler_runs_the_sync_schedule(monkeypatch):
    """django-q2's own scheduler pass picks the schedule up and runs the job (sync mode)."""
    from django_q.conf import Conf
    from django_q.scheduler import scheduler

    calls = []
    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(
        jobs,
        "stripe_sync",
        lambda **kw: calls.append(kw) or {"status": "succeeded", "error": ""},
    )
    Schedule.objects.filter(name=SYNC_SCHEDULE_NAME).update(
        next_run=timezone.now() - timedelta(minutes=1)
    )
    scheduler()
    assert calls == [{"trigger": "schedule"}]
    assert Schedule.objects.get(name=SYNC_SCHEDULE_NAME).next_run > timezone.now()
