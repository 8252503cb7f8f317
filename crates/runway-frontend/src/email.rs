//! Email: the outbox of an app (`runway:email/outbox`, [`StoreOutbox`]) and
//! the sending done by a front-end with the email flag, through the same
//! claim loop as timers and jobs ([`crate::scheduler::poll_loop`]).
//!
//! While ready at the committed generation, every `email_poll` and as soon
//! as a send ends, it reads the environment's SMTP settings (from an
//! [`SmtpSource`]: the catalog with the secrets key in `runway up`, the
//! controller over the fleet channel in a farm; at most every 2 s), claims
//! due emails ([`runway_store::Store::claim_emails`]: a token and a lease per
//! claim) up to its free slots (`email_concurrency`) and sends each over
//! SMTP (lettre, one pooled transport per settings), renewing the lease
//! while the exchange lasts. A send whose lease cannot be renewed is dropped
//! mid-exchange and never recorded: another front-end owns it then. The
//! server's acceptance is recorded at once (`sent` with its answer); a
//! temporary failure (4xx, connection refused or broken, timeout) queues the
//! next attempt after an exponential backoff with jitter; a permanent one
//! (5xx) fails it. Without SMTP settings nothing is claimed: emails stay
//! queued. Once a minute, sent emails past the retention are deleted.
//!
//! **Message-ID and duplicates.** Each email's `Message-ID` is fixed when it
//! is queued. The only window for a second copy is a front-end dying after
//! the server accepted the message and before `sent` is committed (a few
//! milliseconds); the copy another front-end sends then carries the same
//! `Message-ID`, which receivers use to recognise it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runway_api::v1::{SmtpDelivery, SmtpSecurity as WireSecurity};
use runway_runtime::{
    EmailError, EmailRequest, Outbox, OutgoingEmail, SmtpSecurity, SmtpSender, SmtpServer,
};
use runway_store::{
    EmailClaim, LogKind, LogLevel, LogSink, NewEmail, NewLogEntry, Store, email_message_id,
    new_email_id, now_ms,
};
use tokio::sync::watch;

use crate::Frontend;
use crate::deploy::Inner;
use crate::jobs::backoff;
use crate::scheduler::{BoxFuture, TimerScheduler, TimerSettings, Work, poll_loop};

/// Attempts of one email before it is failed (with the default backoff of
/// 5 s doubling up to an hour: about 5 hours of retries).
pub const EMAIL_MAX_ATTEMPTS: i64 = 12;
/// How often the SMTP settings are read again.
const SETTINGS_EVERY: Duration = Duration::from_secs(2);
/// How often sent emails past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Bound on connecting to the SMTP server and on each SMTP command.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a front-end gets the SMTP settings, password included.
#[async_trait]
pub trait SmtpSource: Send + Sync {
    /// `None`: no settings (emails stay queued).
    async fn smtp(&self) -> Result<Option<SmtpDelivery>, String>;
}

/// The catalog, opened with the environment's secrets key (`runway up`).
pub struct StoreSmtp(pub Store);

#[async_trait]
impl SmtpSource for StoreSmtp {
    async fn smtp(&self) -> Result<Option<SmtpDelivery>, String> {
        self.0.smtp_delivery().await.map_err(|e| e.to_string())
    }
}

/// The runtime's settings for `delivery`; `hello_name` goes in EHLO.
pub fn smtp_server(delivery: &SmtpDelivery, hello_name: &str) -> SmtpServer {
    SmtpServer {
        host: delivery.host.clone(),
        port: delivery.port,
        security: match delivery.security {
            WireSecurity::Plain => SmtpSecurity::Plain,
            WireSecurity::Starttls => SmtpSecurity::StartTls,
            WireSecurity::Tls => SmtpSecurity::Tls,
        },
        from: delivery.from.clone(),
        user: delivery.user.clone(),
        password: delivery.password.clone(),
        hello_name: hello_name.to_string(),
        timeout: SMTP_TIMEOUT,
    }
}

/// The outbox of one app in the platform catalog (`runway:email/outbox`).
pub struct StoreOutbox {
    store: Store,
    log: LogSink,
    app: String,
    base_url: Option<String>,
}

impl StoreOutbox {
    pub fn new(store: Store, log: LogSink, app: &str, base_url: Option<String>) -> StoreOutbox {
        StoreOutbox {
            store,
            log,
            app: app.to_string(),
            base_url,
        }
    }
}

#[async_trait]
impl Outbox for StoreOutbox {
    async fn send(&self, email: EmailRequest) -> Result<String, EmailError> {
        let id = new_email_id();
        let message_id = email_message_id(&id, self.base_url.as_deref());
        let new = NewEmail {
            app: &self.app,
            id: &id,
            message_id: &message_id,
            to: &email.to,
            cc: &email.cc,
            bcc: &email.bcc,
            reply_to: email.reply_to.as_deref(),
            subject: &email.subject,
            text: email.text.as_deref(),
            html: email.html.as_deref(),
            max_attempts: EMAIL_MAX_ATTEMPTS,
        };
        match self.store.queue_email(&new).await {
            Ok(()) => {
                let recipients = email.to.len() + email.cc.len() + email.bcc.len();
                self.log.write(NewLogEntry {
                    at_ms: now_ms(),
                    kind: LogKind::Platform,
                    level: LogLevel::Info,
                    app: Some(self.app.clone()),
                    message: Some(format!(
                        "email {id} queued for {recipients} recipient(s), Message-ID {message_id}"
                    )),
                    ..Default::default()
                });
                Ok(id)
            }
            Err(runway_store::StoreError::Invalid(m)) => Err(EmailError::Invalid(m)),
            Err(other) => {
                tracing::error!(app = %self.app, "outbox failed: {other}");
                Err(EmailError::Unavailable(
                    "the platform could not store the email (nothing was queued); \
                     the cause is in the front-end's log"
                        .into(),
                ))
            }
        }
    }
}

impl Frontend {
    /// Starts sending this front-end's share of the environment's email
    /// (a front-end with the email flag), with SMTP settings from `source`.
    pub fn start_email(
        &self,
        settings: TimerSettings,
        source: Arc<dyn SmtpSource>,
    ) -> TimerScheduler {
        let (stop, stopped) = watch::channel(false);
        let work = EmailWork {
            settings,
            lease_ms: i64::try_from(settings.lease.as_millis()).unwrap_or(10_000),
            source,
            sender: None,
            read: None,
            missing_said: false,
            purged: None,
        };
        let task = tokio::spawn(poll_loop(
            self.inner.clone(),
            settings.email_concurrency,
            settings.email_poll,
            stopped,
            work,
        ));
        TimerScheduler {
            stop,
            tasks: vec![task],
        }
    }
}

struct EmailWork {
    settings: TimerSettings,
    lease_ms: i64,
    source: Arc<dyn SmtpSource>,
    /// The settings in use and their pooled transport.
    sender: Option<(SmtpDelivery, SmtpSender)>,
    read: Option<Instant>,
    missing_said: bool,
    purged: Option<Instant>,
}

impl EmailWork {
    /// Reads the settings again when due; `false`: nothing to send with.
    async fn refresh(&mut self, inner: &Inner) -> bool {
        if self.read.is_some_and(|at| at.elapsed() < SETTINGS_EVERY) {
            return self.sender.is_some();
        }
        self.read = Some(Instant::now());
        match self.source.smtp().await {
            Ok(None) => {
                if !self.missing_said {
                    tracing::warn!(
                        "email: no SMTP settings in this environment; emails stay queued until \
                         `runway email settings --smtp … --from …` sets them"
                    );
                    self.missing_said = true;
                }
                self.sender = None;
            }
            Ok(Some(delivery)) => {
                self.missing_said = false;
                if self.sender.as_ref().map(|(d, _)| d) != Some(&delivery) {
                    match smtp_server(&delivery, &inner.config.name).sender() {
                        Ok(sender) => self.sender = Some((delivery, sender)),
                        Err(e) => {
                            tracing::warn!(error = %e, "email: the SMTP settings cannot be used; emails stay queued");
                            self.sender = None;
                        }
                    }
                }
            }
            Err(e) => {
                // Keep sending with the settings known so far.
                tracing::warn!(error = %e, "email: cannot read the SMTP settings; retrying");
            }
        }
        self.sender.is_some()
    }
}

impl Work for EmailWork {
    async fn claim(
        &mut self,
        inner: &Arc<Inner>,
        _changed: bool,
        free: usize,
    ) -> Vec<BoxFuture<'static, ()>> {
        if self.purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            self.purged = Some(Instant::now());
            let retention = i64::try_from(self.settings.email_retention.as_millis()).unwrap_or(0);
            match inner.store.purge_sent_emails(now_ms() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "email: sent emails past their retention deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "email: cannot delete old sent emails"),
            }
        }
        if free == 0 || !self.refresh(inner).await {
            return Vec::new();
        }
        let Some((_, sender)) = &self.sender else {
            return Vec::new();
        };
        let claims = match inner
            .store
            .claim_emails(&inner.config.name, free, self.lease_ms)
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!(error = %e, "email: cannot claim due emails; retrying");
                return Vec::new();
            }
        };
        claims
            .into_iter()
            .map(|claim| {
                let send = Sending {
                    inner: inner.clone(),
                    sender: sender.clone(),
                    claim,
                    settings: self.settings,
                    lease_ms: self.lease_ms,
                };
                Box::pin(send.run()) as BoxFuture<'static, ()>
            })
            .collect()
    }
}

struct Sending {
    inner: Arc<Inner>,
    sender: SmtpSender,
    claim: EmailClaim,
    settings: TimerSettings,
    lease_ms: i64,
}

impl Sending {
    async fn run(self) {
        let claim = &self.claim;
        if let Some(lost_by) = &claim.lost_by {
            self.log(
                LogLevel::Warn,
                format!(
                    "email {}: front-end {lost_by} stopped renewing its lease while sending it \
                     (stopped or killed); sending it again with the same Message-ID {} \
                     (attempt {}/{})",
                    claim.id, claim.message_id, claim.attempt, claim.max_attempts
                ),
            );
        }
        let outgoing = OutgoingEmail {
            message_id: claim.message_id.clone(),
            email: EmailRequest {
                to: claim.to.clone(),
                cc: claim.cc.clone(),
                bcc: claim.bcc.clone(),
                subject: claim.subject.clone(),
                text: claim.text.clone(),
                html: claim.html.clone(),
                reply_to: claim.reply_to.clone(),
            },
        };
        let send = self.sender.send(&outgoing);
        tokio::pin!(send);
        let mut renewal = tokio::time::interval(self.settings.lease / 3);
        renewal.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut send => break result,
                _ = renewal.tick() => match self.inner.store.renew_email(&claim.id, &claim.token, self.lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another front-end owns it now: stop, record nothing.
                        self.log(LogLevel::Warn, format!(
                            "email {}: this front-end lost its lease while sending (the catalog \
                             was unreachable too long); the send was stopped and another \
                             front-end sends it", claim.id));
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, email = %claim.id, "email: cannot renew a lease"),
                },
            }
        };
        let recorded =
            match &result {
                Ok(answer) => {
                    let answer: String = answer.chars().take(1000).collect();
                    let recorded = self
                        .record(|| {
                            self.inner
                                .store
                                .email_sent(&claim.id, &claim.token, &answer)
                        })
                        .await;
                    self.log(
                        LogLevel::Info,
                        format!(
                            "email {} sent (Message-ID {}); the server answered: {answer}",
                            claim.id, claim.message_id
                        ),
                    );
                    recorded
                }
                Err(failure) => {
                    let last = failure.permanent || claim.attempt >= claim.max_attempts;
                    let retry_in = backoff(self.settings.email_backoff, claim.attempt);
                    let message: String = failure.message.chars().take(1000).collect();
                    let recorded = self
                        .record(|| {
                            self.inner.store.email_failed(
                                &claim.id,
                                &claim.token,
                                &message,
                                (!failure.permanent).then(|| {
                                    i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX)
                                }),
                            )
                        })
                        .await;
                    self.log(
                    if last { LogLevel::Error } else { LogLevel::Warn },
                    if last {
                        format!(
                            "email {} failed (attempt {}/{}): {message}; `runway email resend {}` \
                             queues a copy",
                            claim.id, claim.attempt, claim.max_attempts, claim.id
                        )
                    } else {
                        format!(
                            "email {} attempt {}/{} failed: {message}; next attempt in {} ms",
                            claim.id,
                            claim.attempt,
                            claim.max_attempts,
                            retry_in.as_millis()
                        )
                    },
                );
                    recorded
                }
            };
        if !recorded {
            tracing::warn!(email = %claim.id,
                "email: the outcome of a send was not recorded: its lease expired and the email was claimed again");
        }
    }

    /// Runs `write` until the catalog answers (at most 5 tries); `false`:
    /// the claim was not current, or the catalog never answered.
    async fn record<F, Fut>(&self, write: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: Future<Output = runway_store::Result<bool>>,
    {
        for attempt in 0..5 {
            match write().await {
                Ok(current) => return current,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "email: cannot record a send; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }

    fn log(&self, level: LogLevel, message: String) {
        self.inner.log.write(NewLogEntry {
            at_ms: now_ms(),
            kind: LogKind::Platform,
            level,
            app: Some(self.claim.app.clone()),
            frontend: Some(self.inner.config.name.clone()),
            message: Some(message),
            ..Default::default()
        });
    }
}
