"""The webhook endpoint under gunicorn on loopback at a steady rate: p50 / p99 latency.

Run: scripts/bench.sh tests/benchmarks/bench_webhook.py   (or `pytest -m benchmark -s` on
this file). Prints figures, asserts only correctness (every delivery answered 200, one row per
distinct event). Target from DESIGN.md: p99 <= 100 ms at 200 req/s.

The server gets its own throwaway database: a new database on the PostgreSQL cluster when
DATABASE_URL points at one (scripts/bench.sh starts one), else an SQLite file (WAL) in a
temporary directory. No q cluster runs: this measures verify + store + enqueue, which is
all the endpoint does before answering.

Knobs: BENCH_WEBHOOK_RATE (200 req/s), BENCH_WEBHOOK_SECONDS (10), BENCH_WEBHOOK_WORKERS (2
gunicorn workers x 4 threads), BENCH_WEBHOOK_DUPLICATES (0.1: share of re-deliveries),
BENCH_WEBHOOK_SETTINGS (the server's settings module; backoffice.settings.base).

The machine is shared: the figures print the load average beside them, and a client send lag
above 50 ms means the load generator itself fell behind.
"""

import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from tests.payments.webhook_support import make_event, sign

pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parents[2]
RATE = int(os.environ.get("BENCH_WEBHOOK_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_WEBHOOK_SECONDS", "10"))
WORKERS = int(os.environ.get("BENCH_WEBHOOK_WORKERS", "2"))
DUPLICATES = float(os.environ.get("BENCH_WEBHOOK_DUPLICATES", "0.1"))
SECRET = "whsec_bench_current"
SETTINGS = os.environ.get("BENCH_WEBHOOK_SETTINGS", "backoffice.settings.base")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def database(tmp_path):
    """(label, DATABASE_URL) of an empty, migrated database for the server."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        import psycopg

        name = f"bench_webhook_{uuid.uuid4().hex[:8]}"
        parsed = urlparse(base)
        admin_url = urlunparse(parsed._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url, label = urlunparse(parsed._replace(path=f"/{name}")), f"PostgreSQL ({name})"
    else:
        name = None
        url, label = f"sqlite:///{tmp_path / 'bench.sqlite3'}", "SQLite file (WAL)"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "backoffice.settings.base"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    yield label, url
    if name:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(database):
    label, url = database
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "STRIPE_WEBHOOK_SECRETS": f"whsec_bench_old,{SECRET}",
        "Q_SYNC": "0",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "backoffice.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/stripe/webhook/")
            conn.getresponse().read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.2)
    yield label, url, port
    process.terminate()
    process.wait(timeout=20)


def _count_rows(url):
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM payments_webhookevent").fetchone()[0]
    import sqlite3

    with sqlite3.connect(urlparse(url).path) as conn:
        return conn.execute("SELECT count(*) FROM payments_webhookevent").fetchone()[0]


def _pct(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def test_webhook_endpoint_latency_under_gunicorn(server):
    label, url, port = server
    total = int(RATE * SECONDS)
    rng = random.Random(7)
    bodies, distinct = [], set()
    for i in range(total):
        if bodies and rng.random() < DUPLICATES:
            bodies.append(rng.choice(bodies))  # a re-delivery of an earlier event
            continue
        event = make_event(
            "payment_intent.succeeded",
            {"id": f"pi_bench{i:07d}", "object": "payment_intent", "amount": 1000 + i},
            event_id=f"evt_bench_{uuid.uuid4().hex}",
        )
        distinct.add(event["id"])
        bodies.append(json.dumps(event).encode())

    # Signed up front (well inside the 300 s tolerance) to keep the load generator light.
    signatures = {body: sign(body, SECRET) for body in set(bodies)}
    local = threading.local()
    latencies, lags, statuses = [], [], []
    lock = threading.Lock()

    def deliver(body, due):
        started = time.perf_counter()
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json", "Stripe-Signature": signatures[body]}
        try:
            conn.request("POST", "/stripe/webhook/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (http.client.HTTPException, OSError):
            local.conn = None
            status = -1
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(elapsed)
            lags.append((started - due) * 1000)
            statuses.append(status)

    # Open loop: request i is sent at start + i / RATE whatever the previous ones are doing.
    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.perf_counter() + 0.2
        for i, body in enumerate(bodies):
            due = start + i / RATE
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(deliver, body, due)
    wall = time.perf_counter() - start

    rows = _count_rows(url)
    print(
        f"\nwebhook endpoint, gunicorn {WORKERS} workers x 4 threads on 127.0.0.1, {label}\n"
        f"  offered {RATE} req/s for {SECONDS:.0f} s: {total} requests "
        f"({total - len(distinct)} re-deliveries), achieved {total / wall:.0f} req/s\n"
        f"  latency ms: p50 {_pct(latencies, 50):.1f}  p90 {_pct(latencies, 90):.1f}  "
        f"p99 {_pct(latencies, 99):.1f}  max {max(latencies):.1f}  "
        f"mean {statistics.fmean(latencies):.1f}  (target p99 <= 100)\n"
        f"  client send lag ms: p99 {_pct(lags, 99):.1f}"
        f"{' (the load generator fell behind)' if _pct(lags, 99) > 50 else ''}\n"
        f"  machine load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
        f"  statuses: { {s: statuses.count(s) for s in set(statuses)} }; rows {rows} for "
        f"{len(distinct)} distinct events"
    )
    assert statuses.count(200) == total
    assert rows == len(distinct)
