//! The environment REST API, version 1 (`/_runway/api/v1/…`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Token scopes, ordered: `admin` can do everything `deploy` can, which can do
/// everything `read` can. `join` is below `read`: it only registers front-ends.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Registers front-ends (`runway frontend serve --join-token`); no API access.
    Join,
    Read,
    Deploy,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Join => "join",
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "join" => Some(Scope::Join),
            "read" => Some(Scope::Read),
            "deploy" => Some(Scope::Deploy),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /_runway/api/v1/environment`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentInfo {
    pub name: String,
    pub base_url: String,
    pub runway_version: String,
    /// Fingerprint of the engine configuration artifacts are compiled for.
    pub engine: String,
    pub generation: i64,
    pub limits: Limits,
    pub frontends: Vec<FrontendInfo>,
    /// Log rows dropped so far, per cause, over every front-end.
    #[serde(default)]
    pub log_dropped: LogDropped,
}

/// Log rows the environment dropped, per cause, since its log catalog was
/// created, added up over every process that writes to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct LogDropped {
    /// The log writer's queue was full (the database was slower than the traffic).
    pub queue_full: u64,
    /// App output beyond its per-app lines/s or bytes/s limit (a marker row
    /// in the app's log says how many).
    pub output_rate_limit: u64,
    /// Rows the database refused (each dropped alone, never its batch).
    pub rejected: u64,
    /// Rows given up after the database stayed unreachable for several seconds.
    pub database_unavailable: u64,
    /// Oldest rows deleted to keep the log catalog under its size cap.
    pub size_cap: u64,
}

/// Per-request limits. Environment-wide values are bounds; an app's manifest
/// may narrow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub max_body_bytes: u64,
    /// Most requests of one app in flight at once on a front-end. In the
    /// environment's bounds `None` means each front-end's `--app-concurrency`
    /// (default: half of its `--max-instances`); an app's value comes from
    /// its manifest's `[limits] concurrency` and only narrows that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// A front-end as the controller sees it (`GET /_runway/api/v1/frontends`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrontendInfo {
    pub name: String,
    /// Base URL the controller and the balancer reach it at, `http://host:port`.
    pub address: String,
    pub state: FrontendState,
    /// Generation it serves (0 before its first table).
    pub generation: i64,
    /// Unix milliseconds of its last heartbeat; `None` for an in-process front-end.
    pub last_heartbeat_ms: Option<i64>,
    pub flags: FrontendFlags,
    /// Set by `runway frontend disable`; a disabled front-end is drained and
    /// skipped by deployments until enabled again.
    pub enabled: bool,
}

/// Where a front-end is in its life, as the controller last heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FrontendState {
    /// Serves the committed generation.
    Ready,
    /// Registered and heartbeating, but still fetching and loading the
    /// committed generation (after a start, or after missing a deployment).
    CatchingUp,
    /// No heartbeat within the offline timeout.
    Offline,
    /// Disabled by an operator (whatever its heartbeat says).
    Disabled,
}

impl FrontendState {
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendState::Ready => "ready",
            FrontendState::CatchingUp => "catching-up",
            FrontendState::Offline => "offline",
            FrontendState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for FrontendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a front-end does besides existing (OutSystems' front-end roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct FrontendFlags {
    pub serves_apps: bool,
    pub runs_timers: bool,
    pub sends_email: bool,
}

impl Default for FrontendFlags {
    fn default() -> Self {
        FrontendFlags {
            serves_apps: true,
            runs_timers: true,
            sends_email: true,
        }
    }
}

/// `GET /_runway/api/v1/frontends`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrontendList {
    /// The environment's committed generation.
    pub generation: i64,
    /// Seconds without a heartbeat after which a front-end is offline.
    pub offline_after_secs: u64,
    pub frontends: Vec<FrontendInfo>,
}

/// `GET /_runway/api/v1/apps` (one row per app).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppSummary {
    pub name: String,
    pub running_version: Option<String>,
    pub running_digest: Option<String>,
    pub description: Option<String>,
    pub deployed_at_ms: Option<i64>,
    pub version_count: i64,
    pub url: String,
    /// `running`, `failed` (its running version could not be loaded at
    /// start: see `load_error`) or `stopped` (nothing deployed).
    #[serde(default)]
    pub status: String,
    /// Why the running version could not be loaded; deploying it (or another
    /// version) again retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
}

/// `GET /_runway/api/v1/apps/{app}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppDetail {
    #[serde(flatten)]
    pub summary: AppSummary,
    pub properties: Vec<PropertyView>,
    pub timers: Vec<TimerView>,
    pub dependencies: BTreeMap<String, String>,
    pub outbound_allow: Vec<String>,
    pub limits: Limits,
}

/// A property of an app with its effective value in this environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PropertyView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
    /// Effective value; always `null` for secret properties.
    pub value: Option<String>,
    /// `environment` (set through the API), `default` (manifest), or `unset`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimerView {
    pub name: String,
    pub schedule: String,
    pub path: String,
    pub timeout_secs: Option<u64>,
}

/// `GET /_runway/api/v1/apps/{app}/versions`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionSummary {
    pub app: String,
    pub version: String,
    pub digest: String,
    pub component_digest: String,
    pub size_bytes: i64,
    pub published_at_ms: i64,
    pub running: bool,
}

/// `POST /_runway/api/v1/packages?deploy=true|false` — body is the `.rwp` file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishResult {
    pub app: String,
    pub version: String,
    pub digest: String,
    pub component_digest: String,
    pub artifact_digest: String,
    /// `false` when this exact version was already published (idempotent re-publish).
    pub created: bool,
    /// `false` when an artifact for this component and engine already existed.
    pub compiled: bool,
    pub validate_ms: u64,
    pub compile_ms: u64,
    /// Present when the publish also deployed the version.
    pub deployment: Option<Deployment>,
}

/// `POST /_runway/api/v1/apps/{app}/deployments`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployRequest {
    pub version: String,
    /// If staging fails on some front-ends, disable them and deploy on the
    /// others (they catch up once enabled) instead of failing the deployment.
    #[serde(default)]
    pub disable_failed_frontends: bool,
}

/// A deployment: switching an app to a version (or re-applying its configuration).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    pub version: String,
    /// `deploy`, `config` or `undeploy`.
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub generation: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Time spent staging on the front-ends (fetch, verify, load).
    pub stage_ms: Option<u64>,
    /// Time spent switching (commit).
    pub commit_ms: Option<u64>,
    /// Each front-end's part (empty for in-process front-ends).
    #[serde(default)]
    pub frontends: Vec<crate::fleet::FrontendProgress>,
}

/// `PATCH /_runway/api/v1/apps/{app}/config`: `null` unsets (back to the default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ConfigPatch {
    pub values: BTreeMap<String, Option<String>>,
}

/// `POST /_runway/api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateToken {
    pub name: String,
    pub scope: Scope,
}

/// A token as listed; the secret itself is never returned after creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// Response to token creation: the only time `token` is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// `GET /_runway/api/v1/logs?app=&kind=&errors=&after=&limit=&frontend=&status=`
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LogQueryParams {
    pub app: Option<String>,
    /// Comma-separated kinds: `request`, `output`, `error`, `platform`.
    pub kind: Option<String>,
    pub errors: Option<bool>,
    pub after: Option<i64>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: Option<i64>,
    pub frontend: Option<String>,
    pub status: Option<i64>,
}

/// One line of the environment's log catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub id: i64,
    pub at_ms: i64,
    /// `request`, `output`, `error` or `platform`.
    pub kind: String,
    /// `info`, `warn` or `error`.
    pub level: String,
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

/// `GET /_runway/health` and `/_runway/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub frontend: String,
    pub generation: i64,
}
