#!/usr/bin/env bash
# One command from a fresh clone to the back-office with demo data at
# http://127.0.0.1:8000/admin/ : installs, migrates, seeds, starts localstripe (a fake Stripe on
# 127.0.0.1:8420) and a django-q2 cluster beside the web server. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PY=.venv/bin/python
mkdir -p var

DEMO_PORT="${DEMO_PORT:-8000}"
LOCALSTRIPE_PORT="${LOCALSTRIPE_PORT:-8420}"
export DEMO_PORT
export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:$LOCALSTRIPE_PORT}"
export STRIPE_SECRET_KEY="${STRIPE_SECRET_KEY:-sk_test_demo}"
# The peer is localstripe: the gateway and refunds leave out what it refuses.
export STRIPE_LOCALSTRIPE_COMPAT="${STRIPE_LOCALSTRIPE_COMPAT:-1}"
# No debug pages in the demo: errors show the admin's own 403 / 404 / 500 pages
# (backoffice/errors.py). runserver --insecure below still serves the static files.
export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
# Webhooks: localstripe signs its events with the first secret and POSTs them to the server.
export STRIPE_WEBHOOK_SECRETS="${STRIPE_WEBHOOK_SECRETS:-whsec_demo_localstripe}"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

echo "==> starting localstripe on 127.0.0.1:$LOCALSTRIPE_PORT"
$PY scripts/localstripe_server.py --port "$LOCALSTRIPE_PORT" --state var/localstripe.pickle > var/localstripe.log 2>&1 &
pids+=($!)

$PY manage.py migrate --no-input -v0
$PY manage.py seed_demo --if-empty
echo "==> demo logins"
$PY manage.py demo_staff

echo "==> localstripe will POST its events to http://127.0.0.1:$DEMO_PORT/stripe/webhook/"
$PY - <<'PYEOF'
import os, time, requests
base, secret = os.environ["STRIPE_API_BASE"], os.environ["STRIPE_WEBHOOK_SECRETS"].split(",")[0]
for _ in range(50):  # localstripe may still be starting
    try:
        requests.post(f"{base}/_config/webhooks/backoffice_demo", timeout=2, json={
            "url": f"http://127.0.0.1:{os.environ['DEMO_PORT']}/stripe/webhook/", "secret": secret}).raise_for_status()
        break
    except requests.RequestException:
        time.sleep(0.2)
else:
    raise SystemExit("could not register the demo webhook in localstripe")
PYEOF

echo "==> starting the django-q2 cluster (log: var/qcluster.log)"
$PY manage.py qcluster > var/qcluster.log 2>&1 &
pids+=($!)

$PY manage.py runserver --noreload --insecure "127.0.0.1:$DEMO_PORT" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$DEMO_PORT/admin/login/" && break
  sleep 0.3
done

if [ ! -f var/.demo-activity-done ]; then
  echo "==> a few new purchases in localstripe, arriving here as signed webhooks"
  $PY manage.py demo_activity && touch var/.demo-activity-done || echo "warning: demo purchases failed (see above); the back-office still runs"
fi

echo "==> back-office at http://127.0.0.1:$DEMO_PORT/admin/  (Ctrl-C stops everything)"
wait
