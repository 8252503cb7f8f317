//! The email endpoints of the environment API: `GET|PUT /email/settings`
//! (the password is write-only: sealed with the secrets key, never
//! returned), `POST /email/test` (sends a test message now, from the
//! controller, and answers with the SMTP server's answer), `GET /email`,
//! `GET /email/{id}`, `POST /email/{id}/resend`. Apps queue email
//! (`runway:email/outbox`); front-ends with the email flag send it.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::v1::{
    EmailList, EmailQuery, EmailSettingsChange, EmailSettingsView, EmailTestRequest,
    EmailTestResult, EmailView, SmtpSecurity,
};
use runway_runtime::{EmailRequest, OutgoingEmail, check_mailbox};
use runway_store::{
    EmailRecord, EmailSettingsRecord, NewEmailSettings, email_message_id, new_email_id,
};
use utoipa::OpenApi;

use crate::Controller;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Admin, Caller, Deploy, Read};

#[derive(OpenApi)]
#[openapi(paths(
    get_settings,
    put_settings,
    test_email,
    list_emails,
    show_email,
    resend_email
))]
pub(crate) struct EmailDoc;

pub(crate) fn routes() -> Router<Controller> {
    Router::new()
        .route("/email", get(list_emails))
        .route("/email/settings", get(get_settings).put(put_settings))
        .route("/email/test", post(test_email))
        .route("/email/{id}", get(show_email))
        .route("/email/{id}/resend", post(resend_email))
}

/// Emails listed when the query does not say.
const DEFAULT_LIMIT: u32 = 100;
/// Most emails one list returns.
const MAX_LIMIT: u32 = 1000;
/// Attempts of a resent copy (as for an app's email).
const RESEND_MAX_ATTEMPTS: i64 = 12;

fn view(r: EmailRecord) -> EmailView {
    EmailView {
        id: r.id,
        app: r.app,
        message_id: r.message_id,
        state: r.state,
        to: r.to,
        cc: r.cc,
        bcc: r.bcc,
        reply_to: r.reply_to,
        subject: r.subject,
        body_bytes: r.body_bytes,
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        created_at_ms: r.created_at_ms,
        send_at_ms: r.send_at_ms,
        frontend: r.holder.or(r.last_frontend),
        finished_at_ms: r.finished_at_ms,
        server_answer: r.server_answer,
        last_error: r.last_error,
        resent_from: r.resent_from,
    }
}

fn settings_view(s: EmailSettingsRecord) -> EmailSettingsView {
    EmailSettingsView {
        smtp: format!("smtp://{}:{}", host_in_url(&s.host), s.port),
        security: s.security,
        from: s.from,
        user: s.user,
        password_set: s.password_set,
        updated_at_ms: s.updated_at_ms,
    }
}

fn host_in_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_email_settings", message)
}

/// The host, port and security `change` names; the error says what is wrong and how to fix it.
fn parse_server(change: &EmailSettingsChange) -> Result<(String, u16, SmtpSecurity), ApiError> {
    let url = url::Url::parse(&change.smtp).map_err(|e| {
        invalid(format!(
            "--smtp {:?} is not a URL ({e}); write it like smtp://mail.example.com:587",
            change.smtp
        ))
    })?;
    let (default_port, implied) = match url.scheme() {
        "smtp" => (25, None),
        "smtps" => (465, Some(SmtpSecurity::Tls)),
        other => {
            return Err(invalid(format!(
                "--smtp {:?} has scheme {other:?}; use smtp://host:port (or smtps://host:465 for TLS)",
                change.smtp
            )));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "--smtp must not carry a user or password (they would be stored and shown in clear); \
             give them with --user and --password-stdin"
                .into(),
        ));
    }
    if !url.path().trim_matches('/').is_empty() || url.query().is_some() || url.fragment().is_some()
    {
        return Err(invalid(format!(
            "--smtp {:?} has a path or query; write only smtp://host:port",
            change.smtp
        )));
    }
    let host = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_string())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "--smtp {:?} names no host; write it like smtp://mail.example.com:587",
                change.smtp
            ))
        })?;
    let security = match (change.security, implied) {
        (Some(s), Some(SmtpSecurity::Tls)) if s != SmtpSecurity::Tls => {
            return Err(invalid(format!(
                "smtps:// is TLS from the first byte, but --{} was asked; use smtp:// with \
                 --starttls, or smtps:// alone",
                s.as_str()
            )));
        }
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => SmtpSecurity::Plain,
    };
    Ok((host, url.port().unwrap_or(default_port), security))
}

#[utoipa::path(get, path = "/_runway/api/v1/email/settings", responses((status = 200, body = EmailSettingsView), (status = 404, body = runway_api::ErrorBody)))]
async fn get_settings(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<EmailSettingsView>> {
    let settings = c.store().email_settings().await?.ok_or_else(no_settings)?;
    Ok(Json(settings_view(settings)))
}

fn no_settings() -> ApiError {
    ApiError::not_found(
        "this environment has no email settings; set them with \
         `runway email settings --smtp smtp://host:587 --from noreply@example.com --starttls`",
    )
}

#[utoipa::path(put, path = "/_runway/api/v1/email/settings", request_body = EmailSettingsChange, responses((status = 200, body = EmailSettingsView), (status = 400, body = runway_api::ErrorBody)))]
async fn put_settings(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(change): Json<EmailSettingsChange>,
) -> ApiResult<Json<EmailSettingsView>> {
    let (host, port, security) = parse_server(&change)?;
    check_mailbox("--from", &change.from).map_err(invalid)?;
    let user = change.user.as_deref().filter(|u| !u.is_empty());
    if change.password.is_some() && user.is_none() {
        return Err(invalid(
            "a password needs a user: give --user with --password-stdin".into(),
        ));
    }
    if change.password.as_deref() == Some("") {
        return Err(invalid(
            "the password is empty; give it on standard input (--password-stdin)".into(),
        ));
    }
    if security == SmtpSecurity::Plain && user.is_some() {
        return Err(invalid(
            "a user and password would travel in clear over plain SMTP; add --starttls (port \
             587) or --tls (port 465)"
                .into(),
        ));
    }
    if let Some(user) = user
        && change.password.is_none()
    {
        let old = c.store().email_settings().await?;
        let kept = old.is_some_and(|o| o.password_set && o.user.as_deref() == Some(user));
        if !kept {
            return Err(invalid(format!(
                "user {user:?} has no stored password; give it with --password-stdin"
            )));
        }
    }
    let stored = c
        .store()
        .set_email_settings(&NewEmailSettings {
            host: &host,
            port,
            security,
            from: &change.from,
            user,
            password: change.password.as_deref(),
        })
        .await?;
    tracing::info!(smtp = %format!("{host}:{port}"), security = security.as_str(), "email settings changed");
    Ok(Json(settings_view(stored)))
}

#[utoipa::path(post, path = "/_runway/api/v1/email/test", request_body = EmailTestRequest, responses((status = 200, body = EmailTestResult), (status = 400, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody), (status = 502, body = runway_api::ErrorBody)))]
async fn test_email(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(request): Json<EmailTestRequest>,
) -> ApiResult<Json<EmailTestResult>> {
    check_mailbox("--test", &request.to)
        .map_err(|m| ApiError::bad_request("invalid_address", m))?;
    let delivery = c.store().smtp_delivery().await?.ok_or_else(no_settings)?;
    let config = c.config();
    let id = format!("test-{}", new_email_id());
    let message_id = email_message_id(&id, Some(&config.base_url));
    let server = smtp_server(&delivery, &config.environment);
    let outgoing = OutgoingEmail {
        message_id: message_id.clone(),
        email: EmailRequest {
            to: vec![request.to.clone()],
            cc: vec![],
            bcc: vec![],
            subject: format!(
                "Runway test message from environment {}",
                config.environment
            ),
            text: Some(format!(
                "This is a test message from the Runway environment {} ({}).\n\
                 Its email settings work: apps can send email.\n",
                config.environment, config.base_url
            )),
            html: None,
            reply_to: None,
        },
    };
    match server.send(&outgoing).await {
        Ok(server_answer) => Ok(Json(EmailTestResult {
            message_id,
            server_answer,
        })),
        Err(failure) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "smtp_failed",
            format!(
                "the test message to {} was not sent: {}; check `runway email settings`",
                request.to, failure.message
            ),
        )),
    }
}

fn smtp_server(d: &runway_api::v1::SmtpDelivery, hello: &str) -> runway_runtime::SmtpServer {
    runway_runtime::SmtpServer {
        host: d.host.clone(),
        port: d.port,
        security: match d.security {
            SmtpSecurity::Plain => runway_runtime::SmtpSecurity::Plain,
            SmtpSecurity::Starttls => runway_runtime::SmtpSecurity::StartTls,
            SmtpSecurity::Tls => runway_runtime::SmtpSecurity::Tls,
        },
        from: d.from.clone(),
        user: d.user.clone(),
        password: d.password.clone(),
        hello_name: hello.to_string(),
        timeout: std::time::Duration::from_secs(30),
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/email", params(EmailQuery), responses((status = 200, body = EmailList)))]
pub(crate) async fn list_emails(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(q): Query<EmailQuery>,
) -> ApiResult<Json<EmailList>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let emails = c.store().emails(q.app.as_deref(), q.state, limit).await?;
    let configured = c.store().email_settings().await?.is_some();
    Ok(Json(EmailList {
        emails: emails.into_iter().map(view).collect(),
        configured,
    }))
}

#[utoipa::path(get, path = "/_runway/api/v1/email/{id}", responses((status = 200, body = EmailView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_email(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<EmailView>> {
    Ok(Json(view(c.store().email(&id).await?)))
}

#[utoipa::path(post, path = "/_runway/api/v1/email/{id}/resend", responses((status = 200, body = EmailView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn resend_email(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(id): Path<String>,
) -> ApiResult<Json<EmailView>> {
    let copy = new_email_id();
    let message_id = email_message_id(&copy, Some(&c.config().base_url));
    Ok(Json(view(
        c.store()
            .resend_email(&id, &copy, &message_id, RESEND_MAX_ATTEMPTS)
            .await?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(smtp: &str, security: Option<SmtpSecurity>) -> EmailSettingsChange {
        EmailSettingsChange {
            smtp: smtp.into(),
            security,
            from: "noreply@example.com".into(),
            user: None,
            password: None,
        }
    }

    #[test]
    fn smtp_urls() {
        let ok = |s, sec| parse_server(&change(s, sec)).ok();
        assert_eq!(
            ok("smtp://mail.example.com:587", Some(SmtpSecurity::Starttls)),
            Some(("mail.example.com".into(), 587, SmtpSecurity::Starttls))
        );
        assert_eq!(
            ok("smtp://127.0.0.1", None),
            Some(("127.0.0.1".into(), 25, SmtpSecurity::Plain))
        );
        assert_eq!(
            ok("smtps://mail.example.com", None),
            Some(("mail.example.com".into(), 465, SmtpSecurity::Tls))
        );
        for bad in [
            "mail.example.com:587",
            "http://mail.example.com",
            "smtp://user:pw@mail.example.com",
            "smtp://mail.example.com/x",
            "smtp://",
        ] {
            assert!(ok(bad, None).is_none(), "{bad}");
        }
        assert!(ok("smtps://mail.example.com", Some(SmtpSecurity::Starttls)).is_none());
    }
}
