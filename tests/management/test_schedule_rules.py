"""Schedules and tasks run only the job registry (management/schedule_rules.py): refused on
save (form and ORM), set aside before a scheduler pass when edited in SQL (recorded failed,
audited, the other schedules still run), and refused at enqueue so that a worker records the
failure and runs nothing."""

from datetime import timedelta
from multiprocessing import Value
from multiprocessing.queues import Queue

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q import cluster
from django_q.models import Failure, Schedule, Success
from django_q.monitor import monitor
from django_q.signing import SignedPackage
from django_q.tasks import async_task, schedule
from django_q.worker import worker

from backoffice.models import AdminAction
from management.schedule_rules import (
    AUDIT_SCHEDULE_SET_ASIDE,
    ERR_FUNC_NOT_REGISTERED,
    ERR_HOOK,
    ERR_SCHEDULE_SET_ASIDE,
    ERR_TASK_REFUSED,
    REFUSE_TASK_FUNC,
    TaskRefused,
    check_task_before_enqueue,
    parse_args,
    parse_kwargs,
    refuse_task,
    runnable_functions,
    schedule_problems,
    scheduler_setting_aside_refused,
)
from management.schedules import (
    ANALYTICS_SCHEDULE_FUNC,
    ANALYTICS_SCHEDULE_NAME,
    QUEUED_TASK_FUNCTIONS,
    job_schedules,
    schedulable_functions,
)

pytestmark = pytest.mark.django_db

REQUEUE = "payments.tasks.webhook_events_requeue_stale"
WEBHOOK_TASK = "payments.tasks.webhook_event_process_task"


# --- The rule ---------------------------------------------------------------------------------


def test_every_registered_function_imports_and_every_registry_row_passes():
    import importlib

    for func in schedulable_functions().keys() | QUEUED_TASK_FUNCTIONS:
        module, _, name = func.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), func
    for job in job_schedules():
        assert schedule_problems(func=job.func, args="", kwargs=job.stored_kwargs()) == {}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ("", ""),
        ("", "{'now': None}"),
        ("", "now=None"),
        ("", "{'q_options': {'task_name': 'Nightly clean-up', 'timeout': 60}}"),
    ],
)
def test_a_registry_job_with_arguments_it_takes_passes(args, kwargs):
    problems = schedule_problems(func="management.jobs.cleanup_old_data", args=args, kwargs=kwargs)
    assert problems == {}


def test_a_webhook_retry_as_payments_schedules_it_passes():
    assert schedule_problems(func=WEBHOOK_TASK, args=(42,), kwargs={"q_options": {}}) == {}


def test_a_function_outside_the_registry_is_refused():
    problems = schedule_problems(func="os.system", args="'touch /tmp/x'", kwargs="")
    assert problems == {"func": ERR_FUNC_NOT_REGISTERED.format(func="os.system")}
    # A private helper of a registered module is no job either.
    assert "func" in schedule_problems(func="management.jobs.fraud_rules_error", args="", kwargs="")


@pytest.mark.parametrize(
    ("field", "args", "kwargs", "words"),
    [
        ("args", "1, (", "", "Arguments must be Python literals"),
        ("args", "__import__('os')", "", "Arguments must be Python literals"),
        ("args", "[" * 2400 + "]" * 2400, "", "Arguments must be Python literals"),
        ("args", "1" * 6000, "", "longer than 5000 characters"),
        ("kwargs", "", "x=1), os.system('x'", "Keyword arguments must be a dict literal"),
        ("kwargs", "", "[1, 2]", "Keyword arguments must be a dict literal"),
        ("kwargs", "", "{1: 2}", "Keyword arguments must be a dict literal"),
        ("kwargs", "", "{'q_options': {'hook': 'os.system'}}", "q_options may only set"),
        ("kwargs", "", "{'q_options': {'chain': [('os.system', ('x',))]}}", "chain refused"),
        ("kwargs", "", "{'days': 3}", "does not take these arguments"),
        ("args", "1, 2", "", "does not take these arguments"),
    ],
)
def test_malformed_or_unfitting_arguments_are_refused(field, args, kwargs, words):
    problems = schedule_problems(func="management.jobs.cleanup_old_data", args=args, kwargs=kwargs)
    assert list(problems) == [field]
    assert words in problems[field]


def test_a_result_hook_is_refused():
    problems = schedule_problems(func=REQUEUE, args="", kwargs="", hook="os.system")
    assert problems == {"hook": ERR_HOOK}


def test_arguments_parse_as_the_scheduler_reads_them():
    assert parse_args("3, 'usd'") == (3, "usd")
    assert parse_args("3") == (3,)
    assert parse_args((3,)) == (3,)
    assert parse_kwargs("days=3, currency='usd'") == {"days": 3, "currency": "usd"}
    assert parse_kwargs({"days": 3}) == {"days": 3}
    with pytest.raises(ValueError):
        parse_kwargs("**{'a': 1}")


# --- On save (every ORM save, not only the admin's) -------------------------------------------


def test_saving_a_schedule_of_os_system_through_the_orm_is_refused():
    with pytest.raises(ValidationError) as caught:
        Schedule.objects.create(name="pwn", func="os.system", args="'touch /tmp/x'")
    assert caught.value.message_dict == {"func": [ERR_FUNC_NOT_REGISTERED.format(func="os.system")]}
    with pytest.raises(ValidationError):
        schedule("os.system", "touch /tmp/x", name="pwn")  # django-q2's own helper
    assert not Schedule.objects.filter(name="pwn").exists()


def test_changing_a_saved_schedule_to_another_function_is_refused():
    row = Schedule.objects.get(name=ANALYTICS_SCHEDULE_NAME)
    row.func = "subprocess.call"
    with pytest.raises(ValidationError):
        row.save()
    row.refresh_from_db()
    assert row.func == ANALYTICS_SCHEDULE_FUNC


def test_a_row_saved_unchanged_is_not_checked_again():
    """The scheduler saves every row it ran: a bad row (edited in SQL) must never fail that
    save, which would roll back the whole pass."""
    row = Schedule.objects.get(name=ANALYTICS_SCHEDULE_NAME)
    Schedule.objects.filter(pk=row.pk).update(func="os.system")
    row.refresh_from_db()
    row.repeats = 3
    row.save()  # no error: what it runs did not change here
    assert Schedule.objects.get(pk=row.pk).repeats == 3


# --- Before each scheduler pass ----------------------------------------------------------------


def test_the_cluster_calls_our_scheduler_pass():
    assert cluster.scheduler is scheduler_setting_aside_refused


def test_rows_edited_in_sql_are_set_aside_recorded_failed_and_the_others_still_run(tmp_path):
    marker = tmp_path / "ran"
    past = timezone.now() - timedelta(minutes=1)
    Schedule.objects.exclude(name=ANALYTICS_SCHEDULE_NAME).delete()
    Schedule.objects.filter(name=ANALYTICS_SCHEDULE_NAME).update(next_run=past)
    good = Schedule.objects.get(name=ANALYTICS_SCHEDULE_NAME)
    # Edited in SQL (QuerySet.update sends no pre_save), as an attacker or a bad migration would.
    pwn = Schedule.objects.create(name="pwn", func=REQUEUE, next_run=past)
    Schedule.objects.filter(pk=pwn.pk).update(func="os.system", args=repr(f"touch {marker}"))
    broken = Schedule.objects.create(name="broken args", func=REQUEUE, next_run=past)
    Schedule.objects.filter(pk=broken.pk).update(args="1, (")

    cluster.scheduler()  # what qcluster's guard loop calls (inline tasks in tests)

    assert not marker.exists()
    for row, words in ((pwn, "os.system is not in the job registry"), (broken, "args:")):
        row.refresh_from_db()
        assert row.repeats == 0  # stopped: "no more runs"
        failure = Failure.objects.get(id=row.task)
        assert failure.result.startswith(ERR_SCHEDULE_SET_ASIDE.format(problems=""))
        assert words in failure.result
        audit = AdminAction.objects.get(action=AUDIT_SCHEDULE_SET_ASIDE, target_id=str(row.pk))
        assert audit.actor is None and audit.result == AdminAction.Result.FAILURE
        assert audit.details["func"] == row.func
    # The bad rows did not hold up the pass: the good schedule ran and moved on.
    good.refresh_from_db()
    assert good.next_run > timezone.now()
    assert Success.objects.filter(id=good.task).exists()
    # A second pass finds nothing to set aside and records nothing twice.
    cluster.scheduler()
    assert AdminAction.objects.filter(action=AUDIT_SCHEDULE_SET_ASIDE).count() == 2


# --- On enqueue: the worker records a refusal and runs nothing ---------------------------------


class _CapturingBroker:
    """Stands in for the broker between async_task and a worker: keeps the signed package."""

    list_key = "test"

    def __init__(self):
        self.packages = []

    def enqueue(self, package):
        self.packages.append(package)
        return len(self.packages)


def _run_in_a_worker(package):
    """Run one queued package as a cluster does: django-q2's worker catches the failure and
    its monitor records the result (inline tasks would raise into the test instead)."""
    task_queue, result_queue = Queue(ctx=_ctx()), Queue(ctx=_ctx())
    task_queue.put(SignedPackage.loads(package))
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue)


def _ctx():
    import multiprocessing

    return multiprocessing.get_context()


def test_a_task_of_an_unregistered_function_is_recorded_failed_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    broker = _CapturingBroker()
    task_id = async_task("os.system", f"touch {marker}", q_options={"sync": False}, broker=broker)
    _run_in_a_worker(broker.packages[0])
    assert not marker.exists()
    failure = Failure.objects.get(id=task_id)
    assert failure.func == REFUSE_TASK_FUNC
    assert ERR_TASK_REFUSED.format(func="os.system") in failure.result


def test_the_enqueue_check_rewrites_only_what_is_not_registered():
    task = {"func": REQUEUE, "args": (), "kwargs": {}, "name": "ok"}
    check_task_before_enqueue(sender="django_q", task=task)
    assert task["func"] == REQUEUE
    task = {
        "func": REQUEUE,
        "args": (),
        "kwargs": {},
        "hook": "os.system",
        "chain": [("os.system", ("x",))],
    }
    check_task_before_enqueue(sender="django_q", task=task)
    assert task["func"] == REFUSE_TASK_FUNC
    assert task["args"] == (REQUEUE, ERR_TASK_REFUSED.format(func="os.system"))
    assert "hook" not in task and "chain" not in task
    with pytest.raises(TaskRefused):
        refuse_task(*task["args"])
    assert REFUSE_TASK_FUNC in runnable_functions()


# --- In the worker: a task that got past the enqueue check ------------------------------------


def test_the_cluster_spawns_our_checked_worker():
    import django_q.worker

    from management.schedule_rules import checked_worker

    assert cluster.worker is checked_worker
    assert django_q.worker.worker is checked_worker  # django-q2's sync mode imports it here


def test_a_task_forged_in_the_broker_is_refused_by_the_worker(tmp_path):
    """A package written into the broker by something other than our code (a Redis or ORM
    write: no pre_enqueue) still runs nothing outside the registry: the worker the cluster
    spawns checks each task again before django-q2 resolves its function."""
    marker = tmp_path / "ran"
    broker = _CapturingBroker()
    task_id = async_task(REQUEUE, q_options={"sync": False}, broker=broker)
    forged = SignedPackage.loads(broker.packages[0])
    forged.update(func="os.system", args=(f"touch {marker}",), hook="os.system")

    task_queue, result_queue = Queue(ctx=_ctx()), Queue(ctx=_ctx())
    task_queue.put(forged)
    task_queue.put("STOP")
    cluster.worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue)

    assert not marker.exists()
    failure = Failure.objects.get(id=task_id)
    assert failure.func == REFUSE_TASK_FUNC
    assert ERR_TASK_REFUSED.format(func="os.system") in failure.result
