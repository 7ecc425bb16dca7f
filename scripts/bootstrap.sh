#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 and install the pinned dependencies. Idempotent and quick
# when nothing changed. Usage: scripts/bootstrap.sh [--with-browser] [--with-redis]
#   --with-browser  Debian's chromium for the browser tests (when missing)
#   --with-redis    Debian's redis-server for the scale-out test and benchmark (when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

with_browser=0
with_redis=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --with-redis) with_redis=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--with-browser] [--with-redis]" >&2; exit 2 ;;
  esac
done

find_python() {
  local candidates=(python3.13 python3.12)
  candidates+=("$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3)
  candidates+=(/usr/local/bin/python3.13 /usr/local/bin/python3.12 /usr/bin/python3.13 /usr/bin/python3.12 python3)
  for candidate in "${candidates[@]}"; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PYTHON=$(find_python) || {
    echo "error: django-unfold needs Python >= 3.12; install python3.12 or python3.13." >&2
    exit 1
  }
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "==> installing pinned dependencies"
  .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
  .venv/bin/python -m pip install --quiet -e ".[test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi

apt_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if [ "$with_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium for the browser tests"
  apt_install chromium
fi

# The tests start their own redis-server on a free loopback port; the package's service is
# never used (and on machines without systemd, never started).
if [ "$with_redis" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "==> installing Debian's redis-server for the scale-out test"
  apt_install redis-server
fi
