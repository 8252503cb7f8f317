//! The environment REST API, version 1 (`/_runway/api/v1/…`).

use std::collections::BTreeMap;

pub use crate::email::{
    EmailList, EmailQuery, EmailSettingsChange, EmailSettingsView, EmailState, EmailTestRequest,
    EmailTestResult, EmailView, SmtpDelivery, SmtpSecurity,
};
pub use crate::jobs::{JobList, JobQuery, JobState, JobView};
pub use crate::timers::{
    TimerQuery, TimerRunRequested, TimerRunView, TimerRunningView, TimerScheduleChange,
    TimerSettingsView, TimerStatus,
};
pub use crate::zones::{
    AppZoneChange, CreateZone, GLOBAL_ZONE, HostnameChange, HostnameView, UpdateZone, ZoneView,
    global_zone,
};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Token scopes, ordered: `admin` can do everything `console` can, which can
/// do everything `deploy` can, which can do everything `read` can. `join` is
/// below `read`: it only registers front-ends. `console` is the credential an
/// infrastructure console holds: `deploy` plus preparing, committing and
/// aborting deployments; it cannot manage tokens or front-ends.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Registers front-ends (`runway frontend serve --join-token`); no API access.
    Join,
    Read,
    Deploy,
    /// An infrastructure console's credential (`console:<console-uuid>`).
    Console,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Join => "join",
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Console => "console",
            Scope::Admin => "admin",
        }
    }

    pub const ALL: [Scope; 5] = [
        Scope::Join,
        Scope::Read,
        Scope::Deploy,
        Scope::Console,
        Scope::Admin,
    ];

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "join" => Some(Scope::Join),
            "read" => Some(Scope::Read),
            "deploy" => Some(Scope::Deploy),
            "console" => Some(Scope::Console),
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
    /// The environment's deployment zones (`global` always).
    #[serde(default)]
    pub zones: Vec<ZoneView>,
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
    /// The deployment zone it belongs to (`--zone` at its start).
    #[serde(default = "global_zone")]
    pub zone: String,
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

    pub fn parse(s: &str) -> Option<FrontendState> {
        [
            FrontendState::Ready,
            FrontendState::CatchingUp,
            FrontendState::Offline,
            FrontendState::Disabled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
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
    /// The environment's deployment zones, by name (`global` always); empty
    /// from a controller that predates zones.
    #[serde(default)]
    pub zones: Vec<String>,
}

/// `GET /_runway/api/v1/frontends?watch=TAG&wait_ms=N`: a long poll. The
/// answer carries the list's tag in [`FRONTEND_LIST_TAG_HEADER`]; asked with
/// that tag, the controller answers only once the list differs from it
/// (a front-end joined, left, or changed state) or after `wait_ms` (at most
/// [`MAX_FRONTEND_WATCH_MS`]). Without `watch` it answers at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrontendWatch {
    pub watch: Option<String>,
    pub wait_ms: Option<u64>,
}

/// The response header holding the front-end list's tag.
pub const FRONTEND_LIST_TAG_HEADER: &str = "x-runway-list-tag";
/// Longest wait of a front-end list watch.
pub const MAX_FRONTEND_WATCH_MS: u64 = 30_000;

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
    pub status: AppStatus,
    /// Why the running version could not be loaded; deploying it (or another
    /// version) again retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// The deployment zone it is deployed to (`runway app zone`).
    #[serde(default = "global_zone")]
    pub zone: String,
}

/// Whether an app serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Its running version serves.
    Running,
    /// Its running version could not be loaded at start (see `load_error`);
    /// answered 503 until a deployment of it succeeds.
    Failed,
    /// Nothing deployed (never, or undeployed): requests get 404.
    Stopped,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Running => "running",
            AppStatus::Failed => "failed",
            AppStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<AppStatus> {
        [AppStatus::Running, AppStatus::Failed, AppStatus::Stopped]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

impl std::fmt::Display for AppStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    pub source: PropertySource,
}

/// Where a property's effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropertySource {
    /// Set in this environment (`runway app config`, or a deployment's `config`).
    Environment,
    /// The manifest's default.
    Default,
    /// No value.
    Unset,
}

impl PropertySource {
    pub fn as_str(self) -> &'static str {
        match self {
            PropertySource::Environment => "environment",
            PropertySource::Default => "default",
            PropertySource::Unset => "unset",
        }
    }
}

impl std::fmt::Display for PropertySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The manifest's `[app] description`.
    #[serde(default)]
    pub description: Option<String>,
    /// The manifest's `[dependencies]`: app name → semver range.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
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

/// A deployment: one generation of the environment's routing table that
/// switches one or more apps (deploy, undeploy, or re-apply configuration).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    /// The app of the first operation (see `operations` for all of them).
    pub app: String,
    /// The version of the first operation: switched to (deploy) or running
    /// before (undeploy, config).
    pub version: String,
    /// The kind of the first operation.
    pub kind: OperationKind,
    pub status: DeploymentStatus,
    /// One per app, every app switched in the same generation.
    #[serde(default)]
    pub operations: Vec<DeploymentOperation>,
    pub error: Option<String>,
    pub generation: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// While `prepared`: when the controller aborts it unless it is
    /// committed (`started_at_ms` + [`PREPARED_DEPLOYMENT_TTL_MS`]).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Time spent staging on the front-ends (fetch, verify, load).
    pub stage_ms: Option<u64>,
    /// Time spent switching (commit).
    pub commit_ms: Option<u64>,
    /// Each front-end's part (empty for in-process front-ends).
    #[serde(default)]
    pub frontends: Vec<crate::fleet::FrontendProgress>,
}

/// How long a prepared deployment waits for its commit: 10 minutes. Then
/// the controller aborts it (status `aborted`, error "expired").
pub const PREPARED_DEPLOYMENT_TTL_MS: i64 = 600_000;

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Staging, recording or switching now.
    Running,
    /// Staged on every front-end, nothing switched: waits for commit or abort.
    Prepared,
    /// Recorded and switched.
    Succeeded,
    /// Nothing switched (or, with `disable_failed_frontends`, see `frontends`).
    Failed,
    /// A prepared deployment aborted (by a caller, by expiry or by a
    /// controller restart): nothing switched.
    Aborted,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 5] = [
        DeploymentStatus::Running,
        DeploymentStatus::Prepared,
        DeploymentStatus::Succeeded,
        DeploymentStatus::Failed,
        DeploymentStatus::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Prepared => "prepared",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentStatus> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it ended (succeeded, failed or aborted).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Succeeded | DeploymentStatus::Failed | DeploymentStatus::Aborted
        )
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a deployment does to one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Switch the app to a version.
    Deploy,
    /// Remove the app from the routing table (its versions, data and
    /// properties stay).
    Undeploy,
    /// Run the app's running version with new property values.
    Config,
}

impl OperationKind {
    pub const ALL: [OperationKind; 3] = [
        OperationKind::Deploy,
        OperationKind::Undeploy,
        OperationKind::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Deploy => "deploy",
            OperationKind::Undeploy => "undeploy",
            OperationKind::Config => "config",
        }
    }

    pub fn parse(s: &str) -> Option<OperationKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app's part in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentOperation {
    pub app: String,
    pub kind: OperationKind,
    /// Deploy: the version switched to. Undeploy/Config: the version running before.
    pub version: Option<String>,
    /// Package digest of `version` (None for undeploy).
    pub digest: Option<String>,
}

/// `POST /_runway/api/v1/deployments` and `POST /_runway/api/v1/deployments/dry-run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentRequest {
    /// 1..=64 operations, at most one per app.
    pub operations: Vec<OperationRequest>,
    /// Property values set in the target as part of this deployment, per app
    /// (`null` unsets); applied in the same generation as the operations.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// Stage on every front-end and stop: status `prepared`, switch nothing
    /// (scope `console`).
    #[serde(default)]
    pub prepare: bool,
    /// If staging fails on some front-ends, disable them and deploy on the
    /// others instead of failing the deployment.
    #[serde(default)]
    pub disable_failed_frontends: bool,
}

/// Most operations in one deployment.
pub const MAX_DEPLOYMENT_OPERATIONS: usize = 64;

/// One operation of a [`DeploymentRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OperationRequest {
    Deploy { app: String, version: String },
    Undeploy { app: String },
}

impl OperationRequest {
    pub fn app(&self) -> &str {
        match self {
            OperationRequest::Deploy { app, .. } | OperationRequest::Undeploy { app } => app,
        }
    }
}

/// Answer of `POST /_runway/api/v1/deployments/dry-run` (200 for any
/// well-formed request): what would block the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    pub ok: bool,
    pub problems: Vec<DeploymentProblem>,
}

/// One reason a deployment cannot run, about one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentProblem {
    pub app: String,
    pub code: ProblemCode,
    /// Names the app, the cause and the fix.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// Undeploy or configuration of an app the environment does not have.
    UnknownApp,
    /// A version not published (imported) in this environment.
    UnknownVersion,
    /// A required property without default and without a value.
    MissingProperty,
    /// A `[dependencies]` range not satisfied after the deployment.
    UnmetDependency,
    /// An app staying deployed depends on one being undeployed or changed.
    BreaksDependent,
    /// Undeploy of an app that runs nothing.
    NotDeployed,
    /// Another deployment is running or prepared.
    DeploymentInProgress,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::UnknownApp => "unknown_app",
            ProblemCode::UnknownVersion => "unknown_version",
            ProblemCode::MissingProperty => "missing_property",
            ProblemCode::UnmetDependency => "unmet_dependency",
            ProblemCode::BreaksDependent => "breaks_dependent",
            ProblemCode::NotDeployed => "not_deployed",
            ProblemCode::DeploymentInProgress => "deployment_in_progress",
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /_runway/api/v1/deployments?app=&limit=`: deployments that switched
/// `app` (all by default), newest first, at most `limit` (50; 1 to 1000).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeploymentQueryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
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

/// `GET /_runway/api/v1/logs?app=&kind=&errors=&after=&since_ms=&until_ms=&limit=&frontend=&status=`
/// — the client encodes this struct itself, so no field can be left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQueryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Comma-separated kinds: `request`, `output`, `error`, `platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    pub kind: Option<LogKinds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
}

/// What a log entry records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

    pub fn parse(s: &str) -> Option<LogKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for LogKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a log entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

    pub fn parse(s: &str) -> Option<LogLevel> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of log kinds, on the wire as one comma-separated query value
/// (`kind=request,error`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogKinds(pub Vec<LogKind>);

impl LogKinds {
    /// Parses `request,error`; the error names the unknown kind.
    pub fn parse(s: &str) -> Result<LogKinds, String> {
        let mut kinds = Vec::new();
        for kind in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            kinds.push(LogKind::parse(kind).ok_or_else(|| {
                format!("unknown log kind '{kind}': expected request, output, error or platform")
            })?);
        }
        Ok(LogKinds(kinds))
    }
}

impl std::fmt::Display for LogKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|k| k.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for LogKinds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogKinds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        LogKinds::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One line of the environment's log catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
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

/// `GET /_runway/health` and `/_runway/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub frontend: String,
    pub generation: i64,
}
