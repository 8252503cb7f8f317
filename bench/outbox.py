#!/usr/bin/env python3
"""Email throughput: messages/s from the outbox to a local SMTP sink.

(c) A farm on PostgreSQL (`runway controller serve` + N `runway frontend serve`
with the email flag, default 2) with `tests/guests/jobs`. The app queues
`--emails` emails (`runway:email/outbox`, one recipient each) while the
environment has no SMTP settings, so they all wait; then `runway email
settings --smtp …` points it at the sink (`tests/smtp_sink.py`, aiosmtpd on
127.0.0.1) and the clock runs until every email is `sent` (the SMTP server
accepted it and the catalog recorded its answer). Rounds are repeated; the
median is printed, with the sink's own ceiling measured by a Python client
(smtplib, one connection per worker) for comparison.

    python3 bench/outbox.py [--emails 2000] [--rounds 3] [--frontends 2] [--runway-bin PATH]

Needs the PostgreSQL server on 127.0.0.1:5432 and python3-aiosmtpd.
"""

import argparse
import os
import smtplib
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm  # noqa: E402
from jobs import build, sql_value  # noqa: E402
from run import ROOT, log  # noqa: E402


def python_with_aiosmtpd():
    for candidate in ("python3", "/usr/bin/python3"):
        if subprocess.run([candidate, "-c", "import aiosmtpd"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit("python3-aiosmtpd is missing: apt-get install -y python3-aiosmtpd")


def start_sink(work):
    out = os.path.join(work, "received.jsonl")
    proc = subprocess.Popen([python_with_aiosmtpd(), os.path.join(ROOT, "tests/smtp_sink.py"), "--out", out],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening "):
        raise SystemExit(f"the SMTP sink said {line!r}")
    return proc, int(line.split()[1]), out


def sink_ceiling(port, n, workers):
    """Messages/s a plain Python SMTP client gets from the sink (pooled connections)."""
    def send(k):
        s = smtplib.SMTP("127.0.0.1", port)
        for i in range(k):
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = "bench@example.com", "sink@example.com", f"ceiling {i}"
            m["Message-ID"] = f"<ceiling-{os.getpid()}-{time.monotonic_ns()}@bench>"
            m.set_content("x")
            s.send_message(m)
        s.quit()
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send, [n // workers] * workers))
    return (n // workers * workers) / (time.monotonic() - start)


def runway_round(farm, runway, emails, sink_port):
    env = dict(os.environ, RUNWAY_ENV=farm.url, RUNWAY_TOKEN=farm.admin, CI="true")
    # No settings: the emails wait.
    sql_value(farm.db, "DELETE FROM platform.email_settings")
    time.sleep(3)  # front-ends read the settings at most every 2 s
    urls = [u for _, _, u in farm.frontends]
    per = 250
    batches = [(urls[i % len(urls)], min(per, emails - i * per)) for i in range((emails + per - 1) // per)]

    def queue(arg):
        i, (url, n) = arg
        req = urllib.request.Request(f"{url}/jobs/mail?n={n}&to=user{i}@example.com", method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(queue, enumerate(batches)))
    assert int(sql_value(farm.db, "SELECT count(*) FROM platform.emails WHERE state = 'queued'")) == emails
    start = time.monotonic()
    subprocess.run([runway, "email", "settings", "--smtp", f"smtp://127.0.0.1:{sink_port}",
                    "--from", "noreply@example.com"], env=env, check=True, stdout=subprocess.DEVNULL)
    deadline = start + 600
    while int(sql_value(farm.db, "SELECT count(*) FROM platform.emails WHERE state <> 'sent'")) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("runway: emails not sent within 600 s")
        time.sleep(0.02)
    took = time.monotonic() - start
    sql_value(farm.db, "DELETE FROM platform.emails")
    return emails / took


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emails", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frontends", type=int, default=2)
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    runway, guest = build(args.runway_bin)
    work = tempfile.mkdtemp(prefix="runway-email-bench-")
    sink, port, _ = start_sink(work)
    farm = Farm(runway, work, "email", args.frontends)
    results = []
    try:
        env = dict(os.environ, RUNWAY_ENV=farm.url, RUNWAY_TOKEN=farm.admin, CI="true")
        subprocess.run([runway, "app", "publish", guest], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runway_round(farm, runway, 100, port)  # warm-up
        for r in range(args.rounds):
            results.append(runway_round(farm, runway, args.emails, port))
            log(f"round {r + 1}: {results[-1]:.0f} emails/s")
        ceiling = sink_ceiling(port, args.emails, 8 * args.frontends)
    finally:
        farm.close()
        sink.kill()
    kind = "release" if args.runway_bin is None else f"given binary {args.runway_bin}"
    print()
    print(f"(c) email: {args.emails} queued emails to a local SMTP sink (aiosmtpd), "
          f"{args.frontends} email front-ends x 8 sends at once, {args.rounds} rounds, median (runway: {kind})")
    print(f"  runway            {median(results):>8.0f} emails/s   rounds: "
          + ", ".join(f"{v:.0f}" for v in results))
    print(f"  sink ceiling      {ceiling:>8.0f} emails/s   (Python smtplib, {8 * args.frontends} connections)")


if __name__ == "__main__":
    main()
