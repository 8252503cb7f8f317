//! IT users (principals of kind `user`), their login sessions and the
//! failed-login counters that throttle password guessing. Passwords arrive
//! here already hashed (argon2id, by the console); session secrets as their
//! SHA-256. Nothing secret is stored in the clear.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::principals::{PrincipalRecord, principal_columns_of, principal_from_row};
use super::{ConsoleStore, new_key};
use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::now_ms;

/// A user (disabled ones included). Holds the password hash: never serializable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The principal; `name` is the username, `disabled_at_ms` the state.
    pub principal: PrincipalRecord,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub password_changed_at_ms: i64,
    pub locked_at_ms: Option<i64>,
}

/// What creating a user takes.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
}

/// A login session. Holds the secret's hash: never serializable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: i64,
    pub hash: String,
    pub principal_id: String,
    pub address: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub expires_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub ended_reason: Option<String>,
}

/// Whose failed logins are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    /// Per username (known or not).
    User,
    /// Per client address.
    Address,
}

impl FailureScope {
    fn as_str(self) -> &'static str {
        match self {
            FailureScope::User => "user",
            FailureScope::Address => "address",
        }
    }
}

const SESSION_COLUMNS: &str = "id, hash, principal_id, address, created_at_ms, last_seen_at_ms, \
     expires_at_ms, ended_at_ms, ended_reason";

fn user_columns() -> String {
    let principal = principal_columns_of("p");
    format!(
        "{principal}, u.display_name, u.email, u.role, u.password_hash, \
         u.password_changed_at_ms, u.locked_at_ms"
    )
}

fn user_from_row(r: &AnyRow) -> sqlx::Result<UserRecord> {
    Ok(UserRecord {
        principal: principal_from_row(r)?,
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        password_hash: r.try_get("password_hash")?,
        password_changed_at_ms: r.try_get("password_changed_at_ms")?,
        locked_at_ms: r.try_get("locked_at_ms")?,
    })
}

fn session_from_row(r: &AnyRow) -> sqlx::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.try_get("id")?,
        hash: r.try_get("hash")?,
        principal_id: r.try_get("principal_id")?,
        address: r.try_get("address")?,
        created_at_ms: r.try_get("created_at_ms")?,
        last_seen_at_ms: r.try_get("last_seen_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        ended_at_ms: r.try_get("ended_at_ms")?,
        ended_reason: r.try_get("ended_reason")?,
    })
}

impl ConsoleStore {
    /// Creates a user. Usernames are unique among principals that are not
    /// disabled ([`StoreError::Conflict`]).
    pub async fn create_user(
        &self,
        user: &NewUser<'_>,
        created_by: Option<&str>,
    ) -> Result<UserRecord> {
        let what = || format!("failed to create user {:?}", user.name);
        let mut tx = self.catalog().begin_write("create a user").await?;
        let id = new_key();
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO principals (id, kind, name, description, created_at_ms, created_by) \
             VALUES ($1, 'user', $2, '', $3, $4)",
        )
        .bind(&id)
        .bind(user.name)
        .bind(now)
        .bind(created_by)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "a user, service account or the admin is already named {:?}; pick another \
                     username (or disable that principal first)",
                    user.name
                )));
            }
            Err(e) => return Err(e).context(what),
        }
        sqlx::query(
            "INSERT INTO users (principal_id, display_name, email, role, password_hash, \
             password_changed_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user.display_name)
        .bind(user.email)
        .bind(user.role)
        .bind(user.password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        self.user_by_id(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id} vanished after creation")))
    }

    /// Whether any user exists (disabled ones included).
    pub async fn has_users(&self) -> Result<bool> {
        Ok(sqlx::query("SELECT principal_id FROM users LIMIT 1")
            .fetch_optional(&self.catalog().pool)
            .await
            .context(|| "failed to look for users".to_string())?
            .is_some())
    }

    /// The user with this principal id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users u JOIN principals p ON p.id = u.principal_id WHERE p.id = $1",
            user_columns()
        ))
        .bind(id)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read user {id}"))?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .context(|| "failed to decode a user".to_string())
    }

    /// The user with this username or key: the active one if there is one,
    /// else the most recently disabled.
    pub async fn user(&self, name_or_key: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users u JOIN principals p ON p.id = u.principal_id \
             WHERE p.name = $1 OR p.id = $2 \
             ORDER BY CASE WHEN p.disabled_at_ms IS NULL THEN 0 ELSE 1 END, \
             p.disabled_at_ms DESC LIMIT 1",
            user_columns()
        ))
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read user {name_or_key:?}"))?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .context(|| "failed to decode a user".to_string())
    }

    /// Every user, disabled ones included, oldest first.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM users u JOIN principals p ON p.id = u.principal_id \
             ORDER BY p.created_at_ms, p.id",
            user_columns()
        ))
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list users".to_string())?;
        rows.iter()
            .map(user_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode users".to_string())
    }

    /// Disables a user and ends all its sessions, in one transaction.
    /// `false` if it was already disabled.
    pub async fn disable_user(&self, id: &str) -> Result<bool> {
        let what = || format!("failed to disable user {id}");
        let mut tx = self.catalog().begin_write("disable a user").await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE principals SET disabled_at_ms = $1 \
             WHERE id = $2 AND kind = 'user' AND disabled_at_ms IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        end_sessions_in(&mut tx, id, None, "user disabled", now)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(changed == 1)
    }

    /// Enables a disabled user. [`StoreError::Conflict`] if another active
    /// principal took the name meanwhile; `false` if it was not disabled.
    pub async fn enable_user(&self, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE principals SET disabled_at_ms = NULL \
             WHERE id = $1 AND kind = 'user' AND disabled_at_ms IS NOT NULL",
        )
        .bind(id)
        .execute(&self.catalog().pool)
        .await;
        match r {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "another active user, service account or the admin has this name now; disable \
                 or rename that one first"
                    .into(),
            )),
            Err(e) => Err(e).context(|| format!("failed to enable user {id}")),
        }
    }

    /// Locks a user out (after too many failed logins) unless already locked.
    pub async fn lock_user(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET locked_at_ms = $1 WHERE principal_id = $2 AND locked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to lock user {id}"))?;
        Ok(())
    }

    /// Clears a user's lockout and failed-login count. `false` if the user
    /// was neither locked nor had failures.
    pub async fn unlock_user(&self, id: &str, name: &str) -> Result<bool> {
        let what = || format!("failed to unlock user {name:?}");
        let mut tx = self.catalog().begin_write("unlock a user").await?;
        let unlocked = sqlx::query(
            "UPDATE users SET locked_at_ms = NULL WHERE principal_id = $1 \
             AND locked_at_ms IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        let cleared = sqlx::query("DELETE FROM login_failures WHERE scope = 'user' AND key = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .context(what)?
            .rows_affected();
        tx.commit().await.context(what)?;
        Ok(unlocked + cleared > 0)
    }

    /// Sets a user's password hash and ends every session of the user but
    /// `keep` (the session that changed it), in one transaction. Returns how
    /// many sessions ended.
    pub async fn set_password(&self, id: &str, hash: &str, keep: Option<i64>) -> Result<u64> {
        let what = || format!("failed to change the password of user {id}");
        let mut tx = self.catalog().begin_write("change a password").await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at_ms = $2 \
             WHERE principal_id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!("no user {id}")));
        }
        let ended = end_sessions_in(&mut tx, id, keep, "password changed", now)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(ended)
    }

    /// Starts a session (`hash` of its secret) for a principal.
    pub async fn create_session(
        &self,
        principal_id: &str,
        hash: &str,
        address: &str,
        expires_at_ms: i64,
    ) -> Result<SessionRecord> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO console_sessions (hash, principal_id, address, created_at_ms, \
             last_seen_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(hash)
        .bind(principal_id)
        .bind(address)
        .bind(now)
        .bind(now)
        .bind(expires_at_ms)
        .fetch_one(&self.catalog().pool)
        .await
        .context(|| "failed to create a session".to_string())?;
        session_from_row(&row).context(|| "failed to decode a session".to_string())
    }

    /// The session with this hash (ended or not) and its principal.
    pub async fn session_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<(SessionRecord, PrincipalRecord)>> {
        let what = || "failed to look up a session".to_string();
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(what)?;
        let Some(row) = row else { return Ok(None) };
        let session = session_from_row(&row).context(what)?;
        let principal = self
            .principal(&session.principal_id)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("session {} has no principal", session.id))
            })?;
        Ok(Some((session, principal)))
    }

    /// A principal's sessions that have not ended, oldest first.
    pub async fn open_sessions(&self, principal_id: &str) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions \
             WHERE principal_id = $1 AND ended_at_ms IS NULL ORDER BY id"
        ))
        .bind(principal_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list sessions".to_string())?;
        rows.iter()
            .map(session_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode sessions".to_string())
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, id: i64, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET last_seen_at_ms = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(id)
            .execute(&self.catalog().pool)
            .await
            .context(|| format!("failed to record activity on session {id}"))?;
        Ok(())
    }

    /// Ends one session. `false` if it had already ended.
    pub async fn end_session(&self, id: i64, reason: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE console_sessions SET ended_at_ms = $1, ended_reason = $2 \
             WHERE id = $3 AND ended_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(id)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to end session {id}"))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Ends every open session of a principal (but `keep`). Returns how many.
    pub async fn end_sessions(
        &self,
        principal_id: &str,
        keep: Option<i64>,
        reason: &str,
    ) -> Result<u64> {
        let what = || "failed to end sessions".to_string();
        let mut tx = self.catalog().begin_write("end sessions").await?;
        let n = end_sessions_in(&mut tx, principal_id, keep, reason, now_ms())
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(n)
    }

    /// Failed logins in a row for `key` in `scope`, and the last one's time;
    /// failures older than `since_ms` do not count (`None`).
    pub async fn login_failures(
        &self,
        scope: FailureScope,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT failures, last_failure_at_ms FROM login_failures \
             WHERE scope = $1 AND key = $2 AND last_failure_at_ms >= $3",
        )
        .bind(scope.as_str())
        .bind(key)
        .bind(since_ms)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| "failed to read failed logins".to_string())?;
        row.map(|r| {
            Ok::<_, sqlx::Error>((r.try_get("failures")?, r.try_get("last_failure_at_ms")?))
        })
        .transpose()
        .context(|| "failed to decode failed logins".to_string())
    }

    /// Counts one more failed login for `key` in `scope` (starting again at
    /// one if the previous failure is older than `since_ms`). Returns the count.
    pub async fn record_login_failure(
        &self,
        scope: FailureScope,
        key: &str,
        since_ms: i64,
    ) -> Result<i64> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO login_failures (scope, key, failures, last_failure_at_ms) \
             VALUES ($1, $2, 1, $3) ON CONFLICT (scope, key) DO UPDATE SET \
             failures = CASE WHEN login_failures.last_failure_at_ms < $4 THEN 1 \
             ELSE login_failures.failures + 1 END, last_failure_at_ms = $5 \
             RETURNING failures",
        )
        .bind(scope.as_str())
        .bind(key)
        .bind(now)
        .bind(since_ms)
        .bind(now)
        .fetch_one(&self.catalog().pool)
        .await
        .context(|| "failed to record a failed login".to_string())?;
        row.try_get("failures")
            .context(|| "failed to decode failed logins".to_string())
    }

    /// The failed-login row of `key` in `scope` as stored (however old):
    /// failures in a row and the last one's time. For [`Self::claim_login_failure`].
    pub async fn login_failure_row(
        &self,
        scope: FailureScope,
        key: &str,
    ) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT failures, last_failure_at_ms FROM login_failures \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope.as_str())
        .bind(key)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| "failed to read failed logins".to_string())?;
        row.map(|r| {
            Ok::<_, sqlx::Error>((r.try_get("failures")?, r.try_get("last_failure_at_ms")?))
        })
        .transpose()
        .context(|| "failed to decode failed logins".to_string())
    }

    /// Counts one more failed login for `key` in `scope` **only if** the
    /// row is still `seen` (as [`Self::login_failure_row`] read it; `None`:
    /// no row): a compare-and-swap, so of parallel attempts that read the
    /// same row exactly one records. The count restarts at one when the
    /// seen failure is older than `since_ms`. Returns the new count, or
    /// `None` if another attempt changed the row first (read it again).
    pub async fn claim_login_failure(
        &self,
        scope: FailureScope,
        key: &str,
        seen: Option<(i64, i64)>,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let what = || "failed to record a failed login".to_string();
        let (count, done) = match seen {
            None => {
                let done = sqlx::query(
                    "INSERT INTO login_failures (scope, key, failures, last_failure_at_ms) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (scope, key) DO NOTHING",
                )
                .bind(scope.as_str())
                .bind(key)
                .bind(now_ms)
                .execute(&self.catalog().pool)
                .await
                .context(what)?;
                (1, done.rows_affected())
            }
            Some((failures, last)) => {
                let count = if last < since_ms { 1 } else { failures + 1 };
                let done = sqlx::query(
                    "UPDATE login_failures SET failures = $1, last_failure_at_ms = $2 \
                     WHERE scope = $3 AND key = $4 AND failures = $5 \
                     AND last_failure_at_ms = $6",
                )
                .bind(count)
                .bind(now_ms)
                .bind(scope.as_str())
                .bind(key)
                .bind(failures)
                .bind(last)
                .execute(&self.catalog().pool)
                .await
                .context(what)?;
                (count, done.rows_affected())
            }
        };
        Ok((done == 1).then_some(count))
    }

    /// Takes back one failure counted by [`Self::claim_login_failure`] for
    /// an attempt that turned out not to fail (the right password), or that
    /// was refused before its password was checked.
    pub async fn release_login_failure(&self, scope: FailureScope, key: &str) -> Result<()> {
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1 \
             WHERE scope = $1 AND key = $2 AND failures > 0",
        )
        .bind(scope.as_str())
        .bind(key)
        .execute(&self.catalog().pool)
        .await
        .context(|| "failed to take back a failed login".to_string())?;
        Ok(())
    }

    /// Forgets the failed logins of `key` in `scope` (after a success).
    pub async fn clear_login_failures(&self, scope: FailureScope, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE scope = $1 AND key = $2")
            .bind(scope.as_str())
            .bind(key)
            .execute(&self.catalog().pool)
            .await
            .context(|| "failed to clear failed logins".to_string())?;
        Ok(())
    }
}

async fn end_sessions_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    principal_id: &str,
    keep: Option<i64>,
    reason: &str,
    now: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE console_sessions SET ended_at_ms = $1, ended_reason = $2 \
         WHERE principal_id = $3 AND ended_at_ms IS NULL AND id <> $4",
    )
    .bind(now)
    .bind(reason)
    .bind(principal_id)
    .bind(keep.unwrap_or(-1))
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    /// A console catalog made before users existed (migration 1 only, with
    /// the admin, a service account, their tokens and a pipeline) migrates:
    /// its principals and tokens stay, and users can be added.
    #[tokio::test]
    async fn the_identity_migration_keeps_existing_principals() {
        let (_dir, store) = crate::console::migrated_from(
            1,
            &[
            "INSERT INTO principals (id, kind, name, created_at_ms) VALUES ('a', 'admin', 'admin', 1)",
            "INSERT INTO principals (id, kind, name, created_at_ms, created_by) \
             VALUES ('s', 'service_account', 'ci', 2, 'a')",
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ('a', 'admin', 'h-admin', 1)",
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ('s', 'default', 'h-ci', 2)",
            "INSERT INTO pipelines (id, name, created_at_ms, created_by) VALUES ('p', 'main', 3, 's')",
            ],
        )
        .await;
        let (token, principal) = store.console_token_by_hash("h-ci").await.unwrap().unwrap();
        assert_eq!(
            (token.name.as_str(), principal.name.as_str()),
            ("default", "ci")
        );
        assert_eq!(principal.created_by.as_deref(), Some("a"));
        let user = store
            .create_user(
                &super::NewUser {
                    name: "ada",
                    display_name: "Ada",
                    email: "ada@example.com",
                    role: "Developer",
                    password_hash: "$argon2id$stand-in",
                },
                Some("a"),
            )
            .await
            .unwrap();
        assert_eq!(user.principal.kind.as_str(), "user");
        // A name stays unique across kinds.
        assert!(matches!(
            store
                .create_user(
                    &super::NewUser {
                        name: "ci",
                        display_name: "",
                        email: "ci@example.com",
                        role: "Developer",
                        password_hash: "x",
                    },
                    None,
                )
                .await,
            Err(crate::StoreError::Conflict(_))
        ));
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&store.catalog().pool)
            .await
            .unwrap();
        assert!(
            dangling.is_empty(),
            "{} dangling references",
            dangling.len()
        );
        store.close().await;
    }
}
