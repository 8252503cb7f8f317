//! The environment's audit log (issue 9 part 7, environment side): one row
//! per call of the environment's API that changed something or was refused.
//! Append-only: this module inserts and reads, nothing updates or deletes.

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
}

/// Filters of [`Store::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub since_ms: Option<i64>,
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
    })
}

impl Store {
    /// Appends a row (its outcome follows from its status).
    pub async fn append_audit(&self, row: &NewAuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, credential, address, action, target, status, \
             outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to append an audit row for {}", row.action))?;
        Ok(())
    }

    /// Audit rows, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        // Only the filters given become conditions (an untyped NULL
        // parameter is refused by PostgreSQL).
        let mut conditions = vec!["at_ms >= $1".to_string()];
        if filter.actor.is_some() {
            conditions.push(format!("actor = ${}", conditions.len() + 1));
        }
        if filter.outcome.is_some() {
            conditions.push(format!("outcome = ${}", conditions.len() + 1));
        }
        let sql = format!(
            "SELECT id, at_ms, actor, credential, address, action, target, status, outcome, \
             detail FROM audit WHERE {} ORDER BY id DESC LIMIT ${}",
            conditions.join(" AND "),
            conditions.len() + 1
        );
        let mut query = sqlx::query(&sql).bind(filter.since_ms.unwrap_or(0));
        if let Some(actor) = &filter.actor {
            query = query.bind(actor.as_str());
        }
        if let Some(outcome) = filter.outcome {
            query = query.bind(outcome.as_str());
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
}
