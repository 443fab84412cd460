#!/usr/bin/env bash
# What the tests need beyond the Python packages of pyproject.toml's [test] extra: Debian's
# Chromium for the dashboard's browser tests (tests/functional/test_dashboard_browser.py), which
# Playwright drives at /usr/bin/chromium -- no `playwright install`, nothing downloaded at run time;
# and Debian's haproxy, the load balancer in front of two controllers in
# tests/functional/test_ha_controllers.py (the test runs its own, on free ports; the package's
# service stays unconfigured).
# Idempotent: apt-get runs only when the package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LOG=${SETUP_LOG:-$VENV/setup.log}
mkdir -p "$(dirname "$LOG")"
PACKAGES=(chromium fonts-dejavu-core haproxy)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "setup: missing Debian packages ${missing[*]} (the browser and HA tests): run as root, or install them" >&2
  exit 1
fi
echo "setup: installing Debian packages ${missing[*]} for the browser and HA tests (log: $LOG)"
echo "=== $(date -u +%FT%TZ) installing ${missing[*]}" >>"$LOG"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"; } >>"$LOG" 2>&1; then
  echo "setup: FAILED: installing ${missing[*]}; the last lines of $LOG:" >&2
  tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  exit 1
fi
