//! Bridges from the runtime to the catalogs: an app's key-value scope, its
//! job queue, and the events of a request written to the log catalog.

use std::sync::Arc;

use async_trait::async_trait;
use runway_runtime::{
    Failure, InvocationEvents, JobError, JobQueue, JobRequest, KeyValue, KvError, Stream,
};
use runway_store::{LogKind, LogLevel, LogSink, NewJob, NewLogEntry, Store, StoreError, now_ms};

/// The key-value data of one app in the platform catalog.
pub struct StoreKv {
    store: Store,
    app: String,
}

impl StoreKv {
    pub fn new(store: Store, app: &str) -> StoreKv {
        StoreKv {
            store,
            app: app.to_string(),
        }
    }
}

/// What the guest sees of a store failure. Refusals of its input (bad key,
/// quota, not a number) are shown as they are: they name the key and the fix.
/// Anything else is the platform's problem: the cause (which may hold database
/// text) goes to the front-end's log, the guest gets a generic message.
fn kv_error(app: &str, e: StoreError) -> KvError {
    match e {
        StoreError::Invalid(m)
        | StoreError::QuotaExceeded(m)
        | StoreError::NotAnInteger(m)
        | StoreError::Overflow(m) => KvError(m),
        other => {
            tracing::error!(app, "key-value store failed: {other}");
            KvError(
                "internal error in the platform's key-value store; the cause is in the front-end's log"
                    .into(),
            )
        }
    }
}

#[async_trait]
impl KeyValue for StoreKv {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store
            .kv_get(&self.app, bucket, key)
            .await
            .map_err(|e| kv_error(&self.app, e))
    }

    async fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store
            .kv_set(&self.app, bucket, key, value)
            .await
            .map_err(|e| kv_error(&self.app, e))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.store
            .kv_delete(&self.app, bucket, key)
            .await
            .map_err(|e| kv_error(&self.app, e))
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.store
            .kv_exists(&self.app, bucket, key)
            .await
            .map_err(|e| kv_error(&self.app, e))
    }

    async fn keys(
        &self,
        bucket: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvError> {
        self.store
            .kv_keys(&self.app, bucket, cursor, i64::from(limit))
            .await
            .map_err(|e| kv_error(&self.app, e))
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.store
            .kv_increment(&self.app, bucket, key, delta)
            .await
            .map_err(|e| kv_error(&self.app, e))
    }
}

/// Writes what happens during one request to the log catalog.
pub(crate) struct RequestEvents {
    pub(crate) log: LogSink,
    pub(crate) app: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) frontend: Arc<str>,
    pub(crate) request_id: String,
}

impl RequestEvents {
    fn entry(&self, kind: LogKind, level: LogLevel, message: String) -> NewLogEntry {
        NewLogEntry {
            at_ms: now_ms(),
            kind,
            level,
            app: Some(self.app.to_string()),
            version: Some(self.version.to_string()),
            frontend: Some(self.frontend.to_string()),
            request_id: Some(self.request_id.clone()),
            message: Some(message),
            ..Default::default()
        }
    }
}

impl InvocationEvents for RequestEvents {
    fn output(&self, stream: Stream, line: &str) {
        let mut entry = self.entry(LogKind::Output, LogLevel::Info, line.to_string());
        entry.stream = Some(stream.as_str().to_string());
        self.log.write(entry);
    }

    fn outbound_denied(&self, url: &str) {
        let message = format!(
            "outbound request to {url} refused: its origin is not in [outbound] allow of the app's runway.toml"
        );
        tracing::warn!(app = %self.app, request_id = %self.request_id, "{message}");
        self.log
            .write(self.entry(LogKind::Platform, LogLevel::Warn, message));
    }

    fn internal_call_refused(&self, url: &str, reason: &str) {
        let message = format!("{reason} (call to {url})");
        tracing::warn!(app = %self.app, request_id = %self.request_id, "{message}");
        self.log
            .write(self.entry(LogKind::Platform, LogLevel::Warn, message));
    }

    fn failed(&self, failure: &Failure) {
        let message = format!("{} ({})", failure, failure.code());
        tracing::warn!(app = %self.app, version = %self.version, request_id = %self.request_id, "{message}");
        self.log
            .write(self.entry(LogKind::Error, LogLevel::Error, message));
    }
}

/// The job queue of one app in the platform catalog (`runway:jobs/queue`).
pub struct StoreJobs {
    store: Store,
    app: String,
}

impl StoreJobs {
    pub fn new(store: Store, app: &str) -> StoreJobs {
        StoreJobs {
            store,
            app: app.to_string(),
        }
    }
}

#[async_trait]
impl JobQueue for StoreJobs {
    async fn enqueue(&self, job: JobRequest) -> Result<String, JobError> {
        let new = NewJob {
            app: &self.app,
            path: &job.path,
            payload: &job.payload,
            delay_ms: job.delay_ms,
            max_attempts: i64::from(job.max_attempts),
            idempotency_key: job.idempotency_key.as_deref(),
        };
        match self.store.enqueue_job(&new).await {
            Ok(enqueued) => Ok(enqueued.id),
            Err(StoreError::Invalid(m)) => Err(JobError::Invalid(m)),
            Err(other) => {
                tracing::error!(app = %self.app, "job queue failed: {other}");
                Err(JobError::Unavailable(
                    "the platform could not store the job (nothing was enqueued); \
                     the cause is in the front-end's log"
                        .into(),
                ))
            }
        }
    }
}
