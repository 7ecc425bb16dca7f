"""Polling a live server's work from the test thread.

With SQLite the live server and the test share one in-memory database in shared-cache mode,
where a read that meets another connection's write lock fails at once ("database table is
locked") instead of waiting as a file database or PostgreSQL would. A poll that meets it has
simply looked too early: it tries again, like any other "not yet"."""

import time
from collections.abc import Callable

import requests
from django.db import OperationalError
from django.db.models import Max


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


# localstripe sends each event about a second after it happens, to the webhooks registered
# at that moment.
DELIVERY_DELAY = 1.5


def let_earlier_events_pass() -> None:
    """Wait until localstripe has sent the events earlier tests made (to no webhook) before a
    test registers its own: an event a test made a moment ago, without a live server, would
    otherwise reach the next test's server and write into its database mid-test."""
    time.sleep(DELIVERY_DELAY)


def stop_deliveries(
    localstripe: str, hook_id: str, *, url: str, secret: str, settle: float = DELIVERY_DELAY
) -> None:
    """Switch localstripe's webhook `hook_id` to no event, then wait until the live server is
    quiet. localstripe sends each event a second after it happens and reads the filter when
    it sends, so after `settle` seconds no new delivery starts; the ones already in flight are
    done when the events' count and states hold still for a second. A
    delivery still writing when the test ends would meet the teardown's flush of the shared
    in-memory database ("table is locked") and break every test after it."""
    from payments.models import WebhookEvent  # after Django is set up

    requests.post(
        f"{localstripe}/_config/webhooks/{hook_id}",
        json={"url": url, "secret": secret, "events": ["none.never"]},
        timeout=5,
    ).raise_for_status()
    time.sleep(settle)
    seen: list = []

    def quiet() -> bool:
        # Stable for three polls (a second): the deliveries in flight are done. An event a
        # delivery left "processing" (two requests at once on the live server's one SQLite
        # connection can break each other) stays so: stable too, and not this helper's to judge.
        seen.append(
            (
                WebhookEvent.objects.count(),
                WebhookEvent.objects.filter(status__in=["received", "processing"]).count(),
                WebhookEvent.objects.aggregate(Max("processed_at"))["processed_at__max"],
            )
        )
        return len(seen) >= 3 and len(set(seen[-3:])) == 1

    wait_until(quiet, timeout=30, interval=0.5, describe=lambda: f"still busy: {seen[-3:]}")
