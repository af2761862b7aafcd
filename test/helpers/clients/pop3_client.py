#!/usr/bin/env python3
"""A scripted POP3 client for tests: log in, STAT, optionally RETR the last message.

Prints one JSON object on stdout; exits 0 on success, 1 with
{"ok": false, "error": "..."} otherwise. Standard library only (poplib).

  pop3_client.py --port 21101 --user bob@example.net --password secret \
      [--host 127.0.0.1] [--retr-last] [--tls | --stls] [--cafile CA] \
      [--servername NAME] [--timeout SECONDS]

Output keys: ok, greeting, capabilities (before login, from CAPA), count,
size, last ({subject, body}) with --retr-last.
"""
import argparse
import email
import email.policy
import json
import poplib
import socket
import ssl
import sys


def make_context(args):
    if args.cafile:
        ctx = ssl.create_default_context(cafile=args.cafile)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.servername:
        orig = ctx.wrap_socket
        ctx.wrap_socket = lambda sock, **kw: orig(sock, **{**kw, "server_hostname": args.servername})
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--retr-last", action="store_true")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--stls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--servername")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    out = {"ok": False}
    try:
        if args.tls:
            conn = poplib.POP3_SSL(args.host, args.port, timeout=args.timeout, context=make_context(args))
        else:
            conn = poplib.POP3(args.host, args.port, timeout=args.timeout)
        out["greeting"] = conn.getwelcome().decode("utf-8", "replace")
        try:
            out["capabilities"] = sorted(conn.capa().keys())
        except poplib.error_proto:
            out["capabilities"] = []
        if args.stls:
            conn.stls(context=make_context(args))
        conn.user(args.user)
        conn.pass_(args.password)
        count, size = conn.stat()
        out["count"], out["size"] = count, size
        if args.retr_last and count > 0:
            _, lines, _ = conn.retr(count)
            m = email.message_from_bytes(b"\r\n".join(lines), policy=email.policy.default)
            body = m.get_body(("plain",))
            out["last"] = {"subject": str(m["subject"] or ""), "body": body.get_content() if body else ""}
        conn.quit()
        out["ok"] = True
    except (poplib.error_proto, OSError, socket.timeout, ssl.SSLError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
