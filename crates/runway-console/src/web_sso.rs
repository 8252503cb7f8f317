//! Single sign-on from the console to an environment's dashboard:
//! `GET /environments/{env}/dashboard`.
//!
//! The console's session cookie (`runway_console`, an `rws_` session token)
//! is authenticated by the console's own session code; without a live
//! session the browser goes to `/login?next=…`. The console then mints a
//! token for that environment alone (audience = its key) with the user's
//! levels there, living [`SSO_TOKEN_TTL`], and answers a page whose form
//! POSTs it to the environment's `/_runway/sso` (a button: "Continue to
//! <env>'s dashboard"; the token is never in a URL). The environment checks
//! it like any console token, uses it once, and starts its own session.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use runway_web::layout::{FlashKind, Shell, flash, page};
use runway_web::{Markup, html};

use crate::Console;

/// The console's session cookie.
pub const CONSOLE_COOKIE: &str = "runway_console";
/// How long a sign-on token lives: long enough to press the button.
pub const SSO_TOKEN_TTL: Duration = Duration::from_secs(60);

/// The sign-on route (merged into the console's router, with its pages'
/// security headers).
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/environments/{env}/dashboard", get(dashboard))
        .layer(axum::middleware::from_fn(runway_web::security::headers))
        .with_state(console)
}

fn shell() -> Shell {
    Shell {
        product: "Runway LifeTime".into(),
        home: "/".into(),
        asset_prefix: "/assets".into(),
        nav: Vec::new(),
        signed_in: None,
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body: Markup = html! {
        (flash(FlashKind::Error, text))
        p { a href="/" { "Back to the console" } }
    };
    (status, page(&shell(), title, None, body)).into_response()
}

async fn dashboard(
    State(console): State<Console>,
    Path(env): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!(
        "/environments/{}/dashboard",
        percent_encoding::utf8_percent_encode(&env, percent_encoding::NON_ALPHANUMERIC)
    );
    let login = || {
        let next = serde_urlencoded::to_string([("next", here.as_str())]).unwrap_or_default();
        Redirect::to(&format!("/login?{next}")).into_response()
    };
    let Some(session) = runway_web::cookie::get(&headers, CONSOLE_COOKIE)
        .filter(|v| v.starts_with("rws_"))
        .and_then(|v| HeaderValue::from_str(&format!("Bearer {v}")).ok())
    else {
        return login();
    };
    let mut bearer = HeaderMap::new();
    bearer.insert(header::AUTHORIZATION, session);
    let caller = match crate::auth::authenticate(&console, &bearer).await {
        Ok(caller) if caller.session.is_some() => caller,
        Ok(_) => return login(),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return login(),
        Err(e) => return message(e.status, "Cannot sign on", &e.message),
    };
    let issued = match crate::trust::mint(&console, &caller, &env, SSO_TOKEN_TTL).await {
        Ok(issued) => issued,
        Err(e) => return message(e.status, "Cannot sign on", &e.message),
    };
    let address = issued.address.trim_end_matches('/').to_string();
    let action = format!("{address}/_runway/sso");
    let origin = match url::Url::parse(&address) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot sign on",
                &format!("environment {env} has no usable address ({address:?})"),
            );
        }
    };
    let body = html! {
        p { "You are signed in to the console as " strong { (caller.principal.name) } ". "
            "Continuing opens " strong { (issued.environment) } "'s dashboard at " code { (address) }
            " with your level there: " strong { (issued.level.to_string()) } "." }
        form method="post" action=(action) {
            input type="hidden" name="token" value=(issued.token);
            button type="submit" autofocus { "Continue to " (issued.environment) "'s dashboard" }
        }
        p.muted { "The sign-on is good for one use within a minute." }
    };
    let mut response = page(&shell(), "Open the dashboard", None, body).into_response();
    // The form posts to the environment's own origin: the page's policy
    // allows exactly that one besides this console.
    let csp = runway_web::security::CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}
