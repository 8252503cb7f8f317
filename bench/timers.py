#!/usr/bin/env python3
"""Timer precision: 10,000 timers due in the same minute on a farm of 2 front-ends.

(a) A farm on PostgreSQL (`runway controller serve` + 2 `runway frontend serve`
with the timers flag and the front-end's default `--timer-concurrency`, 32;
`--concurrency 3` runs 3 at once as OutSystems does). The
timers belong to `--apps` copies of `examples/hello` (a manifest is capped at
64 KiB, so 10,000 `[[timers]]` do not fit in one app), each with
`--timers / --apps` timers; timer i is due at second i % 60 of one chosen
minute (6-field cron `S M H * * *`, UTC), about 170 timers per second. Once every
timer has its next due time in the catalog and the minute has passed, the delay
of each run is read from the catalog (`platform.timer_state`: the run's start
on its front-end minus its due time) and p50/p99/max are printed (target p99 <= 1 s).

    python3 bench/timers.py [--timers 10000] [--apps 20] [--frontends 2] [--concurrency 32] [--runway-bin PATH]

Needs the PostgreSQL server on 127.0.0.1:5432 (trust, user postgres; a
throwaway database). Without --runway-bin it builds `runway` in release mode.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm, spawn  # noqa: E402
from jobs import sql_value  # noqa: E402
from run import ROOT, build, log  # noqa: E402


class TimerFarm(Farm):
    concurrency = 32

    def add_frontend(self, name):
        proc, url = spawn([
            self.runway, "frontend", "serve", "--controller", self.url, "--join-token", self.join,
            "--data-dir", os.path.join(self.work, name), "--listen", "127.0.0.1:0", "--name", name,
            "--timer-concurrency", str(self.concurrency),
        ])
        self.frontends.append((name, proc, url))
        return url


def app_dir(work, hello_wasm, name, timers, minute, hour):
    """A copy of examples/hello named `name` with `timers` due in minute `hour:minute` (UTC)."""
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "component"), exist_ok=True)
    shutil.copy(hello_wasm, os.path.join(d, "component/hello.wasm"))
    lines = [
        "[app]", f'name = "{name}"', 'version = "0.1.0"', "",
        "[component]", 'path = "component/hello.wasm"', "",
    ]
    for i, second in timers:
        lines += ["[[timers]]", f'name = "t{i}"', f'schedule = "{second} {minute} {hour} * * *"',
                  'path = "/tick"', ""]
    text = "\n".join(lines)
    assert len(text) < 64 * 1024, f"manifest of {name} is {len(text)} bytes"
    with open(os.path.join(d, "runway.toml"), "w") as f:
        f.write(text)
    return d


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timers", type=int, default=10_000)
    ap.add_argument("--apps", type=int, default=20)
    ap.add_argument("--frontends", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32, help="--timer-concurrency per front-end")
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    runway, hello_wasm = build(args.runway_bin)
    work = tempfile.mkdtemp(prefix="runway-timers-bench-")
    TimerFarm.concurrency = args.concurrency
    farm = TimerFarm(runway, work, "timers", args.frontends)
    try:
        # The minute: far enough for the deploys and the first next-due sync.
        target = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
        target += datetime.timedelta(minutes=4)
        per_app = args.timers // args.apps
        env = dict(os.environ, RUNWAY_ENV=farm.url, RUNWAY_TOKEN=farm.admin, CI="true")
        for a in range(args.apps):
            timers = [(a * per_app + j, (a * per_app + j) % 60) for j in range(per_app)]
            d = app_dir(work, hello_wasm, f"tick{a:02}", timers, target.minute, target.hour)
            subprocess.run([runway, "app", "publish", d], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = per_app * args.apps
        log(f"{total} timers in {args.apps} apps, due in {target:%H:%M} UTC")
        deadline = time.time() + 180
        while int(sql_value(farm.db, "SELECT count(*) FROM platform.timer_state "
                                     "WHERE next_due_at_ms IS NOT NULL")) < total:
            if time.time() > deadline:
                raise SystemExit("the timers did not all get a next due time within 180 s")
            time.sleep(1)
        start_ms = int(target.timestamp() * 1000)
        if time.time() * 1000 > start_ms - 5000:
            raise SystemExit("the deploys took too long: the minute came before the timers were ready")
        log(f"every timer has its due time; waiting for {target:%H:%M:%S} UTC")
        deadline = start_ms / 1000 + 60 + 300
        ran = 0
        while time.time() < deadline:
            ran = int(sql_value(farm.db, "SELECT count(*) FROM platform.timer_state "
                                         f"WHERE last_due_at_ms >= {start_ms}"))
            if ran >= total:
                break
            time.sleep(2)
        rows = sql_value(farm.db, "SELECT last_started_at_ms - last_due_at_ms FROM platform.timer_state "
                                  f"WHERE last_due_at_ms >= {start_ms} AND last_due_at_ms < {start_ms + 60000}")
        delays = [int(x) for x in rows.split()]
        by_frontend = sql_value(farm.db, "SELECT last_frontend, count(*) FROM platform.timer_state "
                                         f"WHERE last_due_at_ms >= {start_ms} GROUP BY last_frontend")
    finally:
        farm.close()
    kind = "release" if args.runway_bin is None else f"given binary {args.runway_bin}"
    print()
    print(f"(a) timer precision: {total} timers due in one minute (~{total // 60}/s), "
          f"{args.frontends} front-ends x --timer-concurrency {args.concurrency} (runway: {kind})")
    print(f"  ran {len(delays)} of {total}; runs per front-end: {' '.join(by_frontend.split())}")
    if delays:
        print(f"  delay from due time to start: p50 {pct(delays, 50)} ms, p99 {pct(delays, 99)} ms, "
              f"max {max(delays)} ms (target p99 <= 1000 ms)")


if __name__ == "__main__":
    main()
