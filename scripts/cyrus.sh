#!/usr/bin/env bash
# A throwaway, self-contained Cyrus IMAP 3.6 instance for tests and the demo.
#
#   cyrus.sh start  DIR [BASEPORT]   write config under DIR, start master, wait
#                                    until every port answers, make each user's
#                                    INBOX, print KEY=VALUE lines
#   cyrus.sh stop   DIR [--clean]    stop master and its children; --clean
#                                    also removes DIR
#   cyrus.sh status DIR              print ports and whether it runs (exit 3
#                                    when it does not)
#
# Ports (loopback only), from BASEPORT (default 21100):
#   imap = BASE   pop3 = BASE+1   sieve = BASE+2   lmtp = BASE+3
# Run it twice with different DIR and BASEPORT for two independent instances.
#
# Environment:
#   CYRUS_USERS           "user@domain:password ..." (default: alice@example.com
#                         and bob@example.net, password "secret")
#   CYRUS_ADMIN           admin user name (default: cyrus), CYRUS_ADMIN_PASSWORD
#                         (default: secret)
#   CYRUS_SYSLOG=0        do not start the /dev/log catcher
#   CYRUS_START_TIMEOUT   seconds to wait for the ports (default: 30)
#
# Keep DIR short (unix socket paths are limited to ~100 bytes) and somewhere
# the `cyrus` user can reach (/tmp is fine, /root is not).
set -euo pipefail

CYRUS_BIN=/usr/lib/cyrus/bin
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SYSLOG_SPOOL=/tmp/mf-syslog
MARKER=.mf-cyrus-instance # only a DIR holding this file is ever removed by --clean

die() { echo "cyrus.sh: $*" >&2; exit 1; }
log() { echo "cyrus.sh: $*" >&2; }

# ---------------------------------------------------------------- settings

set_paths() {
  DIR="$1"
  BASEPORT="${2:-}"
  # A running or stopped instance remembers its base port, so stop/status
  # and a restart without BASEPORT find the same ports.
  if [ -z "$BASEPORT" ] && [ -f "$DIR/baseport" ]; then BASEPORT="$(cat "$DIR/baseport")"; fi
  BASEPORT="${BASEPORT:-21100}"
  [[ "$BASEPORT" =~ ^[0-9]+$ ]] && [ "$BASEPORT" -ge 1024 ] && [ "$BASEPORT" -le 65530 ] \
    || die "BASEPORT must be a number between 1024 and 65530, got '$BASEPORT'"
  IMAP_PORT=$BASEPORT
  POP3_PORT=$((BASEPORT + 1))
  SIEVE_PORT=$((BASEPORT + 2))
  LMTP_PORT=$((BASEPORT + 3))
  CONF="$DIR/imapd.conf"
  CYRUSCONF="$DIR/cyrus.conf"
  PIDFILE="$DIR/master.pid"
  SASLDB="$DIR/sasldb2"
  LOGDIR="$DIR/log"
  SYSLOG_FILE="$LOGDIR/syslog.log"
  MASTER_OUT="$LOGDIR/master.out"
  # syslog ident prefix: tells this instance's lines apart in the shared catcher
  SYSLOG_PREFIX="mfc$BASEPORT"
  SERVERNAME="mf-cyrus-$BASEPORT"
  DEFAULTDOMAIN="mf-cyrus.invalid"
  USERS="${CYRUS_USERS:-alice@example.com:secret bob@example.net:secret}"
  ADMIN="${CYRUS_ADMIN:-cyrus}"
  ADMIN_PASSWORD="${CYRUS_ADMIN_PASSWORD:-secret}"
  START_TIMEOUT="${CYRUS_START_TIMEOUT:-30}"
}

print_keys() {
  echo "DIR=$DIR"
  echo "IMAP_PORT=$IMAP_PORT"
  echo "POP3_PORT=$POP3_PORT"
  echo "SIEVE_PORT=$SIEVE_PORT"
  echo "LMTP_PORT=$LMTP_PORT"
  echo "SYSLOG_FILE=$SYSLOG_FILE"
  echo "ADMIN=$ADMIN"
  echo "USERS=$USERS"
}

# ---------------------------------------------------------------- processes

master_pid() {
  # Prints the master's pid when it is alive (and really a Cyrus master).
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q 'master' "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

descendants() {
  # Every live descendant of pid $1, from one `ps` snapshot.
  ps -e -o pid= -o ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      for (pid in parent) {
        p = parent[pid]
        while (p != "" && p > 1) { if (p == root) { print pid; break } p = parent[p] }
      }
    }'
}

port_free() {
  # True when nothing accepts on 127.0.0.1:$1.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

read_greeting() {
  # Connects to 127.0.0.1:$1 and prints the first line the server sends
  # (bounded by 3 seconds); fails if nothing arrives.
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r line <&3 || exit 1
    printf "%s\n" "${line%$'"'"'\r'"'"'}"
    exec 3>&-' _ "$1" 2>/dev/null
}

show_logs() {
  # The tail of whatever log exists, for error messages.
  local f
  for f in "$MASTER_OUT" "$SYSLOG_FILE"; do
    if [ -s "$f" ]; then
      echo "---- last lines of $f" >&2
      tail -n 30 "$f" >&2
    fi
  done
  [ -s "$SYSLOG_FILE" ] || [ "${CYRUS_SYSLOG:-1}" = 0 ] \
    || echo "(no syslog lines: /dev/log may belong to another listener)" >&2
}

# ---------------------------------------------------------------- syslog

start_syslog_catcher() {
  # Cyrus logs only via syslog(3) and no syslog daemon runs here. Route this
  # instance's lines (ident "$SYSLOG_PREFIX/...") to $SYSLOG_FILE through one
  # shared catcher bound at /dev/log. If a live /dev/log belongs to someone
  # else (a real syslogd, or a test listening itself), leave it alone.
  [ "${CYRUS_SYSLOG:-1}" = 0 ] && return 0
  mkdir -p "$SYSLOG_SPOOL/routes"
  echo "$SYSLOG_FILE" >"$SYSLOG_SPOOL/routes/$SYSLOG_PREFIX"
  if [ -S /dev/log ] && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null; then
    [ -f "$SYSLOG_SPOOL/catcher.pid" ] || log "note: /dev/log belongs to another listener; Cyrus lines go there, not to $SYSLOG_FILE"
    return 0
  fi
  setsid python3 "$HERE/syslog_catcher.py" "$SYSLOG_SPOOL" /dev/log \
    </dev/null >>"$SYSLOG_SPOOL/catcher.out" 2>&1 &
  local i
  for i in $(seq 1 50); do
    [ -S /dev/log ] && return 0
    sleep 0.1
  done
  log "warning: the syslog catcher did not bind /dev/log (see $SYSLOG_SPOOL/catcher.out); going on without Cyrus logs"
}

stop_syslog_route() {
  # The catcher exits by itself ~10 s after the last route is gone.
  rm -f "$SYSLOG_SPOOL/routes/$SYSLOG_PREFIX"
}

# ---------------------------------------------------------------- config

write_config() {
  # configdirectory holds the databases (mailboxes.db...), sockets, proc and
  # lock files; the spool is the mail partition; sievedir holds scripts.
  mkdir -p "$DIR/conf/socket" "$DIR/conf/proc" "$DIR/conf/lock" "$DIR/conf/db" \
           "$DIR/spool" "$DIR/sieve" "$LOGDIR"
  touch "$DIR/$MARKER"
  echo "$BASEPORT" >"$DIR/baseport"

  cat >"$CONF" <<EOF
# Written by scripts/cyrus.sh: a throwaway Cyrus instance. Do not edit.
configdirectory: $DIR/conf
defaultpartition: default
partition-default: $DIR/spool
sievedir: $DIR/sieve
sieveusehomedir: false
proc_path: $DIR/conf/proc
mboxname_lockpath: $DIR/conf/lock
# unix sockets: keep them inside the instance, away from /run/cyrus
lmtpsocket: $DIR/conf/socket/lmtp
idlesocket: $DIR/conf/socket/idle
notifysocket: $DIR/conf/socket/notify
syslog_prefix: $SYSLOG_PREFIX

servername: $SERVERNAME
admins: $ADMIN
virtdomains: userid
# defaultdomain: users of this domain lose their "@domain" before SASL looks
# them up (alice@example.com would become plain "alice"), so it must be a
# domain no test user is in. Unqualified users (the admin) live in it and in
# the SASL realm SERVERNAME.
defaultdomain: $DEFAULTDOMAIN
unixhierarchysep: yes
altnamespace: no
lmtp_downcase_rcpt: yes

# Users live in a sasldb inside the instance; no saslauthd.
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $SASLDB
sasl_mech_list: PLAIN LOGIN
# mailfront relays plaintext over loopback: Cyrus must offer PLAIN/LOGIN there.
allowplaintext: yes

# INBOX is created at a user's first IMAP/POP3 login (quota >= 0; 0 = unlimited).
# autocreate_post stays off: lmtpd does not consult the sasldb, so with it any
# recipient (nobody@example.net) would get a mailbox instead of a 550.
autocreate_quota: 0

# A wrong password gets its NO at once (Cyrus sleeps 3 s by default): mailfront's
# own login bans are what the tests judge, and each wrong try cost 3 s of waiting.
failedloginpause: 0

# Tests want mail at once: no duplicate suppression surprises between runs.
duplicatesuppression: no
popminpoll: 0
umask: 077
EOF

  # cyrus.conf: master runs START to completion, then DAEMON and SERVICES.
  # Binaries are looked up in /usr/lib/cyrus/bin. master does NOT pass its own
  # -C on to them (they would read /etc/imapd.conf): every cmd names -C itself.
  cat >"$CYRUSCONF" <<EOF
# Written by scripts/cyrus.sh: a throwaway Cyrus instance. Do not edit.
START {
  # recover the databases (and create them in an empty configdirectory)
  recover   cmd="ctl_cyrusdb -C $CONF -r"
}

SERVICES {
  imap      cmd="imapd -C $CONF -U 30" listen="127.0.0.1:$IMAP_PORT"  prefork=0 maxchild=100
  pop3      cmd="pop3d -C $CONF -U 30" listen="127.0.0.1:$POP3_PORT"  prefork=0 maxchild=50
  sieve     cmd="timsieved -C $CONF" listen="127.0.0.1:$SIEVE_PORT" prefork=0 maxchild=100
  # -a: preauthorised LMTP on loopback, so delivery needs no LMTP AUTH
  lmtp      cmd="lmtpd -C $CONF -a" listen="127.0.0.1:$LMTP_PORT"  prefork=0 maxchild=20
  lmtpunix  cmd="lmtpd -C $CONF" listen="$DIR/conf/socket/lmtp" prefork=0 maxchild=20
}

EVENTS {
  checkpoint cmd="ctl_cyrusdb -C $CONF -c" period=30
}

DAEMON {
  # idled makes IMAP IDLE push changes at once instead of polling
  idled     cmd="idled -C $CONF"
}
EOF
}

write_users() {
  # (Re)create every user in the instance's sasldb; -c creates or updates.
  local entry user pass
  for entry in "$ADMIN:$ADMIN_PASSWORD" $USERS; do
    user="${entry%%:*}"; pass="${entry#*:}"
    [ -n "$user" ] && [ "$user" != "$entry" ] || die "bad user entry '$entry' (want user@domain:password)"
    if [[ "$user" == *@* ]]; then
      printf '%s' "$pass" | saslpasswd2 -p -c -f "$SASLDB" -u "${user#*@}" "${user%%@*}"
    else
      # an unqualified name is looked up in the realm "servername"
      printf '%s' "$pass" | saslpasswd2 -p -c -f "$SASLDB" -u "$SERVERNAME" "$user"
    fi
  done
}

fix_ownership() {
  # Services run as cyrus:mail; every path must be theirs. The instance's
  # parent must be traversable too (mktemp -d gives 0700 dirs).
  chown -R cyrus:mail "$DIR"
  chmod 750 "$DIR"
  chmod 640 "$SASLDB"
  local parent
  parent="$(dirname "$DIR")"
  while [ "$parent" != "/" ]; do
    # setpriv, not su: no PAM session, nothing written to syslog
    if ! setpriv --reuid=cyrus --regid=mail --init-groups test -x "$parent" 2>/dev/null; then
      die "the cyrus user cannot enter $parent: put DIR somewhere else (e.g. under /tmp)"
    fi
    parent="$(dirname "$parent")"
  done
}

# ---------------------------------------------------------------- start

fail_start() {
  # A half-started instance is worse than none: show the logs, stop it, fail.
  show_logs
  cmd_stop 0 >/dev/null 2>&1 || true
  die "$*"
}

wait_for_ports() {
  # Each service must accept and send its greeting; bounded by START_TIMEOUT.
  local deadline=$((SECONDS + START_TIMEOUT)) name port want line
  for spec in "imap:$IMAP_PORT:* OK" "pop3:$POP3_PORT:+OK" "sieve:$SIEVE_PORT:\"IMPLEMENTATION\"" "lmtp:$LMTP_PORT:220 "; do
    name="${spec%%:*}"; port="${spec#*:}"; want="${port#*:}"; port="${port%%:*}"
    while :; do
      if line="$(read_greeting "$port")" && [[ "$line" == "$want"* ]]; then
        break
      fi
      if ! master_pid >/dev/null; then
        fail_start "master exited before $name (port $port) answered"
      fi
      if [ $SECONDS -ge $deadline ]; then
        fail_start "$name on 127.0.0.1:$port did not greet within ${START_TIMEOUT}s (last: '${line:-nothing}')"
      fi
      sleep 0.2
    done
  done
}

# One plain IMAP login (imaplib, as an ordinary client): Cyrus creates the INBOX.
FIRST_LOGIN='import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=15)
m.login(sys.argv[2], sys.argv[3])
m.select("INBOX")
m.logout()'

ensure_inboxes() {
  # timsieved refuses a user whose INBOX does not exist and never creates it;
  # one IMAP login creates it (autocreate_quota >= 0).
  local entry user pass out
  for entry in $USERS; do
    user="${entry%%:*}"; pass="${entry#*:}"
    if ! out="$(timeout 20 python3 -c "$FIRST_LOGIN" "$IMAP_PORT" "$user" "$pass" 2>&1)"; then
      fail_start "first IMAP login of $user failed: $out"
    fi
  done
}

cmd_start() {
  local pid
  if pid="$(master_pid)"; then
    log "already running in $DIR (master pid $pid)"
    print_keys
    return 0
  fi
  [ -x "$CYRUS_BIN/master" ] || die "$CYRUS_BIN/master not found: run scripts/install-deps.sh"
  [ ${#DIR} -le 70 ] || die "DIR is ${#DIR} characters; keep it under 70 (unix socket paths)"
  [[ "$DIR" =~ ^[A-Za-z0-9_./-]+$ ]] || die "DIR may hold only letters, digits and _ . / - (it goes into cyrus.conf)"
  local port
  for port in "$IMAP_PORT" "$POP3_PORT" "$SIEVE_PORT" "$LMTP_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use: pick another BASEPORT"
  done

  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)" # absolute: it goes into config files
  set_paths "$DIR" "$BASEPORT"
  rm -f "$PIDFILE"
  write_config
  write_users
  fix_ownership
  : >"$MASTER_OUT"; chown cyrus:mail "$MASTER_OUT"
  start_syslog_catcher

  # master starts as root, drops to cyrus; -d daemonises (it returns once it
  # has forked); -L keeps its own stdout/stderr (early config errors).
  CYRUS_SYSLOG_PREFIX="$SYSLOG_PREFIX" "$CYRUS_BIN/master" \
    -C "$CONF" -M "$CYRUSCONF" -p "$PIDFILE" -d -L "$MASTER_OUT" \
    || { show_logs; die "master failed to start"; }

  local i
  for i in $(seq 1 50); do master_pid >/dev/null && break; sleep 0.1; done
  master_pid >/dev/null || fail_start "master did not write $PIDFILE"

  wait_for_ports
  ensure_inboxes
  log "Cyrus running in $DIR (master pid $(master_pid))"
  print_keys
}

# ---------------------------------------------------------------- stop

cmd_stop() {
  local clean="$1" pid kids i
  if pid="$(master_pid)"; then
    # master kills its children on SIGTERM; give it 10 s, then SIGKILL all.
    kids="$(descendants "$pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "master $pid ignored SIGTERM for 10 s: SIGKILL"
      kids="$kids $(descendants "$pid")"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
    # wait (bounded) until the ports are released
    for i in $(seq 1 50); do
      port_free "$IMAP_PORT" && port_free "$POP3_PORT" && port_free "$SIEVE_PORT" && port_free "$LMTP_PORT" && break
      sleep 0.1
    done
    rm -f "$PIDFILE"
    log "stopped (master pid $pid)"
  else
    log "not running in $DIR"
  fi
  stop_syslog_route
  if [ "$clean" = 1 ] && [ -d "$DIR" ]; then
    [ -f "$DIR/$MARKER" ] || die "refusing to remove $DIR: it is not a cyrus.sh instance"
    rm -rf "$DIR"
    log "removed $DIR"
  fi
}

# ---------------------------------------------------------------- status

cmd_status() {
  local pid
  print_keys
  if pid="$(master_pid)"; then
    echo "RUNNING=yes"
    echo "MASTER_PID=$pid"
  else
    echo "RUNNING=no"
    return 3
  fi
}

# ---------------------------------------------------------------- main

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 2 ] || usage
[ "$(id -u)" -eq 0 ] || die "must run as root (master starts as root and drops to cyrus)"
action="$1"; shift
dir_arg="$1"; shift
case "$action" in
  start)
    set_paths "$dir_arg" "${1:-}"
    cmd_start
    ;;
  stop)
    clean=0
    [ "${1:-}" = "--clean" ] && clean=1
    set_paths "$dir_arg" ""
    cmd_stop "$clean"
    ;;
  status)
    set_paths "$dir_arg" "${1:-}"
    cmd_status
    ;;
  *) usage ;;
esac
