//! Timers end to end (issue 10): runs in a standalone environment and in a
//! farm of `runway` processes on PostgreSQL, counted by the app itself
//! (`tests/guests/ticker` increments `run-<timer>-<due>` in its key-value
//! store on every run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runway_api::v1::{TimerScheduleChange, TimerSettingsView, TimerStatus};
use runway_client::ClientError;
use runway_manifest::Package;

use crate::farm_support::{Farm, run};
use crate::sched_support::{self, eventually, publish};
use crate::support::{TestEnv, package, repackage, with_version};

/// The ticker app with every timer due once a year (tests schedule them).
fn quiet_ticker() -> Package {
    repackage(&package("tests/guests/ticker"), |m| {
        m.replace("\"* * * * * *\"", "\"0 0 1 1 *\"")
    })
}

/// `key=value` lines of the app's counters whose key starts with `prefix`.
async fn counters(http: &reqwest::Client, url: &str, prefix: &str) -> BTreeMap<String, u64> {
    sched_support::counters(http, url, "ticker", prefix).await
}

/// Due times (ms) of the runs counted under `run-<timer>-`, with their counts.
async fn runs(http: &reqwest::Client, url: &str, timer: &str) -> BTreeMap<i64, u64> {
    let prefix = format!("run-{timer}-");
    counters(http, url, &prefix)
        .await
        .into_iter()
        .map(|(k, v)| (k[prefix.len()..].parse().expect("a due time"), v))
        .collect()
}

async fn timer(client: &runway_client::Client, app: &str, name: &str) -> TimerStatus {
    client
        .timers(Some(app))
        .await
        .expect("timer list")
        .into_iter()
        .find(|t| t.timer == name)
        .unwrap_or_else(|| panic!("timer {app}/{name} listed"))
}

/// Every due time ran exactly once, one second apart, with no gap.
fn assert_once_per_tick(runs: &BTreeMap<i64, u64>) {
    for (due, count) in runs {
        assert_eq!(*count, 1, "due time {due} ran {count} times: {runs:?}");
        assert_eq!(due % 1000, 0, "due times are whole seconds: {runs:?}");
    }
    let dues: Vec<i64> = runs.keys().copied().collect();
    for pair in dues.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "a tick was skipped between {} and {}: {runs:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_second_timer_runs_each_tick_once_and_run_now_runs_it_again() {
    let env = TestEnv::start().await;
    env.publish(&package("tests/guests/ticker")).await;

    let counted = eventually(Duration::from_secs(30), "4 ticks counted", async || {
        let r = runs(&env.http, &env.url, "tick").await;
        (r.len() >= 4).then_some(r)
    })
    .await;
    assert_once_per_tick(&counted);

    // Run now: one more run, carrying the time it was asked for.
    let asked = env
        .client
        .run_timer("ticker", "tick")
        .await
        .expect("run now");
    let key = asked.requested_at_ms;
    eventually(Duration::from_secs(10), "the run-now run", async || {
        let r = runs(&env.http, &env.url, "tick").await;
        (r.get(&key) == Some(&1)).then_some(())
    })
    .await;

    let t = timer(&env.client, "ticker", "tick").await;
    assert_eq!(t.schedule, "* * * * * *");
    assert_eq!(t.time_zone, "UTC");
    assert_eq!(t.timeout_secs, 5);
    let last = t.last_run.expect("a last run");
    assert_eq!(last.outcome, "ok", "{last:?}");
    assert_eq!(last.status, Some(200));
    assert_eq!(last.frontend, "fe-1");

    // The request log has the runs, as app traffic.
    let rows = env.logs("ticker", Some("request"), false).await;
    assert!(
        rows.iter()
            .any(|r| r.path.as_deref() == Some("/ticker/tasks/count") && r.status == Some(200)),
        "timer runs are in the request log: {rows:?}"
    );
    env.env
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timer_that_traps_or_loops_past_its_timeout_is_logged_and_runs_again() {
    let env = TestEnv::start().await;
    env.publish(&quiet_ticker()).await;
    for (name, schedule) in [("trap", "* * * * * *"), ("loop", "*/3 * * * * *")] {
        env.client
            .schedule_timer(
                "ticker",
                name,
                &TimerScheduleChange {
                    schedule: Some(schedule.into()),
                    disabled: false,
                },
            )
            .await
            .expect("schedule override");
    }
    // Each failure is followed by the next run: two runs of each.
    eventually(
        Duration::from_secs(40),
        "two runs of trap and of loop",
        async || {
            let trap = runs(&env.http, &env.url, "trap").await;
            let lp = runs(&env.http, &env.url, "loop").await;
            (trap.len() >= 2 && lp.len() >= 2).then_some(())
        },
    )
    .await;
    let trap = timer(&env.client, "ticker", "trap").await;
    let last = trap.last_run.expect("trap ran");
    assert_eq!(last.outcome, "failed", "{last:?}");
    assert_eq!(last.status, Some(500), "{last:?}");
    assert!(trap.overridden);

    let lp = eventually(Duration::from_secs(10), "loop recorded", async || {
        let t = timer(&env.client, "ticker", "loop").await;
        t.last_run.is_some().then_some(t)
    })
    .await;
    let last = lp.last_run.unwrap();
    assert_eq!(last.outcome, "failed", "{last:?}");
    assert!(
        (2000..5000).contains(&last.duration_ms),
        "the loop was stopped at its 2 s timeout: {last:?}"
    );

    let errors = env.logs("ticker", Some("platform"), true).await;
    for name in ["trap", "loop"] {
        assert!(
            errors.iter().any(|r| r
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with(&format!("timer {name} failed")))),
            "an error row for timer {name}: {errors:?}"
        );
    }
    env.env
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_overrides_and_the_time_zone_are_checked_and_applied() {
    let env = TestEnv::start().await;
    env.publish(&quiet_ticker()).await;
    let change = |schedule: Option<&str>, disabled| TimerScheduleChange {
        schedule: schedule.map(str::to_string),
        disabled,
    };
    let code = |e: ClientError| match e {
        ClientError::Api { code, message, .. } => (code, message),
        other => panic!("an API error, not {other:?}"),
    };

    let (c, m) = code(
        env.client
            .schedule_timer("ticker", "slow", &change(Some("every day at 3"), false))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, "invalid_schedule");
    assert!(m.contains("5 or 6 fields"), "{m}");
    let (c, m) = code(
        env.client
            .schedule_timer("ticker", "nope", &change(Some("* * * * *"), false))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, "timer_not_found");
    assert!(m.contains("tick, trap, loop, slow"), "{m}");
    let (c, m) = code(
        env.client
            .set_timer_settings(&TimerSettingsView {
                time_zone: "Mars/Olympus".into(),
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(c, "invalid_time_zone");
    assert!(m.contains("IANA"), "{m}");

    // 02:00 every day in New York is 06:00 or 07:00 UTC.
    env.client
        .set_timer_settings(&TimerSettingsView {
            time_zone: "America/New_York".into(),
        })
        .await
        .unwrap();
    let t = env
        .client
        .schedule_timer("ticker", "slow", &change(Some("0 2 * * *"), false))
        .await
        .unwrap();
    assert!(t.overridden);
    assert_eq!(t.time_zone, "America/New_York");
    let hour = t.next_run_at_ms.unwrap() / 3_600_000 % 24;
    assert!(hour == 6 || hour == 7, "next run at hour {hour} UTC");

    let t = env
        .client
        .schedule_timer("ticker", "slow", &change(None, true))
        .await
        .unwrap();
    assert!(t.disabled);
    assert_eq!(t.next_run_at_ms, None);
    let t = env
        .client
        .schedule_timer("ticker", "slow", &change(None, false))
        .await
        .unwrap();
    assert!(!t.overridden && !t.disabled);
    assert_eq!(t.schedule, "0 0 1 1 *");
    env.env
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_does_not_interrupt_a_running_timer() {
    let env = TestEnv::start().await;
    let ticker = quiet_ticker();
    env.publish(&ticker).await;
    let asked = env.client.run_timer("ticker", "slow").await.unwrap();
    let due = asked.requested_at_ms;
    eventually(
        Duration::from_secs(10),
        "the slow run started",
        async || {
            let c = counters(&env.http, &env.url, "start-slow-").await;
            c.contains_key(&format!("start-slow-{due}")).then_some(())
        },
    )
    .await;
    // A new version while the 6 s run goes on.
    let next = repackage(&ticker, |m| with_version(m, "0.2.0"));
    env.publish(&next).await;
    let t = eventually(Duration::from_secs(20), "the run finished", async || {
        let t = timer(&env.client, "ticker", "slow").await;
        t.last_run.is_some().then_some(t)
    })
    .await;
    let last = t.last_run.unwrap();
    assert_eq!(last.outcome, "ok", "{last:?}");
    assert_eq!(last.status, Some(200));
    assert!(last.duration_ms >= 6000, "{last:?}");
    let c = counters(&env.http, &env.url, "").await;
    assert_eq!(c.get(&format!("start-slow-{due}")), Some(&1), "{c:?}");
    assert_eq!(c.get(&format!("run-slow-{due}")), Some(&1), "{c:?}");
    // It ran on the version it started with.
    let rows = env.logs("ticker", Some("platform"), false).await;
    let row = rows
        .iter()
        .find(|r| {
            r.message
                .as_deref()
                .is_some_and(|m| m.starts_with("timer slow: 200"))
        })
        .unwrap_or_else(|| panic!("the run's row: {rows:?}"));
    assert_eq!(row.version.as_deref(), Some("0.1.0"));
    env.env
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_farm_of_three_runs_a_second_timer_exactly_once_per_tick() {
    let farm = Farm::start(3).await;
    publish(&farm, &package("tests/guests/ticker")).await;
    let http = reqwest::Client::new();
    let url = farm.frontends[0].1.url.clone();
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Stop it, and let the last run finish.
    farm.client
        .schedule_timer(
            "ticker",
            "tick",
            &TimerScheduleChange {
                schedule: None,
                disabled: true,
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counted = runs(&http, &url, "tick").await;
    assert!(counted.len() >= 17, "about 20 ticks in 20 s: {counted:?}");
    assert_once_per_tick(&counted);

    // The CLI shows it.
    let (ok, out, err) = run(&[
        "timer",
        "list",
        "ticker",
        "--env",
        &farm.controller.url,
        "--token",
        &farm.admin,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("tick") && out.contains("(disabled)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timer_whose_frontend_is_killed_mid_run_runs_again_after_its_lease() {
    let mut farm = Farm::start(0).await;
    for name in ["fe1", "fe2"] {
        let proc = farm.spawn_frontend(name, &["--timer-lease-ms", "1500"]);
        farm.frontends.push((name.to_string(), proc));
    }
    farm.wait_ready(&["fe1".into(), "fe2".into()], Duration::from_secs(30))
        .await;
    publish(&farm, &quiet_ticker()).await;
    let http = reqwest::Client::new();

    let asked = farm.client.run_timer("ticker", "slow").await.unwrap();
    let due = asked.requested_at_ms;
    let holder = eventually(
        Duration::from_secs(10),
        "the slow run started",
        async || {
            let t = timer(&farm.client, "ticker", "slow").await;
            t.running.map(|r| r.frontend)
        },
    )
    .await;
    // Let the app count the start, then kill -9 the front-end running it.
    let start_key = format!("start-slow-{due}");
    let other = if holder == "fe1" { "fe2" } else { "fe1" };
    let other_url = farm
        .frontends
        .iter()
        .find(|(n, _)| n == other)
        .unwrap()
        .1
        .url
        .clone();
    eventually(
        Duration::from_secs(10),
        "the first start counted",
        async || {
            let c = counters(&http, &other_url, "start-slow-").await;
            (c.get(&start_key) == Some(&1)).then_some(())
        },
    )
    .await;
    farm.frontend(&holder).kill();
    let killed_at = Instant::now();

    // The other front-end runs the same due time again once the lease
    // expired, and this time it finishes.
    let run_key = format!("run-slow-{due}");
    eventually(
        Duration::from_secs(30),
        "the run redone and finished",
        async || {
            let c = counters(&http, &other_url, "").await;
            (c.get(&run_key) == Some(&1)).then_some(())
        },
    )
    .await;
    let c = counters(&http, &other_url, "start-slow-").await;
    assert_eq!(c.get(&start_key), Some(&2), "started twice: {c:?}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(6),
        "the redo is a full run of 6 s"
    );
    let t = eventually(Duration::from_secs(10), "the redo recorded", async || {
        let t = timer(&farm.client, "ticker", "slow").await;
        t.last_run
            .as_ref()
            .is_some_and(|l| l.outcome == "ok")
            .then_some(t)
    })
    .await;
    assert_eq!(t.last_run.unwrap().frontend, other);
}

/// A run whose lease renewal is refused (another claim holds the timer now)
/// stops at once: the app's slow handler never finishes it and nothing is
/// recorded for it. Before the fix the front-end only logged and let the
/// run go on to the end (the handler counted `run-slow-<due>` after 6 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_lease_is_taken_over_stops() {
    let mut farm = Farm::start(0).await;
    let proc = farm.spawn_frontend("fe1", &["--timer-lease-ms", "900"]);
    farm.frontends.push(("fe1".to_string(), proc));
    farm.wait_ready(&["fe1".into()], Duration::from_secs(30))
        .await;
    publish(&farm, &quiet_ticker()).await;
    let http = reqwest::Client::new();
    let url = farm.frontends[0].1.url.clone();

    let asked = farm.client.run_timer("ticker", "slow").await.unwrap();
    let due = asked.requested_at_ms;
    let start_key = format!("start-slow-{due}");
    eventually(
        Duration::from_secs(10),
        "the slow run started",
        async || {
            let c = counters(&http, &url, "start-slow-").await;
            (c.get(&start_key) == Some(&1)).then_some(())
        },
    )
    .await;
    // Another claim takes the timer over (as after a long catalog outage):
    // a new token and a lease far away, so that nobody claims it again.
    {
        use sqlx::Connection;
        let mut db = sqlx::postgres::PgConnection::connect(&farm.db.url)
            .await
            .unwrap();
        let n = sqlx::query(
            "UPDATE platform.timer_state SET claim_token = 'taken-over', \
             lease_expires_at_ms = lease_expires_at_ms + 600000 \
             WHERE app = 'ticker' AND timer = 'slow' AND holder IS NOT NULL",
        )
        .execute(&mut db)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1, "the run holds the timer");
    }
    // The slow handler sleeps 6 s before counting `run-slow-<due>`: a run
    // that goes on counts it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let c = counters(&http, &url, "").await;
    assert_eq!(
        c.get(&format!("run-slow-{due}")),
        None,
        "the run went on after its lease was taken over: {c:?}"
    );
    let t = timer(&farm.client, "ticker", "slow").await;
    assert!(
        t.last_run.is_none(),
        "nothing recorded for the stopped run: {t:?}"
    );
}
