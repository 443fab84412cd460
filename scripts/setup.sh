#!/usr/bin/env bash
# Installs what Cumulo needs on Debian 12 (as root): system packages, then a virtualenv with
# the Python packages.  Idempotent; does nothing slow when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# apt-get's and pip's output goes to this file; the terminal gets one line per step, and the
# log's last lines when a step fails
LOG=${SETUP_LOG:-$VENV/setup.log}
mkdir -p "$(dirname "$LOG")"
step() {  # step WHAT COMMAND...
  echo "setup: $1"
  echo "=== $(date -u +%FT%TZ) $1" >>"$LOG"
  if ! "${@:2}" >>"$LOG" 2>&1; then
    echo "setup: FAILED: $1; the last lines of $LOG:" >&2
    tail -n 20 "$LOG" | sed 's/^/  | /' >&2
    exit 1
  fi
}
apt_install() { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
PACKAGES=(python3 python3-venv python3-dev ca-certificates qemu-utils qemu-system-x86 genisoimage
          iproute2 dnsmasq-base iptables ebtables conntrack openssh-client rclone)
# npm for the dashboard's browser libraries, unless a Node.js with npm is already there
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${missing[*]}: run as root, or install them" >&2
    exit 1
  fi
  step "installing Debian packages ${missing[*]} (log: $LOG)" apt_install "${missing[@]}"
fi
if [ ! -x "$VENV/bin/python" ]; then
  step "creating the virtualenv $VENV" python3 -m venv "$VENV"
  step "upgrading pip" "$VENV/bin/pip" install --upgrade pip
fi
step "installing Python packages into $VENV (log: $LOG)" "$VENV/bin/pip" install -e .
# the dashboard's browser libraries (xterm.js for the serial console), from the npm registry into
# cumulo/dashboard/node_modules, which the dashboard serves at /vendor: nothing from a CDN at run time
step "installing the dashboard's browser libraries (npm ci)" \
  npm ci --prefix cumulo/dashboard --omit=dev --no-audit --no-fund --loglevel=error
