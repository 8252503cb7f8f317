//! Who acts on the console: its admin and service accounts, and their bearer
//! tokens. Only a token's SHA-256 is stored; the caller hashes.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{ConsoleStore, new_key};
use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::now_ms;

/// What kind of principal acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The console's administrator (created on first start).
    Admin,
    /// An automation identity (CI/CD, the LifeTime v2 API).
    ServiceAccount,
    /// An IT user (a person; logs in with a password, acts through sessions).
    User,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Admin => "admin",
            PrincipalKind::ServiceAccount => "service_account",
            PrincipalKind::User => "user",
        }
    }

    fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "admin" => Some(PrincipalKind::Admin),
            "service_account" => Some(PrincipalKind::ServiceAccount),
            "user" => Some(PrincipalKind::User),
            _ => None,
        }
    }
}

/// A principal (disabled ones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    pub id: String,
    pub kind: PrincipalKind,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    pub disabled_at_ms: Option<i64>,
}

/// A principal's token (active or revoked). Never serializable: it holds the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTokenRecord {
    pub id: i64,
    pub principal_id: String,
    pub name: String,
    pub hash: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// After a rotation: the end of the grace period, from which it is refused.
    pub expires_at_ms: Option<i64>,
}

pub(crate) const PRINCIPAL_COLUMNS: &str =
    "id, kind, name, description, created_at_ms, created_by, disabled_at_ms";

/// [`PRINCIPAL_COLUMNS`] of the table aliased `alias` in a join (`p.id, p.kind, …`).
pub(crate) fn principal_columns_of(alias: &str) -> String {
    PRINCIPAL_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
const TOKEN_COLUMNS: &str =
    "id, principal_id, name, hash, created_at_ms, last_used_at_ms, revoked_at_ms, expires_at_ms";

pub(crate) fn principal_from_row(r: &AnyRow) -> sqlx::Result<PrincipalRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(PrincipalRecord {
        id: r.try_get("id")?,
        kind: PrincipalKind::parse(&kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown principal kind {kind:?}").into())
        })?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
        disabled_at_ms: r.try_get("disabled_at_ms")?,
    })
}

fn token_from_row(r: &AnyRow) -> sqlx::Result<ConsoleTokenRecord> {
    Ok(ConsoleTokenRecord {
        id: r.try_get("id")?,
        principal_id: r.try_get("principal_id")?,
        name: r.try_get("name")?,
        hash: r.try_get("hash")?,
        created_at_ms: r.try_get("created_at_ms")?,
        last_used_at_ms: r.try_get("last_used_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
    })
}

impl ConsoleStore {
    /// Creates the admin principal and its first token (`hash`) if the
    /// console has no admin yet. Returns whether it did.
    pub async fn ensure_admin(&self, hash: &str) -> Result<bool> {
        let what = || "failed to create the console's admin".to_string();
        let mut tx = self.catalog().begin_write("create the admin").await?;
        let exists = sqlx::query("SELECT id FROM principals WHERE kind = 'admin'")
            .fetch_optional(&mut *tx)
            .await
            .context(what)?
            .is_some();
        if exists {
            tx.rollback().await.context(what)?;
            return Ok(false);
        }
        let id = new_key();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO principals (id, kind, name, description, created_at_ms) \
             VALUES ($1, 'admin', 'admin', 'the console administrator', $2)",
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        sqlx::query(
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ($1, 'admin', $2, $3)",
        )
        .bind(&id)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(true)
    }

    /// Creates a service account with its role (a name the console
    /// checked), in one transaction. Names are unique among principals that
    /// are not disabled ([`StoreError::Conflict`]).
    pub async fn create_service_account(
        &self,
        name: &str,
        description: &str,
        role: &str,
        created_by: Option<&str>,
    ) -> Result<PrincipalRecord> {
        let what = || format!("failed to create service account {name:?}");
        let mut tx = self
            .catalog()
            .begin_write("create a service account")
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO principals (id, kind, name, description, created_at_ms, created_by) \
             VALUES ($1, 'service_account', $2, $3, $4, $5) RETURNING {PRINCIPAL_COLUMNS}"
        ))
        .bind(new_key())
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .bind(created_by)
        .fetch_one(&mut *tx)
        .await;
        let account = match row {
            Ok(row) => principal_from_row(&row).context(what)?,
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "a service account, user or the admin is already named {name:?}; pick \
                     another name or disable that one first"
                )));
            }
            Err(e) => return Err(e).context(what),
        };
        sqlx::query("INSERT INTO service_account_roles (principal_id, role) VALUES ($1, $2)")
            .bind(&account.id)
            .bind(role)
            .execute(&mut *tx)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(account)
    }

    /// A service account's role (`None`: it has none recorded, which grants nothing).
    pub async fn service_account_role(&self, principal_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT role FROM service_account_roles WHERE principal_id = $1")
            .bind(principal_id)
            .fetch_optional(&self.catalog().pool)
            .await
            .context(|| format!("failed to read the role of service account {principal_id}"))?;
        row.map(|r| r.try_get::<String, _>("role"))
            .transpose()
            .context(|| "failed to decode a role".to_string())
    }

    /// Gives a service account another role.
    pub async fn set_service_account_role(&self, principal_id: &str, role: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_account_roles (principal_id, role) VALUES ($1, $2) \
             ON CONFLICT (principal_id) DO UPDATE SET role = excluded.role",
        )
        .bind(principal_id)
        .bind(role)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to set the role of service account {principal_id}"))?;
        Ok(())
    }

    /// Rotates a principal's tokens: adds a new one (`hash`, named `name`)
    /// and makes every active one without an earlier end expire at
    /// `old_expire_at_ms` (now: refused at once), in one transaction.
    pub async fn rotate_console_tokens(
        &self,
        principal_id: &str,
        name: &str,
        hash: &str,
        old_expire_at_ms: i64,
    ) -> Result<ConsoleTokenRecord> {
        let what = || format!("failed to rotate the tokens of {principal_id}");
        let mut tx = self.catalog().begin_write("rotate tokens").await?;
        sqlx::query(
            "UPDATE console_tokens SET expires_at_ms = $1 WHERE principal_id = $2 \
             AND revoked_at_ms IS NULL AND (expires_at_ms IS NULL OR expires_at_ms > $3)",
        )
        .bind(old_expire_at_ms)
        .bind(principal_id)
        .bind(old_expire_at_ms)
        .execute(&mut *tx)
        .await
        .context(what)?;
        let row = sqlx::query(&format!(
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(principal_id)
        .bind(name)
        .bind(hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .context(what)?;
        let token = token_from_row(&row).context(what)?;
        tx.commit().await.context(what)?;
        Ok(token)
    }

    /// The principal with this id.
    pub async fn principal(&self, id: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read principal {id}"))?;
        row.as_ref()
            .map(principal_from_row)
            .transpose()
            .context(|| "failed to decode a principal".to_string())
    }

    /// The active service account with this name or key.
    pub async fn service_account(&self, name_or_key: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals \
             WHERE kind = 'service_account' AND disabled_at_ms IS NULL AND (name = $1 OR id = $2)"
        ))
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read service account {name_or_key:?}"))?;
        row.as_ref()
            .map(principal_from_row)
            .transpose()
            .context(|| "failed to decode a service account".to_string())
    }

    /// Every service account, disabled ones included, oldest first.
    pub async fn service_accounts(&self) -> Result<Vec<PrincipalRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE kind = 'service_account' \
             ORDER BY created_at_ms, id"
        ))
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list service accounts".to_string())?;
        rows.iter()
            .map(principal_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode service accounts".to_string())
    }

    /// Disables a service account and revokes all its tokens, in one
    /// transaction. `false` if no active service account has that name or key.
    pub async fn disable_service_account(&self, name_or_key: &str) -> Result<bool> {
        let what = || format!("failed to disable service account {name_or_key:?}");
        let Some(account) = self.service_account(name_or_key).await? else {
            return Ok(false);
        };
        let mut tx = self
            .catalog()
            .begin_write("disable a service account")
            .await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE principals SET disabled_at_ms = $1 WHERE id = $2 AND disabled_at_ms IS NULL",
        )
        .bind(now)
        .bind(&account.id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        sqlx::query(
            "UPDATE console_tokens SET revoked_at_ms = $1 \
             WHERE principal_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now)
        .bind(&account.id)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(changed == 1)
    }

    /// Adds a token (`hash`) to an active principal.
    pub async fn create_console_token(
        &self,
        principal_id: &str,
        name: &str,
        hash: &str,
    ) -> Result<ConsoleTokenRecord> {
        let what = || format!("failed to create token {name:?}");
        let mut tx = self.catalog().begin_write("create a token").await?;
        let active =
            sqlx::query("SELECT id FROM principals WHERE id = $1 AND disabled_at_ms IS NULL")
                .bind(principal_id)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?
                .is_some();
        if !active {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "no active principal {principal_id}: it does not exist or was disabled"
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(principal_id)
        .bind(name)
        .bind(hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        let row = match row {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(
                    "a token with the same hash already exists; create another token".into(),
                ));
            }
            Err(e) => return Err(e).context(what),
        };
        let token = token_from_row(&row).context(what)?;
        tx.commit().await.context(what)?;
        Ok(token)
    }

    /// The token with this hash (revoked or not) and its principal.
    pub async fn console_token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<(ConsoleTokenRecord, PrincipalRecord)>> {
        let what = || "failed to look up a token by hash".to_string();
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM console_tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(what)?;
        let Some(row) = row else { return Ok(None) };
        let token = token_from_row(&row).context(what)?;
        let principal = self
            .principal(&token.principal_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {} has no principal", token.id)))?;
        Ok(Some((token, principal)))
    }

    /// A principal's tokens, revoked ones included, oldest first.
    pub async fn console_tokens(&self, principal_id: &str) -> Result<Vec<ConsoleTokenRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM console_tokens WHERE principal_id = $1 ORDER BY id"
        ))
        .bind(principal_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list tokens".to_string())?;
        rows.iter()
            .map(token_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode tokens".to_string())
    }

    /// Revokes the principal's active token with this id. `false` if none matched.
    pub async fn revoke_console_token(&self, principal_id: &str, token_id: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE console_tokens SET revoked_at_ms = $1 \
             WHERE id = $2 AND principal_id = $3 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(token_id)
        .bind(principal_id)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to revoke token {token_id}"))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Sets the token's last use to now.
    pub async fn touch_console_token(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE console_tokens SET last_used_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.catalog().pool)
            .await
            .context(|| format!("failed to record use of token {id}"))?;
        Ok(())
    }
}
