#!/usr/bin/env bash
# Runs a command in its own session at the lowest CPU priority, for builds started
# in the background while tests run:
#   bash scripts/low-priority.sh CMD [ARGS...] &  pid=$!  ...  kill -- -$pid
# Its own session (setsid): `kill -- -$pid` ends it and everything it started.
# Linux's autogroup scheduler (kernel.sched_autogroup_enabled) weighs each session
# as a whole and ignores nice across sessions: a new session would get as much CPU
# as the tests' own. So the session's nice (/proc/self/autogroup) is set to 19 too.
set -euo pipefail
if [ "${MF_LOW_PRIORITY:-}" != 1 ]; then
  MF_LOW_PRIORITY=1 exec setsid -w bash "$0" "$@"
fi
unset MF_LOW_PRIORITY
[ -w /proc/self/autogroup ] && echo 19 >/proc/self/autogroup 2>/dev/null || true
exec nice -n 19 "$@"
