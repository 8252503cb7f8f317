//! Background jobs and claim tokens: enqueue (idempotency per app), claims
//! with leases, outcomes (done, backoff, failed), operator retry and cancel,
//! retention; a stale claim (lease expired, claimed again, even by the same
//! front-end) can neither renew nor record, for jobs and for timers.

use std::collections::HashSet;
use std::time::Duration;

use runway_api::v1::JobState;
use runway_store::{JobOutcome, NewJob, Store, StoreError};

use crate::open;

fn job<'a>(app: &'a str, key: Option<&'a str>) -> NewJob<'a> {
    NewJob {
        app,
        path: "/work",
        payload: b"payload",
        delay_ms: 0,
        max_attempts: 2,
        idempotency_key: key,
    }
}

fn failed(retry_in_ms: i64) -> JobOutcome {
    JobOutcome {
        ok: false,
        status: Some(500),
        error: Some("the app answered 500".into()),
        retry_in_ms,
    }
}

const DONE: JobOutcome = JobOutcome {
    ok: true,
    status: Some(200),
    error: None,
    retry_in_ms: 0,
};

async fn state(store: &Store, id: &str) -> JobState {
    store.job(id).await.unwrap().state
}

async fn enqueue_is_idempotent_per_app_and_delay_is_kept() {
    let (_guard, store) = open().await;
    let a = store.enqueue_job(&job("a", Some("k1"))).await.unwrap();
    assert!(a.created);
    let again = store.enqueue_job(&job("a", Some("k1"))).await.unwrap();
    assert_eq!(again.id, a.id);
    assert!(!again.created);
    // The same key in another app is another job.
    let b = store.enqueue_job(&job("b", Some("k1"))).await.unwrap();
    assert!(b.created && b.id != a.id);
    // No key: always a new job.
    let c1 = store.enqueue_job(&job("a", None)).await.unwrap();
    let c2 = store.enqueue_job(&job("a", None)).await.unwrap();
    assert_ne!(c1.id, c2.id);

    let mut later = job("a", None);
    later.delay_ms = 60_000;
    let later = store.enqueue_job(&later).await.unwrap();
    let claims = store.claim_jobs("fe1", &["a"], 100, 10_000).await.unwrap();
    let ids: HashSet<_> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 3, "the delayed job is not due yet: {claims:?}");
    assert!(!ids.contains(&later.id));
    assert_eq!(claims[0].payload, b"payload");
    assert_eq!(claims[0].attempt, 1);
    assert_eq!(state(&store, &later.id).await, JobState::Queued);

    let mut bad = job("a", None);
    bad.delay_ms = -1;
    assert!(matches!(
        store.enqueue_job(&bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn outcomes_backoff_failure_retry_cancel_and_retention() {
    let (_guard, store) = open().await;
    let id = store.enqueue_job(&job("a", None)).await.unwrap().id;
    let c = store.claim_jobs("fe1", &["a"], 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(state(&store, &id).await, JobState::Running);
    // Other apps' jobs are not claimed by a front-end that does not serve them.
    assert!(
        store
            .claim_jobs("fe1", &["b"], 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .finish_job(&id, &c[0].token, "fe1", &failed(60_000))
            .await
            .unwrap()
    );
    let r = store.job(&id).await.unwrap();
    assert_eq!(
        (r.state, r.attempts, r.last_status),
        (JobState::Retrying, 1, Some(500))
    );
    // Not due before its backoff.
    assert!(
        store
            .claim_jobs("fe1", &["a"], 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );
    // Retry right away: the second and last attempt fails → failed.
    assert!(
        !store
            .finish_job(&id, "not-the-token", "fe1", &failed(0))
            .await
            .unwrap()
    );
    let id2 = store.enqueue_job(&job("a", None)).await.unwrap().id;
    let c = store.claim_jobs("fe1", &["a"], 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 1);
    store
        .finish_job(&id2, &c[0].token, "fe1", &failed(0))
        .await
        .unwrap();
    let c = store.claim_jobs("fe1", &["a"], 10, 10_000).await.unwrap();
    assert_eq!((c.len(), c[0].attempt), (1, 2));
    store
        .finish_job(&id2, &c[0].token, "fe1", &failed(0))
        .await
        .unwrap();
    let r = store.job(&id2).await.unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert!(r.finished_at_ms.is_some());
    assert!(
        store
            .claim_jobs("fe1", &["a"], 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );

    // Operator: a failed job can be retried, not cancelled twice; a done one neither.
    let err = store.cancel_job(&id2).await.unwrap_err();
    assert!(err.to_string().contains("is failed"), "{err}");
    let r = store.retry_job(&id2).await.unwrap();
    assert_eq!((r.state, r.attempts), (JobState::Queued, 0));
    let c = store.claim_jobs("fe1", &["a"], 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 1);
    assert!(
        store
            .finish_job(&id2, &c[0].token, "fe1", &DONE)
            .await
            .unwrap()
    );
    assert_eq!(state(&store, &id2).await, JobState::Done);
    assert!(store.retry_job(&id2).await.is_err());
    assert!(matches!(
        store.job("nope").await,
        Err(StoreError::NotFound(_))
    ));

    // The retrying job is cancelled; it is never delivered.
    let r = store.cancel_job(&id).await.unwrap();
    assert_eq!(r.state, JobState::Cancelled);

    assert_eq!(
        store.apps_with_waiting_jobs().await.unwrap(),
        Vec::<String>::new()
    );
    store.enqueue_job(&job("z", None)).await.unwrap();
    assert_eq!(store.apps_with_waiting_jobs().await.unwrap(), vec!["z"]);
    let listed = store
        .jobs(Some("a"), Some(JobState::Done), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].payload_bytes, 7);

    // Retention: done and cancelled go, the waiting one stays.
    let deleted = store
        .purge_finished_jobs(runway_store::now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(store.jobs(None, None, 10).await.unwrap().len(), 1);
}

async fn a_stale_job_claim_can_neither_renew_nor_record() {
    let (_guard, store) = open().await;
    let id = store.enqueue_job(&job("a", None)).await.unwrap().id;
    let first = store.claim_jobs("fe1", &["a"], 10, 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Its lease expired: the same front-end claims the job again.
    let second = store.claim_jobs("fe1", &["a"], 10, 10_000).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lost_by.as_deref(), Some("fe1"));
    assert_eq!(second[0].attempt, 2);
    assert_ne!(first[0].token, second[0].token);
    assert!(!store.renew_job(&id, &first[0].token, 10_000).await.unwrap());
    assert!(
        !store
            .finish_job(&id, &first[0].token, "fe1", &DONE)
            .await
            .unwrap()
    );
    assert_eq!(state(&store, &id).await, JobState::Running);
    assert!(
        store
            .renew_job(&id, &second[0].token, 10_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_job(&id, &second[0].token, "fe1", &DONE)
            .await
            .unwrap()
    );
    assert_eq!(state(&store, &id).await, JobState::Done);

    // Lost on its last attempt: failed, not delivered a third time.
    let id = store.enqueue_job(&job("a", None)).await.unwrap().id;
    store.claim_jobs("fe1", &["a"], 10, 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    store.claim_jobs("fe1", &["a"], 10, 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store
            .claim_jobs("fe1", &["a"], 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let r = store.job(&id).await.unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert!(r.last_error.unwrap().contains("stopped renewing"));
}

async fn a_stale_timer_claim_can_neither_renew_nor_record() {
    let (_guard, store) = open().await;
    store
        .set_timer_next_due("a", "t", "* * * * * *|UTC", Some(1000))
        .await
        .unwrap();
    let next = |_: &str, _: &str, _: Option<&str>, _: i64| {
        Some(("* * * * * *|UTC".to_string(), Some(i64::MAX / 2)))
    };
    let first = store
        .claim_timers("fe1", &["a"], 3, 100, next)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The same front-end (a long catalog outage) claims the same due time again.
    let second = store
        .claim_timers("fe1", &["a"], 3, 10_000, next)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].due_at_ms, first[0].due_at_ms);
    let outcome = runway_store::TimerOutcome {
        due_at_ms: first[0].due_at_ms,
        started_at_ms: 1,
        duration_ms: 1,
        status: Some(200),
        outcome: "ok".into(),
        error: None,
        frontend: "fe1".into(),
    };
    assert!(
        !store
            .renew_timer(&first[0].token, "a", "t", 10_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_timer(&first[0].token, "a", "t", &outcome)
            .await
            .unwrap()
    );
    let s = &store.timer_states(Some("a")).await.unwrap()[0];
    assert!(s.running.is_some(), "the second run still holds it: {s:?}");
    assert!(
        store
            .renew_timer(&second[0].token, "a", "t", 10_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_timer(&second[0].token, "a", "t", &outcome)
            .await
            .unwrap()
    );
    let s = &store.timer_states(Some("a")).await.unwrap()[0];
    assert!(s.running.is_none(), "{s:?}");
}

/// Timers removed from their app's manifest (the claim's callback does not
/// know them) must not take claim slots: before the fix, three removed
/// timers due earlier filled a limit of 3 at every claim (skipped, never
/// moved) and the app's remaining timer never ran.
async fn removed_timers_do_not_take_claim_slots() {
    let (_guard, store) = open().await;
    for removed in ["gone1", "gone2", "gone3"] {
        store
            .set_timer_next_due("a", removed, "* * * * * *|UTC", Some(500))
            .await
            .unwrap();
    }
    store
        .set_timer_next_due("a", "kept", "* * * * * *|UTC", Some(1000))
        .await
        .unwrap();
    let next = |_: &str, timer: &str, _: Option<&str>, _: i64| {
        (timer == "kept").then(|| ("* * * * * *|UTC".to_string(), Some(i64::MAX / 2)))
    };
    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.extend(
            store
                .claim_timers("fe1", &["a"], 3, 10_000, next)
                .await
                .unwrap(),
        );
    }
    let names: Vec<&str> = claimed.iter().map(|c| c.timer.as_str()).collect();
    assert_eq!(
        names,
        ["kept"],
        "the kept timer runs, the removed ones never"
    );
    for s in store.timer_states(Some("a")).await.unwrap() {
        if s.timer != "kept" {
            assert_eq!(
                (s.next_due_at_ms, s.run_now_at_ms, s.running.is_some()),
                (None, None, false),
                "{s:?}"
            );
        }
    }
}

/// Front-ends claiming at once never get the same job.
async fn concurrent_claims_never_overlap() {
    let (_guard, store) = open().await;
    for _ in 0..200 {
        store.enqueue_job(&job("a", None)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("fe{i}");
            let mut mine = Vec::new();
            loop {
                let c = store.claim_jobs(&name, &["a"], 7, 10_000).await.unwrap();
                if c.is_empty() {
                    return mine;
                }
                mine.extend(c.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (200, 200));
}

crate::both!(
    enqueue_is_idempotent_per_app_and_delay_is_kept,
    outcomes_backoff_failure_retry_cancel_and_retention,
    a_stale_job_claim_can_neither_renew_nor_record,
    a_stale_timer_claim_can_neither_renew_nor_record,
    removed_timers_do_not_take_claim_slots,
    concurrent_claims_never_overlap,
);
