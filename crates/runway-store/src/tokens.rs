//! API tokens (platform catalog). Only the token's hash is stored; the caller
//! hashes and checks scopes and revocation.

use runway_api::v1::Scope;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::{Store, now_ms};

/// A token (active or revoked).
///
/// Like every store record it is not `Serialize`: what leaves the process is
/// built field by field from it (the API's `TokenInfo`), so its hash can never
/// be sent or logged by accident. `Debug` shows the hash redacted.
///
/// ```compile_fail
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<runway_store::TokenRecord>();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub hash: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("hash", &"<redacted>")
            .field("created_at_ms", &self.created_at_ms)
            .field("last_used_at_ms", &self.last_used_at_ms)
            .field("revoked_at_ms", &self.revoked_at_ms)
            .finish()
    }
}

const TOKEN_COLUMNS: &str = "id, name, scope, hash, created_at_ms, last_used_at_ms, revoked_at_ms";

fn token_from_row(r: &AnyRow) -> sqlx::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: {
            let scope: String = r.try_get("scope")?;
            Scope::parse(&scope).ok_or_else(|| {
                sqlx::Error::Decode(
                    format!("unknown token scope {scope:?} in column tokens.scope").into(),
                )
            })?
        },
        hash: r.try_get("hash")?,
        created_at_ms: r.try_get("created_at_ms")?,
        last_used_at_ms: r.try_get("last_used_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
    })
}

impl Store {
    /// Creates a token. Names are unique among tokens that are not revoked
    /// ([`StoreError::Conflict`] otherwise).
    pub async fn create_token(&self, name: &str, scope: Scope, hash: &str) -> Result<TokenRecord> {
        let what = || format!("failed to create token {name:?}");
        let mut tx = self
            .platform()
            .begin_write(&format!("create token {name:?}"))
            .await?;
        let taken = sqlx::query("SELECT id FROM tokens WHERE name = $1 AND revoked_at_ms IS NULL")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?
            .is_some();
        let conflict = || StoreError::Conflict(format!("a token named {name:?} already exists"));
        if taken {
            tx.rollback().await.context(what)?;
            return Err(conflict());
        }
        let row = sqlx::query(&format!(
            "INSERT INTO tokens (name, scope, hash, created_at_ms) VALUES ($1, $2, $3, $4) \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(name)
        .bind(scope.as_str())
        .bind(hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        let row = match row {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                // The name was checked above, so the hash collided (or, on a
                // backend without write locks, the name was taken meanwhile).
                let name_taken =
                    sqlx::query("SELECT id FROM tokens WHERE name = $1 AND revoked_at_ms IS NULL")
                        .bind(name)
                        .fetch_optional(&self.platform().pool)
                        .await
                        .context(what)?
                        .is_some();
                return Err(if name_taken {
                    conflict()
                } else {
                    StoreError::Conflict(format!(
                        "cannot create token {name:?}: a token with the same hash already exists"
                    ))
                });
            }
            Err(e) => return Err(e).context(what),
        };
        let token = token_from_row(&row).context(what)?;
        tx.commit().await.context(what)?;
        Ok(token)
    }

    /// The token with this hash, revoked or not.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.platform().pool)
        .await
        .context(|| "failed to look up token by hash".to_string())?;
        row.as_ref()
            .map(token_from_row)
            .transpose()
            .context(|| "failed to decode token".to_string())
    }

    /// Sets the token's last use to now.
    pub async fn touch_token(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to record use of token {id}"))?;
        Ok(())
    }

    /// All tokens, revoked ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to list tokens".to_string())?;
        rows.iter()
            .map(token_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode tokens".to_string())
    }

    /// Revokes the active token with this id (if `id_or_name` is numeric) or
    /// name. Returns `false` if no active token matched. The last active
    /// admin token cannot be revoked ([`StoreError::Conflict`]): nobody could
    /// administer the environment any more.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        let what = || format!("failed to revoke token {id_or_name:?}");
        let mut tx = self
            .platform()
            .begin_write(&format!("revoke token {id_or_name:?}"))
            .await?;
        // Lock the active admin tokens first (a no-op write: SQLite holds the
        // write lock already, PostgreSQL locks the rows), so two revocations
        // cannot each leave the other's token as "the last one".
        sqlx::query(
            "UPDATE tokens SET revoked_at_ms = revoked_at_ms \
             WHERE scope = 'admin' AND revoked_at_ms IS NULL",
        )
        .execute(&mut *tx)
        .await
        .context(what)?;
        let target =
            match id_or_name.parse::<i64>() {
                Ok(id) => sqlx::query(
                    "SELECT id, name, scope FROM tokens WHERE id = $1 AND revoked_at_ms IS NULL",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await,
                Err(_) => sqlx::query(
                    "SELECT id, name, scope FROM tokens WHERE name = $1 AND revoked_at_ms IS NULL",
                )
                .bind(id_or_name)
                .fetch_optional(&mut *tx)
                .await,
            }
            .context(what)?;
        let Some(target) = target else {
            tx.rollback().await.context(what)?;
            return Ok(false);
        };
        let id: i64 = target.try_get("id").context(what)?;
        let name: String = target.try_get("name").context(what)?;
        let scope: String = target.try_get("scope").context(what)?;
        if scope == "admin" {
            let admins: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM tokens WHERE scope = 'admin' AND revoked_at_ms IS NULL",
            )
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get("n"))
            .context(what)?;
            if admins <= 1 {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "token '{name}' is the last admin token: revoking it would leave nobody able \
                     to administer the environment; create another admin token first \
                     (`runway token create NAME --scope admin`), then revoke this one"
                )));
            }
        }
        sqlx::query("UPDATE tokens SET revoked_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(true)
    }
}
