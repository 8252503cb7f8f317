//! Background jobs (platform catalog, `migrations/*/platform/0009_jobs.sql`):
//! what apps enqueue through `runway:jobs/queue`, claimed and delivered by
//! front-ends.
//!
//! **Durable once enqueued.** [`Store::enqueue_job`] is one `INSERT`: when it
//! returns the job is in the catalog. An idempotency key is unique per app:
//! enqueueing it again returns the first job's id (`created: false`).
//!
//! **Claims.** [`Store::claim_jobs`] runs in one write transaction (`FOR
//! UPDATE SKIP LOCKED` on PostgreSQL, SQLite's write lock via `BEGIN
//! IMMEDIATE`), like [`Store::claim_timers`]: it takes due jobs (queued or
//! retrying whose time came, or running whose lease expired: their front-end
//! died) of the apps the front-end serves, counts the attempt, and gives
//! each claim a fresh random token and a lease (the visibility timeout).
//! Only the holder of the token renews ([`Store::renew_job`]) or records the
//! outcome ([`Store::finish_job`]): a front-end whose lease expired during a
//! long catalog outage cannot overwrite the outcome of the redelivery.
//! Delivery is therefore at least once; apps make handlers idempotent.

use sqlx::Row;
use sqlx::any::AnyRow;

use runway_api::v1::JobState;

use crate::Store;
use crate::claims::{Queue, random_token};
use crate::db::Backend;
use crate::error::{Context, Result, StoreError};
use crate::kv::check_no_nul;
use crate::lease::db_now;

/// The jobs table as a queue of the one claim mechanism (`claims`).
const JOBS: Queue = Queue {
    table: "jobs",
    noun: "job",
    due: "run_at_ms",
    waiting: "'queued', 'retrying'",
    held: "'running'",
    also_set: "",
    lost_note: "",
    lost_also_set: ", last_status = NULL",
};

/// A job to enqueue (already checked by the runtime; the store checks again
/// what would corrupt the catalog).
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub app: &'a str,
    pub path: &'a str,
    pub payload: &'a [u8],
    /// Milliseconds before the first delivery (≥ 0).
    pub delay_ms: i64,
    /// At least 1.
    pub max_attempts: i64,
    pub idempotency_key: Option<&'a str>,
}

/// The answer to [`Store::enqueue_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    /// `false`: a job with the same idempotency key existed; `id` is its id.
    pub created: bool,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub app: String,
    pub path: String,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub idempotency_key: Option<String>,
    pub payload_bytes: i64,
    pub created_at_ms: i64,
    pub run_at_ms: i64,
    pub holder: Option<String>,
    pub finished_at_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// A job a front-end claimed and must deliver now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClaim {
    pub id: String,
    pub app: String,
    pub path: String,
    pub payload: Vec<u8>,
    /// This delivery's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// Proves the claim: renewing and finishing need it.
    pub token: String,
    /// The front-end whose lease on this job expired, if this is a redelivery.
    pub lost_by: Option<String>,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The app answered 2xx.
    pub ok: bool,
    pub status: Option<i64>,
    pub error: Option<String>,
    /// When it failed and attempts remain: wait this long before the next.
    pub retry_in_ms: i64,
}

const COLUMNS: &str = "id, app, path, state, attempts, max_attempts, idempotency_key, \
     created_at_ms, run_at_ms, holder, finished_at_ms, last_status, last_error";

fn record_from_row(r: &AnyRow) -> sqlx::Result<JobRecord> {
    let state: String = r.try_get("state")?;
    Ok(JobRecord {
        id: r.try_get("id")?,
        app: r.try_get("app")?,
        path: r.try_get("path")?,
        state: JobState::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "state".into(),
            source: format!("unknown job state {state:?}").into(),
        })?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        idempotency_key: r.try_get("idempotency_key")?,
        payload_bytes: r.try_get("payload_bytes")?,
        created_at_ms: r.try_get("created_at_ms")?,
        run_at_ms: r.try_get("run_at_ms")?,
        holder: r.try_get("holder")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
    })
}

/// A random 128-bit token (hex): job ids and claim tokens.
fn payload_len(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(octet_length(payload) AS BIGINT)",
        Backend::Sqlite => "length(payload)",
    }
}

impl Store {
    /// Stores a job; see the module doc.
    pub async fn enqueue_job(&self, job: &NewJob<'_>) -> Result<Enqueued> {
        check_no_nul("app name", job.app)?;
        check_no_nul("job path", job.path)?;
        if let Some(k) = job.idempotency_key {
            check_no_nul("idempotency key", k)?;
        }
        if job.delay_ms < 0 || job.max_attempts < 1 {
            return Err(StoreError::Invalid(format!(
                "a job needs a delay ≥ 0 and max-attempts ≥ 1 (got {} ms, {})",
                job.delay_ms, job.max_attempts
            )));
        }
        let catalog = self.platform();
        let now = db_now(catalog.backend);
        let id = random_token();
        let what = || format!("failed to enqueue a job of app {}", job.app);
        let inserted = sqlx::query(&format!(
            "INSERT INTO jobs (id, app, path, payload, idempotency_key, state, attempts, \
             max_attempts, created_at_ms, run_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, {now}, {now} + $8) \
             ON CONFLICT (app, idempotency_key) DO NOTHING RETURNING id"
        ))
        .bind(&id)
        .bind(job.app)
        .bind(job.path)
        .bind(job.payload)
        .bind(job.idempotency_key)
        .bind(JobState::Queued.as_str())
        .bind(job.max_attempts)
        .bind(job.delay_ms)
        .fetch_optional(&catalog.pool)
        .await
        .context(what)?;
        if inserted.is_some() {
            return Ok(Enqueued { id, created: true });
        }
        let row = sqlx::query("SELECT id FROM jobs WHERE app = $1 AND idempotency_key = $2")
            .bind(job.app)
            .bind(job.idempotency_key)
            .fetch_one(&catalog.pool)
            .await
            .context(what)?;
        Ok(Enqueued {
            id: row.try_get("id").context(what)?,
            created: false,
        })
    }

    /// Claims up to `limit` due jobs of `apps` for `frontend`, with a lease of
    /// `lease_ms`. See the module doc for the guarantees.
    pub async fn claim_jobs(
        &self,
        frontend: &str,
        apps: &[&str],
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<JobClaim>> {
        if limit == 0 || apps.is_empty() {
            return Ok(Vec::new());
        }
        let what = || format!("failed to claim due jobs for front-end {frontend}");
        let placeholders: Vec<String> = (0..apps.len()).map(|i| format!("${}", i + 2)).collect();
        let apps: Vec<String> = apps.iter().map(|a| a.to_string()).collect();
        let claimed = self
            .claim_rows(
                &JOBS,
                frontend,
                limit,
                lease_ms,
                "id, app, path, payload, attempts, max_attempts, state, holder",
                &format!("app IN ({})", placeholders.join(", ")),
                |mut query| {
                    for app in &apps {
                        query = query.bind(app.clone());
                    }
                    query
                },
            )
            .await?;
        let mut claims = Vec::with_capacity(claimed.rows.len());
        for row in &claimed.rows {
            let state: String = row.try_get("state").context(what)?;
            let holder: Option<String> = row.try_get("holder").context(what)?;
            claims.push(JobClaim {
                id: row.try_get("id").context(what)?,
                app: row.try_get("app").context(what)?,
                path: row.try_get("path").context(what)?,
                payload: row.try_get("payload").context(what)?,
                attempt: row.try_get::<i64, _>("attempts").context(what)? + 1,
                max_attempts: row.try_get("max_attempts").context(what)?,
                token: claimed.token.clone(),
                lost_by: (state == JobState::Running.as_str()).then(|| holder.unwrap_or_default()),
            });
        }
        Ok(claims)
    }

    /// Extends the lease of a delivery. `false`: the claim is not current any
    /// more (its lease expired and the job was claimed again, or it ended).
    pub async fn renew_job(&self, id: &str, token: &str, lease_ms: i64) -> Result<bool> {
        self.renew_claim(&JOBS, id, token, lease_ms).await
    }

    /// Records how a delivery ended, only for the current claim: done, else
    /// retrying after `retry_in_ms` while attempts remain, else failed.
    /// `false`: the claim was not current (nothing recorded).
    pub async fn finish_job(
        &self,
        id: &str,
        token: &str,
        frontend: &str,
        outcome: &JobOutcome,
    ) -> Result<bool> {
        if let Some(e) = &outcome.error {
            check_no_nul("job error", e)?;
        }
        let set = if outcome.ok {
            "state = 'done', finished_at_ms = {now}, last_status = $3, last_error = $4, \
             last_frontend = $5"
        } else {
            "state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END, \
             finished_at_ms = CASE WHEN attempts >= max_attempts THEN {now} ELSE NULL END, \
             run_at_ms = {now} + $6, last_status = $3, last_error = $4, last_frontend = $5"
        };
        let (status, error, frontend) =
            (outcome.status, outcome.error.clone(), frontend.to_string());
        let (ok, retry_in_ms) = (outcome.ok, outcome.retry_in_ms.max(0));
        self.end_claim(
            &JOBS,
            id,
            token,
            set,
            |query| {
                let query = query
                    .bind(status)
                    .bind(error.clone())
                    .bind(frontend.clone());
                if ok { query } else { query.bind(retry_in_ms) }
            },
            &format!("the delivery of job {id}"),
        )
        .await
    }

    /// Jobs, newest first: of one app and/or in one state, at most `limit`.
    pub async fn jobs(
        &self,
        app: Option<&str>,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRecord>> {
        let catalog = self.platform();
        let len = payload_len(catalog.backend);
        let mut filters = Vec::new();
        if app.is_some() {
            filters.push(format!("app = ${}", filters.len() + 2));
        }
        if state.is_some() {
            filters.push(format!("state = ${}", filters.len() + 2));
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS}, {len} AS payload_bytes FROM jobs {filter} \
             ORDER BY created_at_ms DESC, id LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(app) = app {
            query = query.bind(app);
        }
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        let rows = query
            .fetch_all(&catalog.pool)
            .await
            .context(|| "failed to list jobs".to_string())?;
        rows.iter()
            .map(record_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to read jobs".to_string())
    }

    /// One job.
    pub async fn job(&self, id: &str) -> Result<JobRecord> {
        check_no_nul("job id", id)?;
        let catalog = self.platform();
        let len = payload_len(catalog.backend);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, {len} AS payload_bytes FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&catalog.pool)
        .await
        .context(|| format!("failed to read job {id}"))?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no job {id} in this environment; list them with `runway jobs`"
            ))
        })?;
        record_from_row(&row).context(|| format!("failed to read job {id}"))
    }

    /// Apps that have jobs waiting (queued or retrying), in order.
    pub async fn apps_with_waiting_jobs(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT app FROM jobs WHERE state IN ('queued', 'retrying') ORDER BY app",
        )
        .fetch_all(&self.platform().pool)
        .await
        .context(|| "failed to list apps with waiting jobs".to_string())?;
        rows.iter()
            .map(|r| r.try_get("app"))
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to list apps with waiting jobs".to_string())
    }

    /// Queues a failed or cancelled job again, with its attempts reset.
    pub async fn retry_job(&self, id: &str) -> Result<JobRecord> {
        self.change_job(
            id,
            &[JobState::Failed, JobState::Cancelled],
            "state = 'queued', attempts = 0, run_at_ms = {now}, finished_at_ms = NULL",
            "retried",
        )
        .await
    }

    /// Cancels a job that waits (queued or retrying).
    pub async fn cancel_job(&self, id: &str) -> Result<JobRecord> {
        self.change_job(
            id,
            &[JobState::Queued, JobState::Retrying],
            "state = 'cancelled', finished_at_ms = {now}",
            "cancelled",
        )
        .await
    }

    async fn change_job(
        &self,
        id: &str,
        from: &[JobState],
        set: &str,
        verb: &str,
    ) -> Result<JobRecord> {
        let job = self.job(id).await?;
        let now = db_now(self.platform().backend);
        let states: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let n = sqlx::query(&format!(
            "UPDATE jobs SET {} WHERE id = $1 AND state IN ({})",
            set.replace("{now}", now),
            states.join(", ")
        ))
        .bind(id)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to change job {id}"))?
        .rows_affected();
        if n == 0 {
            let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            return Err(StoreError::Conflict(format!(
                "job {id} is {}; only a job that is {} can be {verb}",
                job.state,
                allowed.join(" or ")
            )));
        }
        self.job(id).await
    }

    /// Deletes done and cancelled jobs that finished before `before_ms`.
    /// Failed jobs are kept for inspection until an operator retries them.
    /// Returns how many were deleted.
    pub async fn purge_finished_jobs(&self, before_ms: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at_ms < $1",
        )
        .bind(before_ms)
        .execute(&self.platform().pool)
        .await
        .context(|| "failed to delete finished jobs".to_string())?
        .rows_affected();
        Ok(n)
    }
}
