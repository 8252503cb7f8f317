#!/usr/bin/env python3
"""Runway benchmarks, each against a peer measured in the same run.

1. Throughput and latency: examples/hello served by `runway up` and by
   `wasmtime serve -S cli` (wasmtime-cli 48), same machine, same load
   generator (wrk), same concurrency, runs alternated.
2. Publish -> first 200: from starting `runway app publish` to the first
   200 from the app.
3. Resident memory of `runway up` with 200 distinct apps deployed.

Usage: python3 bench/run.py [--duration 10] [--rounds 3] [--connections 32] [--apps 200]
                            [--runway-bin PATH] [--baseline-bin PATH]
With --baseline-bin (an older runway build), it is measured in the same
alternating rounds, and the throughput ratio new/baseline says what the
changes between the two cost.
Installs wrk (Debian) and wasmtime-cli 48 (cargo install) when missing.
Loopback only; every loop is bounded.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RUNWAY_PORT = 18080
WASMTIME_PORT = 18081
BASELINE_PORT = 18082
WASMTIME_VERSION = "48.0.8"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def ensure_tools():
    if shutil.which("wrk") is None:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "wrk"])
    wasmtime = shutil.which("wasmtime")
    version = ""
    if wasmtime:
        version = subprocess.run([wasmtime, "--version"], capture_output=True, text=True).stdout
    if WASMTIME_VERSION not in version:
        run(["cargo", "install", "--locked", "wasmtime-cli", "--version", WASMTIME_VERSION])


def build(runway_bin=None):
    if runway_bin is None:
        run(["cargo", "build", "--release", "-p", "runway-cli"], cwd=ROOT)
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=os.path.join(ROOT, "examples/hello"), env=env)
    return runway_bin or os.path.join(ROOT, "target/release/runway"), os.path.join(
        ROOT, "examples/hello/target/wasm32-wasip2/release/hello.wasm"
    )


def wait_for(url, timeout=60.0, want=200):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == want:
                    return time.monotonic()
        except Exception:
            pass
        time.sleep(0.002)
    raise SystemExit(f"bench: {url} did not answer {want} within {timeout}s")


def wrk(url, duration, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps, "p50": pct(50), "p99": pct(99),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def start_runway(runway, data_dir, port):
    # Builds before the infrastructure console ran one environment with plain `up`.
    usage = subprocess.run([runway, "up", "--help"], capture_output=True, text=True).stdout
    single = ["--single"] if "--single" in usage else []
    proc = subprocess.Popen(
        [runway, "up", *single, "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(f"http://127.0.0.1:{port}/_runway/health")
    with open(os.path.join(data_dir, "admin.token")) as f:
        token = f.read().strip()
    return proc, token


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def with_custom_section(wasm, tag):
    """The same component with a custom section appended, so every copy has
    its own digest and is compiled and loaded separately."""
    name = b"runway-bench"
    payload = tag.encode()
    body = bytes([len(name)]) + name + payload
    return wasm + bytes([0]) + leb128(len(body)) + body


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    ap.add_argument("--baseline-bin", help="an older runway binary to measure beside it (the cost of the changes since)")
    args = ap.parse_args()
    # Servers run as in production: a developer shell's RUST_BACKTRACE=1 makes
    # every error wasmtime creates internally (one per dropped store) capture
    # a backtrace, for runway and `wasmtime serve` alike.
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)

    ensure_tools()
    runway, hello_wasm = build(args.runway_bin)
    log(f"runway binary: {runway}")
    work = tempfile.mkdtemp(prefix="runway-bench-")
    env = dict(os.environ)

    # --- publish -> first 200, then throughput against wasmtime serve ---
    proc, token = start_runway(runway, os.path.join(work, "data"), RUNWAY_PORT)
    env.update(RUNWAY_ENV=f"http://127.0.0.1:{RUNWAY_PORT}", RUNWAY_TOKEN=token)
    started = time.monotonic()
    subprocess.run([runway, "app", "publish", os.path.join(ROOT, "examples/hello")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_ok = wait_for(f"http://127.0.0.1:{RUNWAY_PORT}/hello/")
    publish_s = first_ok - started

    baseline = None
    if args.baseline_bin:
        baseline, baseline_token = start_runway(args.baseline_bin, os.path.join(work, "baseline"), BASELINE_PORT)
        subprocess.run([args.baseline_bin, "app", "publish", os.path.join(ROOT, "examples/hello")],
                       env=dict(env, RUNWAY_ENV=f"http://127.0.0.1:{BASELINE_PORT}", RUNWAY_TOKEN=baseline_token),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"http://127.0.0.1:{BASELINE_PORT}/hello/")

    peer = subprocess.Popen(
        ["wasmtime", "serve", "-S", "cli", "--addr", f"127.0.0.1:{WASMTIME_PORT}", hello_wasm],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{WASMTIME_PORT}/hello/")
        results = {"runway": [], "wasmtime serve": []}
        if baseline:
            results["runway baseline"] = []
        for _ in range(args.rounds):
            results["runway"].append(wrk(f"http://127.0.0.1:{RUNWAY_PORT}/hello/", args.duration, args.connections))
            results["wasmtime serve"].append(wrk(f"http://127.0.0.1:{WASMTIME_PORT}/hello/", args.duration, args.connections))
            if baseline:
                results["runway baseline"].append(
                    wrk(f"http://127.0.0.1:{BASELINE_PORT}/hello/", args.duration, args.connections))
    finally:
        stop(peer)
        stop(proc)
        if baseline:
            stop(baseline)

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    summary = {
        name: {k: median([r[k] for r in runs]) for k in ("rps", "p50", "p99")} for name, runs in results.items()
    }
    print()
    print(f"throughput and latency: wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, medians")
    print(f"  {'server':<16}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, runs in results.items():
        s = summary[name]
        bad = sum(r["non2xx"] for r in runs)
        print(f"  {name:<16}{s['rps']:>12.0f}{s['p50']:>10.2f}{s['p99']:>10.2f}{bad:>10}")
    r, w = summary["runway"], summary["wasmtime serve"]
    print(f"  ratio runway/wasmtime: throughput {r['rps'] / w['rps']:.2f}x (target >= 1.0), "
          f"p99 {r['p99'] / w['p99']:.2f}x (target <= 1.0)")
    if baseline:
        b = summary["runway baseline"]
        print(f"  ratio runway/baseline ({args.baseline_bin}): throughput {r['rps'] / b['rps']:.2f}x "
              f"(target >= 0.95: the changes cost at most 5%), p99 {r['p99'] / b['p99']:.2f}x; "
              f"baseline/wasmtime throughput {b['rps'] / w['rps']:.2f}x")
    print(f"publish -> first 200 (hello): {publish_s * 1000:.0f} ms (target <= 1000 ms)")

    # --- memory with N distinct apps ---
    proc, token = start_runway(runway, os.path.join(work, "data-many"), RUNWAY_PORT)
    env.update(RUNWAY_TOKEN=token)
    try:
        with open(hello_wasm, "rb") as f:
            wasm = f.read()
        baseline = rss_mib(proc.pid)
        started = time.monotonic()
        for i in range(args.apps):
            app_dir = os.path.join(work, f"app-{i}")
            os.makedirs(app_dir, exist_ok=True)
            with open(os.path.join(app_dir, "component.wasm"), "wb") as f:
                f.write(with_custom_section(wasm, str(i)))
            with open(os.path.join(app_dir, "runway.toml"), "w") as f:
                f.write(f'[app]\nname = "app-{i}"\nversion = "1.0.0"\n\n[component]\npath = "component.wasm"\n')
            subprocess.run([runway, "app", "publish", app_dir], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deployed_s = time.monotonic() - started
        for i in range(args.apps):
            wait_for(f"http://127.0.0.1:{RUNWAY_PORT}/app-{i}/", timeout=10)
        rss = rss_mib(proc.pid)
    finally:
        stop(proc)
    print(f"resident memory: {rss:.0f} MiB with {args.apps} distinct apps deployed and each requested once "
          f"(empty: {baseline:.0f} MiB; target <= 512 MiB); publishing them took {deployed_s:.0f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
