#!/usr/bin/env python3
"""A real SMTP server for the email sink's tests (aiosmtpd): STARTTLS required, optional
AUTH LOGIN/PLAIN, every accepted message written whole to a spool directory as <n>.eml.

    smtp_receiver.py --port 2525 --spool DIR --cert cert.pem --key key.pem [--auth user:pass]

Runs until SIGTERM or SIGINT."""
import argparse
import os
import signal
import ssl
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Spool:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        name = os.path.join(self.directory, f"{time.time_ns()}-{uuid.uuid4().hex}.eml")
        # Written aside, then renamed: a reader never sees half a message.
        with open(name + ".tmp", "wb") as f:
            f.write(data)
        os.rename(name + ".tmp", name)
        return "250 OK queued"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--auth", help="user:password required after STARTTLS")
    a = p.parse_args()
    os.makedirs(a.spool, exist_ok=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)
    kwargs = {}
    if a.auth:
        user, password = a.auth.split(":", 1)
        kwargs = dict(authenticator=authenticator(user, password), auth_required=True,
                      auth_require_tls=True)
    controller = Controller(Spool(a.spool), hostname="127.0.0.1", port=a.port,
                            tls_context=context, require_starttls=True, **kwargs)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"smtp receiver on 127.0.0.1:{a.port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
