#!/usr/bin/env bash
# A throwaway Dovecot 2.3 (Debian's dovecot-imapd, -pop3d, -managesieved) for
# the e2e tests and `mailfront demo --with-dovecot`, on a machine that holds
# cyrus-imapd: Debian's Dovecot packages conflict with it, so they are never
# installed. Their .deb files are fetched once (apt-get download) and unpacked
# (dpkg -x) into a cache; Dovecot runs in a private mount namespace where that
# tree is laid over /usr (overlayfs, read-only), so its compiled-in paths
# (/usr/lib/dovecot) resolve. Nothing outside the namespace changes, apart
# from the `dovecot` and `dovenull` users, created when missing.
#
#   dovecot.sh fetch                   fetch and unpack the packages (cached)
#   dovecot.sh start  DIR [BASEPORT]   write config under DIR, start, wait for
#                                      the ports, print KEY=VALUE lines
#   dovecot.sh stop   DIR [--clean]    stop; --clean also removes DIR
#   dovecot.sh status DIR              RUNNING=yes|no (exit 3 when stopped)
#
# Ports (127.0.0.1 only), from BASEPORT (default 21500):
#   imap = BASE, pop3 = BASE+1, sieve = BASE+2    PROXY protocol required
#                                                 (haproxy = yes), from
#                                                 haproxy_trusted_networks
#   imap = BASE+3, sieve = BASE+4                 direct, no PROXY header
#
# Environment:
#   DOVECOT_USERS          "user@domain:password ..." (default: carol@example.org:secret)
#   DOVECOT_TRUSTED        haproxy_trusted_networks (default: 127.0.0.1/32)
#   MF_DOVECOT_CACHE       package cache (default: /var/cache/mailfront/dovecot)
#   DOVECOT_START_TIMEOUT  seconds to wait for the ports (default: 30)
set -euo pipefail

PKGS=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-managesieved dovecot-sieve)
CACHE="${MF_DOVECOT_CACHE:-/var/cache/mailfront/dovecot}"
ROOT="$CACHE/root"
MARKER=.mf-dovecot-instance # only a DIR holding this file is ever removed by --clean

die() { echo "dovecot.sh: $*" >&2; exit 1; }
log() { echo "dovecot.sh: $*" >&2; }

# ---------------------------------------------------------------- packages

cmd_fetch() {
  [ -f "$ROOT/.complete" ] && return 0
  mkdir -p "$CACHE"
  # Two test files may start at once: one fetches, the other waits (bounded).
  exec 9>"$CACHE/.lock"
  flock -w 300 9 || die "another fetch holds $CACHE/.lock"
  [ -f "$ROOT/.complete" ] && return 0
  mkdir -p "$CACHE/debs"
  log "fetching ${PKGS[*]} into $CACHE/debs"
  # apt-get download as root warns that _apt cannot write here: run it unsandboxed.
  if ! (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "${PKGS[@]}" >/dev/null); then
    apt-get update -qq
    (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "${PKGS[@]}" >/dev/null) \
      || die "apt-get download ${PKGS[*]} failed"
  fi
  rm -rf "$ROOT.tmp"
  mkdir -p "$ROOT.tmp"
  local deb
  for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$ROOT.tmp"; done
  [ -x "$ROOT.tmp/usr/sbin/dovecot" ] && [ -x "$ROOT.tmp/usr/lib/dovecot/managesieve" ] \
    || die "the unpacked packages hold no dovecot or managesieve binary"
  dpkg-deb -f "$(ls "$CACHE"/debs/dovecot-core_*.deb | head -n 1)" Version >"$ROOT.tmp/.complete"
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
  log "Dovecot $(cat "$ROOT/.complete") unpacked in $ROOT"
}

ensure_users() {
  # Dovecot's internal users (default_internal_user, default_login_user).
  local u
  for u in dovecot dovenull; do
    getent passwd "$u" >/dev/null || useradd --system --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
  done
}

# ---------------------------------------------------------------- settings

set_paths() {
  DIR="$1"
  BASEPORT="${2:-}"
  if [ -z "$BASEPORT" ] && [ -f "$DIR/baseport" ]; then BASEPORT="$(cat "$DIR/baseport")"; fi
  BASEPORT="${BASEPORT:-21500}"
  [[ "$BASEPORT" =~ ^[0-9]+$ ]] && [ "$BASEPORT" -ge 1024 ] && [ "$BASEPORT" -le 65530 ] \
    || die "BASEPORT must be a number between 1024 and 65530, got '$BASEPORT'"
  IMAP_PORT=$BASEPORT
  POP3_PORT=$((BASEPORT + 1))
  SIEVE_PORT=$((BASEPORT + 2))
  IMAP_DIRECT_PORT=$((BASEPORT + 3))
  SIEVE_DIRECT_PORT=$((BASEPORT + 4))
  CONF="$DIR/dovecot.conf"
  PIDFILE="$DIR/run/master.pid"
  LOG_FILE="$DIR/log/dovecot.log"
  USERS="${DOVECOT_USERS:-carol@example.org:secret}"
  START_TIMEOUT="${DOVECOT_START_TIMEOUT:-30}"
}

print_keys() {
  echo "DIR=$DIR"
  echo "IMAP_PORT=$IMAP_PORT"
  echo "POP3_PORT=$POP3_PORT"
  echo "SIEVE_PORT=$SIEVE_PORT"
  echo "IMAP_DIRECT_PORT=$IMAP_DIRECT_PORT"
  echo "SIEVE_DIRECT_PORT=$SIEVE_DIRECT_PORT"
  echo "LOG_FILE=$LOG_FILE"
  [ -f "$ROOT/.complete" ] && echo "VERSION=$(cat "$ROOT/.complete")"
  return 0
}

master_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q 'dovecot' "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local trusted="${DOVECOT_TRUSTED:-127.0.0.1/32}"
  cat >"$CONF" <<EOF
# dovecot.sh instance $DIR (Dovecot $(cat "$ROOT/.complete"))
protocols = imap pop3 sieve
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
# No syslog daemon here: a file the tests read.
log_path = $LOG_FILE
info_log_path = $LOG_FILE
login_greeting = Dovecot ready (mf-dovecot-$BASEPORT)
# The real client (rip, rport) and the address it reached at mailfront (lip,
# lport) on each login line. Not %{local_name}: Dovecot 2.3 keeps the PROXY
# AUTHORITY in memory it frees before the login process reads it (garbage).
login_log_format_elements = user=<%u> method=%m rip=%r rport=%{rport} lip=%l lport=%{lport} mpid=%e %c session=<%{session}>
ssl = no
# Dovecot's default, kept: plaintext logins only on a secured connection,
# which a proxied one is when mailfront's PROXY v2 SSL TLV says TLS.
disable_plaintext_auth = yes
auth_mechanisms = plain login
haproxy_trusted_networks = $trusted
haproxy_timeout = 5s
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$DIR/home/%d/%n
}
namespace inbox {
  inbox = yes
}
service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
    haproxy = yes
  }
  inet_listener imap_direct {
    port = $IMAP_DIRECT_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $POP3_PORT
    haproxy = yes
  }
  inet_listener pop3s {
    port = 0
  }
}
service managesieve-login {
  inet_listener sieve {
    port = $SIEVE_PORT
    haproxy = yes
  }
  inet_listener sieve_direct {
    port = $SIEVE_DIRECT_PORT
  }
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
EOF
  : >"$DIR/users"
  local entry user pass
  for entry in $USERS; do
    user="${entry%%:*}"; pass="${entry#*:}"
    echo "$user:{PLAIN}$pass" >>"$DIR/users"
    mkdir -p "$DIR/home/${user#*@}/${user%%@*}"
  done
  chmod 0640 "$DIR/users"
  chown root:dovecot "$DIR/users"
  mkdir -p "$DIR/log" "$DIR/state"
  chown -R mail:mail "$DIR/home"
}

wait_for_ports() {
  # The direct listeners greet; the PROXY ones only accept (they wait for a header).
  local deadline=$((SECONDS + START_TIMEOUT)) spec port want line
  for spec in "$IMAP_DIRECT_PORT:* OK" "$SIEVE_DIRECT_PORT:\"IMPLEMENTATION\"" "$POP3_PORT:" "$IMAP_PORT:" "$SIEVE_PORT:"; do
    port="${spec%%:*}"; want="${spec#*:}"
    while :; do
      if [ -z "$want" ]; then
        port_free "$port" || break
      elif line="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r l <&3 && printf "%s" "$l"' _ "$port" 2>/dev/null)" \
        && [[ "$line" == "$want"* ]]; then
        break
      fi
      master_pid >/dev/null || fail_start "dovecot exited before 127.0.0.1:$port answered"
      [ $SECONDS -lt $deadline ] || fail_start "127.0.0.1:$port did not answer within ${START_TIMEOUT}s"
      sleep 0.2
    done
  done
}

fail_start() {
  [ -s "$LOG_FILE" ] && { echo "---- last lines of $LOG_FILE" >&2; tail -n 30 "$LOG_FILE" >&2; }
  cmd_stop 0 >/dev/null 2>&1 || true
  die "$*"
}

cmd_start() {
  local pid port
  if pid="$(master_pid)"; then
    log "already running in $DIR (pid $pid)"
    print_keys
    return 0
  fi
  [ ${#DIR} -le 60 ] || die "DIR is ${#DIR} characters; keep it under 60 (unix socket paths in base_dir)"
  [[ "$DIR" =~ ^[A-Za-z0-9_./-]+$ ]] || die "DIR may hold only letters, digits and _ . / -"
  for port in "$IMAP_PORT" "$POP3_PORT" "$SIEVE_PORT" "$IMAP_DIRECT_PORT" "$SIEVE_DIRECT_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use: pick another BASEPORT"
  done
  cmd_fetch
  ensure_users
  mkdir -p "$DIR"
  # Dovecot's auth process (user dovecot) reads DIR/users: mkdtemp's 0700 would stop it.
  chmod 0755 "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  set_paths "$DIR" "$BASEPORT"
  touch "$DIR/$MARKER"
  echo "$BASEPORT" >"$DIR/baseport"
  write_config
  # The overlay lives as long as the namespace, that is as long as dovecot:
  # master forks into the background and the shell that mounted it exits.
  unshare --mount --propagation private sh -c \
    'mount -t overlay mf-dovecot -o "lowerdir=$1/usr:/usr" /usr && exec /usr/sbin/dovecot -c "$2"' \
    _ "$ROOT" "$CONF" 2>"$DIR/log/start.err" \
    || { cat "$DIR/log/start.err" >&2; fail_start "dovecot failed to start"; }
  local i
  for i in $(seq 1 50); do master_pid >/dev/null && break; sleep 0.1; done
  master_pid >/dev/null || fail_start "dovecot did not write $PIDFILE"
  wait_for_ports
  log "Dovecot running in $DIR (pid $(master_pid))"
  print_keys
}

cmd_stop() {
  local clean="$1" pid i
  if pid="$(master_pid)"; then
    # master stops its children on SIGTERM; 10 s, then SIGKILL the process group.
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "dovecot $pid ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL -- "-$(ps -o pgid= -p "$pid" | tr -d ' ')" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    for i in $(seq 1 50); do
      port_free "$IMAP_PORT" && port_free "$SIEVE_PORT" && port_free "$IMAP_DIRECT_PORT" && break
      sleep 0.1
    done
    log "stopped (pid $pid)"
  else
    log "not running in $DIR"
  fi
  if [ "$clean" = 1 ] && [ -d "$DIR" ]; then
    [ -f "$DIR/$MARKER" ] || die "refusing to remove $DIR: it is not a dovecot.sh instance"
    rm -rf "$DIR"
    log "removed $DIR"
  fi
}

cmd_status() {
  local pid
  print_keys
  if pid="$(master_pid)"; then echo "RUNNING=yes"; echo "MASTER_PID=$pid"; else echo "RUNNING=no"; return 3; fi
}

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
[ "$(id -u)" -eq 0 ] || die "must run as root (mount namespace, dovecot drops privileges itself)"
action="$1"; shift
case "$action" in
  fetch) cmd_fetch ;;
  start) [ $# -ge 1 ] || usage; set_paths "$1" "${2:-}"; cmd_start ;;
  stop) [ $# -ge 1 ] || usage; set_paths "$1"; cmd_stop "$([ "${2:-}" = --clean ] && echo 1 || echo 0)" ;;
  status) [ $# -ge 1 ] || usage; set_paths "$1"; cmd_status ;;
  *) usage ;;
esac
