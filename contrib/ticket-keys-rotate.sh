#!/bin/sh
# Rotates mailfront's session-ticket key file (tls.ticket_keys): a new key on
# top (the one that encrypts new tickets), the previous ones kept below it (they
# still decrypt) up to KEEP keys in all; then mailfront is reloaded.
#
#   ticket-keys-rotate.sh [-f FILE] [-k KEEP] [-g GROUP] [-K KEY] [-u UNIT] [-p PID]... [-n]
#
#   -f FILE   key file (default /etc/mailfront/ticket-keys)
#   -k KEEP   keys kept, the new one included (default 3; at least 2 so that
#             tickets issued just before the rotation still resume)
#   -g GROUP  group of the file (default mailfront, if that group exists); mode 0640
#   -K KEY    put this key on top instead of a fresh one (base64 of 80 bytes):
#             how a fleet shares one key made elsewhere (see docs/fleet.md)
#   -u UNIT   systemd unit to reload (default mailfront.service)
#   -p PID    send SIGHUP to this process instead of asking systemd (repeatable)
#   -n        do not reload anything
#
# The file is written to a temporary file beside it and renamed over it, so a
# reload never reads half a file; concurrent runs are serialized with flock(1).
# A ticket stays valid while its key is in the file: with a rotation every
# 12 hours and KEEP=3, 24 to 36 hours.
set -eu

FILE=/etc/mailfront/ticket-keys
KEEP=3
GROUP=mailfront
KEY=
UNIT=mailfront.service
PIDS=
RELOAD=1

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "ticket-keys-rotate: $*" >&2; exit 1; }

while getopts f:k:g:K:u:p:nh opt; do
  case $opt in
    f) FILE=$OPTARG ;;
    k) KEEP=$OPTARG ;;
    g) GROUP=$OPTARG ;;
    K) KEY=$OPTARG ;;
    u) UNIT=$OPTARG ;;
    p) PIDS="$PIDS $OPTARG" ;;
    n) RELOAD=0 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
case $KEEP in '' | *[!0-9]*) die "-k wants a number, got '$KEEP'" ;; esac
[ "$KEEP" -ge 2 ] || die "-k $KEEP: keep at least 2 keys, or tickets issued a moment ago stop resuming"

# One key: base64 of exactly 80 bytes (name 16, HMAC 32, AES 32).
valid_key() {
  case $1 in '' | *[!A-Za-z0-9+/=]*) return 1 ;; esac
  [ "$(printf '%s' "$1" | base64 -d 2>/dev/null | wc -c)" -eq 80 ]
}

if [ -z "$KEY" ]; then
  KEY=$(head -c 80 /dev/urandom | base64 | tr -d '\n')
fi
valid_key "$KEY" || die "-K: a key is base64 of 80 bytes"

dir=$(dirname -- "$FILE")
[ -d "$dir" ] || die "$dir: no such directory"

# Serialize with other runs (a timer and an operator at the same time).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.ticket-keys.lock"
  flock -w 30 9 || die "another rotation holds $dir/.ticket-keys.lock"
fi

umask 077
tmp=$(mktemp "$dir/.ticket-keys.XXXXXX")
trap 'rm -f "$tmp"' EXIT INT TERM

{
  echo "# mailfront session-ticket keys, newest first ($(date -u +%Y-%m-%dT%H:%M:%SZ), ticket-keys-rotate.sh)"
  echo "$KEY"
  if [ -f "$FILE" ]; then
    n=1
    # Comments and blank lines go; a broken line stops the rotation (mailfront would refuse the file).
    while IFS= read -r line || [ -n "$line" ]; do
      line=$(printf '%s' "$line" | sed 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//')
      [ -n "$line" ] || continue
      valid_key "$line" || die "$FILE: a line is not base64 of 80 bytes; fix the file first"
      [ "$line" = "$KEY" ] && continue
      [ "$n" -lt "$KEEP" ] || break
      echo "$line"
      n=$((n + 1))
    done <"$FILE"
  fi
} >"$tmp"

chmod 0640 "$tmp"
if getent group "$GROUP" >/dev/null 2>&1; then
  chgrp "$GROUP" "$tmp"
elif [ "$GROUP" != mailfront ]; then
  die "group $GROUP does not exist"
fi
mv -f "$tmp" "$FILE"
trap - EXIT INT TERM

[ "$RELOAD" = 1 ] || exit 0
if [ -n "$PIDS" ]; then
  for pid in $PIDS; do kill -HUP "$pid" || die "cannot signal $pid"; done
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-active --quiet "$UNIT"; then
    systemctl reload "$UNIT"
  else
    echo "ticket-keys-rotate: $UNIT is not running; the keys apply at its next start" >&2
  fi
else
  echo "ticket-keys-rotate: no systemd and no -p PID: reload mailfront yourself (SIGHUP)" >&2
fi
