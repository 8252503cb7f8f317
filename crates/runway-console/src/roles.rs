//! Custom roles, teams and a user's role (`/_runway/console/v1/roles…`,
//! `/teams…`, `/users/{user}/role`), and the catalog side of access
//! decisions: a principal's [`Grants`] (its own role and its team roles)
//! and the registered environments as [`EnvRef`]s.
//!
//! * Built-in roles ([`access::built_in_roles`]) are synthesized, never
//!   stored: they cannot be changed or deleted and no custom role takes
//!   their names (compared ignoring case).
//! * Reading roles needs only a login; a principal sees the teams it is a
//!   member of, one who may manage users sees all. Everything else needs
//!   the right to manage users and roles.
//! * No escalation: a role is handed out (to a user, a team member, through
//!   a team's new app) only if [`access::may_grant`] allows it to the
//!   granter on every registered environment, and nobody changes their own
//!   role or team role.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::console::identity::{
    CreateRole, CreateTeam, RoleLevel, RoleView, SetRole, TeamApp, TeamMember, TeamMemberView,
    TeamView, UserView,
};
use runway_store::console::principals::{PrincipalKind, PrincipalRecord};
use runway_store::console::roles::{NewRole, RoleRecord, TeamRecord};
use runway_store::console::users::UserRecord;

use crate::access::{
    self, EnvClass, EnvRef, Grants, Level, LevelScope, Membership, Role, built_in_roles,
};
use crate::auth::{AdminCaller, Caller, Myself};
use crate::error::{ApiError, ApiResult};
use crate::{Console, check_name};

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route(
            "/_runway/console/v1/roles",
            get(list_roles).post(create_role),
        )
        .route(
            "/_runway/console/v1/roles/{role}",
            get(show_role).delete(delete_role),
        )
        .route("/_runway/console/v1/users/{user}/role", post(set_user_role))
        .route(
            "/_runway/console/v1/teams",
            get(list_teams).post(create_team),
        )
        .route(
            "/_runway/console/v1/teams/{team}",
            get(show_team).delete(delete_team),
        )
        .route("/_runway/console/v1/teams/{team}/apps", post(add_team_app))
        .route(
            "/_runway/console/v1/teams/{team}/apps/{app}",
            delete(remove_team_app),
        )
        .route(
            "/_runway/console/v1/teams/{team}/members",
            post(set_team_member),
        )
        .route(
            "/_runway/console/v1/teams/{team}/members/{member}",
            delete(remove_team_member),
        )
}

// --- the catalog side of access ------------------------------------------------

/// A stored custom role as the access model sees it (entries in the order
/// they are looked up: environments, classes, default). Levels the console
/// wrote are always valid; one that does not parse counts as no access.
pub(crate) fn role_from_record(r: &RoleRecord) -> Role {
    let mut levels: Vec<(LevelScope, Level)> = r
        .levels
        .iter()
        .filter_map(|(scope, level)| {
            Some((
                LevelScope::parse(scope).ok()?,
                Level::parse(level).unwrap_or(Level::NoAccess),
            ))
        })
        .collect();
    levels.sort_by_key(|(scope, _)| scope_rank(scope));
    Role {
        name: r.name.clone(),
        built_in: false,
        levels,
        manage_infrastructure: r.manage_infrastructure,
        manage_users: r.manage_users,
    }
}

fn scope_rank(scope: &LevelScope) -> u8 {
    match scope {
        LevelScope::Environment(_) => 0,
        LevelScope::Class(_) => 1,
        LevelScope::Default => 2,
    }
}

/// The role of this name (built-in first, any case), if it exists.
pub(crate) async fn find_role(console: &Console, name: &str) -> ApiResult<Option<Role>> {
    if let Some(r) = built_in_roles()
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
    {
        return Ok(Some(r));
    }
    Ok(console
        .store()
        .role(name)
        .await?
        .as_ref()
        .map(role_from_record))
}

/// The role of this name, or a 400 naming the roles there are.
pub(crate) async fn existing_role(console: &Console, name: &str) -> ApiResult<Role> {
    if let Some(role) = find_role(console, name).await? {
        return Ok(role);
    }
    let mut names: Vec<String> = built_in_roles().into_iter().map(|r| r.name).collect();
    names.extend(console.store().roles().await?.into_iter().map(|r| r.name));
    Err(ApiError::bad_request(
        "invalid_role",
        format!(
            "no role {name:?}: use one of {} (`runway role list`; `runway role create` makes \
             a new one)",
            names.join(", ")
        ),
    ))
}

/// A role a principal holds that no longer exists (deleted while the user
/// was disabled) grants nothing: fail closed.
fn vanished_role(name: &str) -> Role {
    Role {
        name: name.to_string(),
        built_in: false,
        levels: Vec::new(),
        manage_infrastructure: false,
        manage_users: false,
    }
}

fn administrator() -> Role {
    built_in_roles()
        .into_iter()
        .find(|r| r.name == "Administrator")
        .expect("Administrator is a built-in role")
}

/// What a principal may do: its own role and its team roles. The console's
/// admin has the Administrator role; a service account the role it is
/// bound to (none recorded: nothing).
pub(crate) async fn grants_for(
    console: &Console,
    principal: &PrincipalRecord,
    user: Option<&UserRecord>,
) -> ApiResult<Grants> {
    let role = match (principal.kind, user) {
        (PrincipalKind::User, Some(u)) => find_role(console, &u.role)
            .await?
            .unwrap_or_else(|| vanished_role(&u.role)),
        (PrincipalKind::User, None) => vanished_role("none"),
        (PrincipalKind::ServiceAccount, _) => {
            match console.store().service_account_role(&principal.id).await? {
                Some(name) => find_role(console, &name)
                    .await?
                    .unwrap_or_else(|| vanished_role(&name)),
                None => vanished_role("none"),
            }
        }
        (PrincipalKind::Admin, _) => administrator(),
    };
    let mut teams = Vec::new();
    for m in console.store().memberships(&principal.id).await? {
        let role = find_role(console, &m.role)
            .await?
            .unwrap_or_else(|| vanished_role(&m.role));
        teams.push(Membership {
            team: m.team,
            apps: m.apps,
            role,
        });
    }
    Ok(Grants { role, teams })
}

/// Every registered environment's name and class.
pub(crate) async fn environment_classes(console: &Console) -> ApiResult<Vec<(String, EnvClass)>> {
    let envs = console.store().environments().await?;
    Ok(envs
        .iter()
        .map(|e| {
            let stages = envs
                .iter()
                .filter(|o| o.pipeline_id.is_some() && o.pipeline_id == e.pipeline_id)
                .count();
            (
                e.name.clone(),
                EnvClass::of(e.pipeline_id.as_ref().and(e.position), stages),
            )
        })
        .collect())
}

/// Refuses handing out `role` unless [`access::may_grant`] allows it to the
/// caller ([`grant_refusal`]).
pub(crate) async fn check_grant(
    console: &Console,
    grants: &Grants,
    role: &Role,
    to: &str,
) -> ApiResult<()> {
    match grant_refusal(console, grants, role).await? {
        None => Ok(()),
        Some(why) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "you cannot give role {} to {to}: {why}; ask someone whose role includes it",
                role.name
            ),
        )),
    }
}

/// Why [`access::may_grant`] refuses `role` to a granter with `grants`, on
/// every registered environment and on every environment that could be
/// added later: one of each class, and each environment the role names but
/// the console does not know yet, in every class. `None`: allowed.
async fn grant_refusal(
    console: &Console,
    grants: &Grants,
    role: &Role,
) -> ApiResult<Option<String>> {
    const CLASSES: [EnvClass; 4] = [
        EnvClass::Dev,
        EnvClass::Test,
        EnvClass::Prod,
        EnvClass::None,
    ];
    let mut envs = environment_classes(console).await?;
    for class in CLASSES {
        let name = match class.key() {
            Some(key) => format!("(any new {key} environment)"),
            None => "(any new environment outside a pipeline)".to_string(),
        };
        envs.push((name, class));
    }
    for (scope, _) in &role.levels {
        if let LevelScope::Environment(name) = scope
            && !envs.iter().any(|(known, _)| known == name)
        {
            envs.extend(CLASSES.map(|class| (name.clone(), class)));
        }
    }
    let refs: Vec<EnvRef<'_>> = envs
        .iter()
        .map(|(name, class)| EnvRef {
            name,
            class: *class,
        })
        .collect();
    Ok(access::may_grant(grants, role, &refs).err())
}

/// Refuses (403 naming the target's role and what the caller lacks) an
/// action on a user or service account whose rights the caller's own do
/// not cover: every environment level of the target's role (registered
/// environments and any that may come, as for [`check_grant`]) and both
/// infrastructure rights. So a custom role that may manage users cannot
/// disable, unlock, re-role, reset or rotate an Administrator. The refusal
/// is written to the audit log by the audit layer (a 403 answer).
pub(crate) async fn check_covers(
    console: &Console,
    caller: &crate::auth::Caller,
    target: &PrincipalRecord,
    action: &str,
) -> ApiResult<()> {
    let user = match target.kind {
        PrincipalKind::User => console.store().user_by_id(&target.id).await?,
        _ => None,
    };
    let target_grants = grants_for(console, target, user.as_ref()).await?;
    let Some(why) = grant_refusal(console, &caller.grants, &target_grants.role).await? else {
        return Ok(());
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "{} cannot {action} {} '{}', whose role is {}: {why}; only someone whose own \
             rights cover the target's may do that",
            caller.describe(),
            target.kind.as_str().replace('_', " "),
            target.name,
            target_grants.role.name,
        ),
    ))
}

// --- views -----------------------------------------------------------------------

fn role_view(role: &Role, created_at_ms: Option<i64>) -> RoleView {
    RoleView {
        name: role.name.clone(),
        built_in: role.built_in,
        levels: role
            .levels
            .iter()
            .map(|(scope, level)| RoleLevel {
                scope: scope.key(),
                level: level.as_str().to_string(),
            })
            .collect(),
        manage_infrastructure: role.manage_infrastructure,
        manage_users: role.manage_users,
        created_at_ms,
    }
}

fn team_view(
    console_names: &std::collections::HashMap<String, String>,
    t: &TeamRecord,
) -> TeamView {
    TeamView {
        key: t.id.clone(),
        name: t.name.clone(),
        apps: t.apps.clone(),
        members: t
            .members
            .iter()
            .map(|m| TeamMemberView {
                member: m.principal.name.clone(),
                kind: m.principal.kind.as_str().to_string(),
                role: m.role.clone(),
            })
            .collect(),
        created_at_ms: t.created_at_ms,
        created_by: t
            .created_by
            .as_ref()
            .and_then(|id| console_names.get(id).cloned()),
    }
}

async fn team_view_of(console: &Console, t: &TeamRecord) -> ApiResult<TeamView> {
    let mut names = std::collections::HashMap::new();
    if let Some(id) = &t.created_by
        && let Some(p) = console.store().principal(id).await?
    {
        names.insert(id.clone(), p.name);
    }
    Ok(team_view(&names, t))
}

// --- roles -------------------------------------------------------------------------

#[utoipa::path(get, path = "/_runway/console/v1/roles", responses((status = 200, body = Vec<RoleView>, description = "built-in roles first, then custom ones by name")))]
async fn list_roles(
    State(console): State<Console>,
    Myself(caller): Myself,
) -> ApiResult<Json<Vec<RoleView>>> {
    Ok(Json(all_roles(&console, &caller).await?))
}

/// Every role, built-in first (any signed-in principal may read them).
pub(crate) async fn all_roles(console: &Console, _caller: &Caller) -> ApiResult<Vec<RoleView>> {
    let mut out: Vec<RoleView> = built_in_roles()
        .iter()
        .map(|r| role_view(r, None))
        .collect();
    for r in console.store().roles().await? {
        out.push(role_view(&role_from_record(&r), Some(r.created_at_ms)));
    }
    Ok(out)
}

#[utoipa::path(get, path = "/_runway/console/v1/roles/{role}", params(("role" = String, Path, description = "the role's name, any case")), responses((status = 200, body = RoleView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_role(
    State(console): State<Console>,
    _caller: Myself,
    Path(name): Path<String>,
) -> ApiResult<Json<RoleView>> {
    if let Some(r) = built_in_roles()
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(&name))
    {
        return Ok(Json(role_view(&r, None)));
    }
    let r = console.store().role(&name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no role {name:?} on this console (`runway role list` shows them)"
        ))
    })?;
    Ok(Json(role_view(
        &role_from_record(&r),
        Some(r.created_at_ms),
    )))
}

/// Role names: 1–63 ASCII letters, digits and `-`, starting with a letter.
fn check_role_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "role name {name:?} is not valid: use 1–63 letters, digits and '-', starting \
                 with a letter (e.g. Ops, Release-Managers)"
            ),
        ));
    }
    if let Some(b) = built_in_roles()
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
    {
        return Err(ApiError::conflict(format!(
            "{name:?} is the built-in role {}: built-in roles cannot be redefined; pick another \
             name",
            b.name
        )));
    }
    Ok(())
}

/// Parses a role's level entries; refuses a scope given twice.
fn parse_levels(levels: &[RoleLevel]) -> ApiResult<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in levels {
        let scope = LevelScope::parse(&l.scope).map_err(|why| {
            ApiError::bad_request(
                "invalid_level",
                format!("level {}={}: {why}", l.scope, l.level),
            )
        })?;
        let level = Level::parse(&l.level).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_level",
                format!(
                    "level {}={}: unknown level {:?}; use no-access, monitor, \
                     change-and-deploy or full-control",
                    l.scope, l.level, l.level
                ),
            )
        })?;
        if out.iter().any(|(s, _)| *s == scope.key()) {
            return Err(ApiError::bad_request(
                "invalid_level",
                format!(
                    "{} is given two levels; give each environment, class or * once",
                    scope.key()
                ),
            ));
        }
        out.push((scope.key(), level.as_str().to_string()));
    }
    Ok(out)
}

#[utoipa::path(post, path = "/_runway/console/v1/roles", request_body = CreateRole, responses((status = 201, body = RoleView), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn create_role(
    State(console): State<Console>,
    admin: AdminCaller,
    Json(req): Json<CreateRole>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    Ok((
        StatusCode::CREATED,
        Json(add_role(&console, &admin, &req).await?),
    ))
}

/// Creates a custom role (API and the roles page).
pub(crate) async fn add_role(
    console: &Console,
    AdminCaller(caller): &AdminCaller,
    req: &CreateRole,
) -> ApiResult<RoleView> {
    check_role_name(&req.name)?;
    let levels = parse_levels(&req.levels)?;
    let r = console
        .store()
        .create_role(
            &NewRole {
                name: &req.name,
                levels: &levels,
                manage_infrastructure: req.manage_infrastructure,
                manage_users: req.manage_users,
            },
            Some(&caller.principal.id),
        )
        .await?;
    Ok(role_view(&role_from_record(&r), Some(r.created_at_ms)))
}

#[utoipa::path(delete, path = "/_runway/console/v1/roles/{role}", params(("role" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody, description = "built-in, or still held by someone")))]
async fn delete_role(
    State(console): State<Console>,
    admin: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    remove_role(&console, &admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a custom role nobody holds (API and the roles page).
pub(crate) async fn remove_role(
    console: &Console,
    _admin: &AdminCaller,
    name: &str,
) -> ApiResult<()> {
    let name = name.to_string();
    if let Some(b) = built_in_roles()
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(&name))
    {
        return Err(ApiError::conflict(format!(
            "{} is a built-in role: built-in roles cannot be deleted",
            b.name
        )));
    }
    if !console.store().delete_role(&name).await? {
        return Err(ApiError::not_found(format!(
            "no role {name:?} on this console (`runway role list` shows them)"
        )));
    }
    Ok(())
}

fn not_yourself(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "you cannot change your own {what}; ask another user who may manage users and roles"
        ),
    )
}

#[utoipa::path(post, path = "/_runway/console/v1/users/{user}/role", params(("user" = String, Path)), request_body = SetRole, responses((status = 200, body = UserView), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn set_user_role(
    State(console): State<Console>,
    admin: AdminCaller,
    Path(user): Path<String>,
    Json(req): Json<SetRole>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        change_user_role(&console, &admin, &user, &req.role).await?,
    ))
}

/// Gives a user another role (API and the users page): never one's own,
/// never above the caller's rights.
pub(crate) async fn change_user_role(
    console: &Console,
    AdminCaller(caller): &AdminCaller,
    user: &str,
    role: &str,
) -> ApiResult<UserView> {
    let console = console.clone();
    let user = crate::users::find_user(&console, user).await?;
    if user.principal.id == caller.principal.id {
        return Err(not_yourself("role"));
    }
    check_covers(&console, caller, &user.principal, "change the role of").await?;
    let role = existing_role(&console, role).await?;
    check_grant(
        &console,
        &caller.grants,
        &role,
        &format!("user '{}'", user.principal.name),
    )
    .await?;
    console
        .store()
        .set_user_role(&user.principal.id, &role.name)
        .await?;
    caller.note_change(
        serde_json::json!({"user": user.principal.name, "role": user.role}),
        serde_json::json!({"user": user.principal.name, "role": role.name}),
    );
    let user = crate::users::find_user(&console, &user.principal.id).await?;
    crate::users::user_view(&console, &user).await
}

// --- teams -------------------------------------------------------------------------

async fn find_team(console: &Console, name_or_key: &str) -> ApiResult<TeamRecord> {
    console.store().team(name_or_key).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no team {name_or_key:?} on this console (`runway team list` shows them)"
        ))
    })
}

fn check_app(app: &str) -> ApiResult<String> {
    runway_manifest::AppName::parse(app)
        .map(|a| a.as_str().to_string())
        .map_err(|e| ApiError::bad_request("invalid_name", format!("app {app:?}: {e}")))
}

/// A member as named in a request: an active user or service account.
async fn find_member(console: &Console, name: &str) -> ApiResult<PrincipalRecord> {
    console
        .store()
        .active_principal(name)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_member",
                format!(
                    "no active user or service account {name:?} (`runway user list`, `runway \
                 console account list`)"
                ),
            )
        })
}

/// Checks a new member and its role: it exists, it is not the caller, and
/// the caller may hand out the role.
async fn check_member(
    console: &Console,
    caller: &crate::auth::Caller,
    m: &TeamMember,
) -> ApiResult<(PrincipalRecord, Role)> {
    let principal = find_member(console, &m.member).await?;
    if principal.id == caller.principal.id {
        return Err(not_yourself("team role"));
    }
    check_covers(console, caller, &principal, "give a team role to").await?;
    let role = existing_role(console, &m.role).await?;
    check_grant(
        console,
        &caller.grants,
        &role,
        &format!(
            "{} '{}'",
            principal.kind.as_str().replace('_', " "),
            principal.name
        ),
    )
    .await?;
    Ok((principal, role))
}

#[utoipa::path(get, path = "/_runway/console/v1/teams", responses((status = 200, body = Vec<TeamView>, description = "every team for one who may manage users; else the caller's teams")))]
async fn list_teams(
    State(console): State<Console>,
    Myself(caller): Myself,
) -> ApiResult<Json<Vec<TeamView>>> {
    Ok(Json(visible_teams(&console, &caller).await?))
}

/// Every team for one who may manage users; else the caller's own.
pub(crate) async fn visible_teams(console: &Console, caller: &Caller) -> ApiResult<Vec<TeamView>> {
    let mut out = Vec::new();
    for t in console.store().teams().await? {
        if caller.is_admin()
            || t.members
                .iter()
                .any(|m| m.principal.id == caller.principal.id)
        {
            out.push(team_view_of(console, &t).await?);
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/_runway/console/v1/teams/{team}", params(("team" = String, Path, description = "name or key")), responses((status = 200, body = TeamView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_team(
    State(console): State<Console>,
    Myself(caller): Myself,
    Path(team): Path<String>,
) -> ApiResult<Json<TeamView>> {
    let t = find_team(&console, &team).await?;
    if !caller.is_admin()
        && !t
            .members
            .iter()
            .any(|m| m.principal.id == caller.principal.id)
    {
        // Indistinguishable from a team that does not exist.
        return Err(ApiError::not_found(format!(
            "no team {team:?} on this console (`runway team list` shows yours)"
        )));
    }
    Ok(Json(team_view_of(&console, &t).await?))
}

#[utoipa::path(post, path = "/_runway/console/v1/teams", request_body = CreateTeam, responses((status = 201, body = TeamView), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn create_team(
    State(console): State<Console>,
    AdminCaller(caller): AdminCaller,
    Json(req): Json<CreateTeam>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    check_name("team", &req.name).map_err(|m| ApiError::bad_request("invalid_name", m))?;
    let apps = req
        .apps
        .iter()
        .map(|a| check_app(a))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut members: Vec<(String, String)> = Vec::new();
    for m in &req.members {
        let (principal, role) = check_member(&console, &caller, m).await?;
        if members.iter().any(|(id, _)| *id == principal.id) {
            return Err(ApiError::bad_request(
                "invalid_member",
                format!("{} is listed twice; give each member once", principal.name),
            ));
        }
        members.push((principal.id, role.name));
    }
    let t = console
        .store()
        .create_team(&req.name, &apps, &members, Some(&caller.principal.id))
        .await?;
    Ok((StatusCode::CREATED, Json(team_view_of(&console, &t).await?)))
}

#[utoipa::path(delete, path = "/_runway/console/v1/teams/{team}", params(("team" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = runway_api::ErrorBody)))]
async fn delete_team(
    State(console): State<Console>,
    _admin: AdminCaller,
    Path(team): Path<String>,
) -> ApiResult<StatusCode> {
    let t = find_team(&console, &team).await?;
    console.store().delete_team(&t.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/_runway/console/v1/teams/{team}/apps", params(("team" = String, Path)), request_body = TeamApp, responses((status = 200, body = TeamView), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn add_team_app(
    State(console): State<Console>,
    AdminCaller(caller): AdminCaller,
    Path(team): Path<String>,
    Json(req): Json<TeamApp>,
) -> ApiResult<Json<TeamView>> {
    let t = find_team(&console, &team).await?;
    let app = check_app(&req.app)?;
    // A new app gives every member its team role on it: the caller must be
    // allowed to hand out each of those roles.
    for m in &t.members {
        let role = find_role(&console, &m.role)
            .await?
            .unwrap_or_else(|| vanished_role(&m.role));
        check_grant(
            &console,
            &caller.grants,
            &role,
            &format!(
                "{} (through app {app} of team {})",
                m.principal.name, t.name
            ),
        )
        .await?;
    }
    console.store().add_team_app(&t.id, &app).await?;
    Ok(Json(
        team_view_of(&console, &find_team(&console, &t.id).await?).await?,
    ))
}

#[utoipa::path(delete, path = "/_runway/console/v1/teams/{team}/apps/{app}", params(("team" = String, Path), ("app" = String, Path)), responses((status = 200, body = TeamView), (status = 404, body = runway_api::ErrorBody)))]
async fn remove_team_app(
    State(console): State<Console>,
    _admin: AdminCaller,
    Path((team, app)): Path<(String, String)>,
) -> ApiResult<Json<TeamView>> {
    let t = find_team(&console, &team).await?;
    if !console.store().remove_team_app(&t.id, &app).await? {
        return Err(ApiError::not_found(format!(
            "app {app:?} is not in team {} (its apps: {})",
            t.name,
            if t.apps.is_empty() {
                "none".to_string()
            } else {
                t.apps.join(", ")
            }
        )));
    }
    Ok(Json(
        team_view_of(&console, &find_team(&console, &t.id).await?).await?,
    ))
}

#[utoipa::path(post, path = "/_runway/console/v1/teams/{team}/members", params(("team" = String, Path)), request_body = TeamMember, responses((status = 200, body = TeamView, description = "added, or its role changed"), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn set_team_member(
    State(console): State<Console>,
    AdminCaller(caller): AdminCaller,
    Path(team): Path<String>,
    Json(req): Json<TeamMember>,
) -> ApiResult<Json<TeamView>> {
    let t = find_team(&console, &team).await?;
    let (principal, role) = check_member(&console, &caller, &req).await?;
    let before = t
        .members
        .iter()
        .find(|m| m.principal.id == principal.id)
        .map(|m| m.role.clone());
    console
        .store()
        .set_team_member(&t.id, &principal.id, &role.name)
        .await?;
    caller.note_change(
        serde_json::json!({"team": t.name, "member": principal.name, "role": before}),
        serde_json::json!({"team": t.name, "member": principal.name, "role": role.name}),
    );
    Ok(Json(
        team_view_of(&console, &find_team(&console, &t.id).await?).await?,
    ))
}

#[utoipa::path(delete, path = "/_runway/console/v1/teams/{team}/members/{member}", params(("team" = String, Path), ("member" = String, Path)), responses((status = 200, body = TeamView), (status = 404, body = runway_api::ErrorBody)))]
async fn remove_team_member(
    State(console): State<Console>,
    AdminCaller(caller): AdminCaller,
    Path((team, member)): Path<(String, String)>,
) -> ApiResult<Json<TeamView>> {
    let t = find_team(&console, &team).await?;
    let found = t
        .members
        .iter()
        .find(|m| m.principal.name == member || m.principal.id == member);
    let removed = match found {
        Some(m) => {
            check_covers(&console, &caller, &m.principal, "remove from a team").await?;
            caller.note_change(
                serde_json::json!({"team": t.name, "member": m.principal.name, "role": m.role}),
                serde_json::json!({"team": t.name, "member": m.principal.name, "role": null}),
            );
            console
                .store()
                .remove_team_member(&t.id, &m.principal.id)
                .await?
        }
        None => false,
    };
    if !removed {
        return Err(ApiError::not_found(format!(
            "{member:?} is not a member of team {} (`runway team show {}`)",
            t.name, t.name
        )));
    }
    Ok(Json(
        team_view_of(&console, &find_team(&console, &t.id).await?).await?,
    ))
}

/// The OpenAPI paths of this module (merged into the console's document).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_roles,
        show_role,
        create_role,
        delete_role,
        set_user_role,
        list_teams,
        show_team,
        create_team,
        delete_team,
        add_team_app,
        remove_team_app,
        set_team_member,
        remove_team_member,
    ),
    components(schemas(runway_api::ErrorBody))
)]
pub(crate) struct RolesDoc;

#[cfg(test)]
#[path = "roles_tests.rs"]
mod server_tests;
