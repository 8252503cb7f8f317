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
