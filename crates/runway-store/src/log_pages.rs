//! The dashboard's reads of the log catalog: a page of one kind of rows with
//! filters, newest first, by keyset (`before_id`, never an offset), and every
//! row of one request id. Both use an index (migration `0014`): `(kind, id)`,
//! `(app, id)`, `(status, id)`, `(frontend, id)`, `(request_id)`.

use crate::Store;
use crate::error::{Context, Result};
use crate::logs::{INSERT_COLUMNS, LogEntry, LogKind, entry_from_row};

/// Which rows [`Store::log_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    pub kind: Option<LogKind>,
    pub app: Option<String>,
    pub frontend: Option<String>,
    /// Statuses in `[from, to]` (a class: 500..=599).
    pub status: Option<(i64, i64)>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only rows older than this id (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Most rows [`Store::log_rows_of_request`] returns.
pub const MAX_ROWS_PER_REQUEST: i64 = 500;

enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// The newest `limit` rows matching `q`, newest first.
    pub async fn log_page(&self, q: &LogPage) -> Result<Vec<LogEntry>> {
        let mut sql = format!("SELECT id, {INSERT_COLUMNS} FROM log_entries WHERE 1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, a: Arg| {
            args.push(a);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(kind) = q.kind {
            cond(&mut sql, " AND kind = ?", Arg::Text(kind.as_str().into()));
        }
        if let Some(app) = &q.app {
            cond(&mut sql, " AND app = ?", Arg::Text(app.clone()));
        }
        if let Some(frontend) = &q.frontend {
            cond(&mut sql, " AND frontend = ?", Arg::Text(frontend.clone()));
        }
        if let Some((from, to)) = q.status {
            if from == to {
                cond(&mut sql, " AND status = ?", Arg::Int(from));
            } else {
                cond(&mut sql, " AND status >= ?", Arg::Int(from));
                cond(&mut sql, " AND status <= ?", Arg::Int(to));
            }
        }
        if let Some(since) = q.since_ms {
            cond(&mut sql, " AND at_ms >= ?", Arg::Int(since));
        }
        if let Some(until) = q.until_ms {
            cond(&mut sql, " AND at_ms < ?", Arg::Int(until));
        }
        if let Some(before) = q.before_id {
            cond(&mut sql, " AND id < ?", Arg::Int(before));
        }
        cond(
            &mut sql,
            " ORDER BY id DESC LIMIT ?",
            Arg::Int(q.limit.clamp(1, 1000)),
        );
        let mut query = sqlx::query(&sql);
        for a in args {
            query = match a {
                Arg::Text(s) => query.bind(s),
                Arg::Int(i) => query.bind(i),
            };
        }
        let rows = query
            .fetch_all(&self.log_catalog().pool)
            .await
            .context(|| "failed to read a page of the log".to_string())?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Every row of request `request_id` (its request row, output, errors,
    /// platform events), oldest first, at most [`MAX_ROWS_PER_REQUEST`].
    pub async fn log_rows_of_request(&self, request_id: &str) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT id, {INSERT_COLUMNS} FROM log_entries WHERE request_id = $1 \
             ORDER BY id LIMIT $2"
        ))
        .bind(request_id)
        .bind(MAX_ROWS_PER_REQUEST)
        .fetch_all(&self.log_catalog().pool)
        .await
        .context(|| format!("failed to read the log rows of request {request_id}"))?;
        rows.iter().map(entry_from_row).collect()
    }
}
