#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a Debian machine that has
# only Node/npm: Debian packages (pcscd, the vpcd virtual reader driver, Mosquitto, chromium for the
# dashboard's browser tests, prometheus for promtool) and the
# npm dependencies (Bun itself comes from npm). Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pcscd libpcsclite1 vsmartcard-vpcd mosquitto mosquitto-clients pcsc-tools opensc openssl libjpeg-turbo-progs qemu-user-static libc6-arm64-cross chromium prometheus)

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

# Debian's arm64 libpcsclite, unpacked beside the build output (not installed): the build
# test runs the arm64 binary under qemu-aarch64 against this machine's pcscd with it. Same
# version as the installed amd64 library, from the same mirror; the .deb's SHA-256 is pinned
# here per version (Debian signs its indices, not single packages). Unknown version: skipped,
# and the test says so.
ARM64_PCSCLITE_SHA256=(
  "1.9.9-2 df60212d5ebcdc179d6e6398bbf8bb6f56e575afef733cf09b04e2c41de9f153"
)
arm64_dir=dist/.arm64-pcsclite
if [ ! -e "$arm64_dir/usr/lib/aarch64-linux-gnu/libpcsclite.so.1" ]; then
  version=$(dpkg-query -W -f='${Version}' libpcsclite1)
  sha=""
  for entry in "${ARM64_PCSCLITE_SHA256[@]}"; do [ "${entry%% *}" = "$version" ] && sha="${entry#* }"; done
  url=$(apt-get download --print-uris libpcsclite1 2>/dev/null | sed -n "s/^'\([^']*\)_amd64\.deb'.*/\1_arm64.deb/p")
  if [ -z "$sha" ] || [ -z "$url" ]; then
    echo "dev-setup: no pinned checksum for libpcsclite1 $version (arm64): the arm64 read test will be skipped" >&2
  else
    tmp=$(mktemp -d)
    # Node is always here (curl may not be).
    if node -e 'fetch(process.argv[1]).then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.arrayBuffer(); }).then((b) => require("fs").writeFileSync(process.argv[2], Buffer.from(b)))' "$url" "$tmp/pcsclite.deb" 2>/dev/null \
      && echo "$sha  $tmp/pcsclite.deb" | sha256sum -c --quiet - 2>/dev/null; then
      mkdir -p "$arm64_dir" && dpkg-deb -x "$tmp/pcsclite.deb" "$arm64_dir"
    else
      echo "dev-setup: could not fetch or verify $url: the arm64 read test will be skipped" >&2
    fi
    rm -rf "$tmp"
  fi
fi
