#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite: installs (incl. Chromium and
# redis-server), lints, checks migrations, runs the suite on SQLite, then starts a throwaway
# PostgreSQL cluster and runs the tests that need real locking there, the scale-out test (two
# q clusters on a redis-server it starts itself) among them. Extra arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-browser --with-redis
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=backoffice.settings.test
mkdir -p artifacts

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff . | head -50; exit 1; }

echo "==> migrations are up to date"
DATABASE_URL="sqlite:///:memory:" $PY manage.py makemigrations --check --dry-run >/dev/null

echo "==> check --deploy under production settings (scripts/production.env.example)"
(
  set -a
  # shellcheck disable=SC1091
  . scripts/production.env.example
  set +a
  DJANGO_SECRET_KEY=$($PY -c 'import secrets; print(secrets.token_urlsafe(50))')
  export DJANGO_SECRET_KEY
  DJANGO_SETTINGS_MODULE=backoffice.settings.production \
    $PY manage.py check --deploy --fail-level WARNING
)

echo "==> pytest (SQLite)"
status=0
$PY -m pytest -q "$@" || status=$?

echo "==> pytest -m postgres (throwaway PostgreSQL cluster)"
pgdir=$(mktemp -d /tmp/backoffice-pg.XXXXXX)
stop_pg() { $PY scripts/pgcluster.py stop "$pgdir" || true; rm -rf "$pgdir"; }
trap stop_pg EXIT
if [ -z "${DATABASE_URL:-}" ]; then
  export "$($PY scripts/pgcluster.py start "$pgdir")"
fi
pg_status=0
$PY -m pytest -q -m "postgres and not benchmark" "$@" || pg_status=$?

if [ "$status" != 0 ] || [ "$pg_status" != 0 ]; then
  echo "FAILED: sqlite run exit $status, postgres run exit $pg_status" >&2
  exit 1
fi
