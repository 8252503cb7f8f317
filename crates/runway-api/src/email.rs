//! Wire shapes of the email endpoints (`/_runway/api/v1/email…`), re-exported
//! from [`crate::v1`], the email states every crate shares, and the SMTP
//! settings front-ends fetch over the fleet channel.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Where an email is in its life. The catalog stores exactly [`EmailState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmailState {
    /// Waiting to be sent (first attempt, or the next one after a temporary failure).
    Queued,
    /// Held by a front-end that is sending it now.
    Sending,
    /// The SMTP server accepted it (its answer is kept).
    Sent,
    /// A permanent failure (5xx) or every attempt failed; `runway email resend` queues a copy.
    Failed,
}

impl EmailState {
    pub const ALL: [EmailState; 4] = [
        EmailState::Queued,
        EmailState::Sending,
        EmailState::Sent,
        EmailState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailState::Queued => "queued",
            EmailState::Sending => "sending",
            EmailState::Sent => "sent",
            EmailState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<EmailState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EmailState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One email an app queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailView {
    pub id: String,
    pub app: String,
    /// The `Message-ID` header, the same at every attempt.
    pub message_id: String,
    pub state: EmailState,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    /// Bytes of the text and html bodies.
    pub body_bytes: i64,
    /// Attempts started so far (a resend after a lost lease counts).
    pub attempts: i64,
    pub max_attempts: i64,
    pub created_at_ms: i64,
    /// Next attempt not before (queued).
    pub send_at_ms: i64,
    /// The front-end sending it now (sending), or the last one that tried.
    pub frontend: Option<String>,
    pub finished_at_ms: Option<i64>,
    /// The SMTP server's answer when it accepted the email (`250 …`).
    pub server_answer: Option<String>,
    pub last_error: Option<String>,
    /// The email this one is a resend of.
    pub resent_from: Option<String>,
}

/// `GET /_runway/api/v1/email` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailList {
    /// Newest first, at most `limit`.
    pub emails: Vec<EmailView>,
    /// Whether SMTP settings exist; without them emails stay queued.
    pub configured: bool,
}

/// `GET /_runway/api/v1/email` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// Only this app's emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Only emails in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EmailState>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// No TLS: a trusted local relay only (no password allowed).
    Plain,
    /// STARTTLS required (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::Plain => "plain",
            SmtpSecurity::Starttls => "starttls",
            SmtpSecurity::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<SmtpSecurity> {
        [
            SmtpSecurity::Plain,
            SmtpSecurity::Starttls,
            SmtpSecurity::Tls,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The environment's SMTP settings as the API shows them: never the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailSettingsView {
    /// `smtp://host:port`.
    pub smtp: String,
    pub security: SmtpSecurity,
    /// The sender of every email.
    pub from: String,
    pub user: Option<String>,
    /// Whether a password is stored (encrypted with the secrets key).
    pub password_set: bool,
    pub updated_at_ms: i64,
}

/// `PUT /_runway/api/v1/email/settings` body: replaces the settings.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailSettingsChange {
    /// `smtp://host[:port]` (port 25 when absent; `smtps://` implies TLS, port 465).
    pub smtp: String,
    /// Absent: `tls` for `smtps://`, else `plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SmtpSecurity>,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A new password. Absent: the stored one is kept while `user` stays the
    /// same, and dropped when `user` changes or is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for EmailSettingsChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettingsChange")
            .field("smtp", &self.smtp)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// `POST /_runway/api/v1/email/test` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailTestRequest {
    /// Who receives the test message.
    pub to: String,
}

/// `POST /_runway/api/v1/email/test` answer: the server accepted the test message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailTestResult {
    pub message_id: String,
    /// The SMTP server's answer (`250 …`).
    pub server_answer: String,
}

/// The SMTP settings with the password, for a front-end that sends email
/// (`GET /_runway/fleet/v1/email-settings`, over the fleet channel only).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SmtpDelivery {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpDelivery")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}
