//! The one claim mechanism of the platform catalog's work queues: background
//! jobs (`jobs`) and the email outbox (`emails`), and the parts timers share
//! (the row lock and the claim token).
//!
//! A queue is a table whose rows have `id`, `state`, a due time column,
//! `attempts`, `max_attempts`, `holder`, `claim_token` and
//! `lease_expires_at_ms`, described by a [`Queue`]. [`Store::claim_rows`]
//! takes due rows — waiting whose due time passed, or held whose lease
//! expired (their front-end died) — in one write transaction (`FOR UPDATE
//! SKIP LOCKED` on PostgreSQL, so front-ends claim different rows at once;
//! SQLite's write lock via `BEGIN IMMEDIATE`), counts the attempt, and gives
//! the claim a fresh random token and a lease on the database clock. A row
//! lost on its last attempt is failed in the same transaction, never handed
//! out once more. Only the token's holder renews the lease
//! ([`Store::renew_claim`]) or records how the claim ended
//! ([`Store::end_claim`]): a front-end whose lease expired during a long
//! catalog outage cannot touch the claim that replaced its own.

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Row, Transaction};

use crate::Store;
use crate::db::Backend;
use crate::error::{Context, Result};
use crate::lease::db_now;

/// A table of claimable rows and the words its states use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queue {
    pub(crate) table: &'static str,
    /// What one row is, in messages ("job", "email").
    pub(crate) noun: &'static str,
    /// The column saying when a waiting row is due.
    pub(crate) due: &'static str,
    /// The states of rows waiting for a claim, as SQL literals.
    pub(crate) waiting: &'static str,
    /// The state of a claimed row, as an SQL literal.
    pub(crate) held: &'static str,
    /// What else a claim sets, after `holder = $1` (may use `$1`, the holder).
    pub(crate) also_set: &'static str,
    /// Added to the error of a row lost on its last attempt.
    pub(crate) lost_note: &'static str,
    /// What else failing a row lost on its last attempt sets (after the
    /// error and the front-end).
    pub(crate) lost_also_set: &'static str,
}

/// The row lock of a claim's `SELECT`: PostgreSQL's `FOR UPDATE SKIP
/// LOCKED`; nothing on SQLite, whose claims run under the write lock
/// (`BEGIN IMMEDIATE`).
pub(crate) fn row_lock(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// A fresh claim token (or row id): 128 random bits, hex.
pub(crate) fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Rows of one claim and the token that proves it.
pub(crate) struct Claimed {
    /// The selected columns of each row, as they were before the claim
    /// (`attempts` not yet counted; `state` and `holder` say whether it was
    /// lost by another front-end).
    pub(crate) rows: Vec<AnyRow>,
    pub(crate) token: String,
}

impl Store {
    /// Claims up to `limit` due rows of `queue` for `frontend` with a lease
    /// of `lease_ms`: selects `columns` (which must include `id`) of rows
    /// matching `filter` (an SQL condition on the row, `"1 = 1"` for all)
    /// whose placeholders start at `$2` and are bound by `bind`. See the
    /// module doc for the guarantees.
    #[allow(
        clippy::too_many_arguments,
        reason = "each says one thing of the claim"
    )]
    pub(crate) async fn claim_rows(
        &self,
        queue: &Queue,
        frontend: &str,
        limit: usize,
        lease_ms: i64,
        columns: &str,
        filter: &str,
        bind: impl for<'a> Fn(Query<'a, Any, AnyArguments<'a>>) -> Query<'a, Any, AnyArguments<'a>>,
    ) -> Result<Claimed> {
        let token = random_token();
        if limit == 0 {
            return Ok(Claimed {
                rows: Vec::new(),
                token,
            });
        }
        let Queue {
            table,
            noun,
            due,
            waiting,
            held,
            also_set,
            ..
        } = *queue;
        let catalog = self.platform();
        let now = db_now(catalog.backend);
        let lock = row_lock(catalog.backend);
        let what = || format!("failed to claim due {noun}s for front-end {frontend}");
        let mut tx = catalog.begin_write(&format!("claim due {noun}s")).await?;
        fail_lost_on_last_attempt(&mut tx, queue, filter, &bind, now, lock)
            .await
            .context(what)?;
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE ({filter}) AND \
             ((state IN ({waiting}) AND {due} <= {now}) \
              OR (state = {held} AND lease_expires_at_ms <= {now})) \
             ORDER BY {due} LIMIT $1{lock}"
        );
        let query = sqlx::query(&sql).bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = bind(query).fetch_all(&mut *tx).await.context(what)?;
        if !rows.is_empty() {
            let ids: Vec<String> = (0..rows.len()).map(|i| format!("${}", i + 4)).collect();
            let sql = format!(
                "UPDATE {table} SET state = {held}, holder = $1{also_set}, claim_token = $2, \
                 lease_expires_at_ms = {now} + $3, attempts = attempts + 1 WHERE id IN ({})",
                ids.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(frontend).bind(&token).bind(lease_ms);
            for row in &rows {
                query = query.bind(row.try_get::<String, _>("id").context(what)?);
            }
            query.execute(&mut *tx).await.context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(Claimed { rows, token })
    }

    /// Extends the lease of the claim of row `id` made with `token`.
    /// `false`: that claim is not current any more (its lease expired and
    /// the row was claimed again, or the claim ended).
    pub(crate) async fn renew_claim(
        &self,
        queue: &Queue,
        id: &str,
        token: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let Queue {
            table, noun, held, ..
        } = *queue;
        let now = db_now(self.platform().backend);
        let n = sqlx::query(&format!(
            "UPDATE {table} SET lease_expires_at_ms = {now} + $1 \
             WHERE id = $2 AND claim_token = $3 AND state = {held}"
        ))
        .bind(lease_ms)
        .bind(id)
        .bind(token)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to renew the lease of {noun} {id}"))?
        .rows_affected();
        Ok(n > 0)
    }

    /// Ends the claim of row `id` made with `token`: sets `set` (SQL
    /// assignments whose placeholders start at `$3`, bound by `bind`; `{now}`
    /// is the database clock) and gives the lease up. `false`: the claim was
    /// not current (nothing recorded). `doing` says what is recorded, for
    /// the error.
    pub(crate) async fn end_claim(
        &self,
        queue: &Queue,
        id: &str,
        token: &str,
        set: &str,
        bind: impl for<'a> Fn(Query<'a, Any, AnyArguments<'a>>) -> Query<'a, Any, AnyArguments<'a>>,
        doing: &str,
    ) -> Result<bool> {
        let Queue { table, held, .. } = *queue;
        let now = db_now(self.platform().backend);
        let set = set.replace("{now}", now);
        let sql = format!(
            "UPDATE {table} SET {set}, holder = NULL, claim_token = NULL, \
             lease_expires_at_ms = NULL WHERE id = $1 AND claim_token = $2 AND state = {held}"
        );
        let query = sqlx::query(&sql).bind(id).bind(token);
        let n = bind(query)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to record {doing}"))?
            .rows_affected();
        Ok(n > 0)
    }
}

/// Fails the held rows whose lease expired on their last attempt (their
/// front-end died): they are not handed out once more.
async fn fail_lost_on_last_attempt(
    tx: &mut Transaction<'static, Any>,
    queue: &Queue,
    filter: &str,
    bind: &impl for<'a> Fn(Query<'a, Any, AnyArguments<'a>>) -> Query<'a, Any, AnyArguments<'a>>,
    now: &str,
    lock: &str,
) -> sqlx::Result<()> {
    let Queue {
        table,
        held,
        lost_note,
        lost_also_set,
        ..
    } = *queue;
    let sql = format!(
        "SELECT id, holder FROM {table} WHERE ({filter}) AND state = {held} \
         AND lease_expires_at_ms <= {now} AND attempts >= max_attempts LIMIT $1{lock}"
    );
    let lost = bind(sqlx::query(&sql).bind(100_i64))
        .fetch_all(&mut **tx)
        .await?;
    for row in lost {
        let id: String = row.try_get("id")?;
        let holder: Option<String> = row.try_get("holder")?;
        sqlx::query(&format!(
            "UPDATE {table} SET state = 'failed', holder = NULL, claim_token = NULL, \
             lease_expires_at_ms = NULL, finished_at_ms = {now}, last_error = $1, \
             last_frontend = $2{lost_also_set} WHERE id = $3"
        ))
        .bind(format!(
            "front-end {} stopped renewing its lease during the last attempt (stopped or \
             killed){lost_note}",
            holder.as_deref().unwrap_or("?")
        ))
        .bind(&holder)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The claim mechanism on both backends, through its two queues.

    use std::collections::HashSet;
    use std::time::Duration;

    use crate::testing::TestDatabase;
    use crate::{JobOutcome, NewEmail, NewJob, Store, new_email_id};

    /// A store on fresh catalogs: SQLite files, or a throwaway PostgreSQL
    /// database (kept alive by the returned guard).
    async fn open(postgres: bool) -> (Box<dyn std::any::Any>, Store) {
        if postgres {
            let db = TestDatabase::create().await;
            let store = Store::open(&db.url).await.expect("open store");
            (Box::new(db), store)
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(&dir.path().display().to_string())
                .await
                .expect("open store");
            (Box::new(dir), store)
        }
    }

    fn job(max_attempts: i64) -> NewJob<'static> {
        NewJob {
            app: "a",
            path: "/work",
            payload: b"p",
            delay_ms: 0,
            max_attempts,
            idempotency_key: None,
        }
    }

    const DONE: JobOutcome = JobOutcome {
        ok: true,
        status: Some(200),
        error: None,
        retry_in_ms: 0,
    };

    async fn claims_are_disjoint_and_only_their_token_renews_or_ends(postgres: bool) {
        let (_guard, store) = open(postgres).await;
        for _ in 0..6 {
            store.enqueue_job(&job(3)).await.unwrap();
        }
        // Two front-ends claiming at once never get the same row.
        let (one, two) = tokio::join!(
            store.claim_jobs("fe1", &["a"], 3, 60_000),
            store.claim_jobs("fe2", &["a"], 3, 60_000),
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        let ids: HashSet<&str> = one.iter().chain(&two).map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), one.len() + two.len(), "a row was claimed twice");
        assert_eq!(ids.len(), 6);
        assert!(
            store
                .claim_jobs("fe3", &["a"], 3, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        // Rows of other apps are not claimed.
        assert!(
            store
                .claim_jobs("fe3", &["b"], 3, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        let c = &one[0];
        assert_eq!((c.attempt, c.lost_by.as_deref()), (1, None));
        assert!(
            !store
                .renew_job(&c.id, "not-the-token", 60_000)
                .await
                .unwrap()
        );
        assert!(store.renew_job(&c.id, &c.token, 60_000).await.unwrap());
        assert!(
            !store
                .finish_job(&c.id, "not-the-token", "fe1", &DONE)
                .await
                .unwrap()
        );
        assert!(
            store
                .finish_job(&c.id, &c.token, "fe1", &DONE)
                .await
                .unwrap()
        );
        // Ended: the token neither renews nor ends it again.
        assert!(!store.renew_job(&c.id, &c.token, 60_000).await.unwrap());
        assert!(
            !store
                .finish_job(&c.id, &c.token, "fe1", &DONE)
                .await
                .unwrap()
        );
    }

    async fn an_expired_lease_is_claimed_again_and_lost_on_the_last_attempt_fails(postgres: bool) {
        let (_guard, store) = open(postgres).await;
        let twice = store.enqueue_job(&job(2)).await.unwrap().id;
        let first = store.claim_jobs("fe1", &["a"], 1, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let again = store.claim_jobs("fe2", &["a"], 1, 1).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (
                again[0].id.as_str(),
                again[0].attempt,
                again[0].lost_by.as_deref()
            ),
            (twice.as_str(), 2, Some("fe1"))
        );
        // The older claim can touch nothing any more.
        assert!(
            !store
                .renew_job(&twice, &first[0].token, 60_000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_job(&twice, &first[0].token, "fe1", &DONE)
                .await
                .unwrap()
        );
        // Lost on its last attempt: failed, not handed out once more.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            store
                .claim_jobs("fe3", &["a"], 1, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        let record = store.job(&twice).await.unwrap();
        assert_eq!(record.state, runway_api::v1::JobState::Failed);
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("front-end fe2 stopped renewing its lease")),
            "{record:?}"
        );
    }

    async fn emails_use_the_same_claims(postgres: bool) {
        let (_guard, store) = open(postgres).await;
        let id = new_email_id();
        let to = vec!["a@example.com".to_string()];
        store
            .queue_email(&NewEmail {
                app: "a",
                id: &id,
                message_id: "<m@example.com>",
                to: &to,
                cc: &[],
                bcc: &[],
                reply_to: None,
                subject: "s",
                text: Some("t"),
                html: None,
                max_attempts: 1,
            })
            .await
            .unwrap();
        let claims = store.claim_emails("fe1", 5, 1).await.unwrap();
        assert_eq!(claims.len(), 1);
        assert!(
            store
                .claim_emails("fe2", 5, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Lost on its only attempt: failed, and the old claim records nothing.
        assert!(
            store
                .claim_emails("fe2", 5, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .email_sent(&id, &claims[0].token, "250 ok")
                .await
                .unwrap()
        );
        let record = store.email(&id).await.unwrap();
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("whether the SMTP server accepted it is unknown")),
            "{record:?}"
        );
    }

    macro_rules! both {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(false).await
                })*
            }
            mod postgres {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(true).await
                })*
            }
        };
    }

    both!(
        claims_are_disjoint_and_only_their_token_renews_or_ends,
        an_expired_lease_is_claimed_again_and_lost_on_the_last_attempt_fails,
        emails_use_the_same_claims,
    );
}
