"""Real engines for the scale-out test and benchmark: a throwaway redis-server, q clusters as
separate processes on it, and the environment they share with the push driver.

Every process started here is stopped here, by PID: redis-server with SIGTERM then SIGKILL;
a q cluster with SIGTERM to its own PID (django-q2's graceful stop: workers finish their
task), then SIGKILL to its whole process group. Each cluster is started as the leader of a
new session, so its sentinel, pusher, monitor and workers share its process group: a worker
orphaned by a parent that died or ignored SIGTERM (LIBRARY_NOTES: one cluster in four did)
is still in that group and is killed with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = "redis-server"
WEBHOOK_SECRET = "whsec_scaleout"

ERR_NO_REDIS_SERVER = (
    "redis-server is missing: scripts/bootstrap.sh --with-redis installs Debian's redis-server "
    "(scripts/test.sh does)."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, *, grace: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class RedisServer:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        _stop(self.process, grace=10)


def start_redis(directory: Path) -> RedisServer:
    """redis-server on a free loopback port, in memory only (no RDB, no AOF)."""
    if shutil.which(REDIS_SERVER) is None:
        raise RuntimeError(ERR_NO_REDIS_SERVER)
    import redis

    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "redis.log").open("w")
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return RedisServer(process=process, url=url)
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process, grace=1)
                raise RuntimeError(
                    f"redis-server did not start:\n{(directory / 'redis.log').read_text()}"
                ) from None
            time.sleep(0.1)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for other processes to reach the database this process uses (the
    test database pytest-django created)."""
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}" if password else user
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{settings_dict['NAME']}"


def process_env(*, database: str, redis_url: str, stripe_api_base: str, **extra: str) -> dict:
    """Production settings (backoffice.settings.base) on the Redis broker: what gunicorn and
    the q clusters of the production topology run with, pointed at the test's peers."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backoffice.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "Q_SYNC": "0",
        "Q_WORKERS": "2",
        "STRIPE_API_BASE": stripe_api_base,
        "STRIPE_SECRET_KEY": "sk_test_localstripe",
        "STRIPE_LOCALSTRIPE_COMPAT": "1",
        # The client-side bucket guards real Stripe's limit; localstripe has none.
        "STRIPE_MAX_REQUESTS_PER_SECOND": "1000",
        "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass
class QCluster:
    process: subprocess.Popen
    log_path: Path
    stopped_cleanly: bool | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def group_alive(self) -> bool:
        """Any process left in the cluster's process group (its workers included)?"""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, *, grace: float = 20) -> None:
        """SIGTERM to the cluster's own PID (django-q2 stops gracefully), SIGKILL to its whole
        process group after `grace` seconds, and in any case to what is left of the group
        (orphaned workers)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
                self.stopped_cleanly = True
            except subprocess.TimeoutExpired:
                self.stopped_cleanly = False
        deadline = time.monotonic() + 10
        while self.group_alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"q cluster {self.pid}: processes left after SIGKILL")
            time.sleep(0.1)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def start_cluster(env: dict, log_path: Path) -> QCluster:
    """`manage.py qcluster` as the leader of its own process group."""
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return QCluster(process=process, log_path=log_path)


def stop_all(clusters: list[QCluster]) -> None:
    """Stop every cluster (each by its PID), even when one of them fails to stop."""
    errors = []
    for cluster in clusters:
        try:
            cluster.stop()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise errors[0]


def run_driver(env: dict, *args: str, log_path: Path) -> subprocess.Popen:
    """The push driver (tests/scaleout/driver.py) in its own process."""
    log = log_path.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scaleout.driver", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
