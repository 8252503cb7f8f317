//! The outbox and the SMTP settings: queue, claims with leases (a stale
//! claim can neither renew nor record), sent with the server's answer,
//! temporary failures retried until the last attempt, permanent ones failed
//! at once, resend as a copy, retention; the password sealed with the
//! secrets key (never in the raw row, refused without a key, kept or
//! dropped with the user).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use runway_api::v1::{EmailState, SmtpSecurity};
use runway_store::{NewEmail, NewEmailSettings, SecretsKey, Store, StoreError, new_email_id};

use crate::open;

async fn queue(store: &Store, app: &str, to: &str, max_attempts: i64) -> String {
    let id = new_email_id();
    let message_id = format!("<{id}@example.com>");
    let to = vec![to.to_string()];
    store
        .queue_email(&NewEmail {
            app,
            id: &id,
            message_id: &message_id,
            to: &to,
            cc: &[],
            bcc: &["audit@example.com".to_string()],
            reply_to: Some("help@example.com"),
            subject: "Hello",
            text: Some("héllo"),
            html: None,
            max_attempts,
        })
        .await
        .unwrap();
    id
}

async fn queue_claim_send_and_fail() {
    let (_guard, store) = open().await;
    let a = queue(&store, "a", "ada@example.com", 2).await;
    let e = store.email(&a).await.unwrap();
    assert_eq!(
        (e.state, e.attempts, e.body_bytes, e.bcc.clone()),
        (
            EmailState::Queued,
            0,
            6,
            vec!["audit@example.com".to_string()]
        )
    );
    let c = store.claim_emails("fe1", 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].attempt, c[0].text.as_deref()), (1, Some("héllo")));
    assert_eq!(c[0].message_id, e.message_id);
    assert_eq!(store.email(&a).await.unwrap().state, EmailState::Sending);
    assert!(
        store
            .claim_emails("fe2", 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );

    // A temporary failure: queued again after its wait, not before.
    assert!(
        !store
            .email_failed(&a, "not-the-token", "451", Some(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .email_failed(&a, &c[0].token, "451 later", Some(60_000))
            .await
            .unwrap()
    );
    let e = store.email(&a).await.unwrap();
    assert_eq!(
        (e.state, e.last_error.as_deref()),
        (EmailState::Queued, Some("451 later"))
    );
    assert!(
        store
            .claim_emails("fe1", 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );

    // Its last attempt fails temporarily too → failed.
    let b = queue(&store, "a", "bob@example.com", 1).await;
    let c = store.claim_emails("fe1", 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 1);
    assert!(
        store
            .email_failed(&b, &c[0].token, "451 again", Some(0))
            .await
            .unwrap()
    );
    assert_eq!(store.email(&b).await.unwrap().state, EmailState::Failed);

    // A permanent failure fails at once; a send records the answer.
    let p = queue(&store, "a", "p@example.com", 5).await;
    let s = queue(&store, "b", "s@example.com", 5).await;
    let c = store.claim_emails("fe1", 10, 10_000).await.unwrap();
    assert_eq!(c.len(), 2);
    for claim in &c {
        if claim.id == p {
            assert!(
                store
                    .email_failed(&p, &claim.token, "550 no", None)
                    .await
                    .unwrap()
            );
        } else {
            assert!(
                store
                    .email_sent(&s, &claim.token, "250 ok id=1")
                    .await
                    .unwrap()
            );
            // Recorded once: a second record is refused.
            assert!(
                !store
                    .email_sent(&s, &claim.token, "250 again")
                    .await
                    .unwrap()
            );
        }
    }
    let ep = store.email(&p).await.unwrap();
    assert_eq!((ep.state, ep.attempts), (EmailState::Failed, 1));
    let es = store.email(&s).await.unwrap();
    assert_eq!(
        (es.state, es.server_answer.as_deref()),
        (EmailState::Sent, Some("250 ok id=1"))
    );

    // Lists by app and state.
    assert_eq!(store.emails(Some("b"), None, 100).await.unwrap().len(), 1);
    assert_eq!(
        store
            .emails(None, Some(EmailState::Failed), 100)
            .await
            .unwrap()
            .len(),
        2
    );

    // Resend: a copy of a sent or failed one; a queued one is refused.
    let copy_id = new_email_id();
    let copy = store
        .resend_email(&s, &copy_id, "<copy@example.com>", 3)
        .await
        .unwrap();
    assert_eq!(
        (
            copy.state,
            copy.resent_from.as_deref(),
            copy.message_id.as_str(),
            copy.to.clone()
        ),
        (
            EmailState::Queued,
            Some(s.as_str()),
            "<copy@example.com>",
            vec!["s@example.com".to_string()]
        )
    );
    assert!(matches!(
        store
            .resend_email(&a, &new_email_id(), "<x@example.com>", 3)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.email("nope").await,
        Err(StoreError::NotFound(_))
    ));

    // Retention: sent ones go, failed ones stay.
    assert_eq!(store.purge_sent_emails(i64::MAX).await.unwrap(), 1);
    assert!(store.email(&s).await.is_err());
    assert!(store.email(&p).await.is_ok());
}

async fn a_stale_email_claim_can_neither_renew_nor_record_and_a_lost_last_attempt_fails() {
    let (_guard, store) = open().await;
    let a = queue(&store, "a", "ada@example.com", 3).await;
    let first = store.claim_emails("fe1", 10, 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // fe1 died (its lease expired): fe2 sends it again, same Message-ID.
    let second = store.claim_emails("fe2", 10, 10_000).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lost_by.as_deref(), Some("fe1"));
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].message_id, first[0].message_id);
    assert!(
        !store
            .renew_email(&a, &first[0].token, 10_000)
            .await
            .unwrap()
    );
    assert!(!store.email_sent(&a, &first[0].token, "250").await.unwrap());
    assert!(
        store
            .renew_email(&a, &second[0].token, 10_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .email_sent(&a, &second[0].token, "250 ok")
            .await
            .unwrap()
    );

    let b = queue(&store, "a", "bob@example.com", 1).await;
    assert_eq!(store.claim_emails("fe1", 10, 100).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store
            .claim_emails("fe2", 10, 10_000)
            .await
            .unwrap()
            .is_empty()
    );
    let e = store.email(&b).await.unwrap();
    assert_eq!(e.state, EmailState::Failed);
    assert!(
        e.last_error
            .unwrap()
            .contains("whether the SMTP server accepted it is unknown")
    );
}

/// Front-ends claiming at once never get the same email.
async fn concurrent_email_claims_never_overlap() {
    let (_guard, store) = open().await;
    for i in 0..120 {
        queue(&store, "a", &format!("u{i}@example.com"), 3).await;
    }
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("fe{i}");
            let mut mine = Vec::new();
            loop {
                let c = store.claim_emails(&name, 7, 10_000).await.unwrap();
                if c.is_empty() {
                    return mine;
                }
                mine.extend(c.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (120, 120));
}

fn key(dir: &Path) -> SecretsKey {
    SecretsKey::load(&dir.join("secrets.key"), true).unwrap()
}

async fn the_smtp_password_is_sealed_and_never_listed() {
    let (guard, store) = open().await;
    assert!(store.email_settings().await.unwrap().is_none());
    assert!(store.smtp_delivery().await.unwrap().is_none());
    let settings = |password: Option<&'static str>, user: Option<&'static str>| NewEmailSettings {
        host: "mail.example.com",
        port: 587,
        security: SmtpSecurity::Starttls,
        from: "noreply@example.com",
        user,
        password,
    };
    // No secrets key: a password cannot be stored; nothing changes.
    assert!(matches!(
        store
            .set_email_settings(&settings(Some("pw"), Some("u")))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.email_settings().await.unwrap().is_none());

    let keys = tempfile::tempdir().unwrap();
    store.use_secrets_key(key(keys.path())).await.unwrap();
    let password = "Smtp-Raw-Secret-91";
    let s = store
        .set_email_settings(&settings(Some(password), Some("mailer")))
        .await
        .unwrap();
    assert!(s.password_set && s.user.as_deref() == Some("mailer"));
    let d = store.smtp_delivery().await.unwrap().unwrap();
    assert_eq!(d.password.as_deref(), Some(password));
    assert!(!format!("{d:?}").contains(password), "Debug hides it");
    // The raw row holds no plaintext.
    let raw = raw_settings(&guard).await;
    assert!(!raw.contains(password), "{raw}");

    // Same user, no password: kept. Another user: dropped.
    let s = store
        .set_email_settings(&settings(None, Some("mailer")))
        .await
        .unwrap();
    assert!(s.password_set);
    let s = store
        .set_email_settings(&settings(None, Some("other")))
        .await
        .unwrap();
    assert!(!s.password_set);
    assert_eq!(store.smtp_delivery().await.unwrap().unwrap().password, None);
    // A password without a user is refused.
    assert!(
        store
            .set_email_settings(&settings(Some("x"), None))
            .await
            .is_err()
    );
}

/// Every column of the settings row, as text, read past the store.
async fn raw_settings(guard: &crate::Guard) -> String {
    use sqlx::{ConnectOptions, Row};
    use std::str::FromStr;
    let sql = "SELECT host, from_addr, username, password_sealed FROM email_settings";
    let row = match guard {
        crate::Guard::Dir(dir) => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("platform.db"))
                .connect()
                .await
                .unwrap();
            let r = sqlx::query(sql).fetch_one(&mut conn).await.unwrap();
            (0..4)
                .map(|i| r.get::<Option<String>, _>(i).unwrap_or_default())
                .collect::<Vec<_>>()
        }
        crate::Guard::Database(db) => {
            let mut conn: sqlx::PgConnection = sqlx::postgres::PgConnectOptions::from_str(&db.url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let r =
                sqlx::query(&sql.replace("FROM email_settings", "FROM platform.email_settings"))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            (0..4)
                .map(|i| r.get::<Option<String>, _>(i).unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    row.join("|")
}

crate::both!(
    queue_claim_send_and_fail,
    a_stale_email_claim_can_neither_renew_nor_record_and_a_lost_last_attempt_fails,
    concurrent_email_claims_never_overlap,
    the_smtp_password_is_sealed_and_never_listed,
);
