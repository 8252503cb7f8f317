//! Bearer authentication of the console's API.
//!
//! Two kinds of bearer token: a console token, `rwc_` + 64 hex digits
//! (the admin's and service accounts'), and a login session of an IT user,
//! `rws_` + 64 hex digits ([`crate::users`]); the catalog keeps only their
//! SHA-256. Every route takes a [`Caller`] (any active principal) or an
//! [`AdminCaller`] (one whose role gives the right to manage users and
//! roles), and checks what the action needs with [`require`], the one
//! enforcement point (built on [`crate::access::effective_level`]), which
//! also writes every refusal to the audit log.

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;
use runway_store::console::principals::{ConsoleTokenRecord, PrincipalKind, PrincipalRecord};
use runway_store::console::users::{SessionRecord, UserRecord};
use runway_store::now_ms;
use sha2::{Digest as _, Sha256};

use std::collections::BTreeMap;

use crate::Console;
use crate::access::{
    EnvClass, EnvRef, Grants, Level, effective_level, may_manage_infrastructure, may_manage_users,
};
use crate::error::{ApiError, ApiResult};
use crate::users::SESSION_PREFIX;

/// Prefix of every console token.
pub const TOKEN_PREFIX: &str = "rwc_";
/// `last_used` is refreshed at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new random token (the secret, shown once) and its hash (what is stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The principal behind an authenticated request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: PrincipalRecord,
    /// The console token it used (the admin, service accounts).
    pub token: Option<ConsoleTokenRecord>,
    /// The login session it used (users).
    pub session: Option<SessionRecord>,
    /// The user, when the principal is one.
    pub user: Option<UserRecord>,
    /// Its role and team roles: what [`crate::access::effective_level`] decides on.
    pub grants: crate::access::Grants,
    /// The client's address (`unknown` outside a request).
    pub address: String,
    /// The request's audit row, filled as the request is handled.
    pub audit: Option<crate::audit::AuditSlot>,
}

impl Caller {
    /// Notes a configuration change on the request's audit row (before and
    /// after; never secret values).
    pub fn note_change(&self, before: serde_json::Value, after: serde_json::Value) {
        if let Some(slot) = &self.audit {
            slot.change(before, after);
        }
    }

    /// Whether the caller may manage users, roles, teams and service
    /// accounts: the console's admin, or a principal whose own role has
    /// that right (the Administrator role, or a custom role).
    pub fn is_admin(&self) -> bool {
        crate::access::may_manage_users(&self.grants)
    }
}

/// Any authenticated principal, whatever its role: for what a principal does
/// to itself (who am I, its own user record and password, its sessions).
#[derive(Debug, Clone)]
pub struct Myself(pub Caller);

/// A [`Caller`] that may manage users and roles ([`Caller::is_admin`]).
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Authenticates the bearer token of a request.
pub async fn authenticate(
    console: &Console,
    headers: &http::HeaderMap,
) -> Result<Caller, ApiError> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (a session token from \
             logging in, the console's admin token, or a service account's token)",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| unauthorized("malformed Authorization header: expected `Bearer <token>`"))?;
    if token.starts_with(SESSION_PREFIX) {
        return authenticate_session(console, token).await;
    }
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(unauthorized(format!(
            "invalid token: console tokens start with {TOKEN_PREFIX} and sessions with \
             {SESSION_PREFIX} (an environment's rwt_ token is not valid here)"
        )));
    }
    let (record, principal) = console
        .store()
        .console_token_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| unauthorized("invalid token: no such token on this console"))?;
    if record.revoked_at_ms.is_some() {
        return Err(unauthorized(format!(
            "token '{}' of {} '{}' has been revoked; create a new one",
            record.name,
            principal.kind.as_str().replace('_', " "),
            principal.name
        )));
    }
    let now = now_ms();
    if let Some(end) = record.expires_at_ms
        && now >= end
    {
        return Err(unauthorized(format!(
            "token '{}' of {} '{}' was replaced by a rotation and its grace period ended {} s \
             ago; use the token the rotation printed",
            record.name,
            principal.kind.as_str().replace('_', " "),
            principal.name,
            (now - end) / 1000
        )));
    }
    if principal.disabled_at_ms.is_some() {
        return Err(unauthorized(format!(
            "{} '{}' is disabled",
            principal.kind.as_str().replace('_', " "),
            principal.name
        )));
    }
    if record
        .last_used_at_ms
        .is_none_or(|t| now - t > TOUCH_EVERY_MS)
    {
        console.store().touch_console_token(record.id).await?;
    }
    let grants = crate::roles::grants_for(console, &principal, None).await?;
    Ok(Caller {
        principal,
        token: Some(record),
        session: None,
        user: None,
        grants,
        address: "unknown".into(),
        audit: None,
    })
}

fn log_in_again(why: String) -> ApiError {
    unauthorized(format!(
        "{why}; log in again (`runway login URL --user NAME`)"
    ))
}

/// Authenticates a login session's token (`rws_…`): the one session path of
/// bearer tokens and of the pages' cookie (expiry, idle limit, ended
/// sessions, disabled users).
pub(crate) async fn authenticate_session(
    console: &Console,
    token: &str,
) -> Result<Caller, ApiError> {
    let (session, principal) = console
        .store()
        .session_by_hash(&hash_token(token))
        .await?
        .ok_or_else(|| log_in_again("invalid session: no such session on this console".into()))?;
    if let Some(reason) = &session.ended_reason {
        return Err(log_in_again(format!(
            "session of user '{}' has ended ({reason})",
            principal.name
        )));
    }
    if session.ended_at_ms.is_some() {
        return Err(log_in_again(format!(
            "session of user '{}' has ended",
            principal.name
        )));
    }
    let identity = console.identity();
    let now = now_ms();
    let idle_ms = identity.session_idle.as_millis() as i64;
    let expired = if now >= session.expires_at_ms {
        Some(format!(
            "expired {} s after login (sessions last at most {} s)",
            (now - session.created_at_ms) / 1000,
            identity.session_absolute.as_secs()
        ))
    } else if now - session.last_seen_at_ms >= idle_ms {
        Some(format!(
            "expired after {} s without a request (the idle limit is {} s)",
            (now - session.last_seen_at_ms) / 1000,
            identity.session_idle.as_secs()
        ))
    } else {
        None
    };
    if let Some(why) = expired {
        console.store().end_session(session.id, "expired").await?;
        return Err(log_in_again(format!(
            "session of user '{}' {why}",
            principal.name
        )));
    }
    if principal.disabled_at_ms.is_some() {
        return Err(unauthorized(format!(
            "user '{}' is disabled",
            principal.name
        )));
    }
    let user = console.store().user_by_id(&principal.id).await?;
    if now - session.last_seen_at_ms >= (idle_ms / 4).min(TOUCH_EVERY_MS) {
        console.store().touch_session(session.id, now).await?;
    }
    let grants = crate::roles::grants_for(console, &principal, user.as_ref()).await?;
    Ok(Caller {
        principal,
        token: None,
        session: Some(session),
        user,
        grants,
        address: "unknown".into(),
        audit: None,
    })
}

/// Authenticates a request's bearer token and ties the caller to the
/// request's audit row and client address.
pub(crate) async fn authenticate_parts(
    console: &Console,
    parts: &Parts,
) -> Result<Caller, ApiError> {
    let caller = authenticate(console, &parts.headers).await?;
    Ok(attach(caller, parts))
}

/// Ties an authenticated caller to the request: its client address and
/// its audit row.
pub(crate) fn attach(mut caller: Caller, parts: &Parts) -> Caller {
    caller.address = parts
        .extensions
        .get::<runway_server::PeerAddr>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string());
    if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
        slot.identify(&caller);
        caller.audit = Some(slot.clone());
    }
    caller
}

/// Every route that touches environments, apps or plans takes a `Caller`.
impl FromRequestParts<Console> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        authenticate_parts(console, parts).await
    }
}

impl FromRequestParts<Console> for Myself {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        authenticate_parts(console, parts).await.map(Myself)
    }
}

impl FromRequestParts<Console> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, ApiError> {
        let caller = authenticate_parts(console, parts).await?;
        as_admin(console, caller).await
    }
}

/// The caller as one that may manage users and roles, or the refusal: what
/// the [`AdminCaller`] extractor checks, for the pages too.
pub async fn as_admin(console: &Console, caller: Caller) -> ApiResult<AdminCaller> {
    require(
        console,
        &caller,
        "manage users, roles, teams and service accounts",
        Need::ManageUsers,
    )
    .await?;
    Ok(AdminCaller(caller))
}

// --- enforcement ---------------------------------------------------------------

/// What an action needs of its caller.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// At least `level` on environment `env` (its name), for `app` (`None`:
    /// the environment itself, where only the caller's own role counts).
    Level {
        env: &'a str,
        app: Option<&'a str>,
        level: Level,
    },
    /// The right to manage environments and pipelines.
    ManageInfrastructure,
    /// The right to manage users, roles, teams and service accounts.
    ManageUsers,
}

impl Caller {
    /// "user 'ada' (role Developer)", "service account 'ci' (role Deployer)",
    /// "the console's admin".
    pub fn describe(&self) -> String {
        match self.principal.kind {
            PrincipalKind::Admin => "the console's admin".to_string(),
            kind => format!(
                "{} '{}' (role {})",
                kind.as_str().replace('_', " "),
                self.principal.name,
                self.grants.role.name
            ),
        }
    }
}

/// The environment `env` as access decisions see it (name and class).
async fn env_class(console: &Console, env: &str) -> ApiResult<EnvClass> {
    Ok(crate::roles::environment_classes(console)
        .await?
        .into_iter()
        .find(|(name, _)| name == env)
        .map_or(EnvClass::None, |(_, class)| class))
}

/// The caller's level on `env` for `app` ([`effective_level`]).
pub async fn level_of(
    console: &Console,
    caller: &Caller,
    env: &str,
    app: Option<&str>,
) -> ApiResult<Level> {
    let class = env_class(console, env).await?;
    Ok(effective_level(
        &caller.grants,
        app,
        &EnvRef { name: env, class },
    ))
}

/// A principal's levels on one environment from its grants: the level its
/// own role gives there, and each app its teams raise above that.
pub fn levels_on(grants: &Grants, env: &EnvRef<'_>) -> (Level, BTreeMap<String, Level>) {
    let own = grants.role.level(env);
    let mut apps = BTreeMap::new();
    for m in &grants.teams {
        for app in &m.apps {
            let level = effective_level(grants, Some(app), env);
            if level > own {
                apps.insert(app.clone(), level);
            }
        }
    }
    (own, apps)
}

/// THE levels of a principal on an environment (by name): the level its own
/// role gives there and, per app, the higher levels its teams give. For
/// credentials the console issues for that environment.
pub async fn env_levels(
    console: &Console,
    principal: &PrincipalRecord,
    env: &str,
) -> ApiResult<(Level, BTreeMap<String, Level>)> {
    let user = match principal.kind {
        PrincipalKind::User => console.store().user_by_id(&principal.id).await?,
        _ => None,
    };
    let grants = crate::roles::grants_for(console, principal, user.as_ref()).await?;
    let class = env_class(console, env).await?;
    Ok(levels_on(&grants, &EnvRef { name: env, class }))
}

/// Whether the caller sees environment `env` at all: monitor on it, or on
/// one of its apps through a team.
pub async fn sees_environment(console: &Console, caller: &Caller, env: &str) -> ApiResult<bool> {
    let class = env_class(console, env).await?;
    let (own, apps) = levels_on(&caller.grants, &EnvRef { name: env, class });
    Ok(own >= Level::Monitor || apps.values().any(|l| *l >= Level::Monitor))
}

/// A caller's view of every registered environment, loaded once for a
/// listing: levels are then decided without further reads.
pub struct Access<'a> {
    caller: &'a Caller,
    classes: Vec<(String, EnvClass)>,
}

impl<'a> Access<'a> {
    pub async fn load(console: &Console, caller: &'a Caller) -> ApiResult<Access<'a>> {
        Ok(Access {
            caller,
            classes: crate::roles::environment_classes(console).await?,
        })
    }

    fn env_ref<'e>(&self, env: &'e str) -> EnvRef<'e> {
        let class = self
            .classes
            .iter()
            .find(|(name, _)| name == env)
            .map_or(EnvClass::None, |(_, class)| *class);
        EnvRef { name: env, class }
    }

    /// The caller's level on `env` for `app`.
    pub fn level(&self, env: &str, app: Option<&str>) -> Level {
        effective_level(&self.caller.grants, app, &self.env_ref(env))
    }

    /// Monitor on `env`, or on one of its apps through a team.
    pub fn sees_environment(&self, env: &str) -> bool {
        let (own, apps) = levels_on(&self.caller.grants, &self.env_ref(env));
        own >= Level::Monitor || apps.values().any(|l| *l >= Level::Monitor)
    }

    /// Change & deploy on `env`, or on one of its apps through a team: the
    /// environments a deployment may target (pages offer only those; each
    /// plan is still checked per app by [`require`]).
    pub fn may_deploy_to(&self, env: &str) -> bool {
        let (own, apps) = levels_on(&self.caller.grants, &self.env_ref(env));
        own >= Level::ChangeAndDeploy || apps.values().any(|l| *l >= Level::ChangeAndDeploy)
    }

    /// Monitor on `app` in at least one registered environment.
    pub fn sees_app(&self, app: &str) -> bool {
        self.classes
            .iter()
            .any(|(env, _)| self.level(env, Some(app)) >= Level::Monitor)
    }
}

/// THE enforcement point: refuses (403, naming the caller, the level or
/// right missing, the environment and app, and the action) unless the
/// caller has what `need` says. Every refusal is written to the audit log.
pub async fn require(
    console: &Console,
    caller: &Caller,
    action: &str,
    need: Need<'_>,
) -> ApiResult<()> {
    let refusal = match need {
        Need::ManageInfrastructure => (!may_manage_infrastructure(&caller.grants)).then(|| {
            format!(
                "{} cannot {action}: that needs the right to manage infrastructure \
                 (environments and pipelines), which its role does not give",
                caller.describe()
            )
        }),
        Need::ManageUsers => (!may_manage_users(&caller.grants)).then(|| {
            format!(
                "{} cannot {action}: that needs the right to manage users and roles, which its \
                 role does not give",
                caller.describe()
            )
        }),
        Need::Level { env, app, level } => {
            let has = level_of(console, caller, env, app).await?;
            (has < level).then(|| {
                let on = match app {
                    Some(app) => format!("app {app} in environment {env}"),
                    None => format!("environment {env}"),
                };
                format!(
                    "{} cannot {action}: that needs {level} on {on}, and it has {has} there; \
                     ask an administrator for a role (or a team) that gives it",
                    caller.describe()
                )
            })
        }
    };
    match refusal {
        None => {
            if let (Some(slot), Need::Level { env, app, .. }) = (&caller.audit, need) {
                slot.target(env, app);
            }
            Ok(())
        }
        Some(message) => {
            let (env, app) = match need {
                Need::Level { env, app, .. } => (Some(env), app),
                _ => (None, None),
            };
            crate::audit::refused(console, caller, action, env, app, 403, &message).await;
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, hash) = super::new_token();
        assert!(a.starts_with("rwc_") && a.len() == 4 + 64);
        assert_eq!(super::hash_token(&a), hash);
        assert_ne!(super::new_token().0, a);
    }
}
