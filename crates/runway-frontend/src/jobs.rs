//! Background jobs, delivered by a front-end with the timers flag (the
//! scheduler) through the same claim loop as timers
//! ([`crate::scheduler::poll_loop`]).
//!
//! While ready at the committed generation, every `--job-poll` and as soon
//! as a delivery ends, it claims due jobs of the apps in the table it serves
//! ([`runway_store::Store::claim_jobs`]: a fresh token and a lease, the
//! visibility timeout, per claim) up to its free slots (`--job-concurrency`),
//! and delivers each as `POST /{app}{path}` with the payload as body and
//! `x-runway-job`, `x-runway-attempt`, through the normal app path with the
//! app's request deadline, renewing the lease while it lasts. A 2xx answer
//! completes the job; anything else schedules the next attempt after an
//! exponential backoff with jitter, or fails it after its last attempt
//! (a platform log row says why). Jobs of apps this front-end does not serve
//! (undeployed) are left queued. Once a minute it deletes done and cancelled
//! jobs older than the retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runway_store::{JobClaim, JobOutcome, LogKind, LogLevel, NewLogEntry, now_ms};

use crate::deploy::{Inner, RunningApp};
use crate::scheduler::{
    BoxFuture, LOST_LEASE, Renewal, TimerSettings, Work, app_request, deliver, lost_lease,
};

/// Header carrying the job id of a delivery.
pub const JOB_HEADER: &str = "x-runway-job";
/// Header carrying the attempt number of a delivery (from 1).
pub const ATTEMPT_HEADER: &str = "x-runway-attempt";

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often finished jobs past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct JobWork {
    settings: TimerSettings,
    lease_ms: i64,
    apps: HashMap<String, Arc<RunningApp>>,
    purged: Option<Instant>,
}

impl JobWork {
    pub(crate) fn new(settings: TimerSettings, lease_ms: i64) -> JobWork {
        JobWork {
            settings,
            lease_ms,
            apps: HashMap::new(),
            purged: None,
        }
    }
}

/// The wait before the attempt after `attempt` (from 1): `base · 2^(attempt-1)`,
/// at most [`MAX_BACKOFF`], with full jitter in its upper half so that jobs
/// failing together do not retry together.
pub(crate) fn backoff(base: Duration, attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    full.mul_f64(rand::random_range(0.5..=1.0))
}

impl Work for JobWork {
    async fn claim(
        &mut self,
        inner: &Arc<Inner>,
        changed: bool,
        free: usize,
    ) -> Vec<BoxFuture<'static, ()>> {
        if changed {
            self.apps = inner.routes.load().apps.clone();
        }
        if self.purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            self.purged = Some(Instant::now());
            let retention = i64::try_from(self.settings.job_retention.as_millis()).unwrap_or(0);
            match inner.store.purge_finished_jobs(now_ms() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "jobs: finished jobs past their retention deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "jobs: cannot delete old finished jobs"),
            }
        }
        if free == 0 || self.apps.is_empty() {
            return Vec::new();
        }
        let apps: Vec<&str> = self.apps.keys().map(String::as_str).collect();
        let claims = match inner
            .store
            .claim_jobs(&inner.config.name, &apps, free, self.lease_ms)
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!(error = %e, "jobs: cannot claim due jobs; retrying");
                return Vec::new();
            }
        };
        let mut runs: Vec<BoxFuture<'static, ()>> = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(app) = self.apps.get(&claim.app) else {
                continue;
            };
            let delivery = Delivery {
                inner: inner.clone(),
                app: app.clone(),
                claim,
                request_id: uuid::Uuid::new_v4().simple().to_string(),
                settings: self.settings,
                lease_ms: self.lease_ms,
            };
            runs.push(Box::pin(delivery.run()));
        }
        runs
    }
}

struct Delivery {
    inner: Arc<Inner>,
    app: Arc<RunningApp>,
    claim: JobClaim,
    request_id: String,
    settings: TimerSettings,
    lease_ms: i64,
}

impl Delivery {
    async fn run(self) {
        let claim = &self.claim;
        if let Some(lost_by) = &claim.lost_by {
            self.log(
                LogLevel::Warn,
                None,
                format!(
                    "job {}: front-end {lost_by} stopped renewing its lease during the previous \
                     attempt (stopped or killed); delivering it again (attempt {}/{})",
                    claim.id, claim.attempt, claim.max_attempts
                ),
            );
        }
        let (status, error) = match app_request(
            &self.app,
            &claim.path,
            &self.request_id,
            &[
                (JOB_HEADER, claim.id.clone()),
                (ATTEMPT_HEADER, claim.attempt.to_string()),
            ],
            claim.payload.clone(),
        ) {
            Err(e) => (None, Some(format!("cannot build the request: {e}"))),
            Ok(request) => {
                let store = self.inner.store.clone();
                let (id, token, lease_ms) = (claim.id.clone(), claim.token.clone(), self.lease_ms);
                deliver(
                    &self.inner,
                    &self.app,
                    request,
                    &self.request_id,
                    self.app.limits.timeout,
                    Renewal {
                        lease: self.settings.lease,
                        renew: move || {
                            let (store, id, token) = (store.clone(), id.clone(), token.clone());
                            async move { store.renew_job(&id, &token, lease_ms).await }
                        },
                    },
                    &format!("job {}", claim.id),
                )
                .await
            }
        };
        if error.as_deref().is_some_and(lost_lease) {
            // Another claim holds the job now: it records its own delivery.
            self.log(
                LogLevel::Warn,
                status,
                format!(
                    "job {}: {LOST_LEASE}; this delivery (attempt {}) was stopped and is not recorded",
                    claim.id, claim.attempt
                ),
            );
            return;
        }
        let retry_in = backoff(self.settings.job_backoff, claim.attempt);
        let outcome = JobOutcome {
            ok: error.is_none(),
            status,
            error: error.clone(),
            retry_in_ms: i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX),
        };
        if let Some(e) = &error {
            let last = claim.attempt >= claim.max_attempts;
            self.log(
                if last { LogLevel::Error } else { LogLevel::Warn },
                status,
                if last {
                    format!(
                        "job {} failed at its last attempt ({}/{}): {e}; `runway jobs retry {}` queues it again",
                        claim.id, claim.attempt, claim.max_attempts, claim.id
                    )
                } else {
                    format!(
                        "job {} attempt {}/{} failed: {e}; next attempt in {} ms",
                        claim.id,
                        claim.attempt,
                        claim.max_attempts,
                        retry_in.as_millis()
                    )
                },
            );
        }
        for attempt in 0..5 {
            match self
                .inner
                .store
                .finish_job(&claim.id, &claim.token, &self.inner.config.name, &outcome)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(job = %claim.id,
                        "jobs: the outcome of a delivery was not recorded: its lease expired and the job was claimed again");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "jobs: cannot record a delivery; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    fn log(&self, level: LogLevel, status: Option<i64>, message: String) {
        self.inner.log.write(NewLogEntry {
            at_ms: now_ms(),
            kind: LogKind::Platform,
            level,
            app: Some(self.claim.app.clone()),
            version: Some(self.app.version.to_string()),
            frontend: Some(self.inner.config.name.clone()),
            request_id: Some(self.request_id.clone()),
            method: Some("POST".into()),
            path: Some(format!("/{}{}", self.app.name, self.claim.path)),
            status,
            message: Some(message),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(1);
        for attempt in 1..=5 {
            let full = Duration::from_secs(1 << (attempt - 1));
            for _ in 0..50 {
                let d = backoff(base, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
        assert!(backoff(base, 40) >= MAX_BACKOFF / 2);
    }
}
