//! The console in a browser (the LifeTime pages): server-rendered HTML on
//! the same service functions as the JSON API, so every permission is
//! checked in one place ([`crate::auth::require`]).
//!
//! * **Sign-in** ([`login`]): a form calling [`crate::users::log_in`] (the
//!   throttle, the lockout and the audit apply); the session token goes in
//!   the `runway_console` cookie (`HttpOnly; SameSite=Strict`, `Secure` when
//!   the browser reached the console over HTTPS). [`Viewer`] reads it back
//!   through the one session path of bearer tokens
//!   ([`crate::auth::authenticate_session`]); without a valid session a page
//!   redirects to `/login?next=…`.
//! * **Every POST** goes through [`Posted`]: the browser must not say it
//!   came from another site ([`runway_web::csrf::check_origin`]) and the
//!   form must carry the session's CSRF token (HMAC under a key derived from
//!   the console key). A refusal is a 403 page saying why, and an audit row.
//! * Pages: [`infra`] (pipelines as flows of environments), [`apps`] (the
//!   applications × environments matrix, an app's versions, dependencies
//!   and properties), [`deploy`] (the plan wizard, the live progress page,
//!   the plan history), [`security`] (users, roles, teams, service
//!   accounts, the audit log, one's own password).
//!
//! Assets are served at `/assets` ([`runway_web::assets::router`]); the
//! pages carry the security headers of [`runway_web::security`]. The JSON
//! API and its JSON 404 are untouched: these routes are merged beside them.

pub mod apps;
pub mod deploy;
pub mod infra;
pub mod login;
pub mod security;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use runway_web::csrf::{self, CsrfError};
use runway_web::layout::{self, FlashKind, NavItem, Shell, SignedIn};
use runway_web::{Markup, html};

use crate::Console;
use crate::audit::AuditReason;
use crate::auth::{Caller, hash_token};
use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "runway_console";
/// Where the assets are mounted.
pub const ASSETS: &str = "/assets";
/// The largest form a page accepts.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Every page, the sign-in and the assets (merged beside the API by
/// [`crate::router`]).
pub fn routes(console: Console) -> Router<Console> {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::sign_out))
        .route("/", get(infra::page))
        .route("/infrastructure", get(infra::page))
        .route("/applications", get(apps::matrix))
        .route("/applications/{app}", get(apps::app_page))
        .route("/deploy", get(deploy::wizard).post(deploy::submit))
        .route("/plans", get(deploy::history))
        .route("/plans/{plan}", get(deploy::plan_page))
        .route("/plans/{plan}/live", get(deploy::live))
        .route("/plans/{plan}/validate", post(deploy::validate))
        .route("/plans/{plan}/start", post(deploy::start))
        .route("/plans/{plan}/continue", post(deploy::continue_plan))
        .route("/plans/{plan}/abort", post(deploy::abort))
        .route("/plans/{plan}/delete", post(deploy::delete))
        .route(
            "/security/users",
            get(security::users).post(security::create_user),
        )
        .route("/security/users/{user}", post(security::user_change))
        .route(
            "/security/roles",
            get(security::roles).post(security::create_role),
        )
        .route("/security/roles/delete", post(security::delete_role))
        .route("/security/teams", get(security::teams))
        .route(
            "/security/service-accounts",
            get(security::accounts).post(security::create_account),
        )
        .route("/security/audit", get(security::audit))
        .route(
            "/account",
            get(security::account).post(security::change_own_password),
        )
        .layer(axum::middleware::from_fn_with_state(
            console,
            crate::audit::layer,
        ))
        .layer(axum::middleware::from_fn(runway_web::security::headers))
        .layer(axum::middleware::from_fn(server_timing))
        .merge(runway_web::assets::router(ASSETS))
}

/// Says how long the server took for a page (`Server-Timing: page;dur=…`,
/// milliseconds): browsers' developer tools show it, the speed test reads it.
async fn server_timing(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("page;dur={ms:.1}")) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

// --- the signed-in user ----------------------------------------------------------

/// The user a page is rendered for: a valid login session from the cookie.
pub struct Viewer {
    pub caller: Caller,
    /// The session token's hash: what its CSRF token is bound to.
    session: String,
    csrf: String,
}

impl Viewer {
    /// The hidden input every form of this session carries.
    pub fn csrf_input(&self) -> Markup {
        html! { input type="hidden" name=(csrf::FIELD) value=(self.csrf); }
    }

    /// The page shell with the navigation for what this user may use.
    pub fn shell(&self, active: &str) -> Shell {
        let mut nav = vec![
            ("Infrastructure", "/"),
            ("Applications", "/applications"),
            ("Deploy", "/deploy"),
            ("Plans", "/plans"),
        ];
        if self.caller.is_admin() {
            nav.push(("Users & security", "/security/users"));
        }
        nav.push(("Account", "/account"));
        let display = self
            .caller
            .user
            .as_ref()
            .map(|u| u.display_name.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| self.caller.principal.name.clone());
        Shell {
            product: "Runway LifeTime".into(),
            home: "/".into(),
            asset_prefix: ASSETS.into(),
            nav: nav
                .into_iter()
                .map(|(label, href)| NavItem {
                    label,
                    href: href.into(),
                    active: href == active,
                })
                .collect(),
            signed_in: Some(SignedIn {
                display,
                role: self.caller.grants.role.name.clone(),
                sign_out_action: "/logout".into(),
                csrf_token: self.csrf.clone(),
            }),
        }
    }

    /// A whole page for this user.
    pub fn page(&self, active: &str, title: &str, body: Markup) -> Response {
        html_response(layout::page(&self.shell(active), title, None, body))
    }
}

/// Where a page sends someone without a valid session.
fn to_login(parts: &Parts, why: Option<&str>) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut target = format!(
        "/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    if why.is_some() {
        target.push_str("&expired=1");
    }
    let mut response = if parts.headers.contains_key("hx-request") {
        // An htmx poll: have the page itself go to the sign-in.
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        Redirect::to(&target).into_response()
    };
    if why.is_some() {
        let secure = is_https(&parts.headers);
        if let Ok(v) = HeaderValue::from_str(&runway_web::cookie::clear(COOKIE, secure)) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let Some(token) = runway_web::cookie::get(&parts.headers, COOKIE) else {
            return Err(to_login(parts, None));
        };
        if !token.starts_with(crate::users::SESSION_PREFIX) {
            return Err(to_login(parts, Some("not a session")));
        }
        match crate::auth::authenticate_session(console, token).await {
            Ok(caller) => {
                let session = hash_token(token);
                let csrf = console.csrf_key().token(&session);
                Ok(Viewer {
                    caller: crate::auth::attach(caller, parts),
                    session,
                    csrf,
                })
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                Err(to_login(parts, Some(e.message.as_str())))
            }
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// Whether the browser reached the console over HTTPS (directly, or
/// through a proxy that says so). Only decides the cookie's `Secure`: a
/// wrong claim harms nobody but the claimant's own browser.
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    forwarded("x-forwarded-proto").is_some_and(|p| p.split(',').next() == Some("https"))
        || forwarded("forwarded").is_some_and(|f| f.contains("proto=https"))
}

// --- forms -------------------------------------------------------------------------

/// A form's fields, in order (a name may repeat: checkboxes).
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// A POSTed form of a signed-in user that passed the cross-site check and
/// carries this session's CSRF token. Every state-changing page takes one.
pub struct Posted {
    pub viewer: Viewer,
    pub form: Form,
}

impl FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let origin = runway_web::csrf::check_origin(&parts.headers);
        let viewer = Viewer::from_request_parts(&mut parts, console).await?;
        if let Err(e) = origin {
            return Err(csrf_refused(&e, Some(&viewer)));
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the form is larger than {MAX_FORM_BYTES} bytes: send less"),
                )
                .into_response()
            })?;
        let form = Form::parse(&bytes);
        if let Err(e) = console
            .csrf_key()
            .verify(&viewer.session, form.get(csrf::FIELD))
        {
            return Err(csrf_refused(&e, Some(&viewer)));
        }
        Ok(Posted { viewer, form })
    }
}

/// The 403 page of a refused form (its audit row says why).
pub fn csrf_refused(e: &CsrfError, viewer: Option<&Viewer>) -> Response {
    let message = format!("This form was refused: {e}. Nothing was changed.");
    let body = html! {
        (layout::flash(FlashKind::Error, &message))
        p { a href="/" { "Back to the console" } }
    };
    let page = match viewer {
        Some(v) => layout::page(&v.shell(""), "Form refused", None, body),
        None => layout::page(&anonymous_shell(), "Form refused", None, body),
    };
    let mut response = (StatusCode::FORBIDDEN, html_response(page)).into_response();
    response
        .extensions_mut()
        .insert(AuditReason(format!("page form refused: {e}")));
    response
}

/// The shell of pages without a signed-in user.
pub fn anonymous_shell() -> Shell {
    Shell {
        product: "Runway LifeTime".into(),
        home: "/".into(),
        asset_prefix: ASSETS.into(),
        nav: Vec::new(),
        signed_in: None,
    }
}

/// An HTML answer.
pub fn html_response(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A redirect after a form (303: the browser GETs the target).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The audit row of a page request, for handlers that name the action.
pub type Slot = Option<Extension<crate::audit::AuditSlot>>;

// --- errors ------------------------------------------------------------------------

/// A page's refusal or failure: an HTML page with the status and the
/// message of the service function (which names what is wrong and how to
/// fix it).
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        if e.status.is_server_error() {
            let id = crate::error::current_request_id();
            tracing::error!(code = e.code, request_id = %id, "page failed: {e}");
            return PageError::new(
                e.status,
                "internal error: the console's log has the cause; try again, or ask its operator",
            );
        }
        PageError::new(e.status, e.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        };
        let body = html! {
            (layout::flash(FlashKind::Error, &self.message))
            p { a href="/" { "Back to the console" } }
        };
        let mut response = (
            self.status,
            html_response(layout::page(&anonymous_shell(), title, None, body)),
        )
            .into_response();
        response.extensions_mut().insert(AuditReason(self.message));
        response
    }
}

pub type PageResult = Result<Response, PageError>;

/// A human name for a plan status.
pub fn plan_status_text(s: runway_api::console::plans::PlanStatus) -> &'static str {
    use runway_api::console::plans::PlanStatus as S;
    match s {
        S::Saved => "saved",
        S::Running => "running",
        S::NeedsUserIntervention => "prepared: waiting for continue or abort",
        S::FinishedSuccessful => "finished successfully",
        S::FinishedWithWarnings => "finished with warnings",
        S::FinishedWithErrors => "finished with errors",
        S::Aborting => "aborting",
        S::Aborted => "aborted",
    }
}

/// The CSS class of a plan status.
pub fn plan_status_class(s: runway_api::console::plans::PlanStatus) -> &'static str {
    use runway_api::console::plans::PlanStatus as S;
    match s {
        S::FinishedSuccessful => "badge ok",
        S::FinishedWithWarnings | S::NeedsUserIntervention | S::Aborting => "badge warn",
        S::FinishedWithErrors | S::Aborted => "badge bad",
        S::Saved | S::Running => "badge",
    }
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"app=a&app=b&notes=x+y%3C&_csrf=t");
        assert_eq!(f.all("app"), ["a", "b"]);
        assert_eq!(f.get("notes"), Some("x y<"));
        assert_eq!(f.get("missing"), None);
    }

    #[test]
    fn https_only_when_said() {
        let mut h = HeaderMap::new();
        assert!(!is_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&h));
    }
}
