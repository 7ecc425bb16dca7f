#!/usr/bin/env bash
# Benchmarks print figures; they are never part of the normal suite. Needs a few minutes and
# ~2 GB of disk for the 1M-row PostgreSQL database. Usage: scripts/bench.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-redis
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=backoffice.settings.test
pgdir=$(mktemp -d /tmp/backoffice-bench-pg.XXXXXX)
stop_pg() { $PY scripts/pgcluster.py stop "$pgdir" || true; rm -rf "$pgdir"; }
trap stop_pg EXIT
if [ -z "${DATABASE_URL:-}" ]; then
  export "$($PY scripts/pgcluster.py start "$pgdir")"
fi
$PY -m pytest -m benchmark -s -q tests/benchmarks "$@"
