//! The audit log: who did what, when, from where, and the outcome.
//!
//! * One row per change (every request but GET/HEAD) and per refused
//!   attempt (any request answered 401 or 403), written by [`layer`] after
//!   the answer, or by the enforcement point ([`crate::auth::require`]) at
//!   the refusal, whichever comes first (never both).
//! * Who: the principal ([`crate::auth::Caller`] fills the request's
//!   [`AuditSlot`]), which session or token (`session #id`, `token #id
//!   (name)`; never a secret), the client address (`runway_net::PeerAddr`).
//!   A request without a valid credential is `anonymous`.
//! * What: the action (`METHOD /path` under the API prefix, or the
//!   enforcement point's name for it), the environment and app it needed
//!   levels on, before/after of a configuration change a handler noted
//!   (secret values are never noted).
//! * Outcome: `done` (2xx) or `refused` (anything else), with the answer's
//!   status and, for a refusal, its message.
//! * Retention: rows older than [`crate::ConsoleConfig::audit_retention`]
//!   are pruned hourly ([`prune_periodically`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use runway_api::console::identity::{AuditEntry, AuditQuery};
use runway_store::console::audit::{AuditFilter, AuditRecord};
use runway_store::now_ms;

use crate::Console;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};

/// Default retention of audit rows (days).
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// Most rows one read returns.
pub const MAX_LIMIT: i64 = 10_000;
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(crate) fn routes() -> Router<Console> {
    Router::new().route("/_runway/console/v1/audit", get(read_audit))
}

/// What the request's audit row will say, filled while it is handled.
#[derive(Debug, Default)]
pub struct AuditState {
    pub principal_id: Option<String>,
    pub principal_kind: Option<String>,
    pub principal_name: Option<String>,
    pub credential: String,
    pub action: Option<String>,
    pub environment: Option<String>,
    pub app: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// The row is written already (a refusal at the enforcement point).
    pub recorded: bool,
}

/// A request's audit state, shared by the layer, the caller extractor and
/// the enforcement point.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(pub Arc<Mutex<AuditState>>);

impl AuditSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records who is acting.
    pub fn identify(&self, caller: &Caller) {
        let mut state = self.lock();
        state.principal_id = Some(caller.principal.id.clone());
        state.principal_kind = Some(caller.principal.kind.as_str().to_string());
        state.principal_name = Some(caller.principal.name.clone());
        state.credential = credential(caller);
    }

    /// A login: the row names the username tried (the password never).
    pub fn login_attempt(&self, user: &str) {
        let mut state = self.lock();
        state.principal_kind = Some("anonymous".into());
        state.principal_name = Some(user.chars().take(256).collect());
        state.action = Some("log in".into());
    }

    /// Notes the environment and app an allowed action needed (the first wins).
    pub fn target(&self, env: &str, app: Option<&str>) {
        let mut state = self.lock();
        if state.environment.is_none() {
            state.environment = Some(env.to_string());
            state.app = app.map(str::to_string);
        }
    }

    /// Notes a configuration change (never with secret values).
    pub fn change(&self, before: serde_json::Value, after: serde_json::Value) {
        let mut state = self.lock();
        state.before = Some(before);
        state.after = Some(after);
    }
}

fn credential(caller: &Caller) -> String {
    match (&caller.session, &caller.token) {
        (Some(s), _) => format!("session #{}", s.id),
        (None, Some(t)) => format!("token #{} ({})", t.id, t.name),
        (None, None) => String::new(),
    }
}

fn address_of(extensions: &http::Extensions) -> String {
    extensions
        .get::<runway_server::PeerAddr>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string())
}

/// The action a request is, as the log names it: `METHOD /path` under the
/// API prefix.
fn action_of(method: &http::Method, path: &str) -> String {
    let path = path
        .strip_prefix(runway_api::console::CONSOLE_API_V1)
        .unwrap_or(path);
    format!("{method} {path}")
}

/// Writes a refusal at the enforcement point (so the row names the
/// environment and app) and marks the request recorded.
pub(crate) async fn refused(
    console: &Console,
    caller: &Caller,
    action: &str,
    env: Option<&str>,
    app: Option<&str>,
    status: u16,
    reason: &str,
) {
    let row = AuditRecord {
        id: 0,
        at_ms: now_ms(),
        principal_id: Some(caller.principal.id.clone()),
        principal_kind: caller.principal.kind.as_str().to_string(),
        principal_name: caller.principal.name.clone(),
        credential: credential(caller),
        address: caller.address.clone(),
        action: action.to_string(),
        environment: env.map(str::to_string),
        app: app.map(str::to_string),
        target: String::new(),
        outcome: "refused".into(),
        status: i64::from(status),
        reason: reason.to_string(),
        before_json: None,
        after_json: None,
    };
    if let Some(slot) = &caller.audit {
        slot.lock().recorded = true;
    }
    write(console, &row).await;
}

async fn write(console: &Console, row: &AuditRecord) {
    // An audit row that cannot be written is logged loudly; the answer the
    // client gets does not change (it was decided before).
    if let Err(e) = console.store().append_audit(row).await {
        tracing::error!(action = %row.action, principal = %row.principal_name, "cannot write an audit row: {e}");
    }
}

/// The console API's audit layer (inside the JSON error layer).
pub async fn layer(State(console): State<Console>, mut request: Request, next: Next) -> Response {
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let address = address_of(request.extensions());
    let response = next.run(request).await;
    let status = response.status();
    let change = !matches!(method, http::Method::GET | http::Method::HEAD);
    let refused = matches!(status.as_u16(), 401 | 403);
    if !(change || refused) || slot.lock().recorded {
        return response;
    }
    let done = status.is_success() || status.is_redirection();
    let (response, reason) = if done {
        (response, String::new())
    } else if let Some(AuditReason(reason)) = response.extensions().get::<AuditReason>() {
        let reason = reason.clone();
        (response, reason)
    } else {
        error_message(response).await
    };
    let state = std::mem::take(&mut *slot.lock());
    let row = AuditRecord {
        id: 0,
        at_ms: now_ms(),
        principal_id: state.principal_id,
        principal_kind: state.principal_kind.unwrap_or_else(|| "anonymous".into()),
        principal_name: state.principal_name.unwrap_or_else(|| "-".into()),
        credential: state.credential,
        address,
        action: state.action.unwrap_or_else(|| action_of(&method, &path)),
        environment: state.environment,
        app: state.app,
        target: String::new(),
        outcome: if done {
            "done".into()
        } else {
            "refused".into()
        },
        status: i64::from(status.as_u16()),
        reason,
        before_json: state.before.map(|v| v.to_string()),
        after_json: state.after.map(|v| v.to_string()),
    };
    write(&console, &row).await;
    response
}

/// Why a page refused a request (an HTML answer carries it as an extension,
/// so its audit row says why as a JSON error's `message` does). A page's
/// successful form answers with a redirect (303), which counts as done.
#[derive(Debug, Clone)]
pub struct AuditReason(pub String);

/// The `message` of a JSON error answer (the answer is rebuilt unchanged).
async fn error_message(response: Response) -> (Response, String) {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (
                Response::from_parts(parts, axum::body::Body::empty()),
                "(answer too large to read)".into(),
            );
        }
    };
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    (
        Response::from_parts(parts, axum::body::Body::from(bytes)),
        message,
    )
}

fn entry(r: AuditRecord) -> AuditEntry {
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    AuditEntry {
        id: r.id,
        at_ms: r.at_ms,
        principal_kind: r.principal_kind,
        principal: r.principal_name,
        credential: r.credential,
        address: r.address,
        action: r.action,
        environment: r.environment,
        app: r.app,
        outcome: r.outcome,
        status: r.status as u16,
        reason: r.reason,
        before: parse(r.before_json),
        after: parse(r.after_json),
    }
}

#[utoipa::path(get, path = "/_runway/console/v1/audit", params(AuditQuery), responses((status = 200, body = Vec<AuditEntry>, description = "newest first"), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody)))]
async fn read_audit(
    State(console): State<Console>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(entries(&console, &caller, q).await?))
}

/// The audit rows a query selects, newest first (API and the audit page).
pub(crate) async fn entries(
    console: &Console,
    caller: &Caller,
    q: AuditQuery,
) -> ApiResult<Vec<AuditEntry>> {
    crate::auth::require(console, caller, "read the audit log", Need::ManageUsers).await?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit {limit} is out of range: give 1–{MAX_LIMIT}"),
        ));
    }
    let rows = console
        .store()
        .audit(&AuditFilter {
            principal: q.user,
            environment: q.env,
            app: q.app,
            action: q.action,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            limit,
        })
        .await?;
    Ok(rows.into_iter().map(entry).collect())
}

/// Prunes rows older than `retention` now and then every hour, until the
/// task is aborted.
pub async fn prune_periodically(console: Console, retention: Duration) {
    loop {
        let before = now_ms() - retention.as_millis() as i64;
        match console.store().prune_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned the audit log past its retention"),
            Err(e) => tracing::warn!("cannot prune the audit log: {e}"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// The OpenAPI paths of this module.
#[derive(utoipa::OpenApi)]
#[openapi(paths(read_audit), components(schemas(runway_api::ErrorBody)))]
pub(crate) struct AuditDoc;
