//! Email (platform catalog, `migrations/*/platform/0010_email.sql`): the
//! outbox apps write through `runway:email/outbox`, claimed and sent by
//! front-ends with the email flag, and the environment's SMTP settings.
//!
//! **Durable once queued.** [`Store::queue_email`] is one `INSERT`.
//!
//! **Claims** are the platform catalog's one claim mechanism (`claims`),
//! as for jobs ([`Store::claim_jobs`]): one write
//! transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on
//! SQLite) takes due emails (queued whose time came, or sending whose lease
//! expired: their front-end died), counts the attempt and gives each claim a
//! fresh token and a lease. Only the current claim renews
//! ([`Store::renew_email`]) or records ([`Store::email_sent`],
//! [`Store::email_failed`]). An email lost on its last attempt is failed.
//!
//! **Settings.** One row; the password is sealed with the environment's
//! secrets key (as secret property values are) and is only ever opened by
//! [`Store::smtp_delivery`], for sending: no listing returns it.

use sqlx::Row;
use sqlx::any::AnyRow;

use runway_api::v1::{EmailState, SmtpDelivery, SmtpSecurity};

use crate::Store;
use crate::claims::{Queue, random_token};
use crate::db::Backend;
use crate::error::{Context, Result, StoreError};
use crate::kv::check_no_nul;
use crate::lease::db_now;

/// The outbox as a queue of the one claim mechanism (`claims`).
const EMAILS: Queue = Queue {
    table: "emails",
    noun: "email",
    due: "send_at_ms",
    waiting: "'queued'",
    held: "'sending'",
    also_set: ", last_frontend = $1",
    lost_note: "; whether the SMTP server accepted it is unknown",
    lost_also_set: "",
};

/// Associated data of the sealed SMTP password: it opens nowhere else.
const PASSWORD_CONTEXT: &[u8] = b"runway email settings\0smtp password";

/// An email to queue (already checked by the runtime; the store checks again
/// what would corrupt the catalog).
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub app: &'a str,
    /// Chosen by the caller with [`new_email_id`], so that `message_id` can name it.
    pub id: &'a str,
    pub message_id: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub bcc: &'a [String],
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub max_attempts: i64,
}

/// A fresh email id (128 random bits, hex).
pub fn new_email_id() -> String {
    random_token()
}

/// The `Message-ID` of email `id` in an environment whose address is
/// `base_url`: `<id@host>` (`runway.localhost` when the host is no DNS name).
pub fn email_message_id(id: &str, base_url: Option<&str>) -> String {
    let host = base_url
        .and_then(|url| url::Url::parse(url).ok())
        .and_then(|url| url.host_str().map(str::to_string))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or_else(|| "runway.localhost".to_string());
    format!("<{id}@{host}>")
}

/// A stored email (without its bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    pub id: String,
    pub app: String,
    pub message_id: String,
    pub state: EmailState,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body_bytes: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub created_at_ms: i64,
    pub send_at_ms: i64,
    pub holder: Option<String>,
    pub last_frontend: Option<String>,
    pub finished_at_ms: Option<i64>,
    pub server_answer: Option<String>,
    pub last_error: Option<String>,
    pub resent_from: Option<String>,
}

/// An email a front-end claimed and must send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailClaim {
    pub id: String,
    pub app: String,
    pub message_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// Proves the claim: renewing and recording need it.
    pub token: String,
    /// The front-end whose lease on this email expired, if this is a retry of a lost send.
    pub lost_by: Option<String>,
}

/// The stored SMTP settings, without the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettingsRecord {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub user: Option<String>,
    pub password_set: bool,
    pub updated_at_ms: i64,
}

/// New SMTP settings (checked by the caller: host, port, sender address).
#[derive(Clone)]
pub struct NewEmailSettings<'a> {
    pub host: &'a str,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: &'a str,
    pub user: Option<&'a str>,
    /// `None`: keep the stored password if `user` is unchanged, else none.
    pub password: Option<&'a str>,
}

fn lines(list: &[String]) -> String {
    list.join("\n")
}

fn unlines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

const COLUMNS: &str = "id, app, message_id, state, to_addrs, cc_addrs, bcc_addrs, reply_to, \
     subject, attempts, max_attempts, created_at_ms, send_at_ms, holder, last_frontend, \
     finished_at_ms, server_answer, last_error, resent_from";

fn body_len(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CAST(COALESCE(octet_length(text_body), 0) + COALESCE(octet_length(html_body), 0) AS BIGINT)"
        }
        Backend::Sqlite => {
            "(COALESCE(length(CAST(text_body AS BLOB)), 0) + COALESCE(length(CAST(html_body AS BLOB)), 0))"
        }
    }
}

fn state_of(r: &AnyRow) -> sqlx::Result<EmailState> {
    let state: String = r.try_get("state")?;
    EmailState::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "state".into(),
        source: format!("unknown email state {state:?}").into(),
    })
}

fn record_from_row(r: &AnyRow) -> sqlx::Result<EmailRecord> {
    Ok(EmailRecord {
        id: r.try_get("id")?,
        app: r.try_get("app")?,
        message_id: r.try_get("message_id")?,
        state: state_of(r)?,
        to: unlines(r.try_get("to_addrs")?),
        cc: unlines(r.try_get("cc_addrs")?),
        bcc: unlines(r.try_get("bcc_addrs")?),
        reply_to: r.try_get("reply_to")?,
        subject: r.try_get("subject")?,
        body_bytes: r.try_get("body_bytes")?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        created_at_ms: r.try_get("created_at_ms")?,
        send_at_ms: r.try_get("send_at_ms")?,
        holder: r.try_get("holder")?,
        last_frontend: r.try_get("last_frontend")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        server_answer: r.try_get("server_answer")?,
        last_error: r.try_get("last_error")?,
        resent_from: r.try_get("resent_from")?,
    })
}

fn check_text(what: &str, value: &str) -> Result<()> {
    check_no_nul(what, value)
}

impl Store {
    /// Stores an email; see the module doc.
    pub async fn queue_email(&self, email: &NewEmail<'_>) -> Result<()> {
        check_text("app name", email.app)?;
        check_text("email id", email.id)?;
        check_text("Message-ID", email.message_id)?;
        for address in email.to.iter().chain(email.cc).chain(email.bcc) {
            check_text("email address", address)?;
            if address.contains('\n') || address.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "email address {address:?} is empty or holds a line break"
                )));
            }
        }
        for (what, value) in [
            ("reply-to address", email.reply_to),
            ("subject", Some(email.subject)),
            ("text body", email.text),
            ("html body", email.html),
        ] {
            if let Some(v) = value {
                check_text(what, v)?;
            }
        }
        if email.max_attempts < 1 {
            return Err(StoreError::Invalid(format!(
                "an email needs max-attempts ≥ 1 (got {})",
                email.max_attempts
            )));
        }
        let catalog = self.platform();
        let now = db_now(catalog.backend);
        sqlx::query(&format!(
            "INSERT INTO emails (id, app, message_id, to_addrs, cc_addrs, bcc_addrs, reply_to, \
             subject, text_body, html_body, state, attempts, max_attempts, created_at_ms, send_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11, {now}, {now})"
        ))
        .bind(email.id)
        .bind(email.app)
        .bind(email.message_id)
        .bind(lines(email.to))
        .bind(lines(email.cc))
        .bind(lines(email.bcc))
        .bind(email.reply_to)
        .bind(email.subject)
        .bind(email.text)
        .bind(email.html)
        .bind(email.max_attempts)
        .execute(&catalog.pool)
        .await
        .context(|| format!("failed to queue an email of app {}", email.app))?;
        Ok(())
    }

    /// Claims up to `limit` due emails for `frontend`, with a lease of
    /// `lease_ms`. See the module doc.
    pub async fn claim_emails(
        &self,
        frontend: &str,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<EmailClaim>> {
        let what = || format!("failed to claim due emails for front-end {frontend}");
        let claimed = self
            .claim_rows(
                &EMAILS,
                frontend,
                limit,
                lease_ms,
                "id, app, message_id, to_addrs, cc_addrs, bcc_addrs, reply_to, subject, \
                 text_body, html_body, attempts, max_attempts, state, holder, send_at_ms",
                "1 = 1",
                |query| query,
            )
            .await?;
        let mut claims = Vec::with_capacity(claimed.rows.len());
        for row in &claimed.rows {
            let state = state_of(row).context(what)?;
            let holder: Option<String> = row.try_get("holder").context(what)?;
            claims.push(EmailClaim {
                id: row.try_get("id").context(what)?,
                app: row.try_get("app").context(what)?,
                message_id: row.try_get("message_id").context(what)?,
                to: unlines(row.try_get("to_addrs").context(what)?),
                cc: unlines(row.try_get("cc_addrs").context(what)?),
                bcc: unlines(row.try_get("bcc_addrs").context(what)?),
                reply_to: row.try_get("reply_to").context(what)?,
                subject: row.try_get("subject").context(what)?,
                text: row.try_get("text_body").context(what)?,
                html: row.try_get("html_body").context(what)?,
                attempt: row.try_get::<i64, _>("attempts").context(what)? + 1,
                max_attempts: row.try_get("max_attempts").context(what)?,
                token: claimed.token.clone(),
                lost_by: (state == EmailState::Sending).then(|| holder.unwrap_or_default()),
            });
        }
        Ok(claims)
    }

    /// Extends the lease of a send. `false`: the claim is not current any more.
    pub async fn renew_email(&self, id: &str, token: &str, lease_ms: i64) -> Result<bool> {
        self.renew_claim(&EMAILS, id, token, lease_ms).await
    }

    /// Records that the SMTP server accepted the email, with its answer.
    /// `false`: the claim was not current (nothing recorded).
    pub async fn email_sent(&self, id: &str, token: &str, answer: &str) -> Result<bool> {
        check_text("server answer", answer)?;
        let answer = answer.to_string();
        self.end_claim(
            &EMAILS,
            id,
            token,
            "state = 'sent', finished_at_ms = {now}, server_answer = $3, last_error = NULL",
            |query| query.bind(answer.clone()),
            &format!("that email {id} was sent"),
        )
        .await
    }

    /// Records a failed attempt: `retry_in_ms = Some(…)` queues it again
    /// after that wait while attempts remain; otherwise (a permanent failure,
    /// or the last attempt) it is failed. `false`: the claim was not current.
    pub async fn email_failed(
        &self,
        id: &str,
        token: &str,
        error: &str,
        retry_in_ms: Option<i64>,
    ) -> Result<bool> {
        check_text("email error", error)?;
        let set = match retry_in_ms {
            Some(_) => {
                "state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 finished_at_ms = CASE WHEN attempts >= max_attempts THEN {now} ELSE NULL END, \
                 send_at_ms = {now} + $4, last_error = $3"
            }
            None => "state = 'failed', finished_at_ms = {now}, last_error = $3",
        };
        let error = error.to_string();
        self.end_claim(
            &EMAILS,
            id,
            token,
            set,
            |query| {
                let query = query.bind(error.clone());
                match retry_in_ms {
                    Some(wait) => query.bind(wait.max(0)),
                    None => query,
                }
            },
            &format!("a failed attempt of email {id}"),
        )
        .await
    }

    /// Emails, newest first: of one app and/or in one state, at most `limit`.
    pub async fn emails(
        &self,
        app: Option<&str>,
        state: Option<EmailState>,
        limit: u32,
    ) -> Result<Vec<EmailRecord>> {
        let catalog = self.platform();
        let len = body_len(catalog.backend);
        let mut filters = Vec::new();
        if app.is_some() {
            filters.push(format!("app = ${}", filters.len() + 2));
        }
        if state.is_some() {
            filters.push(format!("state = ${}", filters.len() + 2));
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS}, {len} AS body_bytes FROM emails {filter} \
             ORDER BY created_at_ms DESC, id LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(app) = app {
            query = query.bind(app);
        }
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        let rows = query
            .fetch_all(&catalog.pool)
            .await
            .context(|| "failed to list emails".to_string())?;
        rows.iter()
            .map(record_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to read emails".to_string())
    }

    /// One email.
    pub async fn email(&self, id: &str) -> Result<EmailRecord> {
        check_no_nul("email id", id)?;
        let catalog = self.platform();
        let len = body_len(catalog.backend);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, {len} AS body_bytes FROM emails WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&catalog.pool)
        .await
        .context(|| format!("failed to read email {id}"))?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no email {id} in this environment; list them with `runway email list`"
            ))
        })?;
        record_from_row(&row).context(|| format!("failed to read email {id}"))
    }

    /// Queues a copy of a sent or failed email (a new id and `Message-ID`,
    /// `resent_from` naming the original) and returns it. `message_id` is the
    /// copy's, built by the caller from `id`.
    pub async fn resend_email(
        &self,
        original: &str,
        id: &str,
        message_id: &str,
        max_attempts: i64,
    ) -> Result<EmailRecord> {
        let email = self.email(original).await?;
        if !matches!(email.state, EmailState::Sent | EmailState::Failed) {
            return Err(StoreError::Conflict(format!(
                "email {original} is {}; only a sent or failed email can be resent \
                 (a queued one is sent anyway)",
                email.state
            )));
        }
        let now = db_now(self.platform().backend);
        sqlx::query(&format!(
            "INSERT INTO emails (id, app, message_id, to_addrs, cc_addrs, bcc_addrs, reply_to, \
             subject, text_body, html_body, state, attempts, max_attempts, created_at_ms, \
             send_at_ms, resent_from) \
             SELECT $1, app, $2, to_addrs, cc_addrs, bcc_addrs, reply_to, subject, text_body, \
             html_body, 'queued', 0, $3, {now}, {now}, id FROM emails WHERE id = $4"
        ))
        .bind(id)
        .bind(message_id)
        .bind(max_attempts)
        .bind(original)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to resend email {original}"))?;
        self.email(id).await
    }

    /// Deletes sent emails that finished before `before_ms`. Failed ones are
    /// kept for inspection (and `resend`). Returns how many were deleted.
    pub async fn purge_sent_emails(&self, before_ms: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM emails WHERE state = 'sent' AND finished_at_ms < $1")
            .bind(before_ms)
            .execute(&self.platform().pool)
            .await
            .context(|| "failed to delete sent emails".to_string())?
            .rows_affected();
        Ok(n)
    }

    /// The SMTP settings, without the password; `None` when never set.
    pub async fn email_settings(&self) -> Result<Option<EmailSettingsRecord>> {
        let what = || "failed to read the email settings".to_string();
        let row = sqlx::query(
            "SELECT host, port, security, from_addr, username, password_sealed, updated_at_ms \
             FROM email_settings WHERE id = 1",
        )
        .fetch_optional(&self.platform().pool)
        .await
        .context(what)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let security: String = row.try_get("security").context(what)?;
        let port: i64 = row.try_get("port").context(what)?;
        let sealed: Option<String> = row.try_get("password_sealed").context(what)?;
        Ok(Some(EmailSettingsRecord {
            host: row.try_get("host").context(what)?,
            port: u16::try_from(port).unwrap_or(25),
            security: SmtpSecurity::parse(&security).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "the stored email settings have an unknown security {security:?}; \
                     set them again with `runway email settings`"
                ))
            })?,
            from: row.try_get("from_addr").context(what)?,
            user: row.try_get("username").context(what)?,
            password_set: sealed.is_some(),
            updated_at_ms: row.try_get("updated_at_ms").context(what)?,
        }))
    }

    /// Replaces the SMTP settings; a password is sealed with the secrets key
    /// (refused when none is in use). Returns the stored settings.
    pub async fn set_email_settings(
        &self,
        new: &NewEmailSettings<'_>,
    ) -> Result<EmailSettingsRecord> {
        for (what, value) in [
            ("SMTP host", Some(new.host)),
            ("sender address", Some(new.from)),
            ("SMTP user", new.user),
            ("SMTP password", new.password),
        ] {
            if let Some(v) = value {
                check_text(what, v)?;
            }
        }
        let what = || "failed to write the email settings".to_string();
        let mut tx = self
            .platform()
            .begin_write("write the email settings")
            .await?;
        let old = sqlx::query(
            "SELECT username, password_sealed, password_key_id FROM email_settings WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .context(what)?;
        let (sealed, key_id): (Option<String>, Option<String>) = match (new.password, new.user) {
            (Some(_), None) => {
                return Err(StoreError::Invalid(
                    "an SMTP password needs a user (--user)".into(),
                ));
            }
            (Some(password), Some(_)) => {
                let key = self.secrets_key().ok_or_else(|| {
                    StoreError::Invalid(
                        "no secrets key is in use to encrypt the SMTP password; only the \
                         controller, started with its secrets key, can store it"
                            .into(),
                    )
                })?;
                (
                    Some(key.seal(PASSWORD_CONTEXT, password)),
                    Some(key.id().to_string()),
                )
            }
            (None, user) => match old {
                Some(row) => {
                    let old_user: Option<String> = row.try_get("username").context(what)?;
                    if user.is_some() && old_user.as_deref() == user {
                        (
                            row.try_get("password_sealed").context(what)?,
                            row.try_get("password_key_id").context(what)?,
                        )
                    } else {
                        (None, None)
                    }
                }
                None => (None, None),
            },
        };
        sqlx::query(
            "INSERT INTO email_settings (id, host, port, security, from_addr, username, \
             password_sealed, password_key_id, updated_at_ms) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, port = excluded.port, \
             security = excluded.security, from_addr = excluded.from_addr, \
             username = excluded.username, password_sealed = excluded.password_sealed, \
             password_key_id = excluded.password_key_id, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(new.host)
        .bind(i64::from(new.port))
        .bind(new.security.as_str())
        .bind(new.from)
        .bind(new.user)
        .bind(&sealed)
        .bind(&key_id)
        .bind(crate::now_ms())
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        self.email_settings()
            .await?
            .ok_or_else(|| StoreError::NotFound("the email settings vanished".into()))
    }

    /// The SMTP settings with the password opened, for sending; `None` when
    /// never set. Needs the secrets key when a password is stored.
    pub async fn smtp_delivery(&self) -> Result<Option<SmtpDelivery>> {
        let what = || "failed to read the email settings".to_string();
        let Some(settings) = self.email_settings().await? else {
            return Ok(None);
        };
        let row =
            sqlx::query("SELECT password_sealed, password_key_id FROM email_settings WHERE id = 1")
                .fetch_one(&self.platform().pool)
                .await
                .context(what)?;
        let sealed: Option<String> = row.try_get("password_sealed").context(what)?;
        let key_id: Option<String> = row.try_get("password_key_id").context(what)?;
        let password = match sealed {
            None => None,
            Some(sealed) => {
                let key = self.secrets_key().ok_or_else(|| {
                    StoreError::Invalid(
                        "the SMTP password is encrypted and no secrets key is in use; only the \
                         controller can read it"
                            .into(),
                    )
                })?;
                let problem = |problem: String| StoreError::SecretsKey {
                    path: key.path().to_path_buf(),
                    problem,
                };
                if key_id.as_deref() != Some(key.id()) {
                    return Err(problem(format!(
                        "holds key {}, but the SMTP password was encrypted with key {}; start \
                         with the key file it was encrypted with, or set the password again \
                         with `runway email settings … --password-stdin`",
                        key.id(),
                        key_id.as_deref().unwrap_or("?")
                    )));
                }
                Some(key.open(PASSWORD_CONTEXT, &sealed).ok_or_else(|| {
                    problem(
                        "cannot decrypt the SMTP password: the stored value was altered; set it \
                         again with `runway email settings … --password-stdin`"
                            .into(),
                    )
                })?)
            }
        };
        Ok(Some(SmtpDelivery {
            host: settings.host,
            port: settings.port,
            security: settings.security,
            from: settings.from,
            user: settings.user,
            password,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_environment() {
        assert_eq!(
            email_message_id("abc", Some("https://apps.example.com:8443/x")),
            "<abc@apps.example.com>"
        );
        assert_eq!(
            email_message_id("abc", Some("http://[::1]:80")),
            "<abc@runway.localhost>"
        );
        assert_eq!(email_message_id("abc", None), "<abc@runway.localhost>");
    }
}
