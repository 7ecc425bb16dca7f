"""What a django-q2 schedule or task may run, checked wherever a bad one could get in.

A schedule row names a function by its dotted path, and django-q2 imports and calls whatever
it names: a form, a shell or an UPDATE in SQL could point one at os.system. The rule: a
schedule names a function of the job registry (management.schedules.schedulable_functions),
with arguments that parse and fit that function's signature, and no result hook; a task runs
only a registered function (schedulable, or an entry point our code queues:
management.schedules.QUEUED_TASK_FUNCTIONS). Checked in four places:

- the admin's form (management/admin.py): a choice list, and these messages per field;
- every ORM save of a Schedule (`check_schedule_before_save`, pre_save; django_q's model is
  not ours to give a clean()): code and shells too. A row saved with the guarded fields
  unchanged is not checked again, so the scheduler saving a row it ran never fails its pass;
- before each scheduler pass of a cluster (`scheduler_setting_aside_refused`, installed as
  the cluster's scheduler by ManagementConfig.ready): a due row that a save would refuse (an
  UPDATE in SQL) is set aside: a failed task records why, the schedule stops (repeats 0),
  an audit row names it. django-q2 parses a row's args inside the pass's transaction, so one
  malformed row would otherwise roll back the whole pass and no schedule would run;
- every task enqueued (`check_task_before_enqueue`, pre_enqueue; in the process that
  enqueues, the cluster's scheduler included): a task naming any other function (or hook) is
  replaced by `refuse_task`, which fails in the worker with the reason, so the failure is
  recorded on the task and schedule pages and nothing else runs;
- every task a worker takes from the cluster's queue (`checked_worker`, installed as the
  worker the cluster spawns, and as django_q.worker.worker for the sync mode): the same
  rewrite, before django-q2 resolves the function. A package written into the broker by
  anything but our code (Redis or the ORM broker's table, no pre_enqueue) runs nothing
  outside the registry either. django-q2 has no hook there (pre_execute fires after the
  function is resolved and cannot stop it), so the worker's task queue is wrapped: the
  worker only ever calls its get().
"""

from __future__ import annotations

import ast
import inspect
import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from backoffice.audit import audit_record
from backoffice.models import AdminAction

from .schedules import QUEUED_TASK_FUNCTIONS, schedulable_functions

logger = logging.getLogger(__name__)

ERR_FUNC_NOT_REGISTERED = "Choose a job from the list: {func} is not in the job registry."
ERR_FUNC_NOT_IMPORTABLE = "{func} is in the job registry but cannot be imported: {error}"
ERR_ARGS_MALFORMED = (
    "Arguments must be Python literals separated by commas, e.g. 3, 'usd' ({error})."
)
ERR_KWARGS_MALFORMED = (
    "Keyword arguments must be a dict literal, e.g. {{'days': 3}}, or name=value pairs, e.g. "
    "days=3 ({error})."
)
ERR_Q_OPTIONS = "q_options may only set {allowed}: {refused} refused."
ERR_SIGNATURE = "{func} does not take these arguments: {error}."
ERR_HOOK = "Schedules run no result hook."
ERR_TOO_LONG = "longer than {limit} characters"
ERR_TASK_REFUSED = (
    "Refused, nothing ran: {func} is not a registered job or task "
    "(management/schedules.py: schedulable_functions, QUEUED_TASK_FUNCTIONS)."
)
ERR_SCHEDULE_SET_ASIDE = "Refused, nothing ran, schedule stopped: {problems}"

AUDIT_SCHEDULE_SET_ASIDE = "schedule.set_aside"

# The stand-in a refused task runs instead (a stable path: queued tasks store it).
REFUSE_TASK_FUNC = "management.schedule_rules.refuse_task"

# A schedule's kwargs may carry django-q2's per-task options; only these (a hook, a chain or
# another cluster's broker would run or send work outside the registry).
ALLOWED_Q_OPTIONS = ("task_name", "timeout")

# Literal arguments stay small; Python's parser also fails on deeply nested input.
MAX_LITERAL_CHARS = 5000

# The fields whose values decide what a schedule runs.
GUARDED_FIELDS = ("func", "args", "kwargs", "hook", "intended_date_kwarg")


class TaskRefused(RuntimeError):
    """A task named a function outside the job registry; it was not run."""


def refuse_task(func: str, reason: str) -> None:
    """Runs in place of a refused task, so that its refusal is recorded as a failed task.
    Runs nothing else; always raises TaskRefused."""
    raise TaskRefused(reason)


def runnable_functions() -> frozenset[str]:
    """Every dotted path a django-q2 worker may run."""
    return frozenset(schedulable_functions()) | QUEUED_TASK_FUNCTIONS | {REFUSE_TASK_FUNC}


# --- Parsing, as django-q2's scheduler does (but never silently) --------------------------------


def _text(value) -> str:
    # django-q2's schedule() passes a tuple and a dict; the TextField stores their str().
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _literal(text: str):
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(ERR_TOO_LONG.format(limit=MAX_LITERAL_CHARS))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc


def parse_args(value) -> tuple:
    """Schedule.args as the scheduler reads it: literals; a single value is a 1-tuple.
    Raises ValueError."""
    text = _text(value)
    if not text:
        return ()
    parsed = _literal(text)
    return parsed if type(parsed) is tuple else (parsed,)


def parse_kwargs(value) -> dict:
    """Schedule.kwargs as the scheduler reads it: a dict literal, or name=value pairs. Raises
    ValueError where the scheduler would call the job with no kwargs, or fail its pass."""
    text = _text(value)
    if not text:
        return {}
    try:
        parsed = _literal(text)
    except ValueError as literal_error:
        if len(text) > MAX_LITERAL_CHARS:
            raise
        try:
            call = ast.parse(f"f({text})", mode="eval").body
        except (SyntaxError, MemoryError, RecursionError):
            raise literal_error from None
        if (
            not isinstance(call, ast.Call)
            or call.args
            or any(keyword.arg is None for keyword in call.keywords)
        ):
            raise literal_error from None
        return {keyword.arg: _literal(ast.unparse(keyword.value)) for keyword in call.keywords}
    if not isinstance(parsed, dict) or not all(isinstance(key, str) for key in parsed):
        raise ValueError("not a dict of names")
    return parsed


# --- The rule -------------------------------------------------------------------------------


def _q_options_problem(kwargs: dict) -> str:
    q_options = kwargs.get("q_options")
    if q_options is None:
        return ""
    if not isinstance(q_options, dict):
        return ERR_Q_OPTIONS.format(allowed=", ".join(ALLOWED_Q_OPTIONS), refused="q_options")
    refused = sorted(str(key) for key in q_options if key not in ALLOWED_Q_OPTIONS)
    if refused:
        return ERR_Q_OPTIONS.format(
            allowed=", ".join(ALLOWED_Q_OPTIONS), refused=", ".join(refused)
        )
    return ""


def schedule_problems(*, func, args, kwargs, hook=None, intended_date_kwarg=None) -> dict:
    """{field: message} for a schedule that must not be saved or run; {} when it may."""
    problems = {}
    func = _text(func)
    if func not in schedulable_functions():
        problems["func"] = ERR_FUNC_NOT_REGISTERED.format(func=func or "(none)")
    if hook:
        problems["hook"] = ERR_HOOK
    call_args: tuple = ()
    call_kwargs: dict = {}
    try:
        call_args = parse_args(args)
    except ValueError as exc:
        problems["args"] = ERR_ARGS_MALFORMED.format(error=exc)
    try:
        call_kwargs = parse_kwargs(kwargs)
    except ValueError as exc:
        problems["kwargs"] = ERR_KWARGS_MALFORMED.format(error=exc)
    else:
        q_problem = _q_options_problem(call_kwargs)
        if q_problem:
            problems["kwargs"] = q_problem
    if problems:
        return problems
    call_kwargs.pop("q_options", None)
    if intended_date_kwarg:
        call_kwargs[intended_date_kwarg] = ""  # the scheduler passes the planned run's date
    try:
        function = import_string(func)
    except ImportError as exc:
        return {"func": ERR_FUNC_NOT_IMPORTABLE.format(func=func, error=exc)}
    try:
        inspect.signature(function).bind(*call_args, **call_kwargs)
    except TypeError as exc:
        problems["args" if call_args else "kwargs"] = ERR_SIGNATURE.format(func=func, error=exc)
    return problems


def _problems_in_words(problems: dict) -> str:
    return "; ".join(f"{field}: {message}" for field, message in problems.items())


# --- On save --------------------------------------------------------------------------------


def check_schedule_before_save(sender, instance, raw=False, using=None, **kwargs) -> None:
    """pre_save of django_q's Schedule: refuse (ValidationError) a row the rule refuses."""
    if raw:
        return  # loaddata: fixtures are ours
    current = {field: _text(getattr(instance, field)) for field in GUARDED_FIELDS}
    if instance.pk is not None:
        stored = (
            sender._default_manager.using(using or "default")
            .filter(pk=instance.pk)
            .values(*GUARDED_FIELDS)
            .first()
        )
        if stored is not None and {k: _text(v) for k, v in stored.items()} == current:
            return  # nothing that decides what runs has changed
    problems = schedule_problems(**current)
    if problems:
        raise ValidationError(problems)


# --- Before each scheduler pass --------------------------------------------------------------


def schedules_set_aside(*, now=None) -> list[int]:
    """Stop every due schedule the rule refuses (an UPDATE in SQL bypassed the save check):
    record a failed task with the reason (the schedule's last result), set repeats to 0 and
    audit it, so the scheduler pass that follows neither runs nor trips over it. Returns the
    ids set aside. Rows another cluster is looking at right now are left to it."""
    from django_q.models import Schedule, Task

    now = now or timezone.now()
    set_aside = []
    with transaction.atomic(using=router.db_for_write(Schedule)):
        due = (
            Schedule.objects.select_for_update(skip_locked=True)
            .exclude(repeats=0)
            .filter(next_run__lt=now)
            .order_by("pk")
        )
        for schedule in due:
            problems = schedule_problems(
                **{field: getattr(schedule, field) for field in GUARDED_FIELDS}
            )
            if not problems:
                continue
            reason = _problems_in_words(problems)
            task_id = uuid.uuid4().hex
            Task.objects.create(
                id=task_id,
                name=str(schedule.name or f"schedule {schedule.pk}")[:100],
                func=schedule.func[:256],
                group=str(schedule.name or schedule.pk)[:100],
                started=now,
                stopped=now,
                success=False,
                result=ERR_SCHEDULE_SET_ASIDE.format(problems=reason),
            )
            # An UPDATE: the row is one a save would refuse.
            Schedule.objects.filter(pk=schedule.pk).update(repeats=0, task=task_id)
            audit_record(
                acting_user=None,
                action=AUDIT_SCHEDULE_SET_ASIDE,
                target=schedule,
                reason=reason,
                result=AdminAction.Result.FAILURE,
                details={
                    "name": schedule.name or "",
                    "func": schedule.func,
                    "args": _text(schedule.args),
                    "kwargs": _text(schedule.kwargs),
                    "hook": _text(schedule.hook),
                },
            )
            logger.error("Schedule %s (%s) set aside: %s", schedule.pk, schedule.func, reason)
            set_aside.append(schedule.pk)
    return set_aside


def scheduler_setting_aside_refused(broker=None) -> None:
    """The cluster's scheduler pass: set refused rows aside, then django-q2's own pass."""
    from django_q.scheduler import scheduler

    try:
        schedules_set_aside()
    except Exception:
        # Never stop the pass itself: the enqueue check below still refuses bad functions.
        logger.exception("Could not check the schedules before the scheduler pass")
    scheduler(broker=broker)


def install_cluster_scheduler() -> None:
    """Make qcluster's guard loop call scheduler_setting_aside_refused. django_q.cluster calls
    the name `scheduler` it imported; tests/management/test_schedule_rules.py fails if a
    django-q2 upgrade moves it."""
    from django_q import cluster

    cluster.scheduler = scheduler_setting_aside_refused


# --- On enqueue -------------------------------------------------------------------------------


def _dotted(func) -> str:
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def check_task_before_enqueue(sender, task: dict, **kwargs) -> None:
    """pre_enqueue: a task whose function or hook is not registered runs `refuse_task`
    instead (with the reason), so the worker records it failed and runs nothing else."""
    refuse_unregistered_task(task)


def refuse_unregistered_task(task: dict) -> None:
    """Rewrite `task` (in place) to run `refuse_task` when its function or hook is not
    registered; leave it alone otherwise."""
    allowed = runnable_functions()
    func = _dotted(task.get("func"))
    hook = task.get("hook")
    refused = func if func not in allowed else (_dotted(hook) if hook else "")
    if not refused or refused in allowed:
        return
    reason = ERR_TASK_REFUSED.format(func=refused)
    logger.error("Task %s refused: %s", task.get("name"), reason)
    task["func"] = REFUSE_TASK_FUNC
    task["args"] = (func, reason)
    task["kwargs"] = {}
    task.pop("hook", None)
    task.pop("chain", None)


# --- In the worker ----------------------------------------------------------------------------


class _CheckedTaskQueue:
    """The worker's task queue, each task checked (refuse_unregistered_task) as it is taken.
    django-q2's worker reads its queue only through get() (`iter(task_queue.get, "STOP")`)."""

    def __init__(self, queue):
        self._queue = queue

    def get(self, *args, **kwargs):
        task = self._queue.get(*args, **kwargs)
        if isinstance(task, dict):
            refuse_unregistered_task(task)
        return task


def checked_worker(task_queue, result_queue, timer, *args, **kwargs):
    """django-q2's worker, over a task queue whose tasks are checked before they run."""
    return _django_q_worker(_CheckedTaskQueue(task_queue), result_queue, timer, *args, **kwargs)


def install_checked_worker() -> None:
    """Make the cluster spawn `checked_worker` (django_q.cluster calls the name `worker` it
    imported; its spawn_process compares targets with that name too) and django-q2's sync
    mode call it (django_q.tasks imports django_q.worker.worker when it runs).
    tests/management/test_schedule_rules.py fails if a django-q2 upgrade moves them."""
    global _django_q_worker
    import django_q.worker
    from django_q import cluster

    if django_q.worker.worker is not checked_worker:
        _django_q_worker = django_q.worker.worker
    django_q.worker.worker = checked_worker
    cluster.worker = checked_worker


_django_q_worker = None
