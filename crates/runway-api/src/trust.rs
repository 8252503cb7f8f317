//! Environments trust the console (issue 9 part 6) and the environment-side
//! audit (part 7): the console's public signing keys as an environment
//! stores them, the claims of a console-issued token, the token a console
//! hands a user for one environment, and the environment's audit rows.
//!
//! A console-issued token is a JWT signed with Ed25519 (`alg: EdDSA`), its
//! header naming the key (`kid`). The environment verifies it with the keys
//! the console pushed (`PUT /_runway/api/v1/console-trust`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest life of a console-issued token (the issue: at most 10 minutes).
pub const MAX_TOKEN_TTL_SECS: u64 = 600;
/// Clock skew an environment tolerates on `exp` and `nbf`.
pub const TOKEN_LEEWAY_SECS: u64 = 30;
/// `iss` of every console-issued token: this prefix and the console's key.
pub const ISSUER_PREFIX: &str = "runway-console:";

/// An environment-wide permission level as a token carries it (the
/// console's ladder: each includes the ones below).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TrustLevel {
    NoAccess,
    /// Read apps, logs, configuration (never secret values): scope `read`.
    Monitor,
    /// Publish, deploy, configure, run timers: scope `deploy`.
    ChangeAndDeploy,
    /// Everything an `admin` token may do, except the console's own calls.
    FullControl,
}

impl TrustLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::NoAccess => "no-access",
            TrustLevel::Monitor => "monitor",
            TrustLevel::ChangeAndDeploy => "change-and-deploy",
            TrustLevel::FullControl => "full-control",
        }
    }

    /// How people read it: `change & deploy`.
    pub fn label(self) -> &'static str {
        match self {
            TrustLevel::NoAccess => "no access",
            TrustLevel::Monitor => "monitor",
            TrustLevel::ChangeAndDeploy => "change & deploy",
            TrustLevel::FullControl => "full control",
        }
    }
}

impl std::fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One public key of the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustedKey {
    /// The key's id (the `kid` of the tokens it signs).
    pub kid: String,
    /// The Ed25519 public key: 32 bytes, base64url without padding (a JWK's `x`).
    pub public_key: String,
    /// Absent for the console's current key; for a retired key, when the
    /// last token it signed has expired: tokens it signs are refused after.
    pub not_after_ms: Option<i64>,
}

/// `PUT /_runway/api/v1/console-trust` (scope console), and what
/// `GET` answers: the console an environment trusts and its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsoleTrust {
    /// The console's key (tokens carry `iss` = `runway-console:<console>`).
    pub console: String,
    /// The `aud` this environment accepts: its key on that console.
    pub audience: String,
    pub keys: Vec<TrustedKey>,
}

/// The claims of a console-issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// `runway-console:<console key>`.
    pub iss: String,
    /// The environment's key on the console.
    pub aud: String,
    /// The principal's name (user or service account).
    pub sub: String,
    /// `user`, `service_account` or `admin`.
    pub kind: String,
    /// The principal's environment-wide level.
    pub lvl: TrustLevel,
    /// Apps on which the principal has a higher level than `lvl` (teams).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, TrustLevel>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Unique id of the token (the audit rows name it).
    pub jti: String,
}

/// `POST /_runway/console/v1/environments/{env}/token`: a token for one
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentToken {
    /// The JWT: `Authorization: Bearer <token>` on that environment's API.
    pub token: String,
    pub environment: String,
    /// The environment's address as registered.
    pub address: String,
    pub level: TrustLevel,
    #[serde(default)]
    pub apps: BTreeMap<String, TrustLevel>,
    pub expires_at_ms: i64,
}

/// `POST /_runway/console/v1/signing-keys/rotate` and
/// `GET /_runway/console/v1/signing-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKeys {
    /// The key new tokens are signed with.
    pub current: String,
    /// Every key environments accept (the current one and retired ones whose
    /// tokens may not have expired yet).
    pub keys: Vec<TrustedKey>,
    /// Environments that did not take the new keys (unreachable); the health
    /// poller retries them.
    #[serde(default)]
    pub not_pushed: Vec<String>,
}

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Done,
    /// 401 or 403: not authenticated, or not allowed.
    Refused,
    /// Any other 4xx or 5xx.
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Done => "done",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<AuditOutcome> {
        match s {
            "done" => Some(AuditOutcome::Done),
            "refused" => Some(AuditOutcome::Refused),
            "failed" => Some(AuditOutcome::Failed),
            _ => None,
        }
    }

    /// The outcome of an answer with this HTTP status.
    pub fn of_status(status: u16) -> AuditOutcome {
        match status {
            401 | 403 => AuditOutcome::Refused,
            400..=599 => AuditOutcome::Failed,
            _ => AuditOutcome::Done,
        }
    }
}

/// One row of an environment's audit log (`GET /_runway/api/v1/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    /// Who: `token:<name>` (an environment token), `console:<sub>` (a
    /// console-issued token), or `anonymous` (no valid credential).
    pub actor: String,
    /// The environment token's id, or the console token's `jti`.
    pub credential: Option<String>,
    /// The client's IP address (`unknown` when the socket did not tell).
    pub address: String,
    /// `METHOD /route` (the route's template, e.g. `POST /apps/{app}/deployments`).
    pub action: String,
    /// The path called.
    pub target: String,
    pub status: u16,
    pub outcome: AuditOutcome,
    /// Why it was refused (the refusal's message).
    pub detail: Option<String>,
    /// Before and after of a configuration change (secret values never:
    /// a secret property is noted as set or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// Query of `GET /_runway/api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only rows of this actor (`token:ci`, `console:ada`).
    pub actor: Option<String>,
    /// Only rows of this user or service account of the console, or this
    /// environment token: actor `console:<user>` or `token:<user>`.
    #[serde(default)]
    pub user: Option<String>,
    /// Only rows about this app (calls on `/apps/{app}` and below).
    #[serde(default)]
    pub app: Option<String>,
    /// Only rows whose action (`METHOD /route`) contains this text.
    #[serde(default)]
    pub action: Option<String>,
    /// Only rows with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only rows at or after this instant (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only rows before this instant (ms since the epoch).
    #[serde(default)]
    pub until_ms: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_spelled() {
        assert!(TrustLevel::FullControl > TrustLevel::ChangeAndDeploy);
        assert!(TrustLevel::ChangeAndDeploy > TrustLevel::Monitor);
        assert_eq!(
            serde_json::to_string(&TrustLevel::ChangeAndDeploy).unwrap(),
            "\"change-and-deploy\""
        );
        assert_eq!(AuditOutcome::of_status(403), AuditOutcome::Refused);
        assert_eq!(AuditOutcome::of_status(409), AuditOutcome::Failed);
        assert_eq!(AuditOutcome::of_status(204), AuditOutcome::Done);
    }
}
