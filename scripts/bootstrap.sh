#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: both virtual environments, the browser-side bundle, and (with --test)
# Debian's Chromium for the browser tests. Each step is skipped when its lock file has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${WARMLINE_PYTHON:-python3.11}
PIP_VERSION=24.3.1

fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

ensure_venv() { # dir, stamp, install-command...
  local dir=$1 want=$2; shift 2
  if [ "$(cat "$dir/.warmline-stamp" 2>/dev/null)" = "$want" ]; then return; fi
  echo "==> Setting up $dir (first run or lock file changed)"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip==$PIP_VERSION"
  "$@"
  echo "$want" > "$dir/.warmline-stamp"
}

# Rasa 3.6 declares Python < 3.11 but runs on 3.11 with the pins in this lock (see docs/architecture.md):
# a fully pinned list installed without resolution is the reproducible way to get it there.
ensure_venv .venv-rasa "$(fingerprint requirements/rasa.lock)" \
  .venv-rasa/bin/python -m pip install -q --disable-pip-version-check --ignore-requires-python --no-deps \
  -r requirements/rasa.lock

ensure_venv .venv "$(fingerprint requirements/app.lock pyproject.toml)" \
  sh -c '.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements/app.lock &&
         .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .'

want=$(fingerprint console/package.json console/package-lock.json)
if [ "$(cat console/node_modules/.warmline-stamp 2>/dev/null)" != "$want" ]; then
  echo "==> Installing the browser bundle (npm ci)"
  (cd console && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > console/node_modules/.warmline-stamp
fi

# --- Test-only browser packages (widget tests): rasa-webchat and axe-core from tests/web/package-lock.json.
# Only their files are used (served to or injected into the test pages): no install scripts run.
if [ "${1:-}" = "--test" ]; then
  want=$(fingerprint tests/web/package.json tests/web/package-lock.json)
  if [ "$(cat tests/web/node_modules/.warmline-stamp 2>/dev/null)" != "$want" ]; then
    echo "==> Installing the test-only browser packages (npm ci in tests/web)"
    (cd tests/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$want" > tests/web/node_modules/.warmline-stamp
  fi
fi
# --- end of the test-only browser packages

if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> Installing Debian's Chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

# --- Scale-out tests (tests/test_scale_out_lb.py, bench/load.py): Debian's HAProxy, run by the tests from
# deploy/haproxy.cfg in the foreground (the package's own service is not used).
if [ "${1:-}" = "--test" ] && ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  echo "==> Installing Debian's HAProxy for the scale-out tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  fi
fi
# --- end of the scale-out tests' packages
