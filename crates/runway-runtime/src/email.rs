//! `runway:email/outbox`: a guest queues email for its own app, and the
//! SMTP delivery the platform does later.
//!
//! [`check_email`] checks a guest's message here, the same for every backend,
//! before anything reaches the [`Outbox`] (the front-end's bridge to the
//! catalog, already scoped to the app): every address must parse as an
//! RFC 5322 mailbox (lettre's [`Mailbox`]), the subject is one line, the
//! sizes are within the documented limits. [`SmtpServer::send`] builds the
//! message (lettre) with the email's stable `Message-ID` and sends it over
//! SMTP (plain, STARTTLS or TLS with rustls and the webpki roots; AUTH when
//! a user is set), and classifies a failure as temporary (4xx, connection
//! refused or broken, timeout: retry) or permanent (5xx, an unbuildable
//! message: fail).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::host::HostState;
use crate::host::generated::runway::email::outbox;

/// Most recipients of one email (to, cc and bcc together).
pub const MAX_EMAIL_RECIPIENTS: usize = 50;
/// Longest subject (bytes): one header line (RFC 5322's 998).
pub const MAX_EMAIL_SUBJECT_BYTES: usize = 998;
/// Largest body: `text` and `html` together (bytes).
pub const MAX_EMAIL_BODY_BYTES: usize = 1 << 20;
/// Longest address (bytes), as RFC 5321 allows for a path.
pub const MAX_EMAIL_ADDRESS_BYTES: usize = 320;

/// A checked email of the calling app. Addresses are kept as the guest
/// wrote them (each parses as a [`Mailbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRequest {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub reply_to: Option<String>,
}

/// Why an email was not queued; the message is shown to the guest.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmailError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The outbox of one app, already scoped to it.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores the email durably and returns its id.
    async fn send(&self, email: EmailRequest) -> Result<String, EmailError>;
}

/// Checks one address (`field` names where it is, for the message).
pub fn check_mailbox(field: &str, address: &str) -> Result<Mailbox, String> {
    let shown: String = address.chars().take(80).collect();
    if address.len() > MAX_EMAIL_ADDRESS_BYTES {
        return Err(format!(
            "{field} address {shown:?}… is {} bytes; the limit is {MAX_EMAIL_ADDRESS_BYTES}",
            address.len()
        ));
    }
    if address.chars().any(char::is_control) {
        return Err(format!(
            "{field} address {shown:?} contains a line break or control character; \
             write one address like \"user@example.com\" or \"Name <user@example.com>\""
        ));
    }
    Mailbox::from_str(address).map_err(|e| {
        format!(
            "{field} address {shown:?} is not a valid email address ({e}); \
             write it like \"user@example.com\" or \"Name <user@example.com>\""
        )
    })
}

/// Checks a guest's message; the error names the field, the value and the fix.
pub fn check_email(email: EmailRequest) -> Result<EmailRequest, String> {
    let recipients = email.to.len() + email.cc.len() + email.bcc.len();
    if recipients == 0 {
        return Err(
            "the email has no recipient: give at least one address in to, cc or bcc".into(),
        );
    }
    if recipients > MAX_EMAIL_RECIPIENTS {
        return Err(format!(
            "the email has {recipients} recipients; the limit is {MAX_EMAIL_RECIPIENTS} \
             (to, cc and bcc together): send several emails"
        ));
    }
    for (field, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
        for address in list {
            check_mailbox(field, address)?;
        }
    }
    if let Some(reply_to) = &email.reply_to {
        check_mailbox("reply-to", reply_to)?;
    }
    if email.subject.len() > MAX_EMAIL_SUBJECT_BYTES {
        return Err(format!(
            "the subject is {} bytes; the limit is {MAX_EMAIL_SUBJECT_BYTES} (one header line)",
            email.subject.len()
        ));
    }
    if email.subject.chars().any(char::is_control) {
        return Err(
            "the subject contains a line break or control character; a subject is one line".into(),
        );
    }
    if email.text.is_none() && email.html.is_none() {
        return Err("the email has no body: give text, html or both".into());
    }
    let body =
        email.text.as_ref().map_or(0, String::len) + email.html.as_ref().map_or(0, String::len);
    if body > MAX_EMAIL_BODY_BYTES {
        return Err(format!(
            "the body is {body} bytes (text and html together); the limit is \
             {MAX_EMAIL_BODY_BYTES} (1 MiB): link to large content instead of inlining it"
        ));
    }
    for (field, part) in [("text", &email.text), ("html", &email.html)] {
        if part.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(format!("the {field} body contains a NUL byte; remove it"));
        }
    }
    Ok(email)
}

impl outbox::Host for HostState {
    async fn send(&mut self, message: outbox::Message) -> Result<String, outbox::Error> {
        let email = check_email(EmailRequest {
            to: message.to,
            cc: message.cc,
            bcc: message.bcc,
            subject: message.subject,
            text: message.text,
            html: message.html,
            reply_to: message.reply_to,
        })
        .map_err(outbox::Error::Invalid)?;
        self.outbox.send(email).await.map_err(|e| match e {
            EmailError::Invalid(m) => outbox::Error::Invalid(m),
            EmailError::Unavailable(m) => outbox::Error::Unavailable(m),
        })
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS (a trusted local relay only; no password may be used).
    Plain,
    /// Plain connection upgraded with STARTTLS, required (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// Where and how email is sent.
#[derive(Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The sender of every email (`From:`).
    pub from: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The name this side gives in EHLO.
    pub hello_name: String,
    /// Bound on connecting and on each SMTP command.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// One email to send, with the `Message-ID` it keeps across attempts.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub message_id: String,
    pub email: EmailRequest,
}

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpFailure {
    /// 5xx, or a message that cannot be built: retrying cannot help.
    pub permanent: bool,
    pub message: String,
}

/// A connection pool to one SMTP server (reused while the settings stay the same).
#[derive(Clone)]
pub struct SmtpSender {
    server: SmtpServer,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpServer {
    /// A sender for these settings. Fails only on settings no connection can
    /// use (e.g. a password without TLS).
    pub fn sender(&self) -> Result<SmtpSender, String> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_string())
                .map_err(|e| format!("cannot set up TLS for {host}: {e}"))
        };
        let tls = match self.security {
            SmtpSecurity::Plain => {
                if self.password.is_some() {
                    return Err(
                        "a password would travel in clear over plain SMTP; use STARTTLS or TLS"
                            .into(),
                    );
                }
                Tls::None
            }
            SmtpSecurity::StartTls => Tls::Required(tls(&self.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&self.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(self.hello_name.clone()));
        if let Some(user) = &self.user {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                self.password.clone().unwrap_or_default(),
            ));
        }
        Ok(SmtpSender {
            server: self.clone(),
            transport: builder.build(),
        })
    }

    /// Sends one email (a new connection; [`SmtpSender`] keeps them).
    pub async fn send(&self, email: &OutgoingEmail) -> Result<String, SmtpFailure> {
        let sender = self.sender().map_err(|message| SmtpFailure {
            permanent: true,
            message,
        })?;
        sender.send(email).await
    }
}

impl SmtpSender {
    /// The settings it sends with.
    pub fn server(&self) -> &SmtpServer {
        &self.server
    }

    /// Sends one email; `Ok` is the server's answer to the message
    /// (`250 …`): the server accepted it.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<String, SmtpFailure> {
        let message = build_message(&self.server.from, email).map_err(|message| SmtpFailure {
            permanent: true,
            message,
        })?;
        let at = format!("{}:{}", self.server.host, self.server.port);
        match self.transport.send(message).await {
            Ok(response) => {
                let lines: Vec<&str> = response.message().collect();
                Ok(format!("{} {}", response.code(), lines.join(" "))
                    .trim()
                    .to_string())
            }
            Err(e) => {
                let permanent = e.is_permanent();
                let kind = if permanent {
                    "refused the email (permanent, 5xx)"
                } else if e.is_transient() {
                    "deferred the email (temporary, 4xx)"
                } else if e.is_timeout() {
                    "did not answer in time"
                } else if e.is_tls() {
                    "TLS failed"
                } else {
                    "connection failed"
                };
                Err(SmtpFailure {
                    permanent,
                    message: format!("SMTP server {at}: {kind}: {}", error_chain(&e)),
                })
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The message lettre sends.
fn build_message(from: &str, outgoing: &OutgoingEmail) -> Result<Message, String> {
    let email = &outgoing.email;
    let mut builder = Message::builder()
        .from(check_mailbox("from (the environment's sender)", from)?)
        .message_id(Some(outgoing.message_id.clone()))
        .subject(email.subject.clone());
    for (field, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
        for address in list {
            let mailbox = check_mailbox(field, address)?;
            builder = match field {
                "to" => builder.to(mailbox),
                "cc" => builder.cc(mailbox),
                _ => builder.bcc(mailbox),
            };
        }
    }
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(check_mailbox("reply-to", reply_to)?);
    }
    let built = match (&email.text, &email.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.clone()),
        ),
        (text, None) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.clone().unwrap_or_default()),
        ),
    };
    built.map_err(|e| format!("the email cannot be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: &[&str]) -> EmailRequest {
        EmailRequest {
            to: to.iter().map(|s| s.to_string()).collect(),
            cc: vec![],
            bcc: vec![],
            subject: "Hello".into(),
            text: Some("hi".into()),
            html: None,
            reply_to: None,
        }
    }

    #[test]
    fn addresses_must_parse() {
        assert!(check_email(email(&["ada@example.com"])).is_ok());
        assert!(check_email(email(&["Ada Lovelace <ada@example.com>"])).is_ok());
        for bad in [
            "not-an-address",
            "ada@",
            "@example.com",
            "ada@example.com\r\nBcc: evil@example.com",
            "ada@@example.com",
            "",
        ] {
            let err = check_email(email(&[bad])).unwrap_err();
            assert!(err.starts_with("to address"), "{bad:?}: {err}");
        }
        let mut e = email(&["ada@example.com"]);
        e.reply_to = Some("nope".into());
        assert!(check_email(e).unwrap_err().starts_with("reply-to address"));
    }

    #[test]
    fn limits() {
        assert!(
            check_email(email(&[]))
                .unwrap_err()
                .contains("no recipient")
        );
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            check_email(email(&refs))
                .unwrap_err()
                .contains("51 recipients")
        );
        let mut e = email(&["a@example.com"]);
        e.subject = "x".repeat(999);
        assert!(check_email(e).unwrap_err().contains("999 bytes"));
        let mut e = email(&["a@example.com"]);
        e.subject = "a\r\nBcc: x@example.com".into();
        assert!(check_email(e).unwrap_err().contains("one line"));
        let mut e = email(&["a@example.com"]);
        e.text = None;
        assert!(check_email(e).unwrap_err().contains("no body"));
        let mut e = email(&["a@example.com"]);
        e.text = Some("x".repeat(MAX_EMAIL_BODY_BYTES));
        e.html = Some("y".into());
        assert!(check_email(e).unwrap_err().contains("1 MiB"));
    }

    #[test]
    fn the_message_carries_its_stable_id() {
        let m = build_message(
            "Runway <noreply@example.com>",
            &OutgoingEmail {
                message_id: "<abc@example.com>".into(),
                email: email(&["ada@example.com"]),
            },
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("Message-ID: <abc@example.com>"), "{text}");
        assert!(
            text.contains("From: Runway <noreply@example.com>"),
            "{text}"
        );
    }

    #[test]
    fn no_password_over_plain_smtp() {
        let server = SmtpServer {
            host: "127.0.0.1".into(),
            port: 25,
            security: SmtpSecurity::Plain,
            from: "a@example.com".into(),
            user: Some("u".into()),
            password: Some("p".into()),
            hello_name: "localhost".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(server.sender().err().unwrap().contains("in clear"));
        assert!(!format!("{server:?}").contains("\"p\""));
    }
}
