//! IT users and login sessions on the console (`/_runway/console/v1/users…`,
//! `/_runway/console/v1/sessions…`). Passwords travel only in requests; no
//! response carries a password or its hash.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The built-in roles, in the order `runway role list` shows them.
pub const BUILT_IN_ROLES: [&str; 4] = ["Administrator", "Developer", "Tester", "Operations"];

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub key: String,
    /// The username (what `runway login --user` takes).
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub role: String,
    /// `active` or `disabled`.
    pub state: String,
    /// Locked out after too many failed logins (`runway user unlock` clears it).
    pub locked: bool,
    pub created_at_ms: i64,
    /// Name of the principal that created it (absent for the first admin user).
    pub created_by: Option<String>,
    pub password_changed_at_ms: i64,
}

/// `POST /_runway/console/v1/users`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateUser {
    pub name: String,
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub display_name: String,
    /// Absent: the console generates one and returns it once.
    #[serde(default)]
    pub password: Option<String>,
}

/// A new user; `password` is set only when the console generated it (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserCreated {
    pub user: UserView,
    pub password: Option<String>,
}

/// `POST /_runway/console/v1/users/{user}/password`: an admin sets
/// another user's password (`current` not needed), a user their own
/// (`current` required). Absent `new`: the console generates one (admins only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePassword {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub new: Option<String>,
}

/// The outcome of a password change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    /// Sessions of the user that were ended (every one but the caller's).
    pub sessions_ended: u64,
    /// Set only when the console generated the password (shown once).
    pub password: Option<String>,
}

/// `POST /_runway/console/v1/sessions`: log in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// A new session: `token` (`rws_…`) is the bearer token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionCreated {
    pub token: String,
    pub user: UserView,
    /// The session ends at this time at the latest.
    pub expires_at_ms: i64,
    /// …and after this long without a request.
    pub idle_timeout_ms: i64,
}

/// `DELETE /_runway/console/v1/sessions`: log out everywhere.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}

/// One level entry of a role: `scope` is an environment's name, an
/// environment class (`@dev`, `@test`, `@prod`) or `*` (every other
/// environment); `level` is `no-access`, `monitor`, `change-and-deploy` or
/// `full-control`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleLevel {
    pub scope: String,
    pub level: String,
}

/// A role, built-in or custom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    /// Built-in roles can be neither changed nor deleted.
    pub built_in: bool,
    /// Most specific first: environments by name, then classes, then `*`.
    pub levels: Vec<RoleLevel>,
    /// The right to manage environments and pipelines.
    pub manage_infrastructure: bool,
    /// The right to manage users, roles, teams and service accounts.
    pub manage_users: bool,
    /// Absent for built-in roles.
    pub created_at_ms: Option<i64>,
}

/// `POST /_runway/console/v1/roles`: a custom role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub levels: Vec<RoleLevel>,
    #[serde(default)]
    pub manage_infrastructure: bool,
    #[serde(default)]
    pub manage_users: bool,
}

/// `POST /_runway/console/v1/users/{user}/role`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetRole {
    pub role: String,
}

/// A member of a team and its role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TeamMember {
    /// A user's or a service account's name.
    pub member: String,
    pub role: String,
}

/// A member as a team lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TeamMemberView {
    pub member: String,
    /// `user` or `service_account`.
    pub kind: String,
    pub role: String,
}

/// A team: apps, and members each with a role on those apps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TeamView {
    pub key: String,
    pub name: String,
    pub apps: Vec<String>,
    pub members: Vec<TeamMemberView>,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
}

/// `POST /_runway/console/v1/teams`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTeam {
    pub name: String,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub members: Vec<TeamMember>,
}

/// `POST /_runway/console/v1/teams/{team}/apps`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TeamApp {
    pub app: String,
}

/// One row of the console's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    /// `admin`, `user`, `service_account`, or `anonymous` (no valid credential).
    pub principal_kind: String,
    /// The principal's name (`-` for anonymous).
    pub principal: String,
    /// Which session or token (`session #12`, `token #3 (default)`); never a secret.
    pub credential: String,
    /// The client's address.
    pub address: String,
    /// `METHOD /path` under the API prefix, or the enforcement point's name.
    pub action: String,
    pub environment: Option<String>,
    pub app: Option<String>,
    /// `done` or `refused`.
    pub outcome: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it was refused (the answer's message).
    pub reason: String,
    /// A configuration change: before and after (never secret values).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// `GET /_runway/console/v1/audit` filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only rows of this principal (user or service account name).
    pub user: Option<String>,
    /// Only rows about this environment (name).
    pub env: Option<String>,
    /// Only rows about this app.
    pub app: Option<String>,
    /// Only rows whose action contains this text.
    pub action: Option<String>,
    /// From this time on (unix ms).
    pub since_ms: Option<i64>,
    /// Before this time (unix ms).
    pub until_ms: Option<i64>,
    /// At most this many rows (1–10000, default 1000), newest first.
    pub limit: Option<i64>,
}
