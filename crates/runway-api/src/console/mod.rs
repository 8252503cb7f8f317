//! The infrastructure console's REST API (`/_runway/console/v1/…`).
//!
//! Keys are UUIDs (lowercase, hyphenated). Every listing is a JSON array.
//! Deployment plans are in [`plans`]; the LifeTime Deployment API v2
//! surface has its own shapes (field names as LifeTime spells them).

pub mod identity;
pub mod lifetime;
pub mod plans;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::v1::{AppStatus, FrontendState};

/// Prefix of the console's API.
pub const CONSOLE_API_V1: &str = "/_runway/console/v1";

/// `GET /_runway/console/v1/console`: the console and who is asking.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleInfo {
    /// The console's key (names the credentials it mints: `console:<key>`).
    pub key: String,
    pub runway_version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The caller.
    pub principal: PrincipalView,
}

/// Who acts: the admin or a service account (issue 9 adds users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrincipalView {
    pub key: String,
    /// `admin` or `service_account`.
    pub kind: String,
    pub name: String,
}

/// A service account (automation identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceAccount {
    pub key: String,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub disabled_at_ms: Option<i64>,
    /// What it may do (teams it is a member of add to that on their apps).
    pub role: String,
    pub tokens: Vec<ConsoleToken>,
}

/// A token as listed; the secret is never returned after creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsoleToken {
    pub id: i64,
    pub name: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// Replaced by a rotation: accepted until then, refused after.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

/// `POST /_runway/console/v1/service-accounts`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateServiceAccount {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Its role (required: absent is refused with 400 naming the built-in
    /// roles). Only given if the creator may hand it out.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /_runway/console/v1/service-accounts/{account}/rotate`: a new
/// token; the account's other tokens keep working `grace_s` seconds more
/// (0, the default: refused at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RotateAccountTokens {
    #[serde(default)]
    pub grace_s: u64,
}

/// `POST /_runway/console/v1/service-accounts/{account}/tokens`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateAccountToken {
    pub name: String,
}

/// A new token of a service account: the only time `token` is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountTokenCreated {
    pub account: String,
    #[serde(flatten)]
    pub info: ConsoleToken,
    pub token: String,
}

/// `POST /_runway/console/v1/environments`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddEnvironment {
    pub name: String,
    /// Base URL of the environment (its balancer in a farm).
    pub address: String,
    /// An admin token of the environment, used once to mint the console's
    /// own `console`-scope token there; never stored.
    pub token: String,
    pub pipeline: Option<String>,
    /// 1-based place in the pipeline (default: after the last).
    pub order: Option<i64>,
    /// Accept a plain-http address that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Plans to this environment stop after prepare.
    #[serde(default)]
    pub two_step: bool,
}

/// A registered environment and its last health poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentView {
    pub key: String,
    pub name: String,
    pub address: String,
    pub pipeline: Option<String>,
    pub order: Option<i64>,
    pub allow_insecure: bool,
    pub two_step: bool,
    pub created_at_ms: i64,
    /// `None` until the first poll.
    pub health: Option<HealthView>,
}

/// What the last poll of an environment found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    pub reachable: bool,
    pub checked_at_ms: i64,
    /// Why the last poll failed.
    pub error: Option<String>,
    pub runway_version: Option<String>,
    pub generation: Option<i64>,
    /// The last successful poll.
    pub last_seen_at_ms: Option<i64>,
    pub frontends: Vec<FrontendView>,
}

/// `DELETE /_runway/console/v1/environments/{env}?force=…`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveEnvironment {
    /// Remove the environment even when the console cannot revoke its
    /// credential there (unreachable): that token then stays on the
    /// environment until an admin revokes it.
    #[serde(default)]
    pub force: bool,
}

/// A front-end of an environment, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrontendView {
    pub name: String,
    pub address: String,
    pub state: FrontendState,
    pub generation: i64,
    pub enabled: bool,
}

/// `GET /_runway/console/v1/environments/{env}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentDetail {
    #[serde(flatten)]
    pub environment: EnvironmentView,
    /// The apps it runs (at the last successful poll).
    pub apps: Vec<RunningView>,
}

/// What an environment runs of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunningView {
    pub app: String,
    pub app_key: String,
    pub environment: String,
    pub environment_key: String,
    pub version: Option<String>,
    /// The console's key of that version; `None` when the environment runs
    /// bytes whose digest differs from the console's version of that number.
    pub version_key: Option<String>,
    pub digest: Option<String>,
    pub status: AppStatus,
    pub deployed_at_ms: Option<i64>,
}

/// `POST /_runway/console/v1/pipelines`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatePipeline {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// A pipeline and its environments in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineView {
    pub key: String,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub environments: Vec<PipelineStage>,
}

/// An environment's place in a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineStage {
    pub order: i64,
    pub key: String,
    pub name: String,
    pub address: String,
}

/// `PUT /_runway/console/v1/environments/{env}/pipeline`: `null` pipeline
/// takes it out of any pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetEnvironmentPipeline {
    pub pipeline: Option<String>,
    pub order: Option<i64>,
}

/// `GET /_runway/console/v1/apps`: an application and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplicationView {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    /// The pipeline whose environments run it (`None`: none, or several).
    pub pipeline: Option<String>,
    pub running: Vec<RunningView>,
}

/// A version of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub key: String,
    pub app: String,
    pub app_key: String,
    pub version: String,
    pub digest: String,
    pub description: Option<String>,
    pub changelog: String,
    pub created_at_ms: i64,
    /// Who tagged it; `None` when recorded from a poll.
    pub created_by: Option<String>,
    /// Environments that run it now (names).
    pub running_in: Vec<String>,
}

/// `POST /_runway/console/v1/apps/{app}/versions`: record (tag) the version
/// an environment runs, or one of its published versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TagVersion {
    /// Environment name or key.
    pub environment: String,
    /// The version number; default: the one the environment runs.
    pub version: Option<String>,
    #[serde(default)]
    pub changelog: String,
}
