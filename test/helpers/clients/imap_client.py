#!/usr/bin/env python3
"""A scripted IMAP client for tests: log in, optionally append, select, fetch.

Prints one JSON object on stdout and exits 0 on success; on failure prints
{"ok": false, "error": "..."} and exits 1. Uses only the standard library
(imaplib), so it behaves like an ordinary client.

  imap_client.py --port 21100 --user alice@example.com --password secret \
      [--host 127.0.0.1] [--mailbox INBOX] [--append-subject S] [--body TEXT] \
      [--subject S]          only fetch messages whose Subject contains S
      [--tls | --starttls] [--cafile CA] [--servername NAME]
      [--timeout SECONDS]

Output keys: ok, greeting, capabilities (before login), login, mailbox,
exists, appended (the APPEND response text, if any), messages (list of
{uid, subject, from, to, body}).
"""
import argparse
import email
import email.policy
import email.utils
import imaplib
import json
import socket
import ssl
import sys
import time


def make_context(args):
    """Verify against --cafile when given, otherwise accept any certificate.
    --servername replaces the SNI name (imaplib would send the host)."""
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


def connect(args):
    if args.tls:
        return imaplib.IMAP4_SSL(args.host, args.port, ssl_context=make_context(args), timeout=args.timeout)
    conn = imaplib.IMAP4(args.host, args.port, timeout=args.timeout)
    if args.starttls:
        conn.starttls(ssl_context=make_context(args))
    return conn


def text(b):
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--append-subject")
    p.add_argument("--body", default="Hello from imap_client.py\r\n")
    p.add_argument("--subject", help="fetch only messages whose Subject contains this")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--servername")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    out = {"ok": False}
    try:
        conn = connect(args)
        out["greeting"] = text(conn.welcome)
        out["capabilities"] = sorted(conn.capabilities)
        typ, data = conn.login(args.user, args.password)
        out["login"] = typ
        if args.append_subject:
            msg = (
                f"From: {args.user}\r\n"
                f"To: {args.user}\r\n"
                f"Subject: {args.append_subject}\r\n"
                f"Date: {email.utils.formatdate()}\r\n"
                f"Message-ID: <{time.time_ns()}.imap_client@mailfront.test>\r\n"
                "\r\n"
                f"{args.body}"
            ).encode()
            typ, data = conn.append(args.mailbox, None, None, msg)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {typ} {data!r}")
            out["appended"] = text(data[0])
        typ, data = conn.select(args.mailbox)
        if typ != "OK":
            raise RuntimeError(f"SELECT failed: {typ} {data!r}")
        out["mailbox"] = args.mailbox
        out["exists"] = int(data[0])
        if args.subject:
            typ, data = conn.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT", f'"{args.subject}"')
        else:
            typ, data = conn.uid("SEARCH", "ALL")
        uids = text(data[0]).split() if data and data[0] else []
        messages = []
        for uid in uids:
            typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next(part[1] for part in data if isinstance(part, tuple))
            m = email.message_from_bytes(raw, policy=email.policy.default)
            body = m.get_body(("plain",))
            messages.append({
                "uid": int(uid),
                "subject": str(m["subject"] or ""),
                "from": str(m["from"] or ""),
                "to": str(m["to"] or ""),
                "body": body.get_content() if body else "",
            })
        out["messages"] = messages
        conn.logout()
        out["ok"] = True
    except (imaplib.IMAP4.error, OSError, RuntimeError, socket.timeout, ssl.SSLError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
