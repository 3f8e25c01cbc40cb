#!/usr/bin/env bash
# Makes a TEST certificate authority and certificates for deploy/mosquitto/mosquitto.conf:
#   ca.crt/ca.key            the fleet CA (test only: its key sits next to it)
#   broker.crt/broker.key    the broker, valid for 127.0.0.1, ::1 and localhost (plus $BROKER_HOSTS)
#   <agent>.crt/<agent>.key  one per agent id given (CN = agent id = MQTT username)
#   operator-test.crt/.key   an operator (CN operator-test, named in deploy/mosquitto/acl)
#   operator-<x>.crt/.key    more operators, one per operator-<x> given (each needs its own
#                            "user" block in the ACL; the broker makes the CN the client id)
# Usage: deploy/make-test-pki.sh <out-dir> [agent-id | operator-<x> ...]   (default agent id: agent-test)
# Keys are EC P-256. Not for production: use your own CA and keep its key offline.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -lt 1 ] && exit 2 || exit 0
fi
out=$1
shift
agents=("$@")
[ ${#agents[@]} -eq 0 ] && agents=(agent-test)
for a in "${agents[@]}"; do
  [[ "$a" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || { echo "make-test-pki: bad agent id: $a" >&2; exit 2; }
  [ "$a" = operator-test ] && { echo "make-test-pki: operator-test is always made" >&2; exit 2; }
done

mkdir -p "$out"
umask 077
cd "$out"
days=3650

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.key ]; then
  key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=mrtd-agent test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi

# sign <name> <CN> <extensions>
sign() {
  local name=$1 cn=$2 ext=$3
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
  printf '%b' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

san="IP:127.0.0.1,IP:::1,DNS:localhost"
for h in ${BROKER_HOSTS:-}; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
done
sign broker "mrtd-agent test broker" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=$san\n"

client_ext="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
for a in "${agents[@]}"; do sign "$a" "$a" "$client_ext"; done
sign operator-test operator-test "$client_ext"

# The broker may run as the mosquitto user: let it read its own files.
chmod 644 ca.crt broker.crt ./*.crt
if getent passwd mosquitto >/dev/null && [ "$(id -u)" -eq 0 ]; then chown mosquitto broker.key; fi
echo "make-test-pki: wrote $(pwd): ca, broker, ${agents[*]}, operator-test" >&2
