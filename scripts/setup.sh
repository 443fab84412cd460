#!/usr/bin/env bash
# Installs what Cumulo needs on Debian 12 (as root): system packages, then a virtualenv with
# the Python packages.  Idempotent; does nothing slow when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PACKAGES=(python3 python3-venv python3-dev ca-certificates qemu-utils qemu-system-x86 genisoimage
          iproute2 dnsmasq-base iptables ebtables conntrack openssh-client rclone)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${missing[*]}: run as root, or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
echo "setup: installing Python packages into $VENV"
"$VENV/bin/pip" install -q -e .
