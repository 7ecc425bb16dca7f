"""Every function our code queues with django-q2's async_task is one the workers will run.

management/schedule_rules.py refuses (at enqueue and in the worker) any task outside the job
registry and QUEUED_TASK_FUNCTIONS. A new async_task call whose function is not listed would
pass its unit tests with a fake queue and then do nothing in production: this reads every
call in the apps' source and checks its function path against the list."""

import ast
from pathlib import Path

from management.schedules import QUEUED_TASK_FUNCTIONS, schedulable_functions

ROOT = Path(__file__).resolve().parents[2]
APPS = ("backoffice", "payments", "refunds", "reports", "management")


def queued_function_paths():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name != "async_task":
                    continue
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    yield path.relative_to(ROOT), first.value
                elif isinstance(first, ast.Name):
                    yield (
                        path.relative_to(ROOT),
                        constants.get(first.id, f"<unresolved {first.id}>"),
                    )
                else:
                    yield path.relative_to(ROOT), f"<not a literal: {ast.dump(first)[:60]}>"


def test_every_queued_task_is_one_the_workers_may_run():
    allowed = set(QUEUED_TASK_FUNCTIONS) | set(schedulable_functions())
    found = list(queued_function_paths())
    # The refund, payout, webhook and customer adjustment tasks at least.
    assert len(found) >= 4
    missing = [(str(path), func) for path, func in found if func not in allowed]
    assert missing == []
