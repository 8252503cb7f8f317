//! Custom roles and teams. The built-in roles are not stored (the console
//! synthesizes them); levels, scopes and role names arrive here already
//! checked by the console and are kept as the text it gave.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::principals::{
    PRINCIPAL_COLUMNS, PrincipalRecord, principal_columns_of, principal_from_row,
};
use super::{ConsoleStore, flag, new_key};
use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::now_ms;

/// A custom role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub name: String,
    /// `(scope, level)`, ordered by scope.
    pub levels: Vec<(String, String)>,
    pub manage_infrastructure: bool,
    pub manage_users: bool,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
}

/// What creating a custom role takes.
#[derive(Debug, Clone)]
pub struct NewRole<'a> {
    pub name: &'a str,
    pub levels: &'a [(String, String)],
    pub manage_infrastructure: bool,
    pub manage_users: bool,
}

/// A member of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMemberRecord {
    pub principal: PrincipalRecord,
    pub role: String,
}

/// A team with its apps and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    /// App names, sorted.
    pub apps: Vec<String>,
    /// Sorted by member name.
    pub members: Vec<TeamMemberRecord>,
}

/// A principal's place in one team (what access decisions need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub team: String,
    pub apps: Vec<String>,
    pub role: String,
}

fn role_from_row(r: &AnyRow) -> sqlx::Result<RoleRecord> {
    Ok(RoleRecord {
        name: r.try_get("name")?,
        levels: Vec::new(),
        manage_infrastructure: r.try_get::<i64, _>("manage_infrastructure")? != 0,
        manage_users: r.try_get::<i64, _>("manage_users")? != 0,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
    })
}

const ROLE_COLUMNS: &str =
    "name_lower, name, manage_infrastructure, manage_users, created_at_ms, created_by";

impl ConsoleStore {
    /// Creates a custom role. [`StoreError::Conflict`] if a custom role of
    /// that name (any case) exists.
    pub async fn create_role(
        &self,
        role: &NewRole<'_>,
        created_by: Option<&str>,
    ) -> Result<RoleRecord> {
        let what = || format!("failed to create role {:?}", role.name);
        let mut tx = self.catalog().begin_write("create a role").await?;
        let inserted = sqlx::query(
            "INSERT INTO roles (name_lower, name, manage_infrastructure, manage_users, \
             created_at_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(role.name.to_lowercase())
        .bind(role.name)
        .bind(flag(role.manage_infrastructure))
        .bind(flag(role.manage_users))
        .bind(now_ms())
        .bind(created_by)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "a role named {:?} exists already (names are compared ignoring case); pick \
                     another name, or delete that role first",
                    role.name
                )));
            }
            Err(e) => return Err(e).context(what),
        }
        for (scope, level) in role.levels {
            sqlx::query("INSERT INTO role_levels (role_lower, scope, level) VALUES ($1, $2, $3)")
                .bind(role.name.to_lowercase())
                .bind(scope)
                .bind(level)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        tx.commit().await.context(what)?;
        self.role(role.name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("role {:?} vanished", role.name)))
    }

    /// Every custom role, by name.
    pub async fn roles(&self) -> Result<Vec<RoleRecord>> {
        let what = || "failed to list roles".to_string();
        let rows = sqlx::query(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles ORDER BY name_lower"
        ))
        .fetch_all(&self.catalog().pool)
        .await
        .context(what)?;
        let levels = sqlx::query(
            "SELECT role_lower, scope, level FROM role_levels ORDER BY role_lower, scope",
        )
        .fetch_all(&self.catalog().pool)
        .await
        .context(what)?;
        let mut out = Vec::new();
        for row in &rows {
            let mut role = role_from_row(row).context(what)?;
            let lower: String = row.try_get("name_lower").context(what)?;
            for l in &levels {
                if l.try_get::<String, _>("role_lower").context(what)? == lower {
                    role.levels.push((
                        l.try_get("scope").context(what)?,
                        l.try_get("level").context(what)?,
                    ));
                }
            }
            out.push(role);
        }
        Ok(out)
    }

    /// The custom role of this name (any case).
    pub async fn role(&self, name: &str) -> Result<Option<RoleRecord>> {
        let what = || format!("failed to read role {name:?}");
        let lower = name.to_lowercase();
        let Some(row) = sqlx::query(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles WHERE name_lower = $1"
        ))
        .bind(&lower)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(what)?
        else {
            return Ok(None);
        };
        let mut role = role_from_row(&row).context(what)?;
        let levels = sqlx::query(
            "SELECT scope, level FROM role_levels WHERE role_lower = $1 ORDER BY scope",
        )
        .bind(&lower)
        .fetch_all(&self.catalog().pool)
        .await
        .context(what)?;
        for l in &levels {
            role.levels.push((
                l.try_get("scope").context(what)?,
                l.try_get("level").context(what)?,
            ));
        }
        Ok(Some(role))
    }

    /// Deletes a custom role. [`StoreError::Conflict`] naming who holds it
    /// (active users and service accounts, team members) while anyone does; `false` if there is no such role.
    pub async fn delete_role(&self, name: &str) -> Result<bool> {
        let what = || format!("failed to delete role {name:?}");
        let mut tx = self.catalog().begin_write("delete a role").await?;
        let Some(row) = sqlx::query("SELECT name FROM roles WHERE name_lower = $1")
            .bind(name.to_lowercase())
            .fetch_optional(&mut *tx)
            .await
            .context(what)?
        else {
            tx.rollback().await.context(what)?;
            return Ok(false);
        };
        let stored: String = row.try_get("name").context(what)?;
        let holders = sqlx::query(
            "SELECT 'user ' || p.name AS who FROM users u JOIN principals p \
             ON p.id = u.principal_id WHERE u.role = $1 AND p.disabled_at_ms IS NULL \
             UNION ALL \
             SELECT 'service account ' || p.name AS who FROM service_account_roles s \
             JOIN principals p ON p.id = s.principal_id WHERE s.role = $2 \
             AND p.disabled_at_ms IS NULL \
             UNION ALL \
             SELECT p.kind || ' ' || p.name || ' in team ' || t.name AS who \
             FROM team_members m JOIN principals p ON p.id = m.principal_id \
             JOIN teams t ON t.id = m.team_id WHERE m.role = $3 \
             ORDER BY who",
        )
        .bind(&stored)
        .bind(&stored)
        .bind(&stored)
        .fetch_all(&mut *tx)
        .await
        .context(what)?;
        if !holders.is_empty() {
            let who = holders
                .iter()
                .map(|r| r.try_get::<String, _>("who"))
                .collect::<sqlx::Result<Vec<_>>>()
                .context(what)?;
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "role {stored} is held by {}: give them another role first (`runway user \
                 role`, `runway team add-member`)",
                who.join(", ").replace("service_account", "service account")
            )));
        }
        sqlx::query("DELETE FROM role_levels WHERE role_lower = $1")
            .bind(name.to_lowercase())
            .execute(&mut *tx)
            .await
            .context(what)?;
        sqlx::query("DELETE FROM roles WHERE name_lower = $1")
            .bind(name.to_lowercase())
            .execute(&mut *tx)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(true)
    }

    /// Gives a user another role (a name the console checked).
    pub async fn set_user_role(&self, user_id: &str, role: &str) -> Result<()> {
        sqlx::query("UPDATE users SET role = $1 WHERE principal_id = $2")
            .bind(role)
            .bind(user_id)
            .execute(&self.catalog().pool)
            .await
            .context(|| format!("failed to set the role of user {user_id}"))?;
        Ok(())
    }

    // --- teams ---------------------------------------------------------------

    /// Creates a team with its apps and members (`(principal id, role)`),
    /// in one transaction. [`StoreError::Conflict`] if the name is taken.
    pub async fn create_team(
        &self,
        name: &str,
        apps: &[String],
        members: &[(String, String)],
        created_by: Option<&str>,
    ) -> Result<TeamRecord> {
        let what = || format!("failed to create team {name:?}");
        let mut tx = self.catalog().begin_write("create a team").await?;
        let id = new_key();
        let inserted = sqlx::query(
            "INSERT INTO teams (id, name, created_at_ms, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .bind(created_by)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "a team named {name:?} exists already; pick another name"
                )));
            }
            Err(e) => return Err(e).context(what),
        }
        for app in apps {
            sqlx::query(
                "INSERT INTO team_apps (team_id, app) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(app)
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        for (principal, role) in members {
            upsert_member(&mut tx, &id, principal, role)
                .await
                .context(what)?;
        }
        tx.commit().await.context(what)?;
        self.team(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("team {name:?} vanished")))
    }

    /// Every team, by name.
    pub async fn teams(&self) -> Result<Vec<TeamRecord>> {
        let rows = sqlx::query("SELECT id FROM teams ORDER BY name")
            .fetch_all(&self.catalog().pool)
            .await
            .context(|| "failed to list teams".to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row
                .try_get("id")
                .context(|| "failed to list teams".to_string())?;
            if let Some(team) = self.team(&id).await? {
                out.push(team);
            }
        }
        Ok(out)
    }

    /// The team with this name or key.
    pub async fn team(&self, name_or_key: &str) -> Result<Option<TeamRecord>> {
        let what = || format!("failed to read team {name_or_key:?}");
        let pool = &self.catalog().pool;
        let Some(row) = sqlx::query(
            "SELECT id, name, created_at_ms, created_by FROM teams WHERE name = $1 OR id = $2",
        )
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(pool)
        .await
        .context(what)?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id").context(what)?;
        let apps = sqlx::query("SELECT app FROM team_apps WHERE team_id = $1 ORDER BY app")
            .bind(&id)
            .fetch_all(pool)
            .await
            .context(what)?
            .iter()
            .map(|r| r.try_get::<String, _>("app"))
            .collect::<sqlx::Result<Vec<_>>>()
            .context(what)?;
        let principal = principal_columns_of("p");
        let members = sqlx::query(&format!(
            "SELECT {principal}, m.role FROM team_members m JOIN principals p \
             ON p.id = m.principal_id WHERE m.team_id = $1 ORDER BY p.name, p.id"
        ))
        .bind(&id)
        .fetch_all(pool)
        .await
        .context(what)?
        .iter()
        .map(|r| {
            Ok(TeamMemberRecord {
                principal: principal_from_row(r)?,
                role: r.try_get("role")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .context(what)?;
        Ok(Some(TeamRecord {
            id,
            name: row.try_get("name").context(what)?,
            created_at_ms: row.try_get("created_at_ms").context(what)?,
            created_by: row.try_get("created_by").context(what)?,
            apps,
            members,
        }))
    }

    /// Deletes a team (its apps and memberships with it). `false` if none.
    pub async fn delete_team(&self, id: &str) -> Result<bool> {
        let what = || format!("failed to delete team {id}");
        let mut tx = self.catalog().begin_write("delete a team").await?;
        for table in ["team_apps", "team_members"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE team_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        let deleted = sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(what)?
            .rows_affected();
        tx.commit().await.context(what)?;
        Ok(deleted == 1)
    }

    /// Adds an app to a team. `false` if it was in it already.
    pub async fn add_team_app(&self, team_id: &str, app: &str) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO team_apps (team_id, app) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(team_id)
        .bind(app)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to add app {app:?} to team {team_id}"))?
        .rows_affected()
            == 1)
    }

    /// Removes an app from a team. `false` if it was not in it.
    pub async fn remove_team_app(&self, team_id: &str, app: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM team_apps WHERE team_id = $1 AND app = $2")
                .bind(team_id)
                .bind(app)
                .execute(&self.catalog().pool)
                .await
                .context(|| format!("failed to remove app {app:?} from team {team_id}"))?
                .rows_affected()
                == 1,
        )
    }

    /// Adds a member to a team, or changes its role there.
    pub async fn set_team_member(
        &self,
        team_id: &str,
        principal_id: &str,
        role: &str,
    ) -> Result<()> {
        let what = || format!("failed to set a member of team {team_id}");
        let mut tx = self.catalog().begin_write("set a team member").await?;
        upsert_member(&mut tx, team_id, principal_id, role)
            .await
            .context(what)?;
        tx.commit().await.context(what)
    }

    /// Removes a member from a team. `false` if it was not a member.
    pub async fn remove_team_member(&self, team_id: &str, principal_id: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND principal_id = $2")
                .bind(team_id)
                .bind(principal_id)
                .execute(&self.catalog().pool)
                .await
                .context(|| format!("failed to remove a member of team {team_id}"))?
                .rows_affected()
                == 1,
        )
    }

    /// The teams a principal is a member of, with their apps and its role there.
    pub async fn memberships(&self, principal_id: &str) -> Result<Vec<MembershipRecord>> {
        let what = || format!("failed to read the teams of principal {principal_id}");
        let pool = &self.catalog().pool;
        let rows = sqlx::query(
            "SELECT t.id, t.name, m.role FROM team_members m JOIN teams t ON t.id = m.team_id \
             WHERE m.principal_id = $1 ORDER BY t.name",
        )
        .bind(principal_id)
        .fetch_all(pool)
        .await
        .context(what)?;
        let mut out = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id").context(what)?;
            let apps = sqlx::query("SELECT app FROM team_apps WHERE team_id = $1 ORDER BY app")
                .bind(&id)
                .fetch_all(pool)
                .await
                .context(what)?
                .iter()
                .map(|r| r.try_get::<String, _>("app"))
                .collect::<sqlx::Result<Vec<_>>>()
                .context(what)?;
            out.push(MembershipRecord {
                team: row.try_get("name").context(what)?,
                apps,
                role: row.try_get("role").context(what)?,
            });
        }
        Ok(out)
    }

    /// An active principal (user or service account) by name or key.
    pub async fn active_principal(&self, name_or_key: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals \
             WHERE (name = $1 OR id = $2) AND disabled_at_ms IS NULL \
             AND kind IN ('user', 'service_account')"
        ))
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read principal {name_or_key:?}"))?;
        row.as_ref()
            .map(principal_from_row)
            .transpose()
            .context(|| "failed to decode a principal".to_string())
    }
}

async fn upsert_member(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    team_id: &str,
    principal_id: &str,
    role: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO team_members (team_id, principal_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (team_id, principal_id) DO UPDATE SET role = excluded.role",
    )
    .bind(team_id)
    .bind(principal_id)
    .bind(role)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A console catalog made before roles existed (migrations 1 and 2,
    /// with a service account and its token) migrates: the account keeps
    /// what it could do, as the Administrator role; its token stays valid
    /// (no end); the audit log cannot be changed.
    #[tokio::test]
    async fn existing_service_accounts_become_administrators() {
        let (_dir, store) = crate::console::migrated_from(
            2,
            &[
            "INSERT INTO principals (id, kind, name, created_at_ms) VALUES ('a', 'admin', 'admin', 1)",
            "INSERT INTO principals (id, kind, name, created_at_ms, created_by) \
             VALUES ('s', 'service_account', 'ci', 2, 'a')",
            "INSERT INTO console_tokens (principal_id, name, hash, created_at_ms) \
             VALUES ('s', 'default', 'h-ci', 2)",
            ],
        )
        .await;
        assert_eq!(
            store.service_account_role("s").await.unwrap().as_deref(),
            Some("Administrator")
        );
        assert_eq!(store.service_account_role("a").await.unwrap(), None);
        let (token, _) = store.console_token_by_hash("h-ci").await.unwrap().unwrap();
        assert_eq!(token.expires_at_ms, None);
        sqlx::query(
            "INSERT INTO audit_log (at_ms, principal_kind, principal_name, address, action, \
             outcome, status) VALUES (1, 'admin', 'admin', '127.0.0.1', 'test', 'done', 200)",
        )
        .execute(&store.catalog().pool)
        .await
        .unwrap();
        let err = sqlx::query("UPDATE audit_log SET outcome = 'refused'")
            .execute(&store.catalog().pool)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        store.close().await;
    }
}
