"""The Scheduled jobs form offers the job registry as a choice list and refuses anything else;
every add, change and delete is audited; django-q2's raw task and queue screens are for
superusers only."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django_q.models import Schedule

from backoffice.models import AdminAction
from management.admin import AUDIT_SCHEDULE_CHANGE, AUDIT_SCHEDULE_CREATE, AUDIT_SCHEDULE_DELETE
from management.schedules import ANALYTICS_SCHEDULE_NAME, schedulable_functions
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/django_q/schedule/add/"
REQUEUE = "payments.tasks.webhook_events_requeue_stale"


def _form(**overrides):
    data = {
        "name": "Nightly clean-up",
        "func": "management.jobs.cleanup_old_data",
        "args": "",
        "kwargs": "",
        "schedule_type": "D",
        "minutes": "",
        "cron": "",
        "repeats": "-1",
        "next_run_0": "2030-01-01",
        "next_run_1": "03:00:00",
        "cluster": "",
    }
    return {**data, **overrides}


def _errors(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_form_offers_the_registry_as_a_choice_list(admin_client):
    body = admin_client.get(ADD).content.decode()
    select = body[body.index('name="func"') :]
    select = select[: select.index("</select>")]
    for func, title in schedulable_functions().items():
        assert f'value="{func}"' in select
        assert title in select
    assert 'name="hook"' not in body  # schedules run no result hook


def test_a_function_outside_the_registry_is_refused_by_the_form(admin_client):
    response = admin_client.post(ADD, _form(func="os.system", args="'touch /tmp/x'"))
    assert response.status_code == 200  # the form again, with the error
    assert "Select a valid choice" in _errors(response)
    assert not Schedule.objects.filter(name="Nightly clean-up").exists()
    assert not AdminAction.objects.filter(action=AUDIT_SCHEDULE_CREATE).exists()


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"args": "1, ("}, "Arguments must be Python literals"),
        ({"kwargs": "{'days': 3}"}, "does not take these arguments"),
        ({"kwargs": "{'q_options': {'hook': 'os.system'}}"}, "q_options may only set"),
    ],
)
def test_malformed_arguments_are_refused_by_the_form(admin_client, overrides, words):
    response = admin_client.post(ADD, _form(**overrides))
    assert response.status_code == 200
    assert words in _errors(response)
    assert not Schedule.objects.filter(name="Nightly clean-up").exists()


def test_adding_changing_and_deleting_a_schedule_is_audited(admin_client, superuser):
    response = admin_client.post(ADD, _form(kwargs="{'now': None}"))
    assert response.status_code == 302, _errors(response)
    row = Schedule.objects.get(name="Nightly clean-up")
    created = AdminAction.objects.get(action=AUDIT_SCHEDULE_CREATE)
    assert (created.actor, created.target_type, created.target_id) == (
        superuser,
        "django_q.schedule",
        str(row.pk),
    )
    assert created.details["func"] == "management.jobs.cleanup_old_data"
    assert created.details["kwargs"] == "{'now': None}"

    change = f"/admin/django_q/schedule/{row.pk}/change/"
    response = admin_client.post(change, _form(func=REQUEUE, schedule_type="H"))
    assert response.status_code == 302, _errors(response)
    changed = AdminAction.objects.get(action=AUDIT_SCHEDULE_CHANGE)
    assert changed.details["changed"]["func"] == ["management.jobs.cleanup_old_data", REQUEUE]
    assert changed.details["changed"]["schedule_type"] == ["D", "H"]
    assert "name" not in changed.details["changed"]

    response = admin_client.post(f"/admin/django_q/schedule/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = AdminAction.objects.get(action=AUDIT_SCHEDULE_DELETE)
    assert deleted.details["func"] == REQUEUE and deleted.target_id == str(row.pk)
    assert not Schedule.objects.filter(pk=row.pk).exists()


def test_editing_a_row_edited_in_sql_must_pick_a_registry_job(admin_client):
    row = Schedule.objects.get(name=ANALYTICS_SCHEDULE_NAME)
    Schedule.objects.filter(pk=row.pk).update(func="os.system", hook="os.system")
    change = f"/admin/django_q/schedule/{row.pk}/change/"
    response = admin_client.post(change, _form(name=row.name, func="os.system"))
    assert response.status_code == 200
    assert "Select a valid choice" in _errors(response)
    assert not AdminAction.objects.filter(action=AUDIT_SCHEDULE_CHANGE).exists()
    response = admin_client.post(change, _form(name=row.name, func=row.func))
    assert response.status_code == 302, _errors(response)
    row.refresh_from_db()
    assert row.hook is None  # the form keeps no hook


RAW_SCREENS = [
    "/admin/django_q/success/",
    "/admin/django_q/failure/",
    "/admin/django_q/ormq/",
]


@pytest.fixture
def q_staff(db):
    """Staff holding every django_q permission, but no superuser."""
    user = UserFactory(username="operator")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    return type(user).objects.get(pk=user.pk)


@pytest.mark.parametrize("url", RAW_SCREENS)
def test_raw_task_and_queue_screens_are_for_superusers_only(admin_client, q_staff, url):
    assert admin_client.get(url).status_code == 200
    client = Client()
    client.force_login(q_staff)
    assert client.get(url).status_code == 403


def test_staff_with_the_permission_still_see_the_scheduled_jobs(admin_client, q_staff):
    client = Client()
    client.force_login(q_staff)
    assert client.get("/admin/django_q/schedule/").status_code == 200
    # The app's index lists the raw screens to superusers only.
    listed = admin_client.get("/admin/django_q/").content.decode()
    assert all(f'href="{url}"' in listed for url in RAW_SCREENS)
    listed = client.get("/admin/django_q/").content.decode()
    assert 'href="/admin/django_q/schedule/"' in listed
    assert not any(f'href="{url}"' in listed for url in RAW_SCREENS)
