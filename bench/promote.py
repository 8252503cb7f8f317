#!/usr/bin/env python3
"""Promotion benchmark: from starting `runway deploy ... --from dev --to prod
--wait` to the first 200 of the new version through prod's balancer, for 1
app and for 10 apps in one plan, prod a farm of 4 front-ends on PostgreSQL.
Printed beside the reference time of an OutSystems LifeTime one-app
deployment (about a minute).

Setup: `runway console serve`, dev = `runway up --single` (SQLite), prod =
`runway controller serve` + N `runway frontend serve` + `runway balancer
serve` on a throwaway PostgreSQL database, both registered in the console
(pipeline main: dev -> prod). Every app is examples/hello under its own name,
with a distinct component (a custom section) and a `version.txt` static file
per version, so a promotion is a real change and a response says which
version served it.

    python3 bench/promote.py [--rounds 3] [--apps 10] [--frontends 4] [--runway-bin PATH]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm, median, spawn, stop  # noqa: E402
from run import build, log, with_custom_section  # noqa: E402

# OutSystems LifeTime: a one-app deployment takes about a minute (LifeTime's
# published Deployment API examples poll the deployment status for ~60 s).
LIFETIME_REFERENCE_S = 60.0


def runway_json(runway, args, env):
    out = subprocess.run([runway, *args, "--json"], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def runway_quiet(runway, args, env):
    out = subprocess.run([runway, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench: runway {' '.join(args[:3])} failed: {out.stderr.strip()}")


def served_version(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode().strip() if r.status == 200 else None
    except Exception:
        return None


class Apps:
    """Distinct copies of examples/hello, one directory per (app, version)."""

    def __init__(self, work, wasm, count):
        self.work, self.wasm, self.count = work, wasm, count
        self.version = {}

    def names(self, n=None):
        return [f"promo-{i}" for i in range(n or self.count)]

    def write(self, app, version):
        d = os.path.join(self.work, "apps", f"{app}-{version}")
        os.makedirs(os.path.join(d, "public"), exist_ok=True)
        with open(os.path.join(d, "component.wasm"), "wb") as f:
            f.write(with_custom_section(self.wasm, f"{app}-{version}"))
        with open(os.path.join(d, "public", "version.txt"), "w") as f:
            f.write(version)
        with open(os.path.join(d, "runway.toml"), "w") as f:
            f.write(f'[app]\nname = "{app}"\nversion = "{version}"\n\n'
                    f'[component]\npath = "component.wasm"\n\n[static]\ndir = "public"\n')
        return d

    def publish(self, runway, env, apps, version):
        for app in apps:
            runway_quiet(runway, ["app", "publish", self.write(app, version)], env)
            self.version[app] = version


def wait_console_knows(runway, env, apps, version, timeout=60):
    """Until the console has recorded `version` of every app (its poll of dev)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        known = 0
        for app in apps:
            try:
                versions = runway_json(runway, ["apps", "versions", app], env)
            except subprocess.CalledProcessError:
                versions = []  # not known to the console yet
            if any(v.get("version") == version for v in versions):
                known += 1
        if known == len(apps):
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: the console did not learn {version} of {apps} within {timeout}s")


def promote(runway, env, lb, apps, version):
    """Runs `runway deploy APP@VERSION... --from dev --to prod --wait` and
    returns (seconds to the first 200 of the new version of every app
    through the balancer, seconds until deploy --wait exited, plan key)."""
    specs = [f"{a}@{version}" for a in apps]
    started = time.monotonic()
    proc = subprocess.Popen([runway, "deploy", *specs, "--from", "dev", "--to", "prod", "--wait", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pending = set(apps)
    first = None
    deadline = started + 120
    while pending and time.monotonic() < deadline:
        for app in list(pending):
            if served_version(f"{lb}/{app}/version.txt") == version:
                pending.discard(app)
        if pending:
            time.sleep(0.002)
    if not pending:
        first = time.monotonic() - started
    out, _ = proc.communicate(timeout=120)
    exited = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: deploy {' '.join(specs)} failed (exit {proc.returncode})")
    if first is None:
        raise SystemExit(f"bench: {sorted(pending)} never served {version} through the balancer")
    return first, exited, json.loads(out)["key"]


def profile(runway, env, key):
    """The plan's status log as offsets from its first row."""
    shown = runway_json(runway, ["deploy", "show", key], env)
    rows = shown["status"]["log"]
    if not rows:
        return []
    t0 = rows[0]["instant_ms"]
    return [(r["instant_ms"] - t0, r["message"]) for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--apps", type=int, default=10, help="apps in the many-app plan")
    ap.add_argument("--frontends", type=int, default=4, help="front-ends of prod")
    ap.add_argument("--runway-bin", help="use this runway binary instead of building target/release/runway")
    args = ap.parse_args()
    os.environ.pop("RUST_BACKTRACE", None)
    os.environ.pop("RUST_LIB_BACKTRACE", None)

    runway, wasm_path = build(args.runway_bin)
    with open(wasm_path, "rb") as f:
        wasm = f.read()
    work = tempfile.mkdtemp(prefix="runway-promote-bench-")
    log(f"runway binary: {runway}; work dir {work}")

    procs = []
    prod = None
    try:
        console, console_url = spawn([runway, "console", "serve", "--data-dir", os.path.join(work, "console"),
                                      "--listen", "127.0.0.1:0", "--poll-ms", "200"])
        procs.append(console)
        console_token = open(os.path.join(work, "console", "admin.token")).read().strip()
        dev_dir = os.path.join(work, "dev")
        dev, dev_url = spawn([runway, "up", "--single", "--data-dir", dev_dir, "--listen", "127.0.0.1:0"])
        procs.append(dev)
        dev_token = open(os.path.join(dev_dir, "admin.token")).read().strip()
        prod = Farm(runway, work, "prod", args.frontends)
        lb = prod.start_balancer()

        env = dict(os.environ, RUNWAY_CONSOLE=console_url, RUNWAY_CONSOLE_TOKEN=console_token, CI="true",
                   HOME=work)
        env.pop("XDG_CONFIG_HOME", None)
        dev_env = dict(env, RUNWAY_ENV=dev_url, RUNWAY_TOKEN=dev_token)
        runway_quiet(runway, ["pipeline", "add", "main"], env)
        runway_quiet(runway, ["env", "add", "dev", dev_url, "--token", dev_token, "--pipeline", "main",
                              "--order", "1"], env)
        # The console speaks to prod's controller; apps are measured through its balancer.
        runway_quiet(runway, ["env", "add", "prod", prod.url, "--token", prod.admin, "--pipeline", "main",
                              "--order", "2"], env)

        apps = Apps(work, wasm, args.apps)
        everything = apps.names()
        # Version 1.0.0 of every app runs in prod before the measured rounds.
        apps.publish(runway, dev_env, everything, "1.0.0")
        wait_console_knows(runway, env, everything, "1.0.0")
        first, _, _ = promote(runway, env, lb, everything, "1.0.0")
        log(f"warm-up: {len(everything)} apps 1.0.0 in prod after {first:.2f} s")

        results = {}
        for label, count in (("1 app", 1), (f"{args.apps} apps", args.apps)):
            results[label] = []
            for r in range(args.rounds):
                version = f"1.{count}.{r + 1}"
                chosen = apps.names(count)
                apps.publish(runway, dev_env, chosen, version)
                wait_console_knows(runway, env, chosen, version)
                first, exited, key = promote(runway, env, lb, chosen, version)
                log(f"{label} round {r + 1}: first 200 of {version} after {first * 1000:.0f} ms, "
                    f"deploy --wait exited after {exited * 1000:.0f} ms")
                results[label].append((first, exited, profile(runway, env, key)))
    finally:
        if prod:
            prod.close()
        for p in reversed(procs):
            stop(p)

    print()
    print(f"promotion dev -> prod (a farm of {args.frontends} front-ends on PostgreSQL behind runway balancer), "
          f"{args.rounds} rounds, medians")
    print(f"  {'plan':<10}{'first 200 ms':>14}{'deploy --wait ms':>18}{'vs LifeTime ~60 s':>20}{'target':>12}")
    targets = {"1 app": 2.0}
    for label, runs in results.items():
        first = median([f for f, _, _ in runs])
        exited = median([e for _, e, _ in runs])
        target = targets.get(label, 5.0)
        print(f"  {label:<10}{first * 1000:>14.0f}{exited * 1000:>18.0f}"
              f"{first / LIFETIME_REFERENCE_S:>19.3f}x{'<= ' + format(target, '.0f') + ' s':>12}")
    # Where the time goes: the plan's own status log (the console's instants).
    for label, runs in results.items():
        ordered = sorted(runs, key=lambda r: r[0])
        rows = ordered[len(ordered) // 2][2]
        print()
        print(f"  status log of the median {label} plan, ms from its first row:")
        for at, message in rows:
            print(f"    {at:>6}  {message[:110]}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
