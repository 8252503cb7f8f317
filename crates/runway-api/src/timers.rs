//! Wire shapes of the timer endpoints (`/_runway/api/v1/timers…`),
//! re-exported from [`crate::v1`].

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /_runway/api/v1/timers[?app=]`: one timer of a running app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerStatus {
    pub app: String,
    pub timer: String,
    /// Path inside the app: a run is `POST /{app}{path}`.
    pub path: String,
    /// The schedule in effect (the environment's override, else the manifest's).
    pub schedule: String,
    /// The manifest's schedule.
    pub manifest_schedule: String,
    /// Whether `schedule` is an override of this environment.
    pub overridden: bool,
    /// Scheduled runs are off (run now still works).
    pub disabled: bool,
    /// The environment's time zone the schedule is read in.
    pub time_zone: String,
    /// The timeout of a run, in seconds.
    pub timeout_secs: u64,
    /// When it is next due (ms since the unix epoch); `null` when disabled or
    /// never again.
    pub next_run_at_ms: Option<i64>,
    /// A "run now" waits for a front-end.
    pub run_now_pending: bool,
    pub running: Option<TimerRunningView>,
    pub last_run: Option<TimerRunView>,
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerRunningView {
    pub frontend: String,
    pub due_at_ms: i64,
    pub started_at_ms: i64,
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerRunView {
    pub due_at_ms: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    /// The app's HTTP status, if it answered.
    pub status: Option<i64>,
    /// `ok`, `failed` or `lost` (its front-end died during the run).
    pub outcome: String,
    pub error: Option<String>,
    pub frontend: String,
}

/// `GET /_runway/api/v1/timers` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimerQuery {
    /// Only this app's timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// `PUT /_runway/api/v1/timers/{app}/{timer}/schedule`: the environment's
/// schedule of a timer. `schedule: null, disabled: false` goes back to the
/// manifest's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerScheduleChange {
    /// A cron expression (5 fields, or 6 with seconds first) replacing the manifest's.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Stop scheduled runs.
    #[serde(default)]
    pub disabled: bool,
}

/// `POST /_runway/api/v1/timers/{app}/{timer}/run` answer (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerRunRequested {
    pub app: String,
    pub timer: String,
    /// The due time the run will carry (`x-runway-timer-due`).
    pub requested_at_ms: i64,
}

/// `GET|PUT /_runway/api/v1/timer-settings`: the environment's time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimerSettingsView {
    /// IANA name (`UTC`, `Europe/Lisbon`).
    pub time_zone: String,
}
