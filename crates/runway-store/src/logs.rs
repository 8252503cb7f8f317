//! The log catalog: request log, app output, errors and platform events in one
//! table, `log_entries`, whose `id` is a monotonic cursor (for `--follow`).
//!
//! Writing never blocks the caller: [`LogSink::write`] makes the entry storable
//! on every backend (NUL bytes become U+FFFD; paths are cut at
//! [`MAX_PATH_BYTES`], messages at [`MAX_MESSAGE_BYTES`], other fields shorter,
//! each with a marker), holds app output to its app's rate ([`LogLimits`]: lines
//! and bytes per second, bursts of [`OUTPUT_BURST_SECS`] seconds' worth; a
//! marker row says how many lines were dropped), and puts it on a bounded
//! channel (capacity 65 536), dropping it if the channel is full. A background
//! writer task drains the channel in batches (up to 1 000 entries or 100 ms,
//! whichever comes first) and inserts each batch in one transaction. A batch
//! the database refuses is inserted row by row, and only the rows it refuses
//! are dropped; a database that cannot be reached is retried for a few
//! seconds, then the batch is dropped.
//!
//! Nothing is dropped silently: every drop is counted per [`DropCause`], the
//! writer adds the counts to the catalog's `log_dropped` table (every process
//! writing to the catalog adds its own, so it holds the environment's totals,
//! [`Store::log_drops`]) and warns with `tracing` at most every 10 s.
//!
//! Besides the age limit, the retention task keeps the catalog under a size
//! cap by deleting its oldest rows ([`Store::enforce_log_size_cap`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Backend, Catalog};
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
/// What a row counts for against the size cap beyond its text fields: its
/// numbers, the row header and its index entries (an estimate).
pub const ROW_OVERHEAD: u64 = 100;
/// How often the retention task checks the size cap (more often while this
/// process writes a lot).
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(30);

pub use runway_api::v1::{LogKind, LogLevel};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What the log catalog takes in: per-app output rates and the catalog's
/// size cap. Set with [`Store::set_log_limits`]; `0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Output lines per second per app (sustained); bursts of
    /// [`OUTPUT_BURST_SECS`] seconds' worth pass at once.
    pub output_lines_per_sec: u64,
    /// Output bytes per second per app (sustained), same burst.
    pub output_bytes_per_sec: u64,
    /// Size cap of the log catalog, in bytes, enforced by the retention task
    /// (see [`Store::log_size`]).
    pub max_bytes: u64,
}

impl LogLimits {
    pub const DEFAULT_OUTPUT_LINES_PER_SEC: u64 = 100;
    pub const DEFAULT_OUTPUT_BYTES_PER_SEC: u64 = 64 * 1024;
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            output_lines_per_sec: LogLimits::DEFAULT_OUTPUT_LINES_PER_SEC,
            output_bytes_per_sec: LogLimits::DEFAULT_OUTPUT_BYTES_PER_SEC,
            max_bytes: LogLimits::DEFAULT_MAX_BYTES,
        }
    }
}

/// An app may write this many seconds' worth of its output rate at once.
pub const OUTPUT_BURST_SECS: u64 = 5;
/// Longest message stored (errors, output lines); longer ones are cut with a
/// marker. An output line cut at 8 KiB by the runtime, with its marker, fits.
pub const MAX_MESSAGE_BYTES: usize = 9 * 1024;
/// Longest request path stored; longer ones are cut with a marker.
pub const MAX_PATH_BYTES: usize = 2 * 1024;
/// Longest method stored.
const MAX_METHOD_BYTES: usize = 64;
/// Longest app, version, front-end, request id or stream stored.
const MAX_NAME_BYTES: usize = 200;

/// Why log rows were dropped (see [`LogDrops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// The writer's queue was full (or the store closed).
    QueueFull,
    /// App output beyond its per-app lines/s or bytes/s limit.
    OutputRateLimit,
    /// The database refused the row (dropped alone, never its batch).
    Rejected,
    /// The database stayed unreachable through every retry.
    DatabaseUnavailable,
    /// Deleted (oldest first) to keep the catalog under its size cap.
    SizeCap,
}

impl DropCause {
    pub const ALL: [DropCause; 5] = [
        DropCause::QueueFull,
        DropCause::OutputRateLimit,
        DropCause::Rejected,
        DropCause::DatabaseUnavailable,
        DropCause::SizeCap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropCause::QueueFull => "queue_full",
            DropCause::OutputRateLimit => "output_rate_limit",
            DropCause::Rejected => "rejected",
            DropCause::DatabaseUnavailable => "database_unavailable",
            DropCause::SizeCap => "size_cap",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Log rows dropped, per cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDrops {
    pub queue_full: u64,
    pub output_rate_limit: u64,
    pub rejected: u64,
    pub database_unavailable: u64,
    pub size_cap: u64,
}

impl LogDrops {
    pub fn get(&self, cause: DropCause) -> u64 {
        match cause {
            DropCause::QueueFull => self.queue_full,
            DropCause::OutputRateLimit => self.output_rate_limit,
            DropCause::Rejected => self.rejected,
            DropCause::DatabaseUnavailable => self.database_unavailable,
            DropCause::SizeCap => self.size_cap,
        }
    }

    fn get_mut(&mut self, cause: DropCause) -> &mut u64 {
        match cause {
            DropCause::QueueFull => &mut self.queue_full,
            DropCause::OutputRateLimit => &mut self.output_rate_limit,
            DropCause::Rejected => &mut self.rejected,
            DropCause::DatabaseUnavailable => &mut self.database_unavailable,
            DropCause::SizeCap => &mut self.size_cap,
        }
    }

    /// All causes together.
    pub fn total(&self) -> u64 {
        DropCause::ALL.iter().map(|c| self.get(*c)).sum()
    }
}

/// One app's output budget: two token buckets (lines, bytes) and the lines
/// dropped since its last marker row.
struct OutputBudget {
    lines: f64,
    bytes: f64,
    at: Instant,
    dropped: u64,
}

/// State shared by every clone of a [`LogSink`] and the writer task.
struct Shared {
    lines_per_sec: AtomicU64,
    bytes_per_sec: AtomicU64,
    max_bytes: AtomicU64,
    budgets: Mutex<HashMap<String, OutputBudget>>,
    /// Drops per cause not yet added to the catalog's `log_dropped`.
    pending: [AtomicU64; 5],
    /// Entries that never reached the database (every cause but the size cap).
    dropped: AtomicU64,
    /// Estimated bytes inserted since the size cap was last checked.
    written: AtomicU64,
}

impl Shared {
    fn count(&self, cause: DropCause, n: u64) {
        if n == 0 {
            return;
        }
        self.pending[cause.index()].fetch_add(n, Ordering::Relaxed);
        if cause != DropCause::SizeCap {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Whether app output of `bytes` fits the app's budget now; takes it if so.
    fn admit_output(&self, app: &str, bytes: u64) -> bool {
        let lines_rate = self.lines_per_sec.load(Ordering::Relaxed);
        let bytes_rate = self.bytes_per_sec.load(Ordering::Relaxed);
        if lines_rate == 0 && bytes_rate == 0 {
            return true;
        }
        let (max_lines, max_bytes) = (
            (lines_rate * OUTPUT_BURST_SECS) as f64,
            (bytes_rate * OUTPUT_BURST_SECS) as f64,
        );
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let budget = match budgets.get_mut(app) {
            Some(b) => b,
            None => budgets.entry(app.to_string()).or_insert(OutputBudget {
                lines: max_lines,
                bytes: max_bytes,
                at: now,
                dropped: 0,
            }),
        };
        let elapsed = now.saturating_duration_since(budget.at).as_secs_f64();
        budget.at = now;
        budget.lines = (budget.lines + elapsed * lines_rate as f64).min(max_lines);
        budget.bytes = (budget.bytes + elapsed * bytes_rate as f64).min(max_bytes);
        // A line longer than the whole burst still passes once the bucket is full.
        let cost = (bytes as f64).min(max_bytes);
        let lines_ok = lines_rate == 0 || budget.lines >= 1.0;
        let bytes_ok = bytes_rate == 0 || budget.bytes >= cost;
        if lines_ok && bytes_ok {
            budget.lines -= 1.0;
            budget.bytes -= cost;
            true
        } else {
            budget.dropped += 1;
            false
        }
    }

    /// One marker row per app that had output dropped since its last one;
    /// forgets budgets that are full again.
    fn take_markers(&self) -> Vec<NewLogEntry> {
        let lines_rate = self.lines_per_sec.load(Ordering::Relaxed);
        let bytes_rate = self.bytes_per_sec.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let mut markers = Vec::new();
        budgets.retain(|app, budget| {
            if budget.dropped > 0 {
                markers.push(NewLogEntry {
                    at_ms: now_ms(),
                    kind: LogKind::Platform,
                    level: LogLevel::Warn,
                    app: (!app.is_empty()).then(|| app.clone()),
                    message: Some(format!(
                        "… {} lines dropped (output limit {lines_rate} lines/s, {} KiB/s per app)",
                        budget.dropped,
                        bytes_rate / 1024
                    )),
                    ..Default::default()
                });
                budget.dropped = 0;
            }
            // A budget idle long enough to be full again is the same as none.
            now.saturating_duration_since(budget.at) < Duration::from_secs(OUTPUT_BURST_SECS + 1)
        });
        markers
    }
}

/// Replaces NUL (refused in PostgreSQL text) with U+FFFD and cuts a field
/// longer than `max` bytes at a character boundary, with a marker.
fn clean(field: &mut Option<String>, max: usize) {
    let Some(s) = field else { return };
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        *s = format!("{}… [runway: cut at {max} of {} bytes]", &s[..end], s.len());
    }
}

/// Makes `e` storable on every backend: no NUL, bounded fields.
fn sanitize(e: &mut NewLogEntry) {
    clean(&mut e.app, MAX_NAME_BYTES);
    clean(&mut e.version, MAX_NAME_BYTES);
    clean(&mut e.frontend, MAX_NAME_BYTES);
    clean(&mut e.request_id, MAX_NAME_BYTES);
    clean(&mut e.stream, MAX_NAME_BYTES);
    clean(&mut e.method, MAX_METHOD_BYTES);
    clean(&mut e.path, MAX_PATH_BYTES);
    clean(&mut e.message, MAX_MESSAGE_BYTES);
}

/// Bytes a row counts for against the size cap: its text fields plus
/// [`ROW_OVERHEAD`] (the same measure as [`Store::log_size`]).
fn row_size(e: &NewLogEntry) -> u64 {
    let text = [
        &e.app,
        &e.version,
        &e.frontend,
        &e.request_id,
        &e.method,
        &e.path,
        &e.stream,
        &e.message,
    ]
    .iter()
    .map(|f| f.as_ref().map_or(0, |s| s.len()))
    .sum::<usize>()
        + e.kind.as_str().len()
        + e.level.as_str().len();
    text as u64 + ROW_OVERHEAD
}

/// Cheap-to-clone handle for writing log entries without blocking.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogSink {
    /// Queues `e` for writing. Never blocks or awaits. NUL bytes are replaced
    /// and long fields cut (with a marker); app output beyond the app's rate
    /// limit is dropped (a marker row says how many); if the queue is full
    /// (or the store is closed) the entry is dropped. Every drop is counted.
    pub fn write(&self, mut e: NewLogEntry) {
        sanitize(&mut e);
        if e.kind == LogKind::Output {
            let bytes = e.message.as_ref().map_or(0, |m| m.len()) as u64 + 1;
            if !self
                .shared
                .admit_output(e.app.as_deref().unwrap_or(""), bytes)
            {
                self.shared.count(DropCause::OutputRateLimit, 1);
                return;
            }
        }
        if self.tx.try_send(Msg::Entry(Box::new(e))).is_err() {
            self.shared.count(DropCause::QueueFull, 1);
        }
    }

    /// Resolves once every entry written (by any clone) before this call has
    /// been inserted, or has failed to be and was counted as dropped, and the
    /// drop counts and marker rows are in the catalog. Returns at once if the
    /// store is closed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// How many entries this process's writer never got into the database:
    /// queue full, store closed, output rate limit, rejected by the database,
    /// or given up while it was unreachable.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Entries waiting in the channel for the writer.
    pub fn queue_depth(&self) -> usize {
        CHANNEL_CAPACITY.saturating_sub(self.tx.capacity())
    }

    /// Counts `n` rows dropped for `cause` (added to the catalog's totals by
    /// the writer).
    pub fn count_dropped(&self, cause: DropCause, n: u64) {
        self.shared.count(cause, n);
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
    // No limits until `Store::set_log_limits`.
    let shared = Arc::new(Shared {
        lines_per_sec: AtomicU64::new(0),
        bytes_per_sec: AtomicU64::new(0),
        max_bytes: AtomicU64::new(0),
        budgets: Mutex::new(HashMap::new()),
        pending: Default::default(),
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    let handle = tokio::spawn(run_writer(catalog, rx, shared.clone()));
    (LogSink { tx, shared }, handle)
}

/// How often a failed batch is tried again, and the first pause (it grows
/// linearly: 0.25 s, 0.5 s, … about 7 s in all).
const RETRIES: u32 = 7;
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// How often the writer writes marker rows and drop counts when idle.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// Least time between two `tracing` warnings about dropped rows.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The writer's bookkeeping between batches.
struct Housekeeping {
    last: Instant,
    /// Drops not yet reported with `tracing`, and when that was last done.
    unreported: LogDrops,
    warned: Option<Instant>,
}

async fn run_writer(catalog: Catalog, mut rx: mpsc::Receiver<Msg>, shared: Arc<Shared>) {
    let mut batch: Vec<NewLogEntry> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut buf: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
    let mut house = Housekeeping {
        last: Instant::now(),
        unreported: LogDrops::default(),
        warned: None,
    };
    loop {
        let first = match tokio::time::timeout(HOUSEKEEPING_EVERY, rx.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return, // every sink is gone
            Err(_idle) => {
                housekeeping(&catalog, &shared, &mut house, true).await;
                continue;
            }
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
            store_rows(&catalog, &batch, acks.is_empty(), &shared).await;
            batch.clear();
        }
        if !acks.is_empty() || house.last.elapsed() >= HOUSEKEEPING_EVERY {
            housekeeping(&catalog, &shared, &mut house, acks.is_empty()).await;
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if stop || closed {
            return;
        }
    }
}

/// Writes the marker rows of dropped output and adds the drop counts to the
/// catalog's totals; warns (at most every [`DROP_WARNING_EVERY`]) about drops.
async fn housekeeping(catalog: &Catalog, shared: &Shared, house: &mut Housekeeping, patient: bool) {
    house.last = Instant::now();
    let markers = shared.take_markers();
    if !markers.is_empty() {
        store_rows(catalog, &markers, patient, shared).await;
    }
    for cause in DropCause::ALL {
        let n = shared.pending[cause.index()].swap(0, Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        *house.unreported.get_mut(cause) += n;
        if let Err(e) = add_drops(catalog, cause, n).await {
            // Counted again next time.
            shared.pending[cause.index()].fetch_add(n, Ordering::Relaxed);
            tracing::debug!(error = %e, "failed to record dropped log rows; retrying later");
            break;
        }
    }
    let due = house
        .warned
        .is_none_or(|at| at.elapsed() >= DROP_WARNING_EVERY);
    if due && house.unreported.total() > 0 {
        let d = std::mem::take(&mut house.unreported);
        tracing::warn!(
            queue_full = d.queue_full,
            output_rate_limit = d.output_rate_limit,
            rejected = d.rejected,
            database_unavailable = d.database_unavailable,
            size_cap = d.size_cap,
            "log rows dropped since the last report (totals in `runway env`)"
        );
        house.warned = Some(Instant::now());
    }
}

async fn add_drops(catalog: &Catalog, cause: DropCause, n: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO log_dropped (cause, count) VALUES ($1, $2) \
         ON CONFLICT (cause) DO UPDATE SET count = log_dropped.count + excluded.count",
    )
    .bind(cause.as_str())
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(&catalog.pool)
    .await
    .context(|| format!("failed to count {n} dropped log rows ({})", cause.as_str()))?;
    Ok(())
}

/// Inserts `rows`. A database that answers but refuses the batch gets the
/// rows one by one, and only those it refuses are dropped (counted as
/// `rejected`). A database that cannot be reached is retried (when
/// `patient`), then the rows are dropped (counted as `database_unavailable`).
async fn store_rows(catalog: &Catalog, rows: &[NewLogEntry], patient: bool, shared: &Shared) {
    let mut rest = rows;
    let mut attempt = 0;
    loop {
        let failure = match insert_batch(catalog, rest).await {
            Ok(()) => break,
            Err(e) if is_rejection(catalog, &e) => {
                match insert_one_by_one(catalog, rest, shared).await {
                    Ok(()) => break,
                    Err((stored, e)) => {
                        rest = &rest[stored..];
                        e
                    }
                }
            }
            Err(e) => e,
        };
        if patient && attempt < RETRIES && !catalog.pool.is_closed() {
            attempt += 1;
            tracing::warn!(error = %failure, attempt, "failed to write log entries; retrying");
            tokio::time::sleep(RETRY_DELAY * attempt).await;
            continue;
        }
        shared.count(DropCause::DatabaseUnavailable, rest.len() as u64);
        tracing::error!(
            error = %failure,
            entries = rest.len(),
            "failed to write a batch of log entries; they are dropped"
        );
        return;
    }
    let bytes: u64 = rows.iter().map(row_size).sum();
    shared.written.fetch_add(bytes, Ordering::Relaxed);
}

/// Inserts each row alone, dropping (and counting) those the database
/// refuses. On any other failure, returns how many rows were dealt with.
async fn insert_one_by_one(
    catalog: &Catalog,
    rows: &[NewLogEntry],
    shared: &Shared,
) -> std::result::Result<(), (usize, StoreError)> {
    for (i, row) in rows.iter().enumerate() {
        match insert_batch(catalog, std::slice::from_ref(row)).await {
            Ok(()) => {}
            Err(e) if is_rejection(catalog, &e) => {
                shared.count(DropCause::Rejected, 1);
                tracing::warn!(
                    error = %e,
                    app = row.app.as_deref().unwrap_or(""),
                    kind = %row.kind,
                    "the database refused a log entry; it is dropped"
                );
            }
            Err(e) => return Err((i, e)),
        }
    }
    Ok(())
}

/// Whether the database answered and refused the rows themselves (bad data,
/// a constraint, a trigger), as opposed to being unreachable, busy or down.
fn is_rejection(catalog: &Catalog, e: &StoreError) -> bool {
    let StoreError::Query {
        source: sqlx::Error::Database(d),
        ..
    } = e
    else {
        return false;
    };
    let Some(code) = d.code() else { return false };
    match catalog.backend {
        // SQLSTATE classes: data exception, integrity constraint, PL/pgSQL
        // raise, program limit (e.g. a row too large).
        Backend::Postgres => ["22", "23", "P0", "54"]
            .iter()
            .any(|class| code.starts_with(class)),
        // Primary result codes: TOOBIG, CONSTRAINT (triggers too), MISMATCH, RANGE.
        Backend::Sqlite => code
            .parse::<i64>()
            .is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25)),
    }
}

pub(crate) const INSERT_COLUMNS: &str = "at_ms, kind, level, app, version, frontend, request_id, method, \
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
    crate::rollups::upsert_batch(&mut tx, batch).await?;
    tx.commit().await.context(what)?;
    Ok(())
}

pub(crate) fn entry_from_row(r: &AnyRow) -> Result<LogEntry> {
    let what = || "failed to decode a log entry".to_string();
    let kind: String = r.try_get("kind").context(what)?;
    let level: String = r.try_get("level").context(what)?;
    Ok(LogEntry {
        id: r.try_get("id").context(what)?,
        at_ms: r.try_get("at_ms").context(what)?,
        kind: LogKind::parse(&kind).ok_or_else(|| {
            StoreError::Invalid(format!(
                "unknown log kind {kind:?} in the log catalog (expected request, output, error or platform)"
            ))
        })?,
        level: LogLevel::parse(&level).ok_or_else(|| {
            StoreError::Invalid(format!(
                "unknown log level {level:?} in the log catalog (expected info, warn or error)"
            ))
        })?,
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
                crate::rollups::purge_before(self.log_catalog(), before_ms).await?;
                return Ok(total);
            }
        }
    }

    /// Sets the per-app output rates and the size cap (see [`LogLimits`]). A
    /// store starts without any (the defaults are the flags' business).
    pub fn set_log_limits(&self, limits: LogLimits) {
        let shared = &self.inner.sink.shared;
        shared
            .lines_per_sec
            .store(limits.output_lines_per_sec, Ordering::Relaxed);
        shared
            .bytes_per_sec
            .store(limits.output_bytes_per_sec, Ordering::Relaxed);
        shared.max_bytes.store(limits.max_bytes, Ordering::Relaxed);
    }

    /// The rows dropped so far, per cause, added up over every process that
    /// writes to this log catalog (counts of the last second may still be on
    /// their way: [`LogSink::flush`] writes this process's).
    pub async fn log_drops(&self) -> Result<LogDrops> {
        let rows = sqlx::query("SELECT cause, count FROM log_dropped")
            .fetch_all(&self.log_catalog().pool)
            .await
            .context(|| "failed to read the dropped log rows' counts".to_string())?;
        let mut drops = LogDrops::default();
        for r in rows {
            let what = || "failed to decode a dropped log rows' count".to_string();
            let cause: String = r.try_get("cause").context(what)?;
            let count: i64 = r.try_get("count").context(what)?;
            if let Some(c) = DropCause::ALL.into_iter().find(|c| c.as_str() == cause) {
                *drops.get_mut(c) = u64::try_from(count).unwrap_or(0);
            }
        }
        Ok(drops)
    }

    /// The size of the log catalog as the size cap measures it: the bytes of
    /// every row's text fields plus [`ROW_OVERHEAD`] per row. (The files or
    /// tables on disk are somewhat larger: indexes, free pages.)
    pub async fn log_size(&self) -> Result<u64> {
        let size: i64 = sqlx::query_scalar(&format!(
            "SELECT CAST(COALESCE(SUM({ROW_SIZE_SQL}), 0) AS BIGINT) FROM log_entries"
        ))
        .fetch_one(&self.log_catalog().pool)
        .await
        .context(|| "failed to measure the log catalog".to_string())?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    /// If the log catalog is larger than `max_bytes` (see [`Store::log_size`]),
    /// deletes its oldest rows until it is at 90% of that; returns how many
    /// (counted as dropped for the `size_cap`). `0` = no cap.
    pub async fn enforce_log_size_cap(&self, max_bytes: u64) -> Result<u64> {
        if max_bytes == 0 || self.log_size().await? <= max_bytes {
            return Ok(0);
        }
        let target = i64::try_from(max_bytes - max_bytes / 10).unwrap_or(i64::MAX);
        // The newest row whose newer rows (itself included) exceed the target.
        let cut: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM (SELECT id, SUM({ROW_SIZE_SQL}) OVER (ORDER BY id DESC \
             ROWS UNBOUNDED PRECEDING) AS newer FROM log_entries) sized \
             WHERE newer > $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(target)
        .fetch_optional(&self.log_catalog().pool)
        .await
        .context(|| "failed to find the oldest log rows over the size cap".to_string())?;
        let Some(cut) = cut else { return Ok(0) };
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM log_entries WHERE id IN \
                 (SELECT id FROM log_entries WHERE id <= $1 ORDER BY id LIMIT $2)",
            )
            .bind(cut)
            .bind(PURGE_CHUNK)
            .execute(&self.log_catalog().pool)
            .await
            .context(|| format!("failed to delete log rows up to id {cut} (size cap)"))?
            .rows_affected();
            total += n;
            if n < PURGE_CHUNK as u64 {
                break;
            }
        }
        self.inner.sink.count_dropped(DropCause::SizeCap, total);
        tracing::warn!(
            entries = total,
            max_bytes,
            "deleted the oldest log entries to keep the log catalog under its size cap"
        );
        Ok(total)
    }

    /// Starts a task that, right away and then every `every`, deletes log
    /// entries older than `max_age` and expired sessions, and that keeps the
    /// log catalog under its size cap ([`LogLimits::max_bytes`]): checked every
    /// 30 s (or `every`, if shorter), and as soon as this process has written
    /// a sixteenth of the cap since the last check. It ends when the store is
    /// closed or every clone of it is dropped; failures are logged and retried
    /// on the next round.
    pub fn spawn_retention(
        &self,
        max_age: Duration,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let every = every.max(Duration::from_millis(1));
        let size_every = every.min(SIZE_CHECK_EVERY);
        let tick = every.min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut purged: Option<Instant> = None;
            let mut sized: Option<Instant> = None;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let store = Store { inner };
                if store.log_catalog().pool.is_closed() {
                    return;
                }
                if purged.is_none_or(|at| at.elapsed() >= every) {
                    purged = Some(Instant::now());
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
                let shared = &store.inner.sink.shared;
                let max_bytes = shared.max_bytes.load(Ordering::Relaxed);
                let busy = shared.written.load(Ordering::Relaxed) >= max_bytes / 16;
                if max_bytes > 0 && (busy || sized.is_none_or(|at| at.elapsed() >= size_every)) {
                    sized = Some(Instant::now());
                    shared.written.store(0, Ordering::Relaxed);
                    if let Err(e) = store.enforce_log_size_cap(max_bytes).await {
                        tracing::warn!(error = %e, "log size cap failed");
                    }
                }
            }
        })
    }
}

/// SQL for a row's size under the size cap; the same measure as [`row_size`].
const ROW_SIZE_SQL: &str = "100 + octet_length(kind) + octet_length(level) \
    + COALESCE(octet_length(app), 0) + COALESCE(octet_length(version), 0) \
    + COALESCE(octet_length(frontend), 0) + COALESCE(octet_length(request_id), 0) \
    + COALESCE(octet_length(method), 0) + COALESCE(octet_length(path), 0) \
    + COALESCE(octet_length(stream), 0) + COALESCE(octet_length(message), 0)";
const _: () = assert!(ROW_OVERHEAD == 100, "ROW_SIZE_SQL spells ROW_OVERHEAD out");
