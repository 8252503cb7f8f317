//! The controller ↔ front-end protocol: desired state, staged then committed.
//!
//! The controller sends a whole [`RoutingTable`]; the front-end stages it
//! (fetches and verifies every artifact it lacks, loads and pre-instantiates
//! each app) without changing what it serves, then switches atomically when
//! told to commit that generation. In `runway up` both sides share a process,
//! but they still exchange exactly these messages.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::v1::Limits;

/// Everything a front-end serves at one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoutingTable {
    pub generation: i64,
    pub environment: String,
    pub base_url: String,
    pub apps: Vec<AppAssignment>,
    /// Running apps that could not be loaded (app → why): answered with 503
    /// until they are deployed again; every other app serves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, String>,
}

/// One running app: which bytes, with which configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppAssignment {
    pub app: String,
    pub version: String,
    pub package_digest: String,
    pub artifact_digest: String,
    /// Effective property values (defaults overridden by the environment),
    /// secrets included: this message only travels controller → front-end.
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
    /// Allowed outbound origins, `scheme://host:port`.
    pub outbound_allow: Vec<String>,
}

/// Answer to a stage request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StageReport {
    pub frontend: String,
    pub generation: i64,
    pub fetched_bytes: u64,
    pub loaded_apps: u32,
    pub elapsed_ms: u64,
}

/// Fleet endpoints a front-end calls on its controller.
pub const FLEET_V1: &str = "/_runway/fleet/v1";

/// `POST /_runway/fleet/v1/register` (bearer: a join token). A front-end says
/// who it is on every start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrontendHello {
    pub name: String,
    /// Random identity kept in the front-end's data directory: tells a restart
    /// from a second process claiming the same name.
    pub node_id: String,
    /// Base URL the controller and balancers reach it at, `http://host:port`.
    pub address: String,
    pub flags: crate::v1::FrontendFlags,
    pub engine: EngineSettings,
    pub runway_version: String,
    /// The deployment zone it joins (`--zone`); it loads only that zone's apps.
    #[serde(default = "crate::v1::global_zone")]
    pub zone: String,
}

/// The engine settings artifacts depend on. Controller and front-ends must
/// agree on all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EngineSettings {
    /// Fingerprint of everything below plus wasmtime's own compatibility hash.
    pub fingerprint: String,
    pub max_memory_bytes: u64,
}

/// Answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub environment: String,
    /// The front-end's key for this start: bearer on every fleet call, both ways.
    pub key: String,
    /// Where the environment's catalogs are (a `postgres://` URL or a
    /// directory), unless the front-end was told otherwise.
    pub catalog: String,
    /// The committed generation the front-end must serve before it is ready.
    pub generation: i64,
    pub heartbeat_ms: u64,
    pub offline_after_ms: u64,
    pub enabled: bool,
}

/// `POST /_runway/fleet/v1/heartbeat` (bearer: the front-end's key,
/// `x-runway-frontend`: its name).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    pub generation: i64,
    pub ready: bool,
}

/// Answer to a heartbeat: what the front-end should serve.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    pub generation: i64,
    pub enabled: bool,
}

/// One front-end's part in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FrontendProgress {
    pub frontend: String,
    pub state: FrontendProgressState,
    pub fetched_bytes: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

/// The controller's view of one front-end: the fleet protocol as calls.
/// The front-end implements it in-process (`runway up`), the controller over
/// HTTP (a farm), so neither depends on the other's code.
#[async_trait]
pub trait FrontendLink: Send + Sync {
    fn name(&self) -> &str;
    /// Prepares `table` without changing what is served.
    async fn stage(&self, table: &RoutingTable) -> Result<StageReport, StageError>;
    /// Switches to the staged table of `generation`.
    async fn commit(&self, generation: i64) -> Result<(), StageError>;
    /// Drops a staged table that will not be committed.
    async fn abort(&self, generation: i64);
    /// The generation being served, and whether the front-end is ready.
    fn status(&self) -> (i64, bool);
}

/// Why a table could not be staged or committed. Names the app and the step.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StageError {
    #[error("app {app}: cannot fetch {what} {digest}: {reason}")]
    Fetch {
        app: String,
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error(
        "app {app}: {what} {digest} failed verification: its content hashes to {actual}; \
         the copy is corrupt and was discarded"
    )]
    Digest {
        app: String,
        what: &'static str,
        digest: String,
        actual: String,
    },
    #[error("app {app}: {reason}")]
    Load { app: String, reason: String },
    #[error("generation {generation} was not staged on front-end {frontend} (staged: {staged})")]
    NotStaged {
        frontend: String,
        generation: i64,
        staged: String,
    },
    #[error("front-end {frontend}: {reason}")]
    Io { frontend: String, reason: String },
    /// No connection could be made: the front-end is down (or cut off), so
    /// it serves nothing and catches up when it is back.
    #[error("front-end {frontend} is unreachable: {reason}")]
    Unreachable { frontend: String, reason: String },
    #[error(
        "front-end {frontend} already has generation {newest}; generation {generation} is older"
    )]
    Stale {
        frontend: String,
        generation: i64,
        newest: i64,
    },
}

/// Where one front-end is in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrontendProgressState {
    /// Staged the table; not switched yet (a prepared deployment stays here).
    Staged,
    /// Switched to the deployment's generation.
    Committed,
    /// Staging failed: nothing switched anywhere.
    Failed,
    /// Staging failed and it was disabled so the deployment could proceed.
    Disabled,
    /// Did not take the commit (or was down): catches up before it is ready again.
    Behind,
    /// Offline or disabled: catches up when it returns.
    Skipped,
    /// Its staged table was dropped (the deployment was aborted or expired).
    Aborted,
}

impl FrontendProgressState {
    pub const ALL: [FrontendProgressState; 7] = [
        FrontendProgressState::Staged,
        FrontendProgressState::Committed,
        FrontendProgressState::Failed,
        FrontendProgressState::Disabled,
        FrontendProgressState::Behind,
        FrontendProgressState::Skipped,
        FrontendProgressState::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrontendProgressState::Staged => "staged",
            FrontendProgressState::Committed => "committed",
            FrontendProgressState::Failed => "failed",
            FrontendProgressState::Disabled => "disabled",
            FrontendProgressState::Behind => "behind",
            FrontendProgressState::Skipped => "skipped",
            FrontendProgressState::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<FrontendProgressState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for FrontendProgressState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
