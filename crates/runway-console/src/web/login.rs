//! Sign-in and sign-out.
//!
//! The sign-in form is protected against login CSRF too: before any session
//! exists, the page sets a random pre-login cookie (`runway_console_login`,
//! `HttpOnly; SameSite=Strict`) and the form carries the CSRF token bound to
//! it. The login itself is [`crate::users::log_in`], the API's: the throttle,
//! the lockout and the audit row apply. After it, the browser goes to `next`
//! only if that is a path of this console ([`safe_next`]).

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use runway_api::console::identity::Login;
use runway_store::now_ms;
use runway_web::cookie::{self, CookieOptions};
use runway_web::csrf;
use runway_web::layout::{self, FlashKind};
use runway_web::{Markup, html};
use serde::Deserialize;

use super::{COOKIE, Form, Posted, Slot, anonymous_shell, csrf_refused, html_response, is_https};
use crate::Console;
use crate::users::ClientAddress;

/// The pre-login cookie the sign-in form's CSRF token is bound to.
const LOGIN_COOKIE: &str = "runway_console_login";

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

/// `next` if it is a path of this console (`/…`, not `//host` or `/\host`,
/// no control characters), else `/`: no open redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn login_page(next: &str, csrf_token: &str, message: Option<(FlashKind, &str)>) -> Markup {
    let body = html! {
        @if let Some((kind, text)) = message {
            (layout::flash(kind, text))
        }
        form.panel method="post" action="/login" {
            input type="hidden" name=(csrf::FIELD) value=(csrf_token);
            input type="hidden" name="next" value=(next);
            p {
                label for="user" { "Username" }
                input #user type="text" name="user" autocomplete="username" required autofocus;
            }
            p {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    layout::page(&anonymous_shell(), "Sign in", None, body)
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// `GET /login`: the form (or straight to `next` with a valid session).
pub async fn form(
    State(console): State<Console>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = cookie::get(&headers, COOKIE)
        && token.starts_with(crate::users::SESSION_PREFIX)
        && crate::auth::authenticate_session(&console, token)
            .await
            .is_ok()
    {
        return super::see_other(&next);
    }
    let secure = is_https(&headers);
    let pre = cookie::get(&headers, LOGIN_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(random_hex, str::to_string);
    let token = console.csrf_key().token(&format!("login:{pre}"));
    let message = q
        .expired
        .is_some()
        .then_some((FlashKind::Info, "Your session ended: sign in again."));
    let mut response = html_response(login_page(&next, &token, message));
    let set = cookie::set(
        LOGIN_COOKIE,
        &pre,
        CookieOptions {
            secure,
            max_age_secs: Some(3600),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /login`: signs in through the API's login.
pub async fn submit(
    State(console): State<Console>,
    ClientAddress(address): ClientAddress,
    slot: Slot,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = runway_web::csrf::check_origin(&parts.headers) {
        return csrf_refused(&e, None);
    }
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return super::PageError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the sign-in form is too large",
        )
        .into_response();
    };
    let form = Form::parse(&bytes);
    let pre = cookie::get(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    let bound = format!("login:{pre}");
    if let Err(e) = console.csrf_key().verify(&bound, form.get(csrf::FIELD)) {
        return csrf_refused(&e, None);
    }
    let next = safe_next(form.get("next"));
    let token = console.csrf_key().token(&bound);
    let login = Login {
        user: form.text("user"),
        password: form.get("password").unwrap_or_default().to_string(),
    };
    let slot = slot.map(|axum::Extension(s)| s);
    match crate::users::log_in(&console, &address, slot.as_ref(), login).await {
        Ok(created) => {
            let secure = is_https(&parts.headers);
            let max_age = ((created.expires_at_ms - now_ms()) / 1000).max(1) as u64;
            let mut response = super::see_other(&next);
            let headers = response.headers_mut();
            for set in [
                cookie::set(
                    COOKIE,
                    &created.token,
                    CookieOptions {
                        secure,
                        max_age_secs: Some(max_age),
                    },
                ),
                cookie::clear(LOGIN_COOKIE, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&set) {
                    headers.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(e) => {
            // Never which part was wrong: the API's messages already say
            // "wrong username or password"; a throttle, a lock or a disabled
            // account (told only after the right password) say so.
            let status = e.status;
            let message = super::PageError::from(e).message;
            let mut response = (
                status,
                html_response(login_page(
                    &next,
                    &token,
                    Some((FlashKind::Error, &message)),
                )),
            )
                .into_response();
            response
                .extensions_mut()
                .insert(crate::audit::AuditReason(message));
            response
        }
    }
}

/// `POST /logout`: ends the session on the server, clears the cookie.
pub async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    if let Err(e) = crate::users::log_out(&console, &posted.viewer.caller).await {
        return super::PageError::from(e).into_response();
    }
    let mut response = super::see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&cookie::clear(COOKIE, is_https(&headers))) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(safe_next(Some("/plans?x=1")), "/plans?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
