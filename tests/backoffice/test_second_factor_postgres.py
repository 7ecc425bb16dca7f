"""One code, one use, however many requests carry it at once (second_factor.match_code): on
PostgreSQL, threads (each its own connection, like requests on several servers) give the same
backup code or TOTP code together, and exactly one is accepted. The library's "find, then
delete/save" is slowed down here so the race is wide open without the device row lock."""

import threading
import time

import pytest
from django.db import connection
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.second_factor import match_code
from tests.backoffice.two_factor_support import enrol, totp_code
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 4
PAUSE = 0.3  # seconds between the library's check and its write


def accepted_in_parallel(user, code: str) -> int:
    """How many of THREADS simultaneous match_code(user, code) calls accepted the code."""
    barrier = threading.Barrier(THREADS)
    results, errors = [], []
    lock = threading.Lock()

    def runner():
        try:
            barrier.wait()
            device = match_code(user, code)
            with lock:
                results.append(device is not None)
        except Exception as exc:  # reported below, never swallowed
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == THREADS
    return sum(results)


def test_one_backup_code_given_by_parallel_requests_signs_in_once(monkeypatch):
    user = UserFactory(username="ana")
    _, codes = enrol(user)
    delete = StaticToken.delete

    def slow_delete(self, *args, **kwargs):
        time.sleep(PAUSE)
        return delete(self, *args, **kwargs)

    monkeypatch.setattr(StaticToken, "delete", slow_delete)
    assert accepted_in_parallel(user, codes[0]) == 1
    assert not StaticToken.objects.filter(token=codes[0]).exists()


def test_one_totp_code_given_by_parallel_requests_signs_in_once(monkeypatch):
    user = UserFactory(username="ana")
    device, _ = enrol(user)
    stamp = TOTPDevice.set_last_used_timestamp

    def slow_stamp(self, *args, **kwargs):
        time.sleep(PAUSE)
        return stamp(self, *args, **kwargs)

    monkeypatch.setattr(TOTPDevice, "set_last_used_timestamp", slow_stamp)
    assert accepted_in_parallel(user, totp_code(device)) == 1
