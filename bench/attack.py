#!/usr/bin/env python3
"""Isolation benchmark: /hello/ latency while another app is under attack.

One `runway up` serves examples/hello and the misbehaving test guests. Each
round measures /hello/ with wrk twice, alternated:

* unloaded: nothing else is happening;
* attacked: meanwhile, `--slow` clients send request heads to another app
  and then trickle its body (one byte every second), and `--fanout` clients
  keep asking a guest to fan out through `http://<app>.internal` calls.

The figure is /hello/'s p99 under attack against its unloaded p99 in the
same run (target <= 2x), plus what the attackers got (status counts).

Usage: python3 bench/attack.py [--duration 10] [--rounds 3] [--connections 8]
                               [--slow 1000] [--fanout 16] [--runway-bin PATH]
Loopback only; every loop is bounded by the round's duration.
"""

import argparse
import collections
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, build, log, start_runway, stop, wait_for, wrk  # noqa: E402

PORT = 18090
GUESTS = ("misbehave", "caller", "fanout")


def build_guests():
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    built = []
    for guest in GUESTS:
        path = os.path.join(ROOT, "tests/guests", guest)
        if not os.path.isdir(path):
            log(f"guest {guest} is not in this tree; skipping it")
            continue
        subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=path, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        built.append(path)
    return built


def slow_bodies(count, stop_at, host, port, path, tally):
    """Opens `count` connections that each send a request head announcing a
    1 MB body, then one byte per second until `stop_at`."""
    socks = []
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    for _ in range(count):
        if time.monotonic() >= stop_at:
            break
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.sendall(head)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            tally[f"slow connect error: {e.__class__.__name__}"] += 1
    tally["slow connections opened"] += len(socks)
    while time.monotonic() < stop_at and socks:
        alive = []
        for s in socks:
            try:
                s.send(b"x")
                alive.append(s)
            except (BlockingIOError, InterruptedError):
                alive.append(s)
            except OSError:
                tally["slow connections closed by server"] += 1
                s.close()
        socks = alive
        time.sleep(1.0)
    for s in socks:
        s.close()


def fan_out(stop_at, url, tally):
    while time.monotonic() < stop_at:
        try:
            with urllib.request.urlopen(url, timeout=35) as r:
                tally[f"fan-out {r.status}"] += 1
        except urllib.error.HTTPError as e:
            tally[f"fan-out {e.code}"] += 1
        except Exception as e:  # noqa: BLE001 - every failure is a figure here
            tally[f"fan-out {e.__class__.__name__}"] += 1
            time.sleep(0.05)


def fan_out_url(port):
    if os.path.isdir(os.path.join(ROOT, "tests/guests/fanout")):
        return f"http://127.0.0.1:{port}/fanout/nest?n=8&depth=2"
    # Without the fan-out guest: a chain of app-to-app calls through `caller`.
    inner = "http://misbehave.internal/misbehave/sleep?ms=200"
    for _ in range(6):
        inner = "http://caller.internal/caller/fetch?url=" + urllib.parse.quote(inner, safe="")
    return f"http://127.0.0.1:{port}/caller/fetch?url=" + urllib.parse.quote(inner, safe="")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--slow", type=int, default=1000, help="slow-body connections")
    ap.add_argument("--fanout", type=int, default=16, help="concurrent fan-out clients")
    ap.add_argument("--runway-bin")
    args = ap.parse_args()
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    runway, _ = build(args.runway_bin)
    guests = build_guests()
    work = tempfile.mkdtemp(prefix="runway-attack-")
    proc, token = start_runway(runway, os.path.join(work, "data"), PORT)
    env = dict(os.environ, RUNWAY_ENV=f"http://127.0.0.1:{PORT}", RUNWAY_TOKEN=token)
    base = f"http://127.0.0.1:{PORT}"
    try:
        for app in [os.path.join(ROOT, "examples/hello"), *guests]:
            subprocess.run([runway, "app", "publish", app], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"{base}/hello/")
        wait_for(f"{base}/misbehave/ok")
        url = fan_out_url(PORT)
        log(f"fan-out URL: {url}")
        quiet, loud = [], []
        tally = collections.Counter()
        for _ in range(args.rounds):
            quiet.append(wrk(f"{base}/hello/", args.duration, args.connections))
            stop_at = time.monotonic() + args.duration + 4
            attackers = [threading.Thread(target=slow_bodies, daemon=True, args=(
                args.slow, stop_at, "127.0.0.1", PORT, "/misbehave/echo", tally))]
            attackers += [threading.Thread(target=fan_out, args=(stop_at, url, tally), daemon=True)
                          for _ in range(args.fanout)]
            for t in attackers:
                t.start()
            time.sleep(3)  # let the attack build up before measuring
            loud.append(wrk(f"{base}/hello/", args.duration, args.connections))
            for t in attackers:
                t.join(timeout=40)
    finally:
        stop(proc)

    def median(runs, key):
        values = sorted(r[key] for r in runs)
        return values[len(values) // 2]

    print()
    print(f"/hello/ with wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, medians")
    print(f"  {'':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, runs in (("unloaded", quiet), ("attacked", loud)):
        bad = sum(r["non2xx"] for r in runs)
        print(f"  {name:<10}{median(runs, 'rps'):>10.0f}{median(runs, 'p50'):>10.2f}"
              f"{median(runs, 'p99'):>10.2f}{bad:>10}")
    print(f"  attack: {args.slow} slow-body connections to /misbehave/echo, {args.fanout} fan-out clients")
    for key, value in sorted(tally.items()):
        print(f"    {key}: {value}")
    ratio = median(loud, "p99") / median(quiet, "p99")
    print(f"  /hello/ p99 attacked / unloaded: {ratio:.2f}x (target <= 2.0)")


if __name__ == "__main__":
    main()
