#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a Debian machine that has
# only Node/npm: Debian packages (pcscd, the vpcd virtual reader driver, Mosquitto) and the
# npm dependencies (Bun itself comes from npm). Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pcscd libpcsclite1 vsmartcard-vpcd mosquitto mosquitto-clients pcsc-tools opensc openssl libjpeg-turbo-progs qemu-user-static libc6-arm64-cross)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "dev-setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "dev-setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # pcscd and mosquitto must not be left running as system services by the install:
  # the demo and the tests start their own on loopback.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm dependencies, reinstalled only when package-lock.json changed since the last install.
stamp=node_modules/.mrtd-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/bun ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "dev-setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi
