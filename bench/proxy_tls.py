#!/usr/bin/env python3
"""HTTPS termination benchmark: `runway balancer serve --config` with TLS vs
nginx and vs HAProxy, the same certificate and the same front-ends, in the
same run; HTTP/1.1 with wrk, and HTTP/2 with h2load when it is installed.

Everything runs on loopback, against the PostgreSQL server on 127.0.0.1:5432
(a throwaway database for the farm). Installs wrk, nginx-light, haproxy,
nghttp2-client and openssl (Debian) when missing.

    python3 bench/proxy_tls.py [--duration 10] [--rounds 3] [--connections 32] [--frontends 2]
                               [--runway-bin PATH]

Without --runway-bin it builds target/release/runway (like the other
benchmarks); with --runway-bin target/debug/runway it measures the debug
build, which says nothing about release speed (the figures are labelled).
"""

import argparse
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm, free_port, median, stop  # noqa: E402
from run import build, log, run, wrk  # noqa: E402


def ensure_tools():
    wanted = (("wrk", "wrk"), ("nginx-light", "nginx"), ("haproxy", "haproxy"),
              ("nghttp2-client", "h2load"), ("openssl", "openssl"))
    missing = [p for p, exe in wanted if shutil.which(exe) is None]
    if missing:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *missing])


def certificate(work):
    """A self-signed certificate for localhost (ECDSA P-256), PEM chain and key,
    and the two concatenated (HAProxy's format)."""
    chain, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", chain, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"])
    both = os.path.join(work, "both.pem")
    with open(both, "w") as f:
        f.write(open(chain).read() + open(key).read())
    return chain, key, both


def wait_https(url, timeout=60.0):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.01)
    raise SystemExit(f"bench: {url} did not answer 200 within {timeout}s")


def runway_proxy(runway, work, farm, chain, key, port):
    token = os.path.join(work, "read.token")
    with open(token, "w") as f:
        f.write(farm.admin)
    conf = os.path.join(work, "runway-proxy.toml")
    with open(conf, "w") as f:
        f.write(f"""
[[listener]]
address = "127.0.0.1:{port}"
protocol = "https"

[[certificate]]
chain = "{chain}"
key = "{key}"

[controller]
url = "{farm.url}"
token_file = "{token}"

[[route]]
zone = "global"
""")
    proc = subprocess.Popen([runway, "balancer", "serve", "--config", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc


def nginx_tls(work, upstreams, chain, key, port):
    conf_dir = os.path.join(work, "nginx-tls")
    os.makedirs(conf_dir, exist_ok=True)
    servers = "\n".join(f"        server {u.removeprefix('http://')};" for u in upstreams)
    conf = f"""
worker_processes auto;
daemon off;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {conf_dir}/access.log combined buffer=64k flush=1s;
    upstream frontends {{
{servers}
        keepalive 128;
    }}
    server {{
        # `listen … http2` works from Debian's 1.22 on (newer nginx prefers `http2 on;`).
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_session_cache shared:SSL:10m;
        location / {{
            proxy_pass http://frontends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""
    path = os.path.join(conf_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return subprocess.Popen(["nginx", "-c", path, "-p", conf_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def haproxy_tls(work, upstreams, both, port):
    conf_dir = os.path.join(work, "haproxy-tls")
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
    bind 127.0.0.1:{port} ssl crt {both} alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    default_backend frontends
backend frontends
    balance roundrobin
    option forwardfor
{servers}
"""
    path = os.path.join(conf_dir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def h2load(url, duration, connections):
    """h2load over HTTP/2: requests/s and the mean and max request time (h2load
    prints no percentiles)."""
    out = subprocess.run(
        ["h2load", "-D", str(duration), "-c", str(connections), "-m", "10", "-t", "2", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    mean = float(m.group(5)) * scale[m.group(6)]
    worst = float(m.group(3)) * scale[m.group(4)]
    failed = int(re.search(r"(\d+) failed", out).group(1))
    return {"rps": rps, "mean": mean, "max": worst, "failed": failed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--frontends", type=int, default=2)
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)

    ensure_tools()
    runway, _ = build(args.runway_bin)
    build_kind = "debug build" if "/debug/" in runway else "release build"
    work = tempfile.mkdtemp(prefix="runway-tls-bench-")
    log(f"runway binary: {runway} ({build_kind}); work dir {work}")
    chain, key, both = certificate(work)

    farm = Farm(runway, work, "tls", args.frontends)
    procs = []
    try:
        farm.publish()
        upstreams = [u for _, _, u in farm.frontends]
        ports = {name: free_port() for name in ("runway balancer", "nginx", "haproxy")}
        procs.append(runway_proxy(runway, work, farm, chain, key, ports["runway balancer"]))
        procs.append(nginx_tls(work, upstreams, chain, key, ports["nginx"]))
        procs.append(haproxy_tls(work, upstreams, both, ports["haproxy"]))
        urls = {name: f"https://localhost:{port}/hello/" for name, port in ports.items()}
        for url in urls.values():
            wait_https(url)

        h1 = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                h1[name].append(wrk(url, args.duration, args.connections))
        print()
        print(f"HTTPS (HTTP/1.1, TLS 1.3, ECDSA P-256) over {args.frontends} front-ends: "
              f"wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, "
              f"medians; runway is the {build_kind}")
        print(f"  {'proxy':<18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
        summary = {}
        for name, runs in h1.items():
            s = {k: median([r[k] for r in runs]) for k in ("rps", "p50", "p99")}
            summary[name] = s
            print(f"  {name:<18}{s['rps']:>10.0f}{s['p50']:>10.2f}{s['p99']:>10.2f}"
                  f"{sum(r['non2xx'] for r in runs):>10}")
        r = summary["runway balancer"]
        best = max(("nginx", "haproxy"), key=lambda n: summary[n]["rps"])
        print(f"  runway / better of the two ({best}): throughput {r['rps'] / summary[best]['rps']:.2f}x "
              f"(target >= 1.0), p99 {r['p99'] / summary[best]['p99']:.2f}x (target <= 1.0)")

        if shutil.which("h2load"):
            h2 = {name: [] for name in urls}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    h2[name].append(h2load(url, args.duration, args.connections))
            print()
            print(f"HTTPS over HTTP/2: h2load -c{args.connections} -m10 -D{args.duration}, "
                  f"{args.rounds} alternating rounds, medians (h2load gives mean and max, not p99)")
            print(f"  {'proxy':<18}{'req/s':>10}{'mean ms':>10}{'max ms':>10}{'failed':>10}")
            for name, runs in h2.items():
                s = {k: median([x[k] for x in runs]) for k in ("rps", "mean", "max")}
                print(f"  {name:<18}{s['rps']:>10.0f}{s['mean']:>10.2f}{s['max']:>10.2f}"
                      f"{sum(x['failed'] for x in runs):>10}")
    finally:
        for proc in procs:
            stop(proc)
        farm.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
