#!/usr/bin/env python3
"""Background-job throughput: Runway vs graphile-worker on the same PostgreSQL.

(b) jobs/s end to end with a no-op handler. Runway: a farm (`runway controller
serve` + N `runway frontend serve`, default 2) with `tests/guests/jobs`; the
app enqueues the jobs itself (`runway:jobs/queue`, path `/jobs/noop`) with a
delay of an hour, then every job is made due at once (one UPDATE of
`platform.jobs.run_at_ms`) and the clock runs until none is left undone.
Each Runway job is a sandboxed wasm request (`POST /jobs/noop`), with its
request log row. graphile-worker (npm, installed into a temp dir): the same
number of `noop` jobs (`graphile_worker.add_job`, run_at in an hour, then
one UPDATE to now), the same number of worker processes with the same
concurrency each (a no-op task, logger silenced), until its job table is empty.
Rounds alternate; the medians and their ratio are printed (target >= 0.5x).

    python3 bench/jobs.py [--jobs 5000] [--rounds 3] [--frontends 2] [--concurrency 16] [--runway-bin PATH]

Needs the PostgreSQL server on 127.0.0.1:5432 (trust, user postgres; a
throwaway database per side) and node/npm. Without --runway-bin it builds
`runway` in release mode; with a debug binary the figures say so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import PG, Farm, psql, spawn, stop  # noqa: E402
from run import ROOT, log, run  # noqa: E402

GRAPHILE_VERSION = "0.16"

WORKER_JS = r"""
const { run, Logger } = require("graphile-worker");
(async () => {
  const runner = await run({
    connectionString: process.argv[2],
    concurrency: Number(process.argv[3]),
    pollInterval: 100,
    noHandleSignals: false,
    logger: new Logger(() => () => {}),
    taskList: { noop: async () => {} },
  });
  console.log("ready");
  await runner.promise;
})().catch((e) => { console.error(e); process.exit(1); });
"""


def sql_value(db, sql):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAq", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return out.strip()


class JobFarm(Farm):
    concurrency = 16

    def add_frontend(self, name):
        proc, url = spawn([
            self.runway, "frontend", "serve", "--controller", self.url, "--join-token", self.join,
            "--data-dir", os.path.join(self.work, name), "--listen", "127.0.0.1:0", "--name", name,
            "--job-concurrency", str(self.concurrency),
        ])
        self.frontends.append((name, proc, url))
        return url

    def publish_jobs(self, guest_dir):
        env = dict(os.environ, RUNWAY_ENV=self.url, RUNWAY_TOKEN=self.admin, CI="true")
        subprocess.run([self.runway, "app", "publish", guest_dir], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build(runway_bin):
    if runway_bin is None:
        run(["cargo", "build", "--release", "-p", "runway-cli"], cwd=ROOT)
        runway_bin = os.path.join(ROOT, "target/release/runway")
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    guest = os.path.join(ROOT, "tests/guests/jobs")
    run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=guest, env=env,
        stdout=subprocess.DEVNULL)
    return runway_bin, guest


def runway_round(farm, jobs, tag):
    """Enqueues `jobs` through the app, makes them due at once, times them done."""
    urls = [u for _, _, u in farm.frontends]
    per = 250
    batches = [(urls[i % len(urls)], min(per, jobs - i * per)) for i in range((jobs + per - 1) // per)]

    def enqueue(arg):
        i, (url, n) = arg
        req = urllib.request.Request(
            f"{url}/jobs/enqueue?n={n}&path=/noop&key={tag}b{i}&idem=0&delay=3600000", method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(enqueue, enumerate(batches)))
    db = farm.db
    assert int(sql_value(db, "SELECT count(*) FROM platform.jobs WHERE state = 'queued'")) == jobs
    start = time.monotonic()
    sql_value(db, "UPDATE platform.jobs SET run_at_ms = "
                  "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) WHERE state = 'queued'")
    deadline = start + 600
    while int(sql_value(db, "SELECT count(*) FROM platform.jobs WHERE state <> 'done'")) > 0:
        if time.monotonic() > deadline:
            raise SystemExit("runway: jobs not done within 600 s")
        time.sleep(0.02)
    took = time.monotonic() - start
    sql_value(db, "DELETE FROM platform.jobs")
    return jobs / took


def graphile_round(db, node_dir, workers, concurrency, jobs):
    url = f"{PG}/{db}"
    procs = []
    try:
        for _ in range(workers):
            p = subprocess.Popen(["node", os.path.join(node_dir, "worker.js"), url, str(concurrency)],
                                 cwd=node_dir, stdout=subprocess.PIPE, text=True)
            line = p.stdout.readline()
            if "ready" not in line:
                raise SystemExit("graphile-worker did not start")
            subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
            procs.append(p)
        table = "graphile_worker._private_jobs"
        if sql_value(db, f"SELECT to_regclass('{table}')") == "":
            table = "graphile_worker.jobs"
        sql_value(db, "SELECT count(graphile_worker.add_job('noop', '{}'::json, "
                      f"run_at => now() + interval '1 hour')) FROM generate_series(1, {jobs})")
        start = time.monotonic()
        sql_value(db, f"UPDATE {table} SET run_at = now()")
        deadline = start + 600
        while int(sql_value(db, f"SELECT count(*) FROM {table}")) > 0:
            if time.monotonic() > deadline:
                raise SystemExit("graphile-worker: jobs not done within 600 s")
            time.sleep(0.02)
        return jobs / (time.monotonic() - start)
    finally:
        for p in procs:
            stop(p)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frontends", type=int, default=2, help="runway front-ends = graphile-worker processes")
    ap.add_argument("--concurrency", type=int, default=16, help="deliveries at once per front-end / worker")
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)

    runway, guest = build(args.runway_bin)
    work = tempfile.mkdtemp(prefix="runway-jobs-bench-")
    node_dir = os.path.join(work, "graphile")
    os.makedirs(node_dir)
    run(["npm", "install", "--silent", "--no-audit", "--no-fund", f"graphile-worker@{GRAPHILE_VERSION}"],
        cwd=node_dir, stdout=subprocess.DEVNULL)
    with open(os.path.join(node_dir, "worker.js"), "w") as f:
        f.write(WORKER_JS)
    gdb = f"bench_graphile_{os.getpid()}"
    psql(f"DROP DATABASE IF EXISTS {gdb} WITH (FORCE)")
    psql(f"CREATE DATABASE {gdb}")
    JobFarm.concurrency = args.concurrency
    farm = JobFarm(runway, work, "jobs", args.frontends)
    results = {"runway": [], "graphile-worker": []}
    try:
        farm.publish_jobs(guest)
        # Warm-up: one small round each (compiles, connections, schema).
        runway_round(farm, 200, "warm")
        graphile_round(gdb, node_dir, args.frontends, args.concurrency, 200)
        for r in range(args.rounds):
            results["runway"].append(runway_round(farm, args.jobs, f"r{r}"))
            results["graphile-worker"].append(
                graphile_round(gdb, node_dir, args.frontends, args.concurrency, args.jobs))
            log(f"round {r + 1}: runway {results['runway'][-1]:.0f} jobs/s, "
                f"graphile-worker {results['graphile-worker'][-1]:.0f} jobs/s")
    finally:
        farm.close()
        psql(f"DROP DATABASE IF EXISTS {gdb} WITH (FORCE)")
    kind = "release" if args.runway_bin is None else f"given binary {args.runway_bin}"
    print()
    print(f"(b) job throughput, no-op handler, {args.jobs} jobs made due at once, "
          f"{args.frontends} x concurrency {args.concurrency}, {args.rounds} alternating rounds, medians "
          f"(runway: {kind})")
    for name, values in results.items():
        print(f"  {name:<18}{median(values):>10.0f} jobs/s   rounds: "
              + ", ".join(f"{v:.0f}" for v in values))
    ratio = median(results["runway"]) / median(results["graphile-worker"])
    print(f"  ratio runway/graphile-worker: {ratio:.2f}x (target >= 0.5)")


if __name__ == "__main__":
    main()
