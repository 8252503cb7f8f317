//! `runway:jobs/queue`: a guest enqueues durable background jobs for its own
//! app. The arguments are checked here, the same for every backend, before
//! anything reaches the [`JobQueue`] (the front-end's bridge to the catalog),
//! which is already scoped to the app: a guest can name a path inside its
//! app, never another app.

use async_trait::async_trait;

use crate::host::HostState;
use crate::host::generated::runway::jobs::queue;

/// Largest payload of one job (bytes). Jobs are small work orders, not data:
/// keep big data in key-value and pass its key.
pub const MAX_JOB_PAYLOAD_BYTES: usize = 256 << 10;
/// Longest job path (bytes).
pub const MAX_JOB_PATH_BYTES: usize = 2048;
/// Longest idempotency key (bytes).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// Longest delay before a first delivery: 30 days.
pub const MAX_JOB_DELAY_MS: i64 = 30 * 24 * 3600 * 1000;
/// Deliveries when the guest does not say.
pub const DEFAULT_JOB_MAX_ATTEMPTS: u32 = 10;
/// Most deliveries a guest may ask for.
pub const MAX_JOB_ATTEMPTS: u32 = 100;

/// A checked job of the calling app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// Starts with `/`, stays inside the app.
    pub path: String,
    pub payload: Vec<u8>,
    pub delay_ms: i64,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
}

/// Why a job was not enqueued; the message is shown to the guest.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The job queue of one app, already scoped to it.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Stores the job durably and returns its id (the first job's id when
    /// its idempotency key was used before in this app).
    async fn enqueue(&self, job: JobRequest) -> Result<String, JobError>;
}

/// Checks a guest's arguments; the error names the argument, the value and the fix.
pub fn check_job(
    path: String,
    payload: Vec<u8>,
    delay_ms: i64,
    max_attempts: Option<u32>,
    idempotency_key: Option<String>,
) -> Result<JobRequest, String> {
    check_path(&path)?;
    if payload.len() > MAX_JOB_PAYLOAD_BYTES {
        return Err(format!(
            "payload of {} bytes is larger than the limit of {MAX_JOB_PAYLOAD_BYTES} bytes \
             (256 KiB); store big data in key-value and pass its key",
            payload.len()
        ));
    }
    if delay_ms < 0 {
        return Err(format!(
            "delay-ms is {delay_ms}: a job cannot be delivered in the past; use 0 for as soon as possible"
        ));
    }
    if delay_ms > MAX_JOB_DELAY_MS {
        return Err(format!(
            "delay-ms is {delay_ms}, more than 30 days ({MAX_JOB_DELAY_MS} ms); use a timer for work that far away"
        ));
    }
    let max_attempts = max_attempts.unwrap_or(DEFAULT_JOB_MAX_ATTEMPTS);
    if !(1..=MAX_JOB_ATTEMPTS).contains(&max_attempts) {
        return Err(format!(
            "max-attempts is {max_attempts}; use 1 to {MAX_JOB_ATTEMPTS} (none: {DEFAULT_JOB_MAX_ATTEMPTS})"
        ));
    }
    if let Some(key) = &idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || key.contains('\0'))
    {
        return Err(format!(
            "idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes without NUL \
             (got {} bytes); hash longer keys",
            key.len()
        ));
    }
    Ok(JobRequest {
        path,
        payload,
        delay_ms,
        max_attempts,
        idempotency_key,
    })
}

/// A path inside the calling app, as the app sees it (`/tasks/send`): the
/// job is delivered as `POST /{app}{path}`.
fn check_path(path: &str) -> Result<(), String> {
    let shown: String = path.chars().take(60).collect();
    if !path.starts_with('/') {
        return Err(format!(
            "job path {shown:?} must start with '/': it is a path inside this app, \
             like \"/tasks/send\" for POST /{{app}}/tasks/send"
        ));
    }
    if path.len() > MAX_JOB_PATH_BYTES {
        return Err(format!(
            "job path {shown:?}… is {} bytes; the limit is {MAX_JOB_PATH_BYTES}",
            path.len()
        ));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(format!(
            "job path {shown:?} contains spaces, control characters or '#'; percent-encode them"
        ));
    }
    let route = path.split('?').next().unwrap_or(path);
    let outside = route.contains('\\')
        || route.split('/').any(|segment| {
            let lower = segment.to_ascii_lowercase();
            let decoded = lower.replace("%2e", ".");
            decoded == "." || decoded == ".." || lower.contains("%2f") || lower.contains("%5c")
        });
    if outside {
        return Err(format!(
            "job path {shown:?} leaves the app (a '.' or '..' segment, an encoded '/' or a \
             backslash); a job can only be delivered to the app that enqueues it: write \
             the path as the app sees it, like \"/tasks/send\""
        ));
    }
    Ok(())
}

impl queue::Host for HostState {
    async fn enqueue(
        &mut self,
        path: String,
        payload: Vec<u8>,
        options: queue::Options,
    ) -> Result<String, queue::Error> {
        let job = check_job(
            path,
            payload,
            options.delay_ms,
            options.max_attempts,
            options.idempotency_key,
        )
        .map_err(queue::Error::Invalid)?;
        self.jobs.enqueue(job).await.map_err(|e| match e {
            JobError::Invalid(m) => queue::Error::Invalid(m),
            JobError::Unavailable(m) => queue::Error::Unavailable(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Result<JobRequest, String> {
        check_job(p.into(), Vec::new(), 0, None, None)
    }

    #[test]
    fn paths_inside_the_app_only() {
        assert!(path("/tasks/send").is_ok());
        assert!(path("/tasks/send?user=1&x=..").is_ok());
        for bad in [
            "tasks/send",
            "",
            "/../other/x",
            "/a/../../other",
            "/./x",
            "/%2e%2e/other",
            "/%2E./other",
            "/a%2f..%2fother",
            "/a\\..\\other",
            "/a b",
            "/a#b",
            "http://other/x",
        ] {
            let err = path(bad).unwrap_err();
            assert!(err.contains("job path"), "{bad}: {err}");
        }
    }

    #[test]
    fn limits() {
        let big = vec![0; MAX_JOB_PAYLOAD_BYTES + 1];
        let err = check_job("/a".into(), big, 0, None, None).unwrap_err();
        assert!(
            err.contains("262145 bytes") && err.contains("256 KiB"),
            "{err}"
        );
        assert!(check_job("/a".into(), vec![0; MAX_JOB_PAYLOAD_BYTES], 0, None, None).is_ok());
        let err = check_job("/a".into(), vec![], -1, None, None).unwrap_err();
        assert!(err.contains("delay-ms is -1"), "{err}");
        assert!(check_job("/a".into(), vec![], MAX_JOB_DELAY_MS + 1, None, None).is_err());
        assert!(check_job("/a".into(), vec![], 0, Some(0), None).is_err());
        assert!(check_job("/a".into(), vec![], 0, Some(101), None).is_err());
        assert_eq!(
            check_job("/a".into(), vec![], 0, None, None)
                .unwrap()
                .max_attempts,
            DEFAULT_JOB_MAX_ATTEMPTS
        );
        assert!(check_job("/a".into(), vec![], 0, None, Some(String::new())).is_err());
        assert!(check_job("/a".into(), vec![], 0, None, Some("k".repeat(257))).is_err());
    }
}
