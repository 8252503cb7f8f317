//! The environment's dashboard (Service Center): server-rendered pages under
//! `/_runway/` with the look of `runway-web`.
//!
//! Sign-in: a form taking an environment token (`rwt_…`, e.g. the admin
//! token `runway up` prints), or the console's single sign-on (`POST
//! /_runway/sso` with a console-issued token for this environment, used
//! once). Either becomes a dashboard session: a random `rwd_` secret in the
//! `runway_dashboard` cookie (`HttpOnly; SameSite=Strict`, `Secure` over
//! HTTPS), kept server-side in the session catalog as its SHA-256, so
//! signing out ends it. A token session is checked against the token at
//! every page (a revoked token ends it).
//!
//! Every page takes the same `Caller<Scope>` as the JSON API, built from the
//! session by [`crate::identity::Caller::for_principal`] (the one
//! permission decision), and calls the same service functions; actions a
//! caller's scope does not allow are not shown, and refused anyway. Every
//! POST is checked by `runway_web::csrf::check_origin` and the session's
//! CSRF token; the SSO landing, which has no session yet, is protected by its
//! signed, short-lived, single-use token instead.

mod pages;
mod sched;

use std::collections::BTreeMap;
use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use runway_api::trust::TrustLevel;
use runway_api::v1::Scope;
use runway_web::csrf::{CsrfKey, FIELD, check_origin};
use runway_web::layout::{FlashKind, NavItem, Shell, SignedIn, flash, page};
use runway_web::{Markup, html};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Controller;
use crate::controller_error::ControllerError;
use crate::error::ApiError;
use crate::identity::{AuditSlot, Caller, Principal, RequiredScope};
use crate::trust::ConsoleCaller;

/// The dashboard session cookie.
pub const COOKIE: &str = "runway_dashboard";
/// Where the dashboard lives.
pub const HOME: &str = "/_runway/";
const ASSETS: &str = "/_runway/assets";
const SESSION_PREFIX: &str = "rwd_";
/// What marks a dashboard session's subject in the session catalog.
const SUBJECT_PREFIX: &str = "dashboard:";
/// What marks a used single sign-on token in the session catalog.
const SSO_USED_PREFIX: &str = "dashboard-sso-used:";
/// A session signed in with a token lasts this long.
const TOKEN_SESSION_MS: i64 = 8 * 3600 * 1000;
/// A session from the console's single sign-on lasts this long (the
/// console's rights are copied into it; sign in again to refresh them).
const SSO_SESSION_MS: i64 = 3600 * 1000;

/// The dashboard's state: the controller and the CSRF key.
#[derive(Clone)]
pub(crate) struct Web {
    pub(crate) c: Controller,
    csrf: CsrfKey,
}

/// The dashboard's routes under `/_runway/` (the API's and the fleet's are
/// elsewhere; `/_runway/health`, `/ready` and `/metrics` are not here).
pub fn router(c: Controller) -> Router {
    let web = Web {
        c: c.clone(),
        csrf: CsrfKey::random(),
    };
    let actions = Router::new()
        .route(
            "/_runway/frontends/{name}/enable",
            post(pages::enable_frontend),
        )
        .route(
            "/_runway/frontends/{name}/disable",
            post(pages::disable_frontend),
        )
        .route("/_runway/timers/{app}/{timer}/run", post(sched::run_timer))
        .route("/_runway/login", post(login))
        .route("/_runway/logout", post(logout))
        .route("/_runway/sso", post(sso))
        .layer(axum::middleware::from_fn_with_state(
            c.clone(),
            crate::identity::audit_layer,
        ))
        .with_state(web.clone());
    Router::new()
        .route("/_runway", get(|| async { Redirect::permanent(HOME) }))
        .route(HOME, get(pages::home))
        .route("/_runway/login", get(login_page))
        .route("/_runway/apps", get(pages::apps))
        .route("/_runway/apps/{app}", get(pages::app))
        .route("/_runway/frontends", get(pages::frontends))
        .route("/_runway/requests", get(pages::requests))
        .route("/_runway/requests/{id}", get(pages::request))
        .route("/_runway/errors", get(pages::errors))
        .route("/_runway/output", get(pages::output))
        .route("/_runway/charts", get(pages::charts))
        .route("/_runway/timers", get(sched::timers))
        .route("/_runway/jobs", get(sched::jobs))
        .route("/_runway/emails", get(sched::emails))
        .with_state(web)
        .merge(actions)
        .merge(runway_web::assets::router(ASSETS))
        // A standby serves reads only (see `lease`).
        .route_layer(axum::middleware::from_fn_with_state(
            c,
            crate::lease::standby_guard,
        ))
        .layer(axum::middleware::from_fn(runway_web::security::headers))
        .layer(axum::middleware::from_fn(server_timing))
}

/// Says how long the server took for a page (`Server-Timing: page;dur=MS`),
/// for the browser's developer tools and the dashboard's speed test.
async fn server_timing(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("page;dur={ms:.1}")) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who a dashboard session acts as, stored (as JSON) in the session
/// catalog's `subject`. A token is named by its hash, never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Subject {
    Token {
        token_hash: String,
    },
    Console {
        sub: String,
        principal_kind: String,
        level: TrustLevel,
        apps: BTreeMap<String, TrustLevel>,
        jti: String,
        kid: String,
    },
}

/// A signed-in viewer of the dashboard.
#[derive(Clone)]
pub(crate) struct Viewer {
    principal: Principal,
    /// The session's id hash (what CSRF tokens are bound to).
    session: String,
    pub(crate) csrf_token: String,
    display: String,
    role: String,
}

impl Viewer {
    /// The caller for a service function needing scope `S`, on a route
    /// naming `app` (if any): refused as the API would refuse it.
    pub(crate) fn caller<S: RequiredScope>(
        &self,
        app: Option<&str>,
    ) -> Result<Caller<S>, PageError> {
        Caller::<S>::for_principal(self.principal.clone(), app, None).map_err(PageError::from)
    }

    /// The same, noting who acted (or was refused) on the request's audit row.
    fn acting<S: RequiredScope>(
        &self,
        app: Option<&str>,
        slot: Option<&AuditSlot>,
    ) -> Result<Caller<S>, PageError> {
        Caller::<S>::for_principal(self.principal.clone(), app, slot).map_err(PageError::from)
    }

    /// Whether the viewer may do what needs `scope` (to show or hide an
    /// action; the server checks again when it is posted).
    pub(crate) fn may(&self, scope: Scope, app: Option<&str>) -> bool {
        crate::identity::check_scope(&self.principal, scope, app).is_ok()
    }

    /// Checks a posted form: same site, and the session's CSRF token.
    pub(crate) fn check_form(
        &self,
        web: &Web,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<(), PageError> {
        check_origin(headers).map_err(|e| PageError::forbidden(e.to_string()))?;
        web.csrf
            .verify(&self.session, form.get(FIELD).map(String::as_str))
            .map_err(|e| PageError::forbidden(e.to_string()))
    }
}

/// Why a page could not be shown: rendered as a page with the status.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn forbidden(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        if e.status.is_server_error() {
            tracing::error!(code = e.code, "dashboard page failed: {}", e.message);
        }
        PageError {
            status: e.status,
            message: e.message,
        }
    }
}

impl From<ControllerError> for PageError {
    fn from(e: ControllerError) -> PageError {
        ApiError::from(e).into()
    }
}

impl From<runway_store::StoreError> for PageError {
    fn from(e: runway_store::StoreError) -> PageError {
        ApiError::from(ControllerError::from(e)).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let shell = Shell {
            product: "Service Center".into(),
            home: HOME.into(),
            asset_prefix: ASSETS.into(),
            nav: Vec::new(),
            signed_in: None,
        };
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_client_error() => "Cannot do that",
            _ => "Something went wrong",
        };
        let body = html! {
            (flash(FlashKind::Error, &self.message))
            p { a href=(HOME) { "Back to the dashboard" } }
        };
        (self.status, page(&shell, title, None, body)).into_response()
    }
}

/// A page's answer: the page, or a page saying why not.
pub(crate) type PageResult = Result<Response, PageError>;

/// Not signed in: to the sign-in form, coming back here afterwards.
pub(crate) struct SignIn(String);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        let next = percent_encode(&self.0);
        Redirect::to(&format!("/_runway/login?next={next}")).into_response()
    }
}

fn percent_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Only paths of the dashboard itself are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/_runway/")
                && !n.starts_with("/_runway/api")
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_string()
        }
        _ => HOME.to_string(),
    }
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Viewer, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| HOME.to_string());
        let Some(secret) = runway_web::cookie::get(&parts.headers, COOKIE) else {
            return Err(SignIn(here).into_response());
        };
        let session = hash(secret);
        match viewer(web, &session).await {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) => Err(SignIn(here).into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The viewer of session `session` (an id hash), if it is a live dashboard
/// session whose credential still holds.
async fn viewer(web: &Web, session: &str) -> Result<Option<Viewer>, PageError> {
    let store = web.c.store();
    let Some(record) = store.session(session).await? else {
        return Ok(None);
    };
    let Some(subject) = record
        .subject
        .strip_prefix(SUBJECT_PREFIX)
        .and_then(|s| serde_json::from_str::<Subject>(s).ok())
    else {
        return Ok(None);
    };
    let (principal, display, role) = match subject {
        Subject::Token { token_hash } => {
            let Some(token) = store.token_by_hash(&token_hash).await? else {
                store.delete_session(session).await?;
                return Ok(None);
            };
            if token.revoked_at_ms.is_some() || token.scope == Scope::Join {
                store.delete_session(session).await?;
                return Ok(None);
            }
            let display = format!("token {}", token.name);
            let role = format!("scope {}", token.scope);
            (Principal::Token(token), display, role)
        }
        Subject::Console {
            sub,
            principal_kind,
            level,
            apps,
            jti,
            kid,
        } => {
            let role = level.to_string();
            let display = sub.clone();
            (
                Principal::Console(ConsoleCaller {
                    sub,
                    kind: principal_kind,
                    level,
                    apps,
                    jti,
                    kid,
                }),
                display,
                role,
            )
        }
    };
    Ok(Some(Viewer {
        principal,
        csrf_token: web.csrf.token(session),
        session: session.to_string(),
        display,
        role,
    }))
}

/// Starts a session for `subject`; the `Set-Cookie` that carries it.
async fn start_session(web: &Web, subject: &Subject, ttl_ms: i64) -> Result<String, PageError> {
    let secret = format!(
        "{SESSION_PREFIX}{}",
        hex::encode(rand::random::<[u8; 32]>())
    );
    let json = serde_json::to_string(subject)
        .map_err(|e| PageError::from(ApiError::internal(format!("session subject: {e}"))))?;
    web.c
        .store()
        .create_session(
            &hash(&secret),
            &format!("{SUBJECT_PREFIX}{json}"),
            runway_store::now_ms() + ttl_ms,
        )
        .await?;
    Ok(runway_web::cookie::set(
        COOKIE,
        &secret,
        runway_web::cookie::CookieOptions {
            secure: secure(web),
            max_age_secs: Some((ttl_ms / 1000) as u64),
        },
    ))
}

fn secure(web: &Web) -> bool {
    web.c.config().base_url.starts_with("https://")
}

fn signed_in_redirect(cookie: String, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The frame of every signed-in page.
pub(crate) fn shell(web: &Web, viewer: Option<&Viewer>, active: &str) -> Shell {
    let items: [(&'static str, &str); 9] = [
        ("Overview", HOME),
        ("Apps", "/_runway/apps"),
        ("Front-ends", "/_runway/frontends"),
        ("Requests", "/_runway/requests"),
        ("Errors", "/_runway/errors"),
        ("Output", "/_runway/output"),
        ("Charts", "/_runway/charts"),
        ("Timers", "/_runway/timers"),
        ("Jobs & email", "/_runway/jobs"),
    ];
    Shell {
        product: format!("Service Center · {}", web.c.config().environment),
        home: HOME.into(),
        asset_prefix: ASSETS.into(),
        nav: if viewer.is_some() {
            items
                .iter()
                .map(|(label, href)| NavItem {
                    label,
                    href: (*href).to_string(),
                    active: *label == active,
                })
                .collect()
        } else {
            Vec::new()
        },
        signed_in: viewer.map(|v| SignedIn {
            display: v.display.clone(),
            role: v.role.clone(),
            sign_out_action: "/_runway/logout".into(),
            csrf_token: v.csrf_token.clone(),
        }),
    }
}

/// A whole signed-in page.
pub(crate) fn render(
    web: &Web,
    viewer: &Viewer,
    active: &str,
    title: &str,
    body: Markup,
) -> Response {
    page(&shell(web, Some(viewer), active), title, None, body).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn login_form(web: &Web, next: &str, error: Option<&str>) -> Markup {
    let shell = shell(web, None, "");
    page(
        &shell,
        "Sign in",
        None,
        html! {
            @if let Some(error) = error { (flash(FlashKind::Error, error)) }
            p { "Sign in to " strong { (web.c.config().environment) } "'s dashboard with an environment token \
                 (the admin token `runway up` printed, or one from `runway token create NAME --scope read`), \
                 or follow the link on the console's environment page." }
            form.stack method="post" action="/_runway/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Environment token" }
                input #token type="password" name="token" autocomplete="off" required
                    placeholder="rwt_…" aria-describedby="token-help";
                p #token-help .muted { "The token is used once to start a session; it is not kept in the browser." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn login_page(State(web): State<Web>, Query(q): Query<LoginQuery>) -> Response {
    login_form(&web, &safe_next(q.next.as_deref()), None).into_response()
}

/// Signs in with an environment token. The form cannot carry a session's
/// CSRF token (there is none yet); it is same-site only, and what it takes
/// is a secret only its holder knows.
async fn login(
    State(web): State<Web>,
    slot: Option<axum::Extension<AuditSlot>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = safe_next(form.get("next").map(String::as_str));
    if let Err(e) = check_origin(&headers) {
        return PageError::forbidden(e.to_string()).into_response();
    }
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let refuse = |message: String| {
        (
            StatusCode::UNAUTHORIZED,
            login_form(&web, &next, Some(&message)),
        )
            .into_response()
    };
    if token.is_empty() {
        return refuse("Enter an environment token (it starts with rwt_).".into());
    }
    let record = match crate::identity::authenticate_local(&web.c, token).await {
        Ok(record) => record,
        Err(e) => {
            let message = ApiError::from(e).message;
            if let Some(axum::Extension(slot)) = &slot {
                slot.refused(message.clone());
            }
            return refuse(message);
        }
    };
    if let Some(axum::Extension(slot)) = &slot {
        slot.set(
            format!("token:{}", record.name),
            Some(record.id.to_string()),
        );
    }
    if record.scope == Scope::Join {
        return refuse(format!(
            "token '{}' is a join token (for front-ends joining the farm); sign in with a \
             token of scope read or more",
            record.name
        ));
    }
    match start_session(
        &web,
        &Subject::Token {
            token_hash: record.hash.clone(),
        },
        TOKEN_SESSION_MS,
    )
    .await
    {
        Ok(cookie) => signed_in_redirect(cookie, &next),
        Err(e) => e.into_response(),
    }
}

/// Signs out: the session ends server-side and the cookie is cleared.
async fn logout(
    State(web): State<Web>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = viewer.check_form(&web, &headers, &form) {
        return e.into_response();
    }
    if let Err(e) = web.c.store().delete_session(&viewer.session).await {
        return PageError::from(e).into_response();
    }
    let mut response = Redirect::to("/_runway/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&runway_web::cookie::clear(COOKIE, secure(&web))) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The console's single sign-on lands here: a form POST (never a URL)
/// carrying a token the console signed for this environment. It is verified
/// like any console token (key, signature, issuer, audience = this
/// environment, lifetime), then used up: its id is recorded until it
/// expires, so the same token is refused a second time.
///
/// `check_origin` does not apply: the console's page is another origin by
/// design. What protects this POST is the token itself.
async fn sso(
    State(web): State<Web>,
    slot: Option<axum::Extension<AuditSlot>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let next = safe_next(form.get("next").map(String::as_str));
    let refuse = |status: StatusCode, message: String| {
        if let Some(axum::Extension(slot)) = &slot {
            slot.refused(message.clone());
        }
        (
            status,
            login_form(
                &web,
                &next,
                Some(&format!("Single sign-on refused: {message}")),
            ),
        )
            .into_response()
    };
    if !crate::trust::looks_like_jwt(token) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the form carries no console token; start again from the console's environment page"
                .into(),
        );
    }
    let caller = match crate::trust::verify(&web.c, token).await {
        Ok(caller) => caller,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, ApiError::from(e).message),
    };
    if let Some(axum::Extension(slot)) = &slot {
        slot.set(format!("console:{}", caller.sub), Some(caller.jti.clone()));
    }
    if crate::identity::level_scope(caller.level).is_none() && caller.apps.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "console {} '{}' has no access to this environment",
                caller.kind, caller.sub
            ),
        );
    }
    // Single use: the token's id, kept until the token could no longer be
    // accepted anyway.
    let used_until = runway_store::now_ms()
        + ((runway_api::trust::MAX_TOKEN_TTL_SECS + runway_api::trust::TOKEN_LEEWAY_SECS) * 1000)
            as i64;
    match web
        .c
        .store()
        .create_session(
            &hash(&format!("{SSO_USED_PREFIX}{}", caller.jti)),
            "dashboard-sso-used",
            used_until,
        )
        .await
    {
        Ok(()) => {}
        Err(runway_store::StoreError::Conflict(_)) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this sign-on token was already used (each is good for one sign-in); start \
                 again from the console"
                    .into(),
            );
        }
        Err(e) => return PageError::from(e).into_response(),
    }
    let subject = Subject::Console {
        sub: caller.sub,
        principal_kind: caller.kind,
        level: caller.level,
        apps: caller.apps,
        jti: caller.jti,
        kid: caller.kid,
    };
    match start_session(&web, &subject, SSO_SESSION_MS).await {
        Ok(cookie) => {
            // The console's page posted here cross-site: a SameSite=Strict
            // cookie set by this answer would not be sent with the redirect
            // that follows it, so the next page is reached by a same-site
            // navigation (a meta refresh of this page).
            let mut response = page(
                &shell(&web, None, ""),
                "Signed in",
                None,
                html! {
                    (flash(FlashKind::Success, "Signed in through the console."))
                    p { a #continue href=(next) { "Continue to the dashboard" } }
                    meta http-equiv="refresh" content={ "0; url=" (next) };
                },
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}
