//! Server.Identity: bearer tokens with scopes on every API call.
//!
//! A token is `rwt_` + 64 hex digits (256 random bits). The catalog keeps only
//! its SHA-256: a slow password hash adds nothing for a secret of that
//! entropy, and a fast one keeps authentication cheap on every call.

use axum::extract::FromRequestParts;
use http::request::Parts;
use runway_api::v1::Scope;
use runway_store::{TokenRecord, now_ms};
use sha2::{Digest as _, Sha256};

use crate::Controller;
use crate::controller_error::{ControllerError, ControllerResult};
use crate::error::ApiError;

const PREFIX: &str = "rwt_";
/// `last_used` is refreshed at most this often per token, so reads stay reads.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new random token (the secret shown once) and its hash (what is stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The scope a handler requires, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

pub struct Read;
pub struct Deploy;
pub struct Console;
pub struct Admin;

impl RequiredScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl RequiredScope for Deploy {
    const SCOPE: Scope = Scope::Deploy;
}
impl RequiredScope for Console {
    const SCOPE: Scope = Scope::Console;
}
impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// Proof that the caller presented a valid token of at least scope `S`.
/// Taking it as a handler argument is what protects an endpoint.
pub struct Caller<S> {
    pub token: TokenRecord,
    _scope: std::marker::PhantomData<S>,
}

fn unauthorized(message: &str) -> ControllerError {
    ControllerError::unauthenticated(message)
}

/// The bearer credential of a request.
pub(crate) fn bearer(headers: &http::HeaderMap) -> ControllerResult<&str> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        unauthorized(
            "missing bearer token: send `authorization: Bearer <token>` (see `runway token create`)",
        )
    })?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| unauthorized("malformed authorization header: expected `Bearer <token>`"))
}

/// The active token a request presents, whatever its scope.
pub(crate) async fn authenticate(
    controller: &Controller,
    headers: &http::HeaderMap,
) -> ControllerResult<TokenRecord> {
    let token = bearer(headers)?;
    if !token.starts_with(PREFIX) {
        return Err(unauthorized("invalid token: Runway tokens start with rwt_"));
    }
    let record = controller
        .store()
        .token_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| unauthorized("invalid token: no such token in this environment"))?;
    if record.revoked_at_ms.is_some() {
        return Err(unauthorized(&format!(
            "token '{}' has been revoked",
            record.name
        )));
    }
    Ok(record)
}

impl<S: RequiredScope + Send + Sync> FromRequestParts<Controller> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        controller: &Controller,
    ) -> Result<Self, ApiError> {
        let record = authenticate(controller, &parts.headers).await?;
        let scope = record.scope;
        if scope < S::SCOPE {
            return Err(ControllerError::forbidden(format!(
                    "token '{}' has scope {scope}, this call needs {}; create one with `runway token create NAME --scope {}`",
                    record.name,
                    S::SCOPE,
                    S::SCOPE
                ))
            .into());
        }
        if record
            .last_used_at_ms
            .is_none_or(|t| now_ms() - t > TOUCH_EVERY_MS)
        {
            controller.store().touch_token(record.id).await?;
        }
        Ok(Caller {
            token: record,
            _scope: std::marker::PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("rwt_") && a.len() == 4 + 64);
        assert_eq!(hash_token(&a), hash_a);
        assert_ne!(hash_token(&b), hash_a);
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin > Scope::Console && Scope::Console > Scope::Deploy);
        assert!(Scope::Deploy > Scope::Read);
        assert!(Scope::Read > Scope::Join);
    }
}
