//! Timer state (platform catalog): per-environment overrides, the next due
//! time and the run lease of every timer (see `migrations/*/platform/0008_timers.sql`).
//!
//! **At most once per due time.** [`Store::claim_timers`] runs in one write
//! transaction: it selects due rows with `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL (several front-ends claim different rows at once, never the
//! same one) or under SQLite's write lock (`BEGIN IMMEDIATE`), and for each
//! row it keeps, moves `next_due_at_ms` strictly past both now and the due
//! time it claims, and takes the lease. Only the transaction that moved it
//! can run that due time. Ticks missed while nothing ran them collapse into
//! one run: the next due time is computed from now, not from the missed one.
//!
//! **Leases.** A run holds the row (`holder`, `lease_expires_at_ms` on the
//! database clock) and renews it ([`Store::renew_timer`]) while it lasts; a
//! row whose lease expired (its front-end died) is claimable again, for the
//! same due time, and the lost run is recorded as `lost`. Every claim gets a
//! fresh random token; a run's lease is renewed and its result recorded
//! ([`Store::finish_timer`]) only with the token of the current claim, so a
//! front-end that lost its lease (a long catalog outage) and claimed the
//! same timer again cannot record or extend the older run.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::claims::{random_token, row_lock};
use crate::error::{Context, Result, StoreError};
use crate::kv::check_no_nul;
use crate::lease::db_now;

/// The setting (`settings` table) holding the environment's time zone for
/// timer schedules (an IANA name; unset: UTC).
pub const TIME_ZONE_SETTING: &str = "timers.time_zone";

/// The stored state of one timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerState {
    pub app: String,
    pub timer: String,
    /// The per-environment schedule, if one replaces the manifest's.
    pub schedule_override: Option<String>,
    pub disabled: bool,
    /// A pending "run now" request (when it was asked for).
    pub run_now_at_ms: Option<i64>,
    pub next_due_at_ms: Option<i64>,
    /// `"<schedule>|<time zone>"` that `next_due_at_ms` was computed from.
    pub next_due_basis: Option<String>,
    /// The front-end running it now, with the due time it runs and since when.
    pub running: Option<TimerRunning>,
    pub last: Option<TimerOutcome>,
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRunning {
    pub frontend: String,
    pub due_at_ms: i64,
    pub started_at_ms: i64,
    pub lease_expires_at_ms: i64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerOutcome {
    pub due_at_ms: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    /// The HTTP status the app answered, if it answered.
    pub status: Option<i64>,
    /// `ok` (2xx), `failed` (anything else) or `lost` (its front-end died).
    pub outcome: String,
    pub error: Option<String>,
    pub frontend: String,
}

/// What a front-end claimed and must run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerClaim {
    pub app: String,
    pub timer: String,
    pub due_at_ms: i64,
    /// A "run now" request rather than the schedule.
    pub manual: bool,
    /// The previous holder of this due time, whose lease expired.
    pub lost_by: Option<String>,
    /// Proves this claim: renewing and recording the run need it, so a
    /// front-end that lost its lease cannot touch the run that replaced it.
    pub token: String,
}

const COLUMNS: &str = "app, timer, schedule_override, disabled, run_now_at_ms, next_due_at_ms, \
     next_due_basis, holder, running_due_at_ms, running_started_at_ms, lease_expires_at_ms, \
     last_due_at_ms, last_started_at_ms, last_duration_ms, last_status, last_outcome, \
     last_error, last_frontend";

fn state_from_row(r: &AnyRow) -> sqlx::Result<TimerState> {
    let holder: Option<String> = r.try_get("holder")?;
    let running = match holder {
        Some(frontend) => Some(TimerRunning {
            frontend,
            due_at_ms: r
                .try_get::<Option<i64>, _>("running_due_at_ms")?
                .unwrap_or(0),
            started_at_ms: r
                .try_get::<Option<i64>, _>("running_started_at_ms")?
                .unwrap_or(0),
            lease_expires_at_ms: r
                .try_get::<Option<i64>, _>("lease_expires_at_ms")?
                .unwrap_or(0),
        }),
        None => None,
    };
    let last = match r.try_get::<Option<String>, _>("last_outcome")? {
        Some(outcome) => Some(TimerOutcome {
            due_at_ms: r.try_get::<Option<i64>, _>("last_due_at_ms")?.unwrap_or(0),
            started_at_ms: r
                .try_get::<Option<i64>, _>("last_started_at_ms")?
                .unwrap_or(0),
            duration_ms: r
                .try_get::<Option<i64>, _>("last_duration_ms")?
                .unwrap_or(0),
            status: r.try_get("last_status")?,
            outcome,
            error: r.try_get("last_error")?,
            frontend: r
                .try_get::<Option<String>, _>("last_frontend")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(TimerState {
        app: r.try_get("app")?,
        timer: r.try_get("timer")?,
        schedule_override: r.try_get("schedule_override")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        run_now_at_ms: r.try_get("run_now_at_ms")?,
        next_due_at_ms: r.try_get("next_due_at_ms")?,
        next_due_basis: r.try_get("next_due_basis")?,
        running,
        last,
    })
}

fn check(app: &str, timer: &str) -> Result<()> {
    check_no_nul("app name", app)?;
    check_no_nul("timer name", timer)?;
    if app.is_empty() || timer.is_empty() {
        return Err(StoreError::Invalid(
            "a timer needs an app and a timer name".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// Every stored timer state, or those of one app, ordered by app and name.
    pub async fn timer_states(&self, app: Option<&str>) -> Result<Vec<TimerState>> {
        let what = || "failed to read timer states".to_string();
        let rows = match app {
            Some(app) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM timer_state WHERE app = $1 ORDER BY app, timer"
                ))
                .bind(app)
                .fetch_all(&self.platform().pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM timer_state ORDER BY app, timer"
                ))
                .fetch_all(&self.platform().pool)
                .await
            }
        }
        .context(what)?;
        rows.iter()
            .map(state_from_row)
            .collect::<sqlx::Result<_>>()
            .context(what)
    }

    /// Sets the next due time of a timer, computed from `basis`
    /// (`"<schedule>|<time zone>"`), creating its row if needed. A row whose
    /// basis is already `basis` is left alone (another front-end got there
    /// first), so every front-end computing it at once is harmless.
    pub async fn set_timer_next_due(
        &self,
        app: &str,
        timer: &str,
        basis: &str,
        next_due_at_ms: Option<i64>,
    ) -> Result<()> {
        check(app, timer)?;
        sqlx::query(
            "INSERT INTO timer_state (app, timer, next_due_at_ms, next_due_basis) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app, timer) DO UPDATE SET next_due_at_ms = excluded.next_due_at_ms, \
             next_due_basis = excluded.next_due_basis \
             WHERE timer_state.next_due_basis IS NULL OR timer_state.next_due_basis <> excluded.next_due_basis",
        )
        .bind(app)
        .bind(timer)
        .bind(next_due_at_ms)
        .bind(basis)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to schedule timer {app}/{timer}"))?;
        Ok(())
    }

    /// Sets the per-environment schedule of a timer: `schedule` replaces the
    /// manifest's (`None`: the manifest's again); `disabled` stops scheduled
    /// runs ("run now" still works). The next due time is recomputed by the
    /// front-ends.
    pub async fn set_timer_schedule(
        &self,
        app: &str,
        timer: &str,
        schedule: Option<&str>,
        disabled: bool,
    ) -> Result<()> {
        check(app, timer)?;
        if let Some(s) = schedule {
            check_no_nul("schedule", s)?;
        }
        sqlx::query(
            "INSERT INTO timer_state (app, timer, schedule_override, disabled) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app, timer) DO UPDATE SET schedule_override = excluded.schedule_override, \
             disabled = excluded.disabled, next_due_at_ms = NULL, next_due_basis = NULL",
        )
        .bind(app)
        .bind(timer)
        .bind(schedule)
        .bind(i64::from(disabled))
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to set the schedule of timer {app}/{timer}"))?;
        Ok(())
    }

    /// Asks for one run of a timer as soon as a front-end can take it.
    pub async fn request_timer_run(&self, app: &str, timer: &str) -> Result<i64> {
        check(app, timer)?;
        let now = db_now(self.platform().backend);
        let row = sqlx::query(&format!(
            "INSERT INTO timer_state (app, timer, run_now_at_ms) VALUES ($1, $2, {now}) \
             ON CONFLICT (app, timer) DO UPDATE SET run_now_at_ms = excluded.run_now_at_ms \
             RETURNING run_now_at_ms"
        ))
        .bind(app)
        .bind(timer)
        .fetch_one(&self.platform().pool)
        .await
        .context(|| format!("failed to ask for a run of timer {app}/{timer}"))?;
        row.try_get::<i64, _>("run_now_at_ms")
            .context(|| format!("failed to ask for a run of timer {app}/{timer}"))
    }

    /// Claims up to `limit` due timers for `frontend`, with a lease of
    /// `lease_ms`. `next_due(app, timer, schedule_override, after_ms)` gives
    /// the basis and next due time strictly after `after_ms` of a timer this
    /// front-end runs, or `None` for one it does not know (left for others).
    /// See the module doc for the guarantees.
    pub async fn claim_timers(
        &self,
        frontend: &str,
        apps: &[&str],
        limit: usize,
        lease_ms: i64,
        mut next_due: impl FnMut(&str, &str, Option<&str>, i64) -> Option<(String, Option<i64>)>,
    ) -> Result<Vec<TimerClaim>> {
        if limit == 0 || apps.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.platform();
        let backend = catalog.backend;
        let now = db_now(backend);
        let what = || format!("failed to claim due timers for front-end {frontend}");
        let mut tx = catalog.begin_write("claim due timers").await?;
        let lock = row_lock(backend);
        // Only timers of apps this front-end serves: rows of other apps
        // (undeployed, or not loaded here) never crowd them out.
        let placeholders: Vec<String> = (0..apps.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {COLUMNS}, {now} AS db_now_ms FROM timer_state \
             WHERE app IN ({}) AND ((holder IS NULL AND (run_now_at_ms IS NOT NULL \
                    OR (disabled = 0 AND next_due_at_ms <= {now}))) \
                OR (holder IS NOT NULL AND lease_expires_at_ms <= {now})) \
             ORDER BY COALESCE(run_now_at_ms, next_due_at_ms) LIMIT $1{lock}",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(i64::try_from(limit).unwrap_or(i64::MAX));
        for app in apps {
            query = query.bind(*app);
        }
        let rows = query.fetch_all(&mut *tx).await.context(what)?;
        let mut claims = Vec::new();
        for row in &rows {
            let token = random_token();
            let state = state_from_row(row).context(what)?;
            let db_now_ms: i64 = row.try_get("db_now_ms").context(what)?;
            let Some((basis, next)) = next_due(
                &state.app,
                &state.timer,
                state.schedule_override.as_deref(),
                db_now_ms.max(state.next_due_at_ms.unwrap_or(0)),
            ) else {
                // Its app no longer declares it (removed from the manifest):
                // clear what made it due, so that it never takes a claim slot
                // again. Overrides stay, in case it comes back; a front-end
                // that knows it gives it a next due time again (its basis is
                // cleared).
                sqlx::query(
                    "UPDATE timer_state SET next_due_at_ms = NULL, next_due_basis = NULL, \
                     run_now_at_ms = NULL, holder = NULL, claim_token = NULL, \
                     running_due_at_ms = NULL, running_started_at_ms = NULL, \
                     lease_expires_at_ms = NULL WHERE app = $1 AND timer = $2",
                )
                .bind(&state.app)
                .bind(&state.timer)
                .execute(&mut *tx)
                .await
                .context(what)?;
                continue;
            };
            let claim = if let Some(lost) = &state.running {
                // Its front-end stopped renewing: run the same due time again.
                sqlx::query(&format!(
                    "UPDATE timer_state SET holder = $1, running_started_at_ms = {now}, \
                     lease_expires_at_ms = {now} + $2, last_due_at_ms = $3, \
                     last_started_at_ms = $4, last_duration_ms = $5, last_status = NULL, \
                     last_outcome = 'lost', last_error = $6, last_frontend = $7, \
                     claim_token = $10 WHERE app = $8 AND timer = $9"
                ))
                .bind(frontend)
                .bind(lease_ms)
                .bind(lost.due_at_ms)
                .bind(lost.started_at_ms)
                .bind(db_now_ms - lost.started_at_ms)
                .bind(format!(
                    "front-end {} stopped renewing its lease during the run (stopped or killed); \
                     the run was started again on {frontend}",
                    lost.frontend
                ))
                .bind(&lost.frontend)
                .bind(&state.app)
                .bind(&state.timer)
                .bind(&token)
                .execute(&mut *tx)
                .await
                .context(what)?;
                TimerClaim {
                    app: state.app,
                    timer: state.timer,
                    due_at_ms: lost.due_at_ms,
                    manual: false,
                    lost_by: Some(lost.frontend.clone()),
                    token,
                }
            } else if let Some(asked) = state.run_now_at_ms {
                sqlx::query(&format!(
                    "UPDATE timer_state SET holder = $1, running_due_at_ms = $2, \
                     running_started_at_ms = {now}, lease_expires_at_ms = {now} + $3, \
                     run_now_at_ms = NULL, claim_token = $6 WHERE app = $4 AND timer = $5"
                ))
                .bind(frontend)
                .bind(asked)
                .bind(lease_ms)
                .bind(&state.app)
                .bind(&state.timer)
                .bind(&token)
                .execute(&mut *tx)
                .await
                .context(what)?;
                TimerClaim {
                    app: state.app,
                    timer: state.timer,
                    due_at_ms: asked,
                    manual: true,
                    lost_by: None,
                    token,
                }
            } else {
                let Some(due) = state.next_due_at_ms else {
                    continue;
                };
                // Strictly later than the due time claimed, whatever the
                // clocks say: this due time can never be claimed twice.
                let next = next.filter(|n| *n > due);
                sqlx::query(&format!(
                    "UPDATE timer_state SET holder = $1, running_due_at_ms = $2, \
                     running_started_at_ms = {now}, lease_expires_at_ms = {now} + $3, \
                     next_due_at_ms = $4, next_due_basis = $5, claim_token = $8 \
                     WHERE app = $6 AND timer = $7"
                ))
                .bind(frontend)
                .bind(due)
                .bind(lease_ms)
                .bind(next)
                .bind(&basis)
                .bind(&state.app)
                .bind(&state.timer)
                .bind(&token)
                .execute(&mut *tx)
                .await
                .context(what)?;
                TimerClaim {
                    app: state.app,
                    timer: state.timer,
                    due_at_ms: due,
                    manual: false,
                    lost_by: None,
                    token,
                }
            };
            claims.push(claim);
        }
        tx.commit().await.context(what)?;
        Ok(claims)
    }

    /// How long until a timer of `apps` next needs a claim, on the database
    /// clock: the earliest next due time of an idle, enabled timer or lease
    /// expiry of a running one (a pending "run now" counts as due now).
    /// `None`: none of them will ever be due without a change. Lets a
    /// scheduler sleep until exactly then instead of polling.
    pub async fn timer_wait_ms(&self, apps: &[&str]) -> Result<Option<i64>> {
        if apps.is_empty() {
            return Ok(None);
        }
        let now = db_now(self.platform().backend);
        let placeholders: Vec<String> = (0..apps.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT MIN(CASE WHEN holder IS NOT NULL THEN lease_expires_at_ms \
                WHEN run_now_at_ms IS NOT NULL THEN {now} \
                WHEN disabled = 0 THEN next_due_at_ms END) - {now} AS wait_ms \
             FROM timer_state WHERE app IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for app in apps {
            query = query.bind(*app);
        }
        let what = || "failed to read when the next timer is due".to_string();
        let row = query.fetch_one(&self.platform().pool).await.context(what)?;
        row.try_get::<Option<i64>, _>("wait_ms").context(what)
    }

    /// The timers whose next due time must be computed again (their
    /// schedule override changed, so it was cleared): a cheap query that a
    /// scheduler makes often, where reading every timer state would cost a
    /// read of the whole table.
    pub async fn timers_without_basis(&self) -> Result<Vec<TimerState>> {
        let what = || "failed to read the timers to reschedule".to_string();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM timer_state WHERE next_due_basis IS NULL ORDER BY app, timer"
        ))
        .fetch_all(&self.platform().pool)
        .await
        .context(what)?;
        rows.iter()
            .map(state_from_row)
            .collect::<sqlx::Result<_>>()
            .context(what)
    }

    /// Extends the lease of the run claimed with `token`. `false`: that
    /// claim is not current any more (its lease expired and the timer was
    /// claimed again, or the run was recorded).
    pub async fn renew_timer(
        &self,
        token: &str,
        app: &str,
        timer: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = db_now(self.platform().backend);
        let n = sqlx::query(&format!(
            "UPDATE timer_state SET lease_expires_at_ms = {now} + $1 \
             WHERE app = $2 AND timer = $3 AND claim_token = $4"
        ))
        .bind(lease_ms)
        .bind(app)
        .bind(timer)
        .bind(token)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to renew the lease of timer {app}/{timer}"))?
        .rows_affected();
        Ok(n > 0)
    }

    /// Records how a run ended and gives the lease up; only with the token
    /// of the current claim. `false`: the claim was not current any more
    /// (nothing recorded).
    pub async fn finish_timer(
        &self,
        token: &str,
        app: &str,
        timer: &str,
        outcome: &TimerOutcome,
    ) -> Result<bool> {
        if let Some(e) = &outcome.error {
            check_no_nul("timer error", e)?;
        }
        let n = sqlx::query(
            "UPDATE timer_state SET holder = NULL, running_due_at_ms = NULL, \
             running_started_at_ms = NULL, lease_expires_at_ms = NULL, last_due_at_ms = $1, \
             last_started_at_ms = $2, last_duration_ms = $3, last_status = $4, \
             last_outcome = $5, last_error = $6, last_frontend = $7, claim_token = NULL \
             WHERE app = $8 AND timer = $9 AND claim_token = $10",
        )
        .bind(outcome.due_at_ms)
        .bind(outcome.started_at_ms)
        .bind(outcome.duration_ms)
        .bind(outcome.status)
        .bind(&outcome.outcome)
        .bind(&outcome.error)
        .bind(&outcome.frontend)
        .bind(app)
        .bind(timer)
        .bind(token)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to record the run of timer {app}/{timer}"))?
        .rows_affected();
        Ok(n > 0)
    }
}
