"""REDIS_URL switches django-q2 to the Redis broker and adds the cache alias "shared", one Redis
that every process sees (a count kept there by one process is seen by the next); without it
the broker is the ORM and there is no "shared" alias. Each case is a fresh process, as
settings are read once at start."""

import json
import os
import subprocess
import sys

import pytest

from tests.scaleout.cluster_support import ROOT, start_redis

pytestmark = pytest.mark.redis

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.core.cache import caches
out = {"broker": "redis" if "redis" in settings.Q_CLUSTER else "orm",
       "aliases": sorted(settings.CACHES)}
if "shared" in settings.CACHES:
    cache = caches["shared"]
    cache.add("probe-hits", 0)
    out["hits"] = cache.incr("probe-hits")
print(json.dumps(out))
"""


def _probe(**env_overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="backoffice.settings.base",
        DATABASE_URL="sqlite:///:memory:",
        **env_overrides,
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_redis_url_gives_the_redis_broker_and_one_shared_cache_for_every_process(tmp_path):
    server = start_redis(tmp_path / "redis")
    try:
        first = _probe(REDIS_URL=server.url)
        second = _probe(REDIS_URL=server.url)
    finally:
        server.stop()
    assert first == {"broker": "redis", "aliases": ["default", "shared"], "hits": 1}
    assert second["hits"] == 2  # another process, the same count


def test_without_redis_url_the_broker_is_the_orm_and_there_is_no_shared_alias():
    assert _probe() == {"broker": "orm", "aliases": ["default"]}
