//! Wire shapes of the background-job endpoints (`/_runway/api/v1/jobs…`),
//! re-exported from [`crate::v1`], and the job states every crate shares.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Where a job is in its life. The catalog stores exactly [`JobState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first delivery (or its delay).
    Queued,
    /// Held by a front-end that is delivering it.
    Running,
    /// An attempt failed; waiting for its backoff before the next one.
    Retrying,
    /// Every attempt failed (kept for inspection; `runway jobs retry` queues it again).
    Failed,
    /// The app answered 2xx.
    Done,
    /// An operator cancelled it before it completed.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Failed,
        JobState::Done,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Failed => "failed",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// No further delivery will happen unless an operator retries it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Done | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One background job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub app: String,
    /// Path inside the app: a delivery is `POST /{app}{path}`.
    pub path: String,
    pub state: JobState,
    /// Deliveries started so far (a redelivery after a lost lease counts).
    pub attempts: i64,
    pub max_attempts: i64,
    pub idempotency_key: Option<String>,
    pub payload_bytes: i64,
    pub created_at_ms: i64,
    /// Next delivery not before (queued, retrying).
    pub run_at_ms: i64,
    /// The front-end delivering it now (running).
    pub frontend: Option<String>,
    pub finished_at_ms: Option<i64>,
    /// The app's HTTP status at the last attempt, if it answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// `GET /_runway/api/v1/jobs` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Newest first, at most `limit`.
    pub jobs: Vec<JobView>,
    /// Apps with waiting jobs (queued or retrying) that are not deployed in
    /// this environment: their jobs stay queued until they are.
    pub undeployed_apps: Vec<String>,
}

/// `GET /_runway/api/v1/jobs` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this app's jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Only jobs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
