#!/usr/bin/env python3
"""Login attempts with the standard library's clients (imaplib, poplib) over
implicit TLS, each on a new connection from a chosen source address (loopback
has all of 127.0.0.0/8), as a password-guessing client would make them.

  login_tries.py --proto imap|pop3 --port P --source 127.0.0.2 --user U \
      --password PW [--tries N] [--servername NAME] [--timeout S]

The password is read from --password-fd (default: the --password argument is
not used when --password-fd is given), so it never needs a command line.
Prints one JSON object: {"results": ["ok"|"no"|"refused: ..."]...}, one per try:
"ok" the server accepted, "no" it refused the password, "refused" the
connection or the TLS handshake failed (mailfront refused the client).
"""
import argparse
import imaplib
import json
import os
import poplib
import socket
import ssl


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(host, port, source, timeout):
    return socket.create_connection((host, port), timeout, source_address=(source, 0))


class Imaps(imaplib.IMAP4_SSL):
    def __init__(self, host, port, source, servername, timeout):
        self._source, self._servername = source, servername
        super().__init__(host, port, ssl_context=context(), timeout=timeout)

    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(connect(self.host, self.port, self._source, timeout), server_hostname=self._servername)


class Pop3s(poplib.POP3_SSL):
    def __init__(self, host, port, source, servername, timeout):
        self._source, self._servername = source, servername
        super().__init__(host, port, context=context(), timeout=timeout)

    def _create_socket(self, timeout):
        return self.context.wrap_socket(connect(self.host, self.port, self._source, timeout), server_hostname=self._servername)


def one(args, password):
    try:
        if args.proto == "imap":
            c = Imaps(args.host, args.port, args.source, args.servername, args.timeout)
            try:
                c.login(args.user, password)
                c.logout()
                return "ok"
            except imaplib.IMAP4.error:
                return "no"
        c = Pop3s(args.host, args.port, args.source, args.servername, args.timeout)
        try:
            c.user(args.user)
            c.pass_(password)
            c.quit()
            return "ok"
        except poplib.error_proto:
            return "no"
    except (OSError, ssl.SSLError, EOFError, imaplib.IMAP4.abort) as e:
        return "refused: " + type(e).__name__


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proto", choices=["imap", "pop3"], required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.1")
    p.add_argument("--user", required=True)
    p.add_argument("--password-fd", type=int, required=True)
    p.add_argument("--tries", type=int, default=1)
    p.add_argument("--servername", default="mail.example.com")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    with os.fdopen(args.password_fd) as f:
        password = f.readline().rstrip("\n")
    print(json.dumps({"results": [one(args, password) for _ in range(args.tries)]}))


if __name__ == "__main__":
    main()
