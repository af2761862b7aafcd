#!/usr/bin/env python3
"""A tiny syslog receiver for throwaway Cyrus instances.

Cyrus logs only through syslog(3) and these machines run no syslog daemon, so
without this its login lines and startup errors go nowhere. The catcher binds
the unix datagram socket /dev/log (only when nobody else owns it) and routes
each line by its syslog ident: Cyrus tags lines "PREFIX/service[pid]" where
PREFIX is the instance's `syslog_prefix`. A route is a file
SPOOL/routes/PREFIX whose content is the path of the log file to append to;
scripts/cyrus.sh writes it on start and removes it on stop. Lines with no route go to
SPOOL/unrouted.log.

One catcher serves every instance on the machine (there is only one /dev/log).
It holds SPOOL/catcher.lock for its whole life so a second copy exits at once,
and it exits by itself (removing /dev/log) once no route has existed for
IDLE_EXIT seconds.

Usage: syslog_catcher.py SPOOL [SOCKET]   (SOCKET defaults to /dev/log)
"""
import errno
import fcntl
import os
import re
import signal
import socket
import sys
import time

IDLE_EXIT = 10.0
# "<PRI>Mmm dd hh:mm:ss IDENT[pid]: message" (glibc) or "<PRI>IDENT[pid]: message"
LINE_RE = re.compile(
    r"^<(?P<pri>\d+)>(?:(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) )?(?P<ident>[^\s:\[]+)")


def socket_is_live(path: str) -> bool:
    """True when something answers on the datagram socket at path."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def main() -> int:
    spool = sys.argv[1]
    sock_path = sys.argv[2] if len(sys.argv) > 2 else "/dev/log"
    routes = os.path.join(spool, "routes")
    os.makedirs(routes, exist_ok=True)

    lock = open(os.path.join(spool, "catcher.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another catcher already runs

    if os.path.exists(sock_path):
        if socket_is_live(sock_path):
            return 0  # a real syslog (or someone's test) owns it: leave it alone
        os.unlink(sock_path)  # stale socket left by a killed catcher

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chmod(sock_path, 0o666)  # Cyrus services run as the cyrus user
    bound_ino = os.stat(sock_path).st_ino
    with open(os.path.join(spool, "catcher.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")

    def cleanup(*_args):
        try:
            if os.stat(sock_path).st_ino == bound_ino:
                os.unlink(sock_path)
        except OSError:
            pass
        try:
            os.unlink(os.path.join(spool, "catcher.pid"))
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGINT, cleanup)
    sock.settimeout(1.0)
    last_route_seen = time.monotonic()

    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            data = None
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if os.listdir(routes):
            last_route_seen = time.monotonic()
        elif time.monotonic() - last_route_seen > IDLE_EXIT:
            cleanup()
        if not data:
            continue
        line = data.decode("utf-8", "replace").rstrip("\n\0")
        m = LINE_RE.match(line)
        dest = os.path.join(spool, "unrouted.log")
        if m:
            prefix = m.group("ident").split("/", 1)[0]
            route = os.path.join(routes, prefix)
            try:
                with open(route) as f:
                    dest = f.read().strip() or dest
            except OSError:
                pass
            # drop "<PRI>" and put our own timestamp in front (glibc's has no year)
            line = line[m.end("pri") + 1:]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            with open(dest, "a") as f:
                f.write(f"{stamp} {line}\n")
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
