#!/usr/bin/env bash
# Writes users.conf for deploy/nats/nats-server.conf: one NATS user per agent and per operator,
# named by the subject of its TLS client certificate ("CN=<id>", verify_and_map).
#   agents:    publish only under mrtd/v1/<own id>/ (status, metrics, events, readers/+/health,
#              reply/+), subscribe only to their own mrtd/v1/<id>/cmd/+
#   operators: (ids starting "operator-") publish commands to any agent, subscribe to everything
#              under mrtd/v1/
# The same rules as deploy/mosquitto/acl. NATS (2.9, configuration users) has no per-user
# pattern like Mosquitto's %u, so each agent gets its own block: re-run on every enrolment and
# reload the servers (nats-server --signal reload). "$MQTT.sub.>" is the subject the gateway
# delivers a QoS 1 subscription's messages on (one random subject per JetStream consumer):
# without it every QoS 1 SUBSCRIBE fails. An MQTT client cannot use it to read other clients'
# deliveries (test/cluster/nats-acl.test.ts checks that).
# Usage: make-users.sh [--prefix mrtd/v1] [--password-file <file>] <id>... > users.conf
#   --password-file: users with passwords (one "<id> <password>" a line) instead of certificates,
#   for brokers without client certificates; the password is then the agent's mqtt.password.
set -euo pipefail
prefix="mrtd/v1"
pwfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --password-file) pwfile=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: make-users.sh [--prefix p] [--password-file f] <id>..." >&2; exit 2; }
subj=${prefix//\//.}
echo "authorization {"
echo "  users: ["
for id in "$@"; do
  [[ "$id" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || { echo "make-users.sh: bad id: $id" >&2; exit 2; }
  [[ "$id" != *.* ]] || { echo "make-users.sh: $id: a '.' would be a NATS subject separator" >&2; exit 2; }
  if [ -n "$pwfile" ]; then
    pw=$(awk -v id="$id" '$1 == id { print $2 }' "$pwfile")
    [ -n "$pw" ] || { echo "make-users.sh: no password for $id in $pwfile" >&2; exit 2; }
    who="user: \"$id\", password: \"$pw\""
  else
    who="user: \"CN=$id\""
  fi
  if [[ "$id" == operator-* ]]; then
    echo "    { $who, permissions: { publish: { allow: [\"$subj.*.cmd.*\"] }, subscribe: { allow: [\"$subj\", \"$subj.>\", \"\$MQTT.sub.>\"] } } }"
  else
    echo "    { $who, permissions: { publish: { allow: [\"$subj.$id.status\", \"$subj.$id.metrics\", \"$subj.$id.events\", \"$subj.$id.readers.*.health\", \"$subj.$id.reply.*\"] }, subscribe: { allow: [\"$subj.$id.cmd.*\", \"\$MQTT.sub.>\"] } } }"
  fi
done
echo "  ]"
echo "}"
