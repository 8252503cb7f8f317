//! Server.Identity: bearer tokens with scopes on every API call.
//!
//! A token is `rwt_` + 64 hex digits (256 random bits). The catalog keeps only
//! its SHA-256: a slow password hash adds nothing for a secret of that
//! entropy, and a fast one keeps authentication cheap on every call.
//!
//! Besides its own tokens, the environment accepts tokens its console issued
//! (JWTs, verified in [`crate::trust`]): their level maps to a scope
//! (monitor → read, change & deploy → deploy, full control → admin), never
//! to the console's own scope. Every call that changes something, and every
//! refusal, leaves a row in the audit log ([`audit_layer`]).

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use runway_api::trust::TrustLevel;
use runway_api::v1::Scope;
use runway_store::{NewAuditRow, TokenRecord, now_ms};
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

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An environment token.
    Token(TokenRecord),
    /// A token the trusted console issued (see [`crate::trust`]).
    Console(crate::trust::ConsoleCaller),
}

/// Proof that the caller presented a valid credential allowing scope `S`:
/// an environment token of at least that scope, or a console-issued token
/// whose level maps to it. Taking it as a handler argument is what protects
/// an endpoint.
pub struct Caller<S> {
    pub principal: Principal,
    /// What the credential allows on this route (a console token's level,
    /// raised for the app the route names, mapped to a scope).
    pub scope: Scope,
    _scope: std::marker::PhantomData<S>,
}

impl<S> Caller<S> {
    /// How messages name the caller: `token 'ci'`, `console user 'ada'`.
    pub fn describe(&self) -> String {
        describe(&self.principal)
    }
}

fn describe(principal: &Principal) -> String {
    match principal {
        Principal::Token(t) => format!("token '{}'", t.name),
        Principal::Console(c) => format!("console {} '{}'", c.kind.replace('_', " "), c.sub),
    }
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

/// The active environment token a request presents, whatever its scope.
pub(crate) async fn authenticate(
    controller: &Controller,
    headers: &http::HeaderMap,
) -> ControllerResult<TokenRecord> {
    let token = bearer(headers)?;
    authenticate_local(controller, token).await
}

pub(crate) async fn authenticate_local(
    controller: &Controller,
    token: &str,
) -> ControllerResult<TokenRecord> {
    if !token.starts_with(PREFIX) {
        return Err(unauthorized(
            "invalid token: Runway tokens start with rwt_ (or are tokens issued by this \
             environment's console: `runway login CONSOLE --user NAME`, then `--env NAME`)",
        ));
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

/// The scope a console level gives (`None`: no access).
pub fn level_scope(level: TrustLevel) -> Option<Scope> {
    match level {
        TrustLevel::NoAccess => None,
        TrustLevel::Monitor => Some(Scope::Read),
        TrustLevel::ChangeAndDeploy => Some(Scope::Deploy),
        TrustLevel::FullControl => Some(Scope::Admin),
    }
}

/// The lowest level whose scope allows `scope`.
fn level_for(scope: Scope) -> TrustLevel {
    match scope {
        Scope::Join | Scope::Read => TrustLevel::Monitor,
        Scope::Deploy => TrustLevel::ChangeAndDeploy,
        Scope::Console | Scope::Admin => TrustLevel::FullControl,
    }
}

/// Authenticates a request and checks it may use a route that needs
/// `required`; `app` is the app the route names, if any (a console token's
/// per-app raise applies there). Records who it was in the request's
/// [`AuditSlot`], refused or not.
async fn authorize(
    parts: &mut Parts,
    controller: &Controller,
    required: Scope,
) -> ControllerResult<(Principal, Scope)> {
    let slot = parts.extensions.get::<AuditSlot>().cloned();
    let result = authorize_inner(parts, controller, required, slot.as_ref()).await;
    if let (Err(e), Some(slot)) = (&result, &slot) {
        slot.refused(e.to_string());
    }
    result
}

async fn authorize_inner(
    parts: &mut Parts,
    controller: &Controller,
    required: Scope,
    slot: Option<&AuditSlot>,
) -> ControllerResult<(Principal, Scope)> {
    let token = bearer(&parts.headers)?;
    if !crate::trust::looks_like_jwt(token) {
        let record = authenticate_local(controller, token).await?;
        if let Some(slot) = slot {
            slot.set(
                format!("token:{}", record.name),
                Some(record.id.to_string()),
            );
        }
        let principal = Principal::Token(record);
        let scope = check_scope(&principal, required, None)?;
        if let Principal::Token(record) = &principal
            && record
                .last_used_at_ms
                .is_none_or(|t| now_ms() - t > TOUCH_EVERY_MS)
        {
            controller.store().touch_token(record.id).await?;
        }
        return Ok((principal, scope));
    }
    let caller = crate::trust::verify(controller, token).await?;
    if let Some(slot) = slot {
        slot.set(format!("console:{}", caller.sub), Some(caller.jti.clone()));
    }
    // The app the route names, for the token's per-app raises.
    let app = if caller.apps.is_empty() {
        None
    } else {
        axum::extract::RawPathParams::from_request_parts(parts, controller)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "app")
                    .map(|(_, value)| value.to_string())
            })
    };
    let principal = Principal::Console(caller);
    let scope = check_scope(&principal, required, app.as_deref())?;
    Ok((principal, scope))
}

/// The one permission decision: the scope `principal` has on a route that
/// needs `required` and names `app` (if any), or why it may not use it.
/// Bearer credentials (the API) and dashboard sessions both go through it.
pub(crate) fn check_scope(
    principal: &Principal,
    required: Scope,
    app: Option<&str>,
) -> ControllerResult<Scope> {
    let caller = match principal {
        Principal::Token(record) => {
            let scope = record.scope;
            if scope < required {
                return Err(ControllerError::forbidden(format!(
                    "token '{}' has scope {scope}, this call needs {required}; create one with \
                     `runway token create NAME --scope {required}`",
                    record.name
                )));
            }
            return Ok(scope);
        }
        Principal::Console(caller) => caller,
    };
    let level = caller.level_for_app(app);
    let who = describe(principal);
    let on = match app {
        Some(app) if level > caller.level => format!("on app {app} in this environment"),
        _ => "on this environment".to_string(),
    };
    if required == Scope::Console {
        return Err(ControllerError::forbidden(format!(
            "{who} has {level} {on}, but this call is the console's own (scope console): \
             console-issued tokens never allow it; use an environment token with scope console"
        )));
    }
    match level_scope(level) {
        Some(scope) if scope >= required => Ok(scope),
        _ => Err(ControllerError::forbidden(format!(
            "{who} has {level} {on}; this call needs {} (scope {required}): ask a console \
             administrator for that level",
            level_for(required)
        ))),
    }
}

impl<S: RequiredScope> Caller<S> {
    /// The caller of a dashboard page acting as `principal` on a route
    /// naming `app`: the same decision as for a bearer credential
    /// ([`check_scope`]), noted in the request's audit slot if any.
    pub(crate) fn for_principal(
        principal: Principal,
        app: Option<&str>,
        slot: Option<&AuditSlot>,
    ) -> ControllerResult<Caller<S>> {
        if let Some(slot) = slot {
            let (actor, credential) = match &principal {
                Principal::Token(t) => (format!("token:{}", t.name), t.id.to_string()),
                Principal::Console(c) => (format!("console:{}", c.sub), c.jti.clone()),
            };
            slot.set(actor, Some(credential));
        }
        match check_scope(&principal, S::SCOPE, app) {
            Ok(scope) => Ok(Caller {
                principal,
                scope,
                _scope: std::marker::PhantomData,
            }),
            Err(e) => {
                if let Some(slot) = slot {
                    slot.refused(e.to_string());
                }
                Err(e)
            }
        }
    }
}

impl<S: RequiredScope + Send + Sync> FromRequestParts<Controller> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        controller: &Controller,
    ) -> Result<Self, ApiError> {
        let (principal, scope) = authorize(parts, controller, S::SCOPE).await?;
        Ok(Caller {
            principal,
            scope,
            _scope: std::marker::PhantomData,
        })
    }
}

/// Who made a request and why it was refused, filled in by the [`Caller`]
/// extractor and read by [`audit_layer`] once the answer is known.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditWho>>);

#[derive(Default)]
struct AuditWho {
    actor: Option<String>,
    credential: Option<String>,
    refusal: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl AuditSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditWho> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set(&self, actor: String, credential: Option<String>) {
        let mut who = self.lock();
        who.actor = Some(actor);
        who.credential = credential;
    }

    pub(crate) fn refused(&self, why: String) {
        self.lock().refusal = Some(why);
    }

    /// Notes a configuration change's before and after on the call's row
    /// (never secret values).
    pub fn change(&self, before: serde_json::Value, after: serde_json::Value) {
        let mut who = self.lock();
        who.before = Some(before);
        who.after = Some(after);
    }
}

/// The audit view of the properties `keys` of an app's configuration:
/// `{name: value}`, where a secret property is `{"secret": true, "set": …}`
/// (set in this environment or not; its value is never written), and an
/// unknown name is `null`.
pub fn config_change_view(
    views: &[runway_api::v1::PropertyView],
    keys: &[&String],
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for key in keys {
        let value = match views.iter().find(|v| v.name == **key) {
            None => serde_json::Value::Null,
            Some(v) if v.secret => serde_json::json!({
                "secret": true,
                "set": v.source == runway_api::v1::PropertySource::Environment,
            }),
            Some(v) => serde_json::json!(v.value),
        };
        out.insert((*key).clone(), value);
    }
    serde_json::Value::Object(out)
}

/// Whether a call is recorded in the audit log: everything but reads, and
/// every refusal (reads included).
fn audited(method: &http::Method, status: StatusCode) -> bool {
    let read = matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    !read || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// The environment API's audit: after each call that changed something or
/// was refused, one row in the platform catalog's `audit` table (who, from
/// where, which route and path, the status). A row that cannot be written
/// is logged; the answer is not held back or changed.
pub async fn audit_layer(
    State(controller): State<Controller>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let target = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let address = request
        .extensions()
        .get::<runway_server::PeerAddr>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string());
    let response = next.run(request).await;
    let status = response.status();
    if !audited(&method, status) {
        return response;
    }
    let who = std::mem::take(&mut *slot.lock());
    let action = format!(
        "{method} {}",
        route
            .as_deref()
            .map(|r| r.strip_prefix(runway_api::API_V1).unwrap_or(r))
            .unwrap_or("(no route)")
    );
    let row = NewAuditRow {
        actor: who.actor.unwrap_or_else(|| "anonymous".to_string()),
        credential: who.credential,
        address,
        action,
        target,
        status: status.as_u16(),
        detail: who.refusal,
        before: who.before.map(|v| v.to_string()),
        after: who.after.map(|v| v.to_string()),
    };
    if let Err(e) = controller.store().append_audit(&row).await {
        tracing::warn!(action = %row.action, actor = %row.actor, "cannot write an audit row: {e}");
    }
    response
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
    fn config_changes_never_show_secret_values() {
        use runway_api::v1::{PropertySource, PropertyView};
        let view = |name: &str, secret: bool, value: Option<&str>, source| PropertyView {
            name: name.into(),
            kind: "string".into(),
            required: false,
            secret,
            description: None,
            value: value.map(str::to_string),
            source,
        };
        let views = [
            view("greeting", false, Some("hi"), PropertySource::Environment),
            view("api_key", true, None, PropertySource::Environment),
        ];
        let keys = [
            "greeting".to_string(),
            "api_key".to_string(),
            "gone".to_string(),
        ];
        let keys: Vec<&String> = keys.iter().collect();
        assert_eq!(
            config_change_view(&views, &keys),
            serde_json::json!({
                "greeting": "hi",
                "api_key": {"secret": true, "set": true},
                "gone": null,
            })
        );
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin > Scope::Console && Scope::Console > Scope::Deploy);
        assert!(Scope::Deploy > Scope::Read);
        assert!(Scope::Read > Scope::Join);
    }
}
