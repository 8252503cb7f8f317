//! The log catalog: request log, app output, errors and platform events in one
//! table, `log_entries`, whose `id` is a monotonic cursor (for `--follow`).
//!
//! Writing never blocks the caller: [`LogSink::write`] puts the entry on a
//! bounded channel (capacity 65 536) and counts it as dropped if the channel is
//! full. A background writer task drains the channel in batches (up to 1 000
//! entries or 100 ms, whichever comes first) and inserts each batch in one
//! transaction. A batch that fails to insert is logged with `tracing`, counted
//! as dropped, and the writer carries on.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use crate::db::Catalog;
use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// Capacity of the channel between [`LogSink`] and the writer task.
pub(crate) const CHANNEL_CAPACITY: usize = 65_536;
/// Most entries the writer inserts in one transaction.
pub(crate) const MAX_BATCH: usize = 1_000;
/// Longest the writer waits to fill a batch once it holds an entry.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Rows per multi-row INSERT statement (14 columns each). Measured on SQLite
/// through the `Any` driver: 20 rows per statement is ~2.5x faster than one
/// row, while very wide statements (hundreds of rows) are much slower.
const ROWS_PER_INSERT: usize = 20;
/// Rows deleted per statement by [`Store::purge_logs_before`], so the writer
/// is never locked out for long.
const PURGE_CHUNK: i64 = 10_000;

/// What a log entry records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// One served HTTP request.
    #[default]
    Request,
    /// A line an app wrote to stdout/stderr.
    Output,
    /// An app failure (trap, timeout, memory cap, …).
    Error,
    /// An event of the platform itself (deployments, startup, …).
    Platform,
}

impl LogKind {
    pub const ALL: [LogKind; 4] = [
        LogKind::Request,
        LogKind::Output,
        LogKind::Error,
        LogKind::Platform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Request => "request",
            LogKind::Output => "output",
            LogKind::Error => "error",
            LogKind::Platform => "platform",
        }
    }
}

impl FromStr for LogKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        LogKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "unknown log kind {s:?} (expected request, output, error or platform)"
                ))
            })
    }
}

impl std::fmt::Display for LogKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a log entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub const ALL: [LogLevel; 3] = [LogLevel::Info, LogLevel::Warn, LogLevel::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl FromStr for LogLevel {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "unknown log level {s:?} (expected info, warn or error)"
                ))
            })
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry to write. Fields that do not apply to the kind stay `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewLogEntry {
    pub at_ms: i64,
    pub kind: LogKind,
    pub level: LogLevel,
    pub app: Option<String>,
    pub version: Option<String>,
    pub frontend: Option<String>,
    pub request_id: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<i64>,
    pub duration_us: Option<i64>,
    pub bytes_out: Option<i64>,
    /// `stdout` or `stderr` (output entries).
    pub stream: Option<String>,
    pub message: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Monotonic cursor: later entries have larger ids.
    pub id: i64,
    pub at_ms: i64,
    pub kind: LogKind,
    pub level: LogLevel,
    pub app: Option<String>,
    pub version: Option<String>,
    pub frontend: Option<String>,
    pub request_id: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<i64>,
    pub duration_us: Option<i64>,
    pub bytes_out: Option<i64>,
    pub stream: Option<String>,
    pub message: Option<String>,
}

/// Which entries [`Store::logs`] returns.
///
/// Without `after_id`: the newest `limit` matching entries. With `after_id`:
/// the oldest `limit` matching entries with `id > after_id` (for following).
/// Either way in ascending id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub app: Option<String>,
    /// Empty = all kinds.
    pub kinds: Vec<LogKind>,
    /// Only entries with level `error`.
    pub errors_only: bool,
    pub after_id: Option<i64>,
    /// Only entries at or after this time.
    pub since_ms: Option<i64>,
    /// Only entries before this time.
    pub until_ms: Option<i64>,
    pub limit: i64,
    pub frontend: Option<String>,
    pub status: Option<i64>,
}

enum Msg {
    Entry(Box<NewLogEntry>),
    /// Acknowledged once everything received before it is in the database.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer exits.
    Stop(oneshot::Sender<()>),
}

/// Cheap-to-clone handle for writing log entries without blocking.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogSink {
    /// Queues `e` for writing. Never blocks or awaits: if the queue is full
    /// (or the store is closed) the entry is dropped and counted.
    pub fn write(&self, e: NewLogEntry) {
        if self.tx.try_send(Msg::Entry(Box::new(e))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resolves once every entry written (by any clone) before this call has
    /// been inserted, or has failed to be and was counted as dropped. Returns
    /// at once if the store is closed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// How many entries never reached the database: queue full, store closed,
    /// or their batch failed to insert.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Flushes, then stops the writer task.
    pub(crate) async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Stop(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Starts the writer task for the log catalog.
pub(crate) fn start_writer(catalog: Catalog) -> (LogSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    let handle = tokio::spawn(run_writer(catalog, rx, dropped.clone()));
    (LogSink { tx, dropped }, handle)
}

/// How often a failed batch is tried again, and the first pause (it grows
/// linearly: 0.25 s, 0.5 s, … about 7 s in all).
const RETRIES: u32 = 7;
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

async fn run_writer(catalog: Catalog, mut rx: mpsc::Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut batch: Vec<NewLogEntry> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut buf: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(first) = rx.recv().await else {
            return; // every sink is gone
        };
        let mut stop = false;
        let mut closed = false;
        let mut take = |m: Msg, batch: &mut Vec<NewLogEntry>, acks: &mut Vec<_>| match m {
            Msg::Entry(e) => batch.push(*e),
            Msg::Flush(ack) => acks.push(ack),
            Msg::Stop(ack) => {
                acks.push(ack);
                stop = true;
            }
        };
        take(first, &mut batch, &mut acks);
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        // Fill the batch until it is full, the window closes, or someone waits.
        while batch.len() < MAX_BATCH && acks.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, MAX_BATCH - batch.len()))
                .await
            {
                Err(_elapsed) => break,
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {
                    for m in buf.drain(..) {
                        take(m, &mut batch, &mut acks);
                    }
                }
            }
        }
        if !batch.is_empty() {
            // A database that restarts or blinks gets a few seconds to come
            // back (the pool reconnects by itself); meanwhile new entries wait
            // in the channel, and only what overflows it is dropped. A writer
            // asked to stop or flush tries once.
            let mut attempt = 0;
            loop {
                match insert_batch(&catalog, &batch).await {
                    Ok(()) => break,
                    Err(e) if attempt < RETRIES && acks.is_empty() && !catalog.pool.is_closed() => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "failed to write log entries; retrying");
                        tokio::time::sleep(RETRY_DELAY * attempt).await;
                    }
                    Err(e) => {
                        dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        tracing::error!(
                            error = %e,
                            entries = batch.len(),
                            "failed to write a batch of log entries; they are dropped"
                        );
                        break;
                    }
                }
            }
            batch.clear();
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if stop || closed {
            return;
        }
    }
}

const INSERT_COLUMNS: &str = "at_ms, kind, level, app, version, frontend, request_id, method, \
                              path, status, duration_us, bytes_out, stream, message";
const COLUMN_COUNT: usize = 14;

/// Inserts `batch` in one transaction.
async fn insert_batch(catalog: &Catalog, batch: &[NewLogEntry]) -> Result<()> {
    let what = || format!("failed to insert {} log entries", batch.len());
    let mut tx = catalog.begin_write("write log entries").await?;
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let mut sql = format!("INSERT INTO log_entries ({INSERT_COLUMNS}) VALUES ");
        let mut n = 0;
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..COLUMN_COUNT {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.at_ms)
                .bind(e.kind.as_str())
                .bind(e.level.as_str())
                .bind(e.app.as_deref())
                .bind(e.version.as_deref())
                .bind(e.frontend.as_deref())
                .bind(e.request_id.as_deref())
                .bind(e.method.as_deref())
                .bind(e.path.as_deref())
                .bind(e.status)
                .bind(e.duration_us)
                .bind(e.bytes_out)
                .bind(e.stream.as_deref())
                .bind(e.message.as_deref());
        }
        q.execute(&mut *tx).await.context(what)?;
    }
    tx.commit().await.context(what)?;
    Ok(())
}

fn entry_from_row(r: &AnyRow) -> Result<LogEntry> {
    let what = || "failed to decode a log entry".to_string();
    let kind: String = r.try_get("kind").context(what)?;
    let level: String = r.try_get("level").context(what)?;
    Ok(LogEntry {
        id: r.try_get("id").context(what)?,
        at_ms: r.try_get("at_ms").context(what)?,
        kind: kind.parse()?,
        level: level.parse()?,
        app: r.try_get("app").context(what)?,
        version: r.try_get("version").context(what)?,
        frontend: r.try_get("frontend").context(what)?,
        request_id: r.try_get("request_id").context(what)?,
        method: r.try_get("method").context(what)?,
        path: r.try_get("path").context(what)?,
        status: r.try_get("status").context(what)?,
        duration_us: r.try_get("duration_us").context(what)?,
        bytes_out: r.try_get("bytes_out").context(what)?,
        stream: r.try_get("stream").context(what)?,
        message: r.try_get("message").context(what)?,
    })
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// A handle for writing log entries (see [`LogSink`]).
    pub fn log_sink(&self) -> LogSink {
        self.inner.sink.clone()
    }

    /// Entries matching `q` (see [`LogQuery`]), in ascending id order.
    pub async fn logs(&self, q: &LogQuery) -> Result<Vec<LogEntry>> {
        let mut sql = format!("SELECT id, {INSERT_COLUMNS} FROM log_entries WHERE 1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        let param = |sql: &mut String, args: &mut Vec<Arg>, a: Arg| {
            args.push(a);
            sql.push('$');
            sql.push_str(&args.len().to_string());
        };
        if let Some(app) = &q.app {
            sql.push_str(" AND app = ");
            param(&mut sql, &mut args, Arg::Text(app.clone()));
        }
        if !q.kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            for (i, k) in q.kinds.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                param(&mut sql, &mut args, Arg::Text(k.as_str().to_string()));
            }
            sql.push(')');
        }
        if q.errors_only {
            sql.push_str(" AND level = ");
            param(
                &mut sql,
                &mut args,
                Arg::Text(LogLevel::Error.as_str().to_string()),
            );
        }
        if let Some(after) = q.after_id {
            sql.push_str(" AND id > ");
            param(&mut sql, &mut args, Arg::Int(after));
        }
        if let Some(since) = q.since_ms {
            sql.push_str(" AND at_ms >= ");
            param(&mut sql, &mut args, Arg::Int(since));
        }
        if let Some(until) = q.until_ms {
            sql.push_str(" AND at_ms < ");
            param(&mut sql, &mut args, Arg::Int(until));
        }
        if let Some(frontend) = &q.frontend {
            sql.push_str(" AND frontend = ");
            param(&mut sql, &mut args, Arg::Text(frontend.clone()));
        }
        if let Some(status) = q.status {
            sql.push_str(" AND status = ");
            param(&mut sql, &mut args, Arg::Int(status));
        }
        let ascending = q.after_id.is_some();
        sql.push_str(if ascending {
            " ORDER BY id ASC LIMIT "
        } else {
            " ORDER BY id DESC LIMIT "
        });
        param(&mut sql, &mut args, Arg::Int(q.limit.max(0)));

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
            .context(|| "failed to query logs".to_string())?;
        let mut entries = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>>>()?;
        if !ascending {
            entries.reverse();
        }
        Ok(entries)
    }

    /// Deletes log entries older than `before_ms`; returns how many.
    pub async fn purge_logs_before(&self, before_ms: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM log_entries WHERE id IN \
                 (SELECT id FROM log_entries WHERE at_ms < $1 ORDER BY id LIMIT $2)",
            )
            .bind(before_ms)
            .bind(PURGE_CHUNK)
            .execute(&self.log_catalog().pool)
            .await
            .context(|| format!("failed to purge log entries before {before_ms}"))?
            .rows_affected();
            total += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// Starts a task that, right away and then every `every`, deletes log
    /// entries older than `max_age` and expired sessions. It ends when the
    /// store is closed or every clone of it is dropped; failures are logged and
    /// retried on the next round.
    pub fn spawn_retention(
        &self,
        max_age: Duration,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let store = Store { inner };
                if store.log_catalog().pool.is_closed() {
                    return;
                }
                let before = now_ms().saturating_sub(max_age_ms);
                match store.purge_logs_before(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(entries = n, "purged old log entries"),
                    Err(e) => tracing::warn!(error = %e, "log retention failed"),
                }
                match store.purge_expired_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "purged expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "session retention failed"),
                }
            }
        })
    }
}
