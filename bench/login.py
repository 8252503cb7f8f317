#!/usr/bin/env python3
"""Login cost on the console: argon2id at the chosen parameters.

    python3 bench/login.py [--logins 20] [--runway-bin PATH]

Builds `runway` in release mode (unless --runway-bin), starts
`runway console serve` on a loopback port with a throwaway data directory,
logs in as the first administrator (its password is printed once at start)
`--logins` times one after another, and prints the median and p90 of the
whole `POST /_runway/console/v1/sessions` round trip and the same for a
request that does not hash (`GET /console` with the session), so the
difference is the password check. Target: 50-250 ms per login.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[login] {msg}", file=sys.stderr, flush=True)


def request(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000.0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--runway-bin")
    args = ap.parse_args()
    binary = args.runway_bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-p", "runway-cli"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/runway")
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [binary, "console", "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url, password, expect = None, None, False
            deadline = time.time() + 60
            for line in proc.stdout:
                if " listening on " in line:
                    url = line.split(" listening on ")[1].split()[0]
                elif expect:
                    password, expect = line.strip(), False
                elif "first administrator user" in line:
                    expect = True
                elif "ctrl-c to stop" in line or time.time() > deadline:
                    break
            if not url or not password:
                sys.exit("the console did not print its address and first password")
            api = f"{url}/_runway/console/v1"
            logins, reads = [], []
            for _ in range(max(1, args.logins)):
                ms, session = timed(lambda: request(
                    "POST", f"{api}/sessions", {"user": "administrator", "password": password}))
                logins.append(ms)
                ms, _ = timed(lambda: request("GET", f"{api}/console", token=session["token"]))
                reads.append(ms)

            def p90(xs):
                return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]

            med = statistics.median(logins)
            print(f"login (argon2id verify + session), {len(logins)} logins: "
                  f"median {med:.1f} ms, p90 {p90(logins):.1f} ms")
            print(f"authenticated read with the session: median {statistics.median(reads):.1f} ms, "
                  f"p90 {p90(reads):.1f} ms")
            verdict = "within" if 50 <= med <= 250 else "OUTSIDE"
            print(f"target 50-250 ms per login: {verdict} ({med:.1f} ms)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
