#!/usr/bin/env python3
"""A real SMTP server for Runway's email tests and benchmark (aiosmtpd).

    python3 tests/smtp_sink.py --out received.jsonl [--port 0] [--delay-ms N]

Listens on 127.0.0.1 (port 0: a free one), prints `listening PORT` on stdout
once it accepts connections, and runs until its stdin closes or it is killed.
Every message it accepts is appended to --out as one JSON line:
{"message_id", "from", "to", "subject", "text"}.

How it answers the message's DATA depends on the first recipient's local part:
  - `tempfail...@…`   451 (temporary: the sender must retry)
  - `permfail...@…`   550 (permanent: the sender must give up)
  - `drop...@…`       closes the connection after the message, before answering
  - `flakyN...@…`     451 for the first N tries of a Message-ID, then 250
  - anything else     250 after --delay-ms
"""

import argparse
import asyncio
import email
import email.policy
import json
import re
import sys
import threading

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out, delay_ms):
        self.out = out
        self.delay = delay_ms / 1000.0
        self.tries = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message_id = str(message.get("Message-ID", "")).strip()
        first = envelope.rcpt_tos[0].split("@")[0].lower() if envelope.rcpt_tos else ""
        with self.lock:
            self.tries[message_id] = self.tries.get(message_id, 0) + 1
            tries = self.tries[message_id]
        if first.startswith("tempfail"):
            return "451 4.3.0 try again later (test server)"
        if first.startswith("permfail"):
            return "550 5.1.1 no such user here (test server)"
        if first.startswith("drop"):
            server.transport.close()
            return "421 4.4.2 connection dropped (test server)"
        flaky = re.match(r"flaky(\d+)", first)
        if flaky and tries <= int(flaky.group(1)):
            return f"451 4.3.0 not yet, try {tries} (test server)"
        if self.delay:
            await asyncio.sleep(self.delay)
        body = message.get_body(preferencelist=("plain", "html"))
        record = {
            "message_id": message_id,
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "text": body.get_content() if body is not None else "",
        }
        with self.lock:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()
        return f"250 2.0.0 queued as {abs(hash(message_id)) % 10**8} (test server)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="append accepted messages here (JSON lines)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0, help="wait before accepting")
    args = parser.parse_args()
    out = open(args.out, "a", encoding="utf-8")
    port = args.port
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    controller = Controller(
        Handler(out, args.delay_ms),
        hostname="127.0.0.1",
        port=port,
        data_size_limit=10 * 1024 * 1024,
    )
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()
