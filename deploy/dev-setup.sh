#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a Debian machine that has
# only Node/npm: Debian packages (pcscd, the vpcd virtual reader driver, Mosquitto, nats-server and
# ejabberd for the cluster tests, chromium for the dashboard's browser tests, prometheus for
# promtool, postgresql for the dashboard's shared store) and the npm dependencies (Bun itself comes
# from npm). Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per step on stderr; what apt-get, dpkg and npm print goes to a log file that is
# shown only when a step fails.
LOG=dist/dev-setup.log
step() { # step "<what and why>" command...
  local what=$1
  shift
  echo "dev-setup: $what" >&2
  mkdir -p "$(dirname "$LOG")"
  echo "== $what" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "dev-setup: failed: $what. The end of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

# Debian packages, by what they are for: "packages|why".
APT_GROUPS=(
  "pcscd libpcsclite1|PC/SC daemon and client library: the agent reads every card through them"
  "libpcsclite-dev|pcsc-lite's header: a test checks the agent's PC/SC error table against it"
  "vsmartcard-vpcd|virtual reader driver: pcscd sees the virtual passport through it"
  "mosquitto mosquitto-clients|MQTT 5 broker on loopback: the demo's fleet view and the service tests"
  "pcsc-tools opensc|pcsc_scan and opensc-tool: look at real readers and cards"
  "openssl|the test PKI and broker certificates"
  "libjpeg-turbo-progs|the virtual passport's face image (JPEG)"
  "qemu-user-static libc6-arm64-cross|run the arm64 binary on this machine in the build test"
  "chromium|headless browser: the dashboard's page is tested as an operator clicks it"
  "prometheus|Prometheus and promtool: a test scrapes the dashboard's /metrics and queries it"
  "postgresql|PostgreSQL: the dashboard's shared store; tests start a cluster of their own on loopback (never the system's)"
  "nats-server|NATS JetStream with its MQTT 3.1.1 gateway: the three-node failover tests and bench:fleet"
  "ejabberd|ejabberd with mod_mqtt (MQTT 5): the three-node failover test"
)

missing=()
lines=()
for group in "${APT_GROUPS[@]}"; do
  want=()
  for p in ${group%%|*}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
  done
  if [ ${#want[@]} -gt 0 ]; then
    missing+=("${want[@]}")
    lines+=("installing ${want[*]}: ${group#*|}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "dev-setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update (Debian package lists, to install ${#missing[@]} package(s))" $SUDO apt-get update -q
  for line in "${lines[@]:0:${#lines[@]}-1}"; do echo "dev-setup: $line" >&2; done
  # pcscd and mosquitto must not be left running as system services by the install:
  # the demo and the tests start their own on loopback.
  step "${lines[-1]}" $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # On an ordinary Debian box (no policy-rc.d refusing it) the install starts and enables the
  # system instances of the brokers, listening on every interface: the tests start their own on
  # loopback and free ports, so stop and disable what this install caused.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for unit in nats-server ejabberd; do
      case " ${missing[*]} " in *" $unit "*)
        step "stopping and disabling the system $unit service the install started (tests run their own)" $SUDO systemctl disable --now "$unit" ;;
      esac
    done
  fi
fi

# npm dependencies, reinstalled only when package-lock.json changed since the last install.
stamp=node_modules/.mrtd-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/bun ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "npm ci: Bun, TypeScript and the agent's libraries, as package-lock.json pins them" npm ci --no-audit --no-fund
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
    echo "dev-setup: fetching Debian's arm64 libpcsclite $version into $arm64_dir: the arm64 binary's read test under qemu" >&2
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
