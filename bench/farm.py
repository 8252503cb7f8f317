#!/usr/bin/env python3
"""Server-farm benchmark: runway balancer vs nginx and HAProxy, publish -> serving on farms
of 1/2/4/8 front-ends, and a new front-end's time to its first request.

Everything runs on loopback, against the PostgreSQL server on 127.0.0.1:5432
(a throwaway database per farm). Installs wrk, nginx and HAProxy (Debian) when missing.

    python3 bench/farm.py [--duration 10] [--rounds 3] [--connections 32] [--runway-bin PATH]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, build, log, run, wait_for, wrk  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"


def ensure_tools():
    missing = [p for p, exe in (("wrk", "wrk"), ("nginx-light", "nginx"), ("haproxy", "haproxy"))
               if shutil.which(exe) is None]
    if missing:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *missing])


def psql(sql):
    run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c", sql])


def spawn(cmd, env=None):
    """Starts a `runway ... serve` and returns (proc, url) once it printed its address."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if " listening on " in line:
            url = line.split(" listening on ")[1].strip()
            # Keep draining stdout in the background so the process never blocks.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return proc, url
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"{' '.join(cmd)} did not start")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Farm:
    def __init__(self, runway, work, name, frontends):
        self.runway, self.work, self.name = runway, os.path.join(work, name), name
        self.db = f"bench_{name}_{os.getpid()}"
        psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        psql(f"CREATE DATABASE {self.db}")
        ctl = os.path.join(self.work, "ctl")
        self.controller, self.url = spawn([
            runway, "controller", "serve", "--name", "bench", "--database", f"{PG}/{self.db}",
            "--data-dir", ctl, "--listen", "127.0.0.1:0",
        ])
        self.admin = open(os.path.join(ctl, "admin.token")).read().strip()
        self.join = open(os.path.join(ctl, "join.token")).read().strip()
        self.frontends = []
        for i in range(frontends):
            self.add_frontend(f"fe{i + 1}")
        self.wait_ready(frontends)
        self.balancer = None

    def add_frontend(self, name):
        proc, url = spawn([
            self.runway, "frontend", "serve", "--controller", self.url, "--join-token", self.join,
            "--data-dir", os.path.join(self.work, name), "--listen", "127.0.0.1:0", "--name", name,
        ])
        self.frontends.append((name, proc, url))
        return url

    def listing(self):
        req = urllib.request.Request(f"{self.url}/_runway/api/v1/frontends",
                                     headers={"authorization": f"Bearer {self.admin}"})
        return json.load(urllib.request.urlopen(req, timeout=5))

    def wait_ready(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(f["state"] == "ready" for f in self.listing()["frontends"]) >= n:
                return
            time.sleep(0.05)
        raise SystemExit(f"{n} front-ends not ready within {timeout}s: {self.listing()}")

    def start_balancer(self, policy="least-outstanding"):
        self.balancer, url = spawn([
            self.runway, "balancer", "serve", "--controller", self.url, "--token", self.admin,
            "--listen", "127.0.0.1:0", "--policy", policy,
        ])
        return url

    def publish(self):
        env = dict(os.environ, RUNWAY_ENV=self.url, RUNWAY_TOKEN=self.admin, CI="true")
        subprocess.run([self.runway, "app", "publish", os.path.join(ROOT, "examples/hello")], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self):
        procs = [p for _, p, _ in self.frontends] + [self.controller]
        if self.balancer:
            procs.insert(0, self.balancer)
        for p in procs:
            stop(p)
        psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


def nginx(work, upstreams, port):
    conf_dir = os.path.join(work, "nginx")
    os.makedirs(conf_dir, exist_ok=True)
    servers = "\n".join(f"        server {u.removeprefix('http://')};" for u in upstreams)
    conf = f"""
worker_processes auto;
daemon off;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    # Both proxies log every request: the balancer to its stdout, nginx here.
    access_log {conf_dir}/access.log combined buffer=64k flush=1s;
    upstream frontends {{
{servers}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://frontends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""
    path = os.path.join(conf_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["nginx", "-c", path, "-p", conf_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def haproxy(work, upstreams, port):
    """HAProxy in front of the same front-ends: round-robin, keep-alive to the
    servers (http-reuse always), an access log line per request (to a local
    UDP syslog that nobody reads, as cheap as nginx's buffered file)."""
    conf_dir = os.path.join(work, "haproxy")
    os.makedirs(conf_dir, exist_ok=True)
    servers = "\n".join(f"    server fe{i} {u.removeprefix('http://')}" for i, u in enumerate(upstreams))
    conf = f"""
global
    maxconn 8192
    nbthread 2
    log 127.0.0.1:9 local0
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend web
    bind 127.0.0.1:{port}
    default_backend frontends
backend frontends
    balance roundrobin
    option forwardfor
{servers}
"""
    path = os.path.join(conf_dir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--frontends", type=int, default=2, help="front-ends behind the proxies in (a)")
    ap.add_argument("--sizes", default="1,2,4,8", help="farm sizes for (b)")
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    # Servers run as in production: a developer shell's RUST_BACKTRACE=1 makes
    # every error wasmtime creates internally (one per dropped store) capture
    # a backtrace, for runway and `wasmtime serve` alike.
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)

    ensure_tools()
    runway, _ = build(args.runway_bin)
    work = tempfile.mkdtemp(prefix="runway-farm-bench-")
    log(f"runway binary: {runway}; work dir {work}")

    # (a) balancer vs nginx vs one front-end, same front-ends, alternating rounds.
    farm = Farm(runway, work, "proxy", args.frontends)
    try:
        farm.publish()
        lb = farm.start_balancer()
        wait_for(f"{lb}/hello/")
        ngx, ngx_url = nginx(work, [u for _, _, u in farm.frontends], free_port())
        hap, hap_url = haproxy(work, [u for _, _, u in farm.frontends], free_port())
        try:
            wait_for(f"{ngx_url}/hello/")
            wait_for(f"{hap_url}/hello/")
            targets = {"runway balancer": lb, "nginx (round-robin)": ngx_url,
                       "haproxy (round-robin)": hap_url, "one front-end": farm.frontends[0][2]}
            results = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    results[name].append(wrk(f"{url}/hello/", args.duration, args.connections))
        finally:
            stop(ngx)
            stop(hap)
    finally:
        farm.close()
    summary = {n: {k: median([r[k] for r in runs]) for k in ("rps", "p50", "p99")} for n, runs in results.items()}
    print()
    print(f"(a) proxies over {args.frontends} front-ends: wrk -t2 -c{args.connections} -d{args.duration}s, "
          f"{args.rounds} alternating rounds, medians")
    print(f"  {'target':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, runs in results.items():
        s = summary[name]
        print(f"  {name:<22}{s['rps']:>10.0f}{s['p50']:>10.2f}{s['p99']:>10.2f}{sum(r['non2xx'] for r in runs):>10}")
    b, n = summary["runway balancer"], summary["nginx (round-robin)"]
    h = summary["haproxy (round-robin)"]
    print(f"  ratio balancer/nginx: throughput {b['rps'] / n['rps']:.2f}x (target >= 0.9), "
          f"p99 {b['p99'] / n['p99']:.2f}x (target <= 1.1)")
    print(f"  ratio balancer/haproxy: throughput {b['rps'] / h['rps']:.2f}x, p99 {b['p99'] / h['p99']:.2f}x")

    # (b) publish -> serving through the balancer, per farm size.
    print()
    print("(b) publish -> first 200 through the balancer (runway app publish examples/hello)")
    for size in [int(s) for s in args.sizes.split(",")]:
        farm = Farm(runway, work, f"size{size}", size)
        try:
            lb = farm.start_balancer()
            started = time.monotonic()
            farm.publish()
            first = wait_for(f"{lb}/hello/")
            print(f"  {size} front-end(s): {(first - started) * 1000:7.0f} ms (target <= 2000 ms at 8)")
        finally:
            farm.close()

    # (c) a new front-end: process start -> first request served.
    print()
    print("(c) new front-end: process start -> first 200 (direct, then through the balancer)")
    farm = Farm(runway, work, "join", 2)
    try:
        farm.publish()
        lb = farm.start_balancer()
        wait_for(f"{lb}/hello/")
        started = time.monotonic()
        url = farm.add_frontend("fe-new")
        ready = wait_for(f"{url}/_runway/ready")
        direct = wait_for(f"{url}/hello/")
        through = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{lb}/hello/", timeout=5) as r:
                if r.headers.get("x-runway-frontend") == "fe-new":
                    through = time.monotonic()
                    break
        print(f"  direct: {(direct - started) * 1000:.0f} ms (target <= 2000 ms)")
        if through:
            print(f"  through the balancer: {(through - started) * 1000:.0f} ms; "
                  f"{(through - ready) * 1000:.0f} ms after it was ready (target <= 100 ms: discovery by watch)")
        else:
            print("  through the balancer: not within 30 s")
    finally:
        farm.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
