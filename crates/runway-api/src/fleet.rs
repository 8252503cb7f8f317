//! The controller ↔ front-end protocol: desired state, staged then committed.
//!
//! The controller sends a whole [`RoutingTable`]; the front-end stages it
//! (fetches and verifies every artifact it lacks, loads and pre-instantiates
//! each app) without changing what it serves, then switches atomically when
//! told to commit that generation. In `runway up` both sides share a process,
//! but they still exchange exactly these messages.

use std::collections::BTreeMap;

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
