#!/usr/bin/env bash
# Runs a command in its own session at the lowest CPU priority, for builds started
# in the background while tests run:
#   bash scripts/low-priority.sh CMD [ARGS...] &  pid=$!
#   ...                                           (the tests)
#   bash scripts/low-priority.sh --raise $pid     (now it holds the tests up: normal priority)
#   wait $pid                                     (kill -- -$pid ends it and all it started)
# Linux's autogroup scheduler (kernel.sched_autogroup_enabled) weighs each session
# as a whole and ignores nice across sessions: a new session would get as much CPU
# as the tests' own. So the session's nice (/proc/PID/autogroup) is set too.
# Raising needs root (CAP_SYS_NICE); without it the build goes on at nice 19.
set -euo pipefail
if [ "${1:-}" = --raise ]; then
  pid=${2:?usage: low-priority.sh --raise PID}
  renice -n 0 -g "$pid" >/dev/null 2>&1 || true
  { [ -w "/proc/$pid/autogroup" ] && echo 0 >"/proc/$pid/autogroup"; } 2>/dev/null || true
  exit 0
fi
if [ "${MF_LOW_PRIORITY:-}" != 1 ]; then
  MF_LOW_PRIORITY=1 exec setsid -w bash "$0" "$@"
fi
unset MF_LOW_PRIORITY
{ [ -w /proc/self/autogroup ] && echo 19 >/proc/self/autogroup; } 2>/dev/null || true
exec nice -n 19 "$@"
