//! The console's audit log: append-only (a trigger refuses changing a row),
//! filtered reads, and pruning past the retention. The console decides what
//! a row says; nothing secret is ever handed to it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::ConsoleStore;
use crate::error::{Context, Result};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub principal_id: Option<String>,
    /// `admin`, `user`, `service_account`, or `anonymous` (no valid credential).
    pub principal_kind: String,
    pub principal_name: String,
    /// Which session or token: a prefix of its id, never a secret.
    pub credential: String,
    pub address: String,
    pub action: String,
    pub environment: Option<String>,
    pub app: Option<String>,
    pub target: String,
    /// `done` or `refused`.
    pub outcome: String,
    pub status: i64,
    pub reason: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub environment: Option<String>,
    pub app: Option<String>,
    /// Rows whose action contains this text.
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str = "id, at_ms, principal_id, principal_kind, principal_name, credential, \
     address, action, environment, app, target, outcome, status, reason, before_json, after_json";

fn from_row(r: &AnyRow) -> sqlx::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        principal_id: r.try_get("principal_id")?,
        principal_kind: r.try_get("principal_kind")?,
        principal_name: r.try_get("principal_name")?,
        credential: r.try_get("credential")?,
        address: r.try_get("address")?,
        action: r.try_get("action")?,
        environment: r.try_get("environment")?,
        app: r.try_get("app")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        before_json: r.try_get("before_json")?,
        after_json: r.try_get("after_json")?,
    })
}

impl ConsoleStore {
    /// Appends a row (its `id` is ignored); returns the id it got.
    pub async fn append_audit(&self, row: &AuditRecord) -> Result<i64> {
        let inserted = sqlx::query(
            "INSERT INTO audit_log (at_ms, principal_id, principal_kind, principal_name, \
             credential, address, action, environment, app, target, outcome, status, reason, \
             before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING id",
        )
        .bind(row.at_ms)
        .bind(&row.principal_id)
        .bind(&row.principal_kind)
        .bind(&row.principal_name)
        .bind(&row.credential)
        .bind(&row.address)
        .bind(&row.action)
        .bind(&row.environment)
        .bind(&row.app)
        .bind(&row.target)
        .bind(&row.outcome)
        .bind(row.status)
        .bind(&row.reason)
        .bind(&row.before_json)
        .bind(&row.after_json)
        .fetch_one(&self.catalog().pool)
        .await
        .context(|| format!("failed to append an audit row ({})", row.action))?;
        inserted
            .try_get("id")
            .context(|| "failed to read an audit row's id".to_string())
    }

    /// Rows matching `filter`, newest first, at most `filter.limit`.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        enum Bind<'a> {
            Text(&'a str),
            Int(i64),
        }
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let texts = [
            ("principal_name = ", &filter.principal),
            ("environment = ", &filter.environment),
            ("app = ", &filter.app),
        ];
        for (condition, value) in texts {
            if let Some(value) = value {
                binds.push(Bind::Text(value));
                conditions.push(format!("{condition}${}", binds.len()));
            }
        }
        if let Some(action) = &filter.action {
            binds.push(Bind::Text(action));
            conditions.push(format!("action LIKE '%' || ${} || '%'", binds.len()));
        }
        if let Some(since) = filter.since_ms {
            binds.push(Bind::Int(since));
            conditions.push(format!("at_ms >= ${}", binds.len()));
        }
        if let Some(until) = filter.until_ms {
            binds.push(Bind::Int(until));
            conditions.push(format!("at_ms < ${}", binds.len()));
        }
        binds.push(Bind::Int(filter.limit));
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log {} ORDER BY id DESC LIMIT ${}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            binds.len()
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(t) => query.bind(t.to_string()),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query
            .fetch_all(&self.catalog().pool)
            .await
            .context(|| "failed to read the audit log".to_string())?;
        rows.iter()
            .map(from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode audit rows".to_string())
    }

    /// Deletes the rows older than `before_ms` (retention); how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.catalog().pool)
            .await
            .context(|| "failed to prune the audit log".to_string())?
            .rows_affected())
    }
}
