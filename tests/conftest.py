"""Shared fixtures: staff users, a localstripe process, a real browser.

PostgreSQL tests (`-m postgres`) run in their own pass with DATABASE_URL pointing at the
throwaway cluster that scripts/test.sh starts (scripts/pgcluster.py).
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.core.servers import basehttp
from django.db import connection

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


# --- Live servers -----------------------------------------------------------------------------

# With SQLite, pytest-django hands the test's one in-memory connection to the live server's
# request threads. Two requests at once on one connection break each other ("cannot open
# savepoint - SQL statements in progress"): localstripe delivering several events at once and
# a browser loading a page and its assets both do it. Each request is served whole under one
# lock instead (still a thread per connection, so browsers' keep-alive connections wait their
# turn rather than block). PostgreSQL runs give each thread its own connection anyway.
_ONE_REQUEST_AT_A_TIME = threading.Lock()
_serve = basehttp.ServerHandler.run


def _serve_one_at_a_time(self, application):
    with _ONE_REQUEST_AT_A_TIME:
        return _serve(self, application)


basehttp.ServerHandler.run = _serve_one_at_a_time


# --- Staff ------------------------------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return UserFactory(username="boss", is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _postgres_marker_needs_postgres(request):
    """A `postgres` test on another database would prove nothing: fail it loudly."""
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL: run scripts/test.sh, or set DATABASE_URL=postgres://...")


# --- localstripe ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory):
    """localstripe in its own process on 127.0.0.1 and a free port; its URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "localstripe_server.py"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited at start:\n{log_path.read_text()}")
        try:
            requests.get(f"{url}/v1/customers", auth=("sk_test_x", ""), timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"localstripe did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def localstripe(localstripe_server, settings):
    """An empty localstripe, with the gateway's settings pointing at it."""
    response = requests.delete(f"{localstripe_server}/_config/data", timeout=5)
    response.raise_for_status()
    settings.STRIPE_API_BASE = localstripe_server
    settings.STRIPE_SECRET_KEY = "sk_test_localstripe"
    return localstripe_server


# --- Browser ----------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; never a browser downloaded by a test tool."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh --with-browser installs it")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def screenshot_dir():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
