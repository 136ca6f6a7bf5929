#!/usr/bin/env bash
# Install the Debian packages Consentry needs to build and test, only when something is missing.
#   scripts/system-deps.sh          build deps (FFmpeg headers for vpdq, pkg-config, compilers)
#   scripts/system-deps.sh --test   also the test services (PostgreSQL, Chromium, pdftoppm)
set -euo pipefail

want=(pkg-config gcc g++ cmake libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
      libswresample-dev libavdevice-dev libavfilter-dev
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)
if [[ "${1:-}" == "--test" ]]; then
  want+=(postgresql chromium poppler-utils)
fi

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "Installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
