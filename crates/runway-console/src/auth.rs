//! Bearer authentication of the console's API.
//!
//! Two kinds of bearer token: a console token, `rwc_` + 64 hex digits
//! (the admin's and service accounts'), and a login session of an IT user,
//! `rws_` + 64 hex digits ([`crate::users`]); the catalog keeps only their
//! SHA-256. Every route takes a [`Caller`] (any active principal) or an
//! [`AdminCaller`] (the console's admin, or a user with the Administrator
//! role: the right to manage users and roles).

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;
use runway_store::console::principals::{ConsoleTokenRecord, PrincipalKind, PrincipalRecord};
use runway_store::console::users::{SessionRecord, UserRecord};
use runway_store::now_ms;
use sha2::{Digest as _, Sha256};

use crate::Console;
use crate::error::ApiError;
use crate::users::SESSION_PREFIX;

/// Prefix of every console token.
pub const TOKEN_PREFIX: &str = "rwc_";
/// `last_used` is refreshed at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new random token (the secret, shown once) and its hash (what is stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The principal behind an authenticated request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: PrincipalRecord,
    /// The console token it used (the admin, service accounts).
    pub token: Option<ConsoleTokenRecord>,
    /// The login session it used (users).
    pub session: Option<SessionRecord>,
    /// The user, when the principal is one.
    pub user: Option<UserRecord>,
}

impl Caller {
    /// Whether the caller may manage users and roles: the console's admin,
    /// or an active user with the Administrator role.
    pub fn is_admin(&self) -> bool {
        match self.principal.kind {
            PrincipalKind::Admin => true,
            PrincipalKind::User => self
                .user
                .as_ref()
                .is_some_and(|u| u.role == "Administrator"),
            PrincipalKind::ServiceAccount => false,
        }
    }
}

/// Any authenticated principal, whatever its role: for what a principal does
/// to itself (who am I, its own user record and password, its sessions).
#[derive(Debug, Clone)]
pub struct Myself(pub Caller);

/// Refuses a user whose role the console cannot enforce yet.
///
/// Roles other than Administrator grant per-environment levels
/// ([`crate::access`]), which the console's routes do not check yet; until
/// they do, such a user is refused there (fail closed) rather than given
/// everything. The admin token and service accounts are unaffected.
pub fn refuse_unenforced_role(caller: &Caller) -> Result<(), ApiError> {
    if caller.principal.kind != PrincipalKind::User || caller.is_admin() {
        return Ok(());
    }
    let role = caller.user.as_ref().map_or("unknown", |u| u.role.as_str());
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "user '{}' has role {}: this console does not check per-environment levels \
                 yet, so only users with the Administrator role may use its environments, \
                 apps and deployment plans; ask an administrator to act for you, or use a \
                 service account",
            caller.principal.name, role
        ),
    ))
}

/// A [`Caller`] that may manage users and roles ([`Caller::is_admin`]).
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Authenticates the bearer token of a request.
pub async fn authenticate(
    console: &Console,
    headers: &http::HeaderMap,
) -> Result<Caller, ApiError> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (a session token from \
             logging in, the console's admin token, or a service account's token)",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| unauthorized("malformed Authorization header: expected `Bearer <token>`"))?;
    if token.starts_with(SESSION_PREFIX) {
        return authenticate_session(console, token).await;
    }
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(unauthorized(format!(
            "invalid token: console tokens start with {TOKEN_PREFIX} and sessions with \
             {SESSION_PREFIX} (an environment's rwt_ token is not valid here)"
        )));
    }
    let (record, principal) = console
        .store()
        .console_token_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| unauthorized("invalid token: no such token on this console"))?;
    if record.revoked_at_ms.is_some() {
        return Err(unauthorized(format!(
            "token '{}' of {} '{}' has been revoked; create a new one",
            record.name,
            principal.kind.as_str().replace('_', " "),
            principal.name
        )));
    }
    if principal.disabled_at_ms.is_some() {
        return Err(unauthorized(format!(
            "{} '{}' is disabled",
            principal.kind.as_str().replace('_', " "),
            principal.name
        )));
    }
    if record
        .last_used_at_ms
        .is_none_or(|t| now_ms() - t > TOUCH_EVERY_MS)
    {
        console.store().touch_console_token(record.id).await?;
    }
    Ok(Caller {
        principal,
        token: Some(record),
        session: None,
        user: None,
    })
}

fn log_in_again(why: String) -> ApiError {
    unauthorized(format!(
        "{why}; log in again (`runway login URL --user NAME`)"
    ))
}

async fn authenticate_session(console: &Console, token: &str) -> Result<Caller, ApiError> {
    let (session, principal) = console
        .store()
        .session_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| log_in_again("invalid session: no such session on this console".into()))?;
    if let Some(reason) = &session.ended_reason {
        return Err(log_in_again(format!(
            "session of user '{}' has ended ({reason})",
            principal.name
        )));
    }
    if session.ended_at_ms.is_some() {
        return Err(log_in_again(format!(
            "session of user '{}' has ended",
            principal.name
        )));
    }
    let identity = console.identity();
    let now = now_ms();
    let idle_ms = identity.session_idle.as_millis() as i64;
    let expired = if now >= session.expires_at_ms {
        Some(format!(
            "expired {} s after login (sessions last at most {} s)",
            (now - session.created_at_ms) / 1000,
            identity.session_absolute.as_secs()
        ))
    } else if now - session.last_seen_at_ms >= idle_ms {
        Some(format!(
            "expired after {} s without a request (the idle limit is {} s)",
            (now - session.last_seen_at_ms) / 1000,
            identity.session_idle.as_secs()
        ))
    } else {
        None
    };
    if let Some(why) = expired {
        console.store().end_session(session.id, "expired").await?;
        return Err(log_in_again(format!(
            "session of user '{}' {why}",
            principal.name
        )));
    }
    if principal.disabled_at_ms.is_some() {
        return Err(unauthorized(format!(
            "user '{}' is disabled",
            principal.name
        )));
    }
    let user = console.store().user_by_id(&principal.id).await?;
    if now - session.last_seen_at_ms >= (idle_ms / 4).min(TOUCH_EVERY_MS) {
        console.store().touch_session(session.id, now).await?;
    }
    Ok(Caller {
        principal,
        token: None,
        session: Some(session),
        user,
    })
}

/// Every route that touches environments, apps or plans takes a `Caller`.
impl FromRequestParts<Console> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        let caller = authenticate(console, &parts.headers).await?;
        refuse_unenforced_role(&caller)?;
        Ok(caller)
    }
}

impl FromRequestParts<Console> for Myself {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        authenticate(console, &parts.headers).await.map(Myself)
    }
}

impl FromRequestParts<Console> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        let caller = authenticate(console, &parts.headers).await?;
        if !caller.is_admin() {
            return Err(crate::users::forbidden_admin(&caller, "do this"));
        }
        Ok(AdminCaller(caller))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, hash) = super::new_token();
        assert!(a.starts_with("rwc_") && a.len() == 4 + 64);
        assert_eq!(super::hash_token(&a), hash);
        assert_ne!(super::new_token().0, a);
    }
}
