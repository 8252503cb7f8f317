//! Deployment plans (`/_runway/console/v1/plans…`): move versions from a
//! source environment to a target environment, LifeTime's way.
//!
//! Lifecycle (LifeTime's vocabulary): `saved → running →
//! (needs_user_intervention) → finished_successful | finished_with_warnings
//! | finished_with_errors | aborted`, and `aborting` while an abort waits
//! for the running step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fleet::FrontendProgressState;

/// A plan's status, spelled as LifeTime spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Saved,
    Running,
    NeedsUserIntervention,
    FinishedSuccessful,
    FinishedWithWarnings,
    FinishedWithErrors,
    Aborting,
    Aborted,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Saved => "saved",
            PlanStatus::Running => "running",
            PlanStatus::NeedsUserIntervention => "needs_user_intervention",
            PlanStatus::FinishedSuccessful => "finished_successful",
            PlanStatus::FinishedWithWarnings => "finished_with_warnings",
            PlanStatus::FinishedWithErrors => "finished_with_errors",
            PlanStatus::Aborting => "aborting",
            PlanStatus::Aborted => "aborted",
        }
    }

    /// Whether the plan is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            PlanStatus::FinishedSuccessful
                | PlanStatus::FinishedWithWarnings
                | PlanStatus::FinishedWithErrors
                | PlanStatus::Aborted
        )
    }
}

/// The type of a status-log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanLogKind {
    Info,
    Warning,
    Error,
}

/// One operation of a plan, as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PlanOperationRequest {
    /// Deploy a version the console knows: `version` is its key, or the
    /// version number of `app`.
    Deploy {
        app: String,
        version: String,
        /// A downgrade is intended.
        #[serde(default)]
        rollback: bool,
    },
    /// Remove the app from the target's routing.
    Undeploy { app: String },
}

/// `POST /_runway/console/v1/plans`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatePlan {
    /// Environment name or key.
    pub source: String,
    /// Environment name or key.
    pub target: String,
    /// 1..=64 operations, at most one per app.
    pub operations: Vec<PlanOperationRequest>,
    /// Property values set in the target with the plan: app → property →
    /// value (`null` unsets).
    #[serde(default)]
    pub properties: BTreeMap<String, BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub notes: String,
    /// Stop after prepare (`needs_user_intervention`); `None`: the target
    /// environment's setting.
    #[serde(default)]
    pub two_step: Option<bool>,
    /// Allow deploying backwards or skipping a stage of the pipeline.
    #[serde(default)]
    pub allow_out_of_order: bool,
}

/// An operation of a plan as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanOperationView {
    /// `deploy` or `undeploy`.
    pub op: String,
    pub app: String,
    pub app_key: String,
    /// Deploy: the version number and its key and digest.
    pub version: Option<String>,
    pub version_key: Option<String>,
    pub digest: Option<String>,
    pub rollback: bool,
}

/// A deployment plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub key: String,
    pub source: String,
    pub source_key: String,
    pub target: String,
    pub target_key: String,
    pub notes: String,
    pub two_step: bool,
    pub allow_out_of_order: bool,
    pub status: PlanStatus,
    pub operations: Vec<PlanOperationView>,
    /// Property names set per app (values are never shown: they may be secret).
    pub properties: BTreeMap<String, Vec<String>>,
    /// The target's deployment id, once the plan deployed there.
    pub target_deployment_id: Option<i64>,
    pub created_at_ms: i64,
    /// The principal's name.
    pub created_by: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Each target front-end's stage in the plan's target deployment (see
    /// [`PlanFrontendProgress`]). Filled by `GET /plans/{key}` and
    /// `GET /plans/{key}/status`; empty in listings and for a target
    /// without registered front-ends (`runway up --single`).
    #[serde(default)]
    pub frontends: Vec<PlanFrontendProgress>,
}

/// One front-end of the target environment in the plan's target deployment,
/// as the target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanFrontendProgress {
    pub frontend: String,
    /// What the target recorded for it; `None` while it has not reported
    /// yet (the target is still staging or switching).
    pub state: Option<FrontendProgressState>,
    /// Bytes it downloaded to stage the deployment.
    pub fetched_bytes: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

/// What would block a plan: the app, the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanConflict {
    pub app: String,
    /// `out_of_order`, `unknown_version`, `package_missing`,
    /// `unmet_dependency`, `missing_property`, `downgrade`,
    /// `target_unreachable`, `source_unreachable`, or a target
    /// environment's problem code (`breaks_dependent`, `not_deployed`,
    /// `unknown_app`, `deployment_in_progress`).
    pub code: String,
    pub message: String,
}

/// `POST /_runway/console/v1/plans/{key}/validate`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanValidation {
    pub ok: bool,
    pub conflicts: Vec<PlanConflict>,
    /// Accepted but worth saying (a stage skipped with the flag…).
    pub warnings: Vec<String>,
}

/// A row of a plan's status log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanLogEntry {
    pub id: i64,
    pub instant_ms: i64,
    pub kind: PlanLogKind,
    pub message: String,
}

/// `GET /_runway/console/v1/plans/{key}/status?after=ID`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanStatusView {
    pub key: String,
    pub status: PlanStatus,
    /// One line: what the plan is doing or why it stopped ("prepared…").
    pub info: String,
    /// Log rows after `after`, oldest first.
    pub log: Vec<PlanLogEntry>,
    /// Each target front-end's stage (as in [`PlanView::frontends`]).
    #[serde(default)]
    pub frontends: Vec<PlanFrontendProgress>,
}

/// Query of `GET /plans/{key}/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanLogQuery {
    /// Only rows with a larger id.
    #[serde(default)]
    pub after: i64,
}
