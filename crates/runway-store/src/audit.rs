//! The environment's audit log (issue 9 part 7, environment side): one row
//! per call of the environment's API that changed something or was refused.
//! Append-only: nothing updates a row; rows older than the retention
//! (`--audit-retention-days`, default [`DEFAULT_AUDIT_RETENTION`]) are
//! deleted hourly ([`Store::spawn_audit_retention`]).

use runway_api::trust::AuditOutcome;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::deployments::bad_column;
use crate::error::{Context, Result};
use crate::{Store, now_ms};

/// A row to append.
#[derive(Debug, Clone)]
pub struct NewAuditRow {
    /// `token:<name>`, `console:<sub>` or `anonymous`.
    pub actor: String,
    pub credential: Option<String>,
    pub address: String,
    pub action: String,
    pub target: String,
    pub status: u16,
    pub detail: Option<String>,
    /// Before and after of a configuration change (JSON, no secret values).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub credential: Option<String>,
    pub address: String,
    pub action: String,
    pub target: String,
    pub status: u16,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    /// Before and after of a configuration change (JSON, no secret values).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How long audit rows are kept by default (365 days, as the console's).
pub const DEFAULT_AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

/// Filters of [`Store::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this actor (`token:ci`, `console:ada`).
    pub actor: Option<String>,
    /// Any of these actors (e.g. `console:ada` and `token:ada` for `--user ada`).
    pub actors: Vec<String>,
    pub outcome: Option<AuditOutcome>,
    /// Rows whose action (`METHOD /route`) contains this text.
    pub action: Option<String>,
    /// Rows whose path is app `app`'s (`…/apps/{app}` or below it).
    pub app: Option<String>,
    pub since_ms: Option<i64>,
    /// Rows before this instant.
    pub until_ms: Option<i64>,
    /// Newest first, at most this many (1–1000).
    pub limit: i64,
}

/// Longest text kept in a column of an audit row (longer is cut).
const MAX_FIELD: usize = 2048;

fn clean(s: &str) -> String {
    let mut s = s.replace('\0', "\u{FFFD}");
    if s.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn from_row(r: &AnyRow) -> sqlx::Result<AuditRecord> {
    let outcome: String = r.try_get("outcome")?;
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        credential: r.try_get("credential")?,
        address: r.try_get("address")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| bad_column("audit.outcome", &outcome))?,
        detail: r.try_get("detail")?,
        before: r.try_get("before_json")?,
        after: r.try_get("after_json")?,
    })
}

impl Store {
    /// Appends a row (its outcome follows from its status).
    pub async fn append_audit(&self, row: &NewAuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, credential, address, action, target, status, \
             outcome, detail, before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(now_ms())
        .bind(clean(&row.actor))
        .bind(row.credential.as_deref().map(clean))
        .bind(clean(&row.address))
        .bind(clean(&row.action))
        .bind(clean(&row.target))
        .bind(i64::from(row.status))
        .bind(AuditOutcome::of_status(row.status).as_str())
        .bind(row.detail.as_deref().map(clean))
        .bind(row.before.as_deref())
        .bind(row.after.as_deref())
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to append an audit row for {}", row.action))?;
        Ok(())
    }

    /// Audit rows, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        // Only the filters given become conditions (an untyped NULL
        // parameter is refused by PostgreSQL).
        // Parameters are numbered in the order they are bound.
        let mut conditions = vec!["at_ms >= $1".to_string()];
        let mut binds: Vec<String> = Vec::new();
        let next = |binds: &mut Vec<String>, value: String| {
            binds.push(value);
            format!("${}", binds.len() + 1)
        };
        if let Some(actor) = &filter.actor {
            conditions.push(format!("actor = {}", next(&mut binds, actor.clone())));
        }
        if !filter.actors.is_empty() {
            let any: Vec<String> = filter
                .actors
                .iter()
                .map(|a| format!("actor = {}", next(&mut binds, a.clone())))
                .collect();
            conditions.push(format!("({})", any.join(" OR ")));
        }
        if let Some(outcome) = filter.outcome {
            conditions.push(format!(
                "outcome = {}",
                next(&mut binds, outcome.as_str().to_string())
            ));
        }
        if let Some(action) = &filter.action {
            // LIKE, with the text's own wildcards escaped (the same on both
            // backends).
            conditions.push(format!(
                "action LIKE {} ESCAPE '\\'",
                next(&mut binds, format!("%{}%", like_escape(action)))
            ));
        }
        if let Some(app) = &filter.app {
            let exact = next(&mut binds, format!("%/apps/{}", like_escape(app)));
            let below = next(&mut binds, format!("%/apps/{}/%", like_escape(app)));
            conditions.push(format!(
                "(target LIKE {exact} ESCAPE '\\' OR target LIKE {below} ESCAPE '\\')"
            ));
        }
        let until = filter.until_ms.map(|_| {
            let n = binds.len() + 2;
            conditions.push(format!("at_ms < ${n}"));
            n
        });
        let limit_n = binds.len() + 2 + usize::from(until.is_some());
        let sql = format!(
            "SELECT id, at_ms, actor, credential, address, action, target, status, outcome, \
             detail, before_json, after_json FROM audit WHERE {} ORDER BY id DESC \
             LIMIT ${limit_n}",
            conditions.join(" AND "),
        );
        let mut query = sqlx::query(&sql).bind(filter.since_ms.unwrap_or(0));
        for value in binds {
            query = query.bind(value);
        }
        if let Some(until) = filter.until_ms {
            query = query.bind(until);
        }
        let rows = query
            .bind(filter.limit.clamp(1, 1000))
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to read the audit log".to_string())?;
        rows.iter()
            .map(from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode an audit row".to_string())
    }

    /// Deletes the audit rows older than `before_ms` (retention); how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.platform().pool)
            .await
            .context(|| "failed to prune the audit log".to_string())?
            .rows_affected())
    }

    /// Prunes audit rows older than `max_age` now and then every `every`,
    /// until the task is aborted or the store closed.
    pub fn spawn_audit_retention(
        &self,
        max_age: std::time::Duration,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let every = every.max(std::time::Duration::from_millis(1));
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let store = Store { inner };
                if store.platform().pool.is_closed() {
                    return;
                }
                let before = now_ms().saturating_sub(max_age_ms);
                match store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned the audit log past its retention"),
                    Err(e) => tracing::warn!(error = %e, "audit retention failed"),
                }
                drop(store);
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// `text` with LIKE's wildcards and the escape character escaped (`\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
