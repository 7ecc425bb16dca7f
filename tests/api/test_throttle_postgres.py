"""The API's write throttles count in the database: on PostgreSQL, concurrent requests of one
window each get their own number, none lost, none repeated (so two processes cannot both take
the last request of a window). Threads each use their own database connection."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from backoffice.api.throttling import count_in_database
from backoffice.models import ApiThrottleWindow

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 30


def test_concurrent_first_requests_of_a_window_count_one_to_n():
    key = "api-throttle:api_user_write:42:29409720"
    expires = datetime.now(tz=UTC) + timedelta(minutes=1)
    barrier = threading.Barrier(THREADS)
    counts, errors = [], []
    lock = threading.Lock()

    def runner():
        try:
            barrier.wait()
            value = count_in_database(key, expires)
            with lock:
                counts.append(value)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(counts) == list(range(1, THREADS + 1))
    assert ApiThrottleWindow.objects.get(key=key).count == THREADS
