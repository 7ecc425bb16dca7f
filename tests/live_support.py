"""Polling a live server's work from the test thread.

With SQLite the live server and the test share one in-memory database in shared-cache mode,
where a read that meets another connection's write lock fails at once ("database table is
locked") instead of waiting as a file database or PostgreSQL would. A poll that meets it has
simply looked too early: it tries again, like any other "not yet"."""

import time
from collections.abc import Callable

from django.db import OperationalError


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.3,
    describe: Callable[[], object] = lambda: "",
) -> None:
    """Return once `condition()` is true; fail with `describe()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; {describe()}")
        time.sleep(interval)
