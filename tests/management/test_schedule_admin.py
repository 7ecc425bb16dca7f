"""django-q2's Scheduled jobs and task pages in the admin's language: the job's name, what it
does, the interval in words, last run and result, next run, "forever"; tasks named after
their job (never django-q2's random "rugby-lithium-dakota-aspen")."""

import re

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Success, Task
from django_q.scheduler import scheduler

from management.admin import NOT_RUN_YET, RESULT_FAILED, RESULT_SUCCEEDED
from management.schedules import (
    ANALYTICS_SCHEDULE_NAME,
    interval_in_words,
    job_schedule_by_name,
    job_schedules,
    repeats_in_words,
)

pytestmark = pytest.mark.django_db

COLUMNS = ["Job", "What it does", "Runs", "Last run", "Last result", "Next run", "Repeats"]
DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"


def _text(response) -> str:
    body = response.content.decode()
    table = body[body.index("<table") : body.index("</table>")]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", table)).replace("&#x27;", "'")


@pytest.mark.parametrize(
    ("schedule_type", "minutes", "words"),
    [
        ("I", 1, "every minute"),
        ("I", 5, "every 5 minutes"),
        ("I", 15, "every 15 minutes"),
        ("I", 60, "hourly"),
        ("I", 90, "every 90 minutes"),
        ("I", 360, "every 6 hours"),
        ("I", 1440, "daily"),
        ("I", 2880, "every 2 days"),
        ("I", 10080, "weekly"),
        ("D", None, "daily"),
        ("H", None, "hourly"),
        ("O", None, "once"),
    ],
)
def test_interval_in_words(schedule_type, minutes, words):
    assert interval_in_words(schedule_type=schedule_type, minutes=minutes) == words


def test_repeats_in_words():
    assert [repeats_in_words(n) for n in (-1, 0, 1, 3)] == [
        "forever",
        "no more runs",
        "once more",
        "3 more times",
    ]


def test_every_registry_job_has_a_title_and_says_what_it_does():
    for job in job_schedules():
        assert job.title and job.description, job.name


def test_the_scheduled_jobs_page_speaks_the_admins_language(admin_client):
    text = _text(admin_client.get("/admin/django_q/schedule/"))
    headers = text.split(COLUMNS[0], 1)[1]
    for column in COLUMNS:
        assert column in text
    assert "last_run" not in text.lower().replace("last run", "")
    for job in job_schedules():
        assert job.title in text
        assert job.description in text
    assert "every 15 minutes" in text  # the Stripe sync's default
    assert "every 5 minutes" in text and "hourly" in text and "daily" in text
    assert "forever" in text
    assert " -1 " not in headers
    assert NOT_RUN_YET in text
    assert re.search(DATE, text)  # next run, in the one date format


def test_a_run_names_its_task_after_the_job_and_shows_last_run_and_result(
    admin_client, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", True)
    Schedule.objects.filter(name=ANALYTICS_SCHEDULE_NAME).update(next_run=timezone.now())
    Schedule.objects.exclude(name=ANALYTICS_SCHEDULE_NAME).delete()
    scheduler()
    task = Success.objects.get()
    title = job_schedule_by_name()[ANALYTICS_SCHEDULE_NAME].title
    assert task.name == title  # not a random humanhash
    text = _text(admin_client.get("/admin/django_q/schedule/"))
    assert RESULT_SUCCEEDED in text and RESULT_FAILED not in text
    assert len(re.findall(DATE, text)) == 2  # last run and next run
    assert title in _text(admin_client.get("/admin/django_q/success/"))


def test_a_failed_run_shows_failed(admin_client):
    # As the cluster records a task that raised (in SYNC mode the exception would propagate
    # into the test instead): success False, the error as its result. An older task with
    # django-q2's random name is shown under its schedule's job name.
    now = timezone.now()
    schedule = Schedule.objects.get(name=ANALYTICS_SCHEDULE_NAME)
    Task.objects.create(
        id="f" * 32,
        name="rugby-lithium-dakota-aspen",
        func=schedule.func,
        group=ANALYTICS_SCHEDULE_NAME,
        started=now,
        stopped=now,
        success=False,
        result="Stripe unreachable",
    )
    Schedule.objects.filter(pk=schedule.pk).update(task="f" * 32)
    text = _text(admin_client.get("/admin/django_q/schedule/"))
    assert RESULT_FAILED in text
    failures = _text(admin_client.get("/admin/django_q/failure/"))
    assert "Refresh analytics" in failures and "Stripe unreachable" in failures
    assert "rugby" not in failures
