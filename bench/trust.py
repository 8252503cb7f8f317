#!/usr/bin/env python3
"""Token verification cost on an environment: console-issued vs local.

    python3 bench/trust.py [--duration 10] [--rounds 3] [--connections 16] [--runway-bin PATH]

Starts `runway console serve` and one environment (`runway up --single`),
both on loopback ports with throwaway data directories, registers the
environment on the console (which pushes the console's public key), logs in
as the first administrator and asks the console for a token for the
environment (an Ed25519 JWT), and creates an environment-local token of
scope read. Then it measures requests/s of one authenticated read endpoint
(`GET /_runway/api/v1/apps`) with `wrk -t2 -cN`, once with each token per
round, rounds alternated, medians. A fresh console token is fetched each
round (they live 5 minutes). Target: console-issued >= 0.9x local.

Installs wrk (Debian) when missing. Builds `runway` in release mode unless
--runway-bin is given.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[trust] {msg}", file=sys.stderr, flush=True)


def request(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def ensure_wrk():
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def start(cmd, wants):
    """Starts `cmd`, reads its stdout until 'ctrl-c to stop'; returns the
    process and, for each (key, marker, next_line) in `wants`, the word
    after the marker (or the line after it when next_line)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    found, expect = {}, None
    deadline = time.time() + 120
    for line in proc.stdout:
        if expect:
            found[expect] = line.strip()
            expect = None
            continue
        for key, marker, next_line in wants:
            if marker in line:
                if next_line:
                    expect = key
                else:
                    found[key] = line.split(marker)[1].split()[0]
        if "ctrl-c to stop" in line or time.time() > deadline:
            break
    missing = [k for k, _, _ in wants if k not in found]
    if missing:
        proc.terminate()
        sys.exit(f"{cmd[1]} did not print {missing}")
    return proc, found


def wrk(url, token, duration, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--runway-bin")
    args = ap.parse_args()
    ensure_wrk()
    binary = args.runway_bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-p", "runway-cli"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/runway")
    with tempfile.TemporaryDirectory() as data:
        console, c = start(
            [binary, "console", "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{data}/console"],
            [("url", " listening on ", False), ("password", "first administrator user", True)])
        env = None
        try:
            env, e = start(
                [binary, "up", "--single", "--listen", "127.0.0.1:0", "--data-dir", f"{data}/env"],
                [("url", " listening on ", False), ("token", "admin token (shown once", True)])
            api = f"{c['url']}/_runway/console/v1"
            session = request("POST", f"{api}/sessions",
                              {"user": "administrator", "password": c["password"]})["token"]
            request("POST", f"{api}/environments",
                    {"name": "prod", "address": e["url"], "token": e["token"]}, token=session)
            local = request("POST", f"{e['url']}/_runway/api/v1/tokens",
                            {"name": "bench-read", "scope": "read"}, token=e["token"])["token"]
            target = f"{e['url']}/_runway/api/v1/apps"
            figures = {"console": [], "local": []}
            for r in range(max(1, args.rounds)):
                issued = request("POST", f"{api}/environments/prod/token", token=session)
                order = [("console", issued["token"]), ("local", local)]
                if r % 2:
                    order.reverse()
                for name, token in order:
                    rps, bad = wrk(target, token, args.duration, args.connections)
                    if bad:
                        sys.exit(f"{name} token: {bad} non-2xx answers: the token was refused")
                    figures[name].append(rps)
                    log(f"round {r + 1} {name}: {rps:.0f} req/s")
            med = {k: statistics.median(v) for k, v in figures.items()}
            ratio = med["console"] / med["local"]
            print(f"GET /_runway/api/v1/apps, wrk -t2 -c{args.connections} -d{args.duration}s, "
                  f"{args.rounds} rounds alternated, medians:")
            print(f"  environment-local token (rwt_, SHA-256 + catalog lookup): {med['local']:.0f} req/s")
            print(f"  console-issued token (Ed25519 JWT, verified once):         {med['console']:.0f} req/s")
            verdict = "met" if ratio >= 0.9 else "NOT met"
            print(f"  ratio console/local {ratio:.2f}x (target >= 0.9x: {verdict})")
        finally:
            for proc in (env, console):
                if proc:
                    proc.terminate()
                    proc.wait(timeout=30)


if __name__ == "__main__":
    main()
