//! The error body returned by every Runway API endpoint.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{code, message, details}`: `code` is stable and machine-readable
/// (`unauthorized`, `forbidden`, `not_found`, `conflict`, `invalid_package`,
/// `invalid_component`, `invalid_request`, `payload_too_large`, `internal`, …),
/// `message` is one sentence for a person saying what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}
