#!/usr/bin/env bash
# One command from a fresh clone to the back-office with demo data at
# http://127.0.0.1:8000/admin/ : installs, migrates, seeds, starts localstripe (a fake Stripe on
# 127.0.0.1:8420) and a django-q2 cluster beside the web server. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PY=.venv/bin/python
mkdir -p var

export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:8420}"
export STRIPE_SECRET_KEY="${STRIPE_SECRET_KEY:-sk_test_demo}"
# The peer is localstripe: the gateway and refunds leave out what it refuses.
export STRIPE_LOCALSTRIPE_COMPAT="${STRIPE_LOCALSTRIPE_COMPAT:-1}"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

echo "==> starting localstripe on 127.0.0.1:8420"
$PY scripts/localstripe_server.py --port 8420 --state var/localstripe.pickle > var/localstripe.log 2>&1 &
pids+=($!)

$PY manage.py migrate --no-input -v0
$PY manage.py seed_demo --if-empty
echo "==> demo logins"
$PY manage.py demo_staff

echo "==> starting the django-q2 cluster (log: var/qcluster.log)"
$PY manage.py qcluster > var/qcluster.log 2>&1 &
pids+=($!)

echo "==> back-office at http://127.0.0.1:8000/admin/"
$PY manage.py runserver 127.0.0.1:8000
