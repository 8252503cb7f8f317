//! Background jobs end to end (issue 10): enqueued by `tests/guests/jobs`
//! through `runway:jobs/queue`, delivered by the front-ends, counted by the
//! app's idempotent handler in its key-value store; in a standalone
//! environment and in a farm of `runway` processes on PostgreSQL with a
//! front-end killed mid-way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runway_api::v1::{JobList, JobQuery, JobState, JobView};

use crate::farm_support::{Farm, run};
use crate::sched_support::{self, eventually, publish};
use crate::support::{TestEnv, package};

/// `key=value` lines of the app's counters whose key starts with `prefix`.
async fn counters(http: &reqwest::Client, url: &str, prefix: &str) -> BTreeMap<String, u64> {
    sched_support::counters(http, url, "jobs", prefix).await
}

/// Asks the app to enqueue (`query` as for `POST /jobs/enqueue`).
async fn enqueue(http: &reqwest::Client, url: &str, query: &str) -> (u16, Vec<String>) {
    let response = http
        .post(format!("{url}/jobs/enqueue?{query}"))
        .send()
        .await
        .expect("the app answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, text.lines().map(str::to_string).collect())
}

async fn job(client: &runway_client::Client, id: &str) -> JobView {
    client.job(id).await.expect("the job is listed")
}

async fn jobs(client: &runway_client::Client, state: Option<JobState>) -> JobList {
    client
        .jobs(&JobQuery {
            app: None,
            state,
            limit: Some(1000),
        })
        .await
        .expect("job list")
}

fn cli(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--env", &env.url, "--token", &env.token]);
    run(&all)
}

async fn standalone() -> TestEnv {
    TestEnv::start_with(|c| {
        let timers = c.timers.as_mut().expect("timers run in runway up");
        timers.job_backoff = Duration::from_millis(100);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_jobs_are_delivered_retried_failed_and_managed() {
    let env = standalone().await;
    env.publish(&package("tests/guests/jobs")).await;
    let (http, url) = (&env.http, env.url.as_str());

    // Five jobs with idempotency keys; enqueueing them again returns the same ids.
    let (status, ids) = enqueue(http, url, "n=5&key=a").await;
    assert_eq!(status, 200, "{ids:?}");
    assert_eq!(ids.len(), 5);
    let (_, again) = enqueue(http, url, "n=5&key=a").await;
    assert_eq!(again, ids, "an idempotency key enqueues once per app");
    eventually(Duration::from_secs(15), "5 jobs done", async || {
        let c = counters(http, url, "deliveries-a-").await;
        (c.len() == 5).then_some(())
    })
    .await;
    let c = counters(http, url, "deliveries-a-").await;
    assert!(c.values().all(|v| *v == 1), "delivered once each: {c:?}");
    for id in &ids {
        let j = eventually(Duration::from_secs(5), "the outcome recorded", async || {
            let j = job(&env.client, id).await;
            (j.state == JobState::Done).then_some(j)
        })
        .await;
        assert_eq!((j.attempts, j.last_status), (1, Some(200)), "{j:?}");
        assert_eq!(j.path, "/work");
    }

    // Fails twice (503), then succeeds at the third attempt after backoff.
    let (_, flaky) = enqueue(http, url, "n=1&key=f&path=/flaky%3Fok_at%3D3").await;
    let j = eventually(Duration::from_secs(15), "the flaky job done", async || {
        let j = job(&env.client, &flaky[0]).await;
        (j.state == JobState::Done).then_some(j)
    })
    .await;
    assert_eq!(j.attempts, 3, "{j:?}");
    let c = counters(http, url, "attempt-f-0-").await;
    assert_eq!(
        c.keys().cloned().collect::<Vec<_>>(),
        ["attempt-f-0-1", "attempt-f-0-2", "attempt-f-0-3"],
        "x-runway-attempt counts from 1: {c:?}"
    );

    // Always fails: failed after max-attempts, kept; an operator retries it.
    let (_, failing) = enqueue(http, url, "n=1&key=x&path=/fail&attempts=2").await;
    let id = failing[0].clone();
    let j = eventually(
        Duration::from_secs(15),
        "the failing job failed",
        async || {
            let j = job(&env.client, &id).await;
            (j.state == JobState::Failed).then_some(j)
        },
    )
    .await;
    assert_eq!((j.attempts, j.last_status), (2, Some(500)), "{j:?}");
    assert!(j.last_error.as_deref().unwrap().contains("500"), "{j:?}");
    let (ok, out, err) = cli(&env, &["jobs", "jobs", "--state", "failed"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&id) && out.contains("failed") && out.contains("2/2"),
        "{out}"
    );
    let (ok, out, err) = cli(&env, &["jobs", "retry", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("queued again"), "{out}");
    eventually(
        Duration::from_secs(15),
        "the retried job failed again",
        async || {
            let c = counters(http, url, "attempt-x-0-").await;
            (c.get("attempt-x-0-1") == Some(&2)
                && job(&env.client, &id).await.state == JobState::Failed)
                .then_some(())
        },
    )
    .await;
    let log = env.logs("jobs", None, false).await;
    assert!(
        log.iter().any(|l| l
            .message
            .as_deref()
            .is_some_and(|m| m.contains("failed at its last attempt (2/2)"))),
        "the failure is logged"
    );

    // A delayed job waits; cancelled, it is never delivered.
    let (_, later) = enqueue(http, url, "n=1&key=later&delay=60000").await;
    assert_eq!(job(&env.client, &later[0]).await.state, JobState::Queued);
    let (ok, out, err) = cli(&env, &["jobs", "cancel", &later[0]]);
    assert!(ok, "{err}");
    assert!(out.contains("cancelled"), "{out}");
    let (ok, _, err) = cli(&env, &["jobs", "cancel", &later[0]]);
    assert!(!ok);
    assert!(
        err.contains("is cancelled") && err.contains("queued or retrying"),
        "{err}"
    );
    let (ok, _, err) = cli(&env, &["jobs", "retry", "no-such-job"]);
    assert!(!ok);
    assert!(err.contains("no job no-such-job"), "{err}");
    let (ok, _, err) = cli(&env, &["jobs", "--state", "sleeping"]);
    assert!(!ok);
    assert!(err.contains("unknown job state \"sleeping\""), "{err}");

    // Jobs of an app that is not deployed stay queued, and are reported.
    let store = runway_store::Store::open(&env.data_dir().join("catalog").display().to_string())
        .await
        .unwrap();
    let ghost = store
        .enqueue_job(&runway_store::NewJob {
            app: "ghost",
            path: "/work",
            payload: b"",
            delay_ms: 0,
            max_attempts: 1,
            idempotency_key: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(job(&env.client, &ghost.id).await.state, JobState::Queued);
    let list = jobs(&env.client, None).await;
    assert_eq!(list.undeployed_apps, ["ghost"]);
    let (ok, out, err) = cli(&env, &["jobs"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("not deployed") && out.contains("ghost"),
        "{out}"
    );
    let (ok, out, err) = cli(&env, &["jobs", "jobs", "--json"]);
    assert!(ok, "{err}");
    let listed: JobList = serde_json::from_str(&out).unwrap();
    assert!(listed.jobs.iter().all(|j| j.app == "jobs"));
    assert!(listed.undeployed_apps.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enqueue_bad_input_is_refused_with_a_guest_visible_error() {
    let env = standalone().await;
    env.publish(&package("tests/guests/jobs")).await;
    for (case, expected) in [
        (
            "oversized",
            "262145 bytes is larger than the limit of 262144 bytes",
        ),
        ("negative", "delay-ms is -1"),
        ("outside", "leaves the app"),
        ("other-app", "leaves the app"),
        ("not-absolute", "must start with '/'"),
        ("attempts", "max-attempts is 0"),
    ] {
        let response = env
            .http
            .post(format!("{}/jobs/bad?case={case}", env.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{case}: {text}");
        assert!(
            text.starts_with("invalid: ") && text.contains(expected),
            "{case}: {text}"
        );
    }
    assert!(
        jobs(&env.client, None).await.jobs.is_empty(),
        "nothing was enqueued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_farm_does_1000_jobs_none_lost_while_a_frontend_is_killed() {
    let mut farm = Farm::start(0).await;
    let names = ["fe1", "fe2", "fe3"];
    for name in names {
        let proc = farm.spawn_frontend(name, &["--timer-lease-ms", "1500"]);
        farm.frontends.push((name.to_string(), proc));
    }
    let all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    farm.wait_ready(&all, Duration::from_secs(30)).await;
    publish(&farm, &package("tests/guests/jobs")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let urls: Vec<String> = farm.frontends.iter().map(|(_, p)| p.url.clone()).collect();

    // 1,000 jobs from 10 concurrent requests to fe2 and fe3, while the
    // front-ends already deliver the first ones.
    let mut enqueuers = Vec::new();
    for c in 0..10 {
        let (http, url) = (http.clone(), urls[1 + c % 2].clone());
        enqueuers.push(tokio::spawn(async move {
            let (status, ids) = enqueue(&http, &url, &format!("n=100&key=k{c}")).await;
            assert_eq!(status, 200, "{ids:?}");
            assert_eq!(ids.len(), 100);
        }));
    }
    // Kill -9 fe1 once deliveries are under way.
    eventually(Duration::from_secs(30), "deliveries started", async || {
        let done = jobs(&farm.client, Some(JobState::Done)).await.jobs.len();
        (done >= 50).then_some(())
    })
    .await;
    farm.frontend("fe1").kill();
    for e in enqueuers {
        e.await.unwrap();
    }

    let started = Instant::now();
    eventually(Duration::from_secs(60), "1,000 jobs done", async || {
        let done = jobs(&farm.client, Some(JobState::Done)).await.jobs.len();
        (done == 1000).then_some(())
    })
    .await;
    eprintln!(
        "the last jobs done {:?} after the enqueues",
        started.elapsed()
    );
    // The handler's effect is the first increment of `deliveries-<key>`: every
    // job has one (none lost). A key counted again is a redelivery, allowed
    // only for a job the killed front-end held (its lease expired), so at
    // most the killed front-end's job concurrency.
    let deliveries = counters(&http, &urls[1], "deliveries-").await;
    assert_eq!(deliveries.len(), 1000, "every job reached the handler");
    let list = jobs(&farm.client, None).await;
    assert!(
        list.jobs.iter().all(|j| j.state == JobState::Done),
        "none lost or left behind"
    );
    let again: Vec<_> = deliveries.iter().filter(|(_, v)| **v != 1).collect();
    assert!(
        again.len() <= 16,
        "redelivered beyond what fe1 held: {again:?}"
    );
    for (key, _) in &again {
        let key = key.trim_start_matches("deliveries-");
        let j = list
            .jobs
            .iter()
            .find(|j| j.idempotency_key.as_deref() == Some(key))
            .expect("the redelivered job is listed");
        assert!(j.attempts >= 2, "delivered twice in one attempt: {j:?}");
    }
}
