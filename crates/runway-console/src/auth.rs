//! Bearer authentication of the console's API.
//!
//! A console token is `rwc_` + 64 hex digits (256 random bits); the catalog
//! keeps only its SHA-256. Every route takes a [`Caller`] (any active
//! principal) or an [`AdminCaller`] (the console's admin). Issue 9 replaces
//! the admin/service-account split by roles granted to principals; handlers
//! keep asking for a caller type.

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;
use runway_store::console::principals::{ConsoleTokenRecord, PrincipalKind, PrincipalRecord};
use runway_store::now_ms;
use sha2::{Digest as _, Sha256};

use crate::Console;
use crate::error::ApiError;

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
    pub token: ConsoleTokenRecord,
}

/// A [`Caller`] that is the console's admin.
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
            "missing bearer token: send `Authorization: Bearer <token>` (the console's admin \
             token, or a service account's token)",
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
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(unauthorized(format!(
            "invalid token: console tokens start with {TOKEN_PREFIX} (an environment's rwt_ \
             token is not valid here)"
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
        token: record,
    })
}

impl FromRequestParts<Console> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        authenticate(console, &parts.headers).await
    }
}

impl FromRequestParts<Console> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        let caller = authenticate(console, &parts.headers).await?;
        if caller.principal.kind != PrincipalKind::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "service account '{}' cannot do this: only the console's admin manages \
                     service accounts",
                    caller.principal.name
                ),
            ));
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
