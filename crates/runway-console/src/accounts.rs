//! The console itself and its service accounts (automation identities,
//! e.g. CI/CD driving the LifeTime v2 API). Each account is bound to a role
//! (and, as a member, to teams); tokens are shown once, stored hashed,
//! revocable, and rotated (a new token; the old ones accepted for a grace
//! period, then refused). Managing accounts needs the right to manage users
//! and roles, and an account is given only a role its creator may hand out.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::console::identity::SetRole;
use runway_api::console::{
    AccountTokenCreated, ConsoleInfo, ConsoleToken, CreateAccountToken, CreateServiceAccount,
    PrincipalView, RotateAccountTokens, ServiceAccount,
};
use runway_store::console::principals::{ConsoleTokenRecord, PrincipalRecord};

use crate::auth::{AdminCaller, Myself, new_token};
use crate::error::{ApiError, ApiResult};
use crate::{Console, check_name};

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/_runway/console/v1/console", get(console_info))
        .route(
            "/_runway/console/v1/service-accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/_runway/console/v1/service-accounts/{account}",
            delete(disable_account),
        )
        .route(
            "/_runway/console/v1/service-accounts/{account}/tokens",
            post(create_account_token),
        )
        .route(
            "/_runway/console/v1/service-accounts/{account}/tokens/{id}",
            delete(revoke_account_token),
        )
        .route(
            "/_runway/console/v1/service-accounts/{account}/rotate",
            post(rotate_account_tokens),
        )
        .route(
            "/_runway/console/v1/service-accounts/{account}/role",
            post(set_account_role),
        )
}

/// The longest grace period of a rotation (7 days).
pub const MAX_ROTATION_GRACE_S: u64 = 7 * 24 * 3600;

pub(crate) fn principal_view(p: &PrincipalRecord) -> PrincipalView {
    PrincipalView {
        key: p.id.clone(),
        kind: p.kind.as_str().to_string(),
        name: p.name.clone(),
    }
}

fn token_view(t: &ConsoleTokenRecord) -> ConsoleToken {
    ConsoleToken {
        id: t.id,
        name: t.name.clone(),
        created_at_ms: t.created_at_ms,
        last_used_at_ms: t.last_used_at_ms,
        revoked_at_ms: t.revoked_at_ms,
        expires_at_ms: t.expires_at_ms,
    }
}

#[utoipa::path(get, path = "/_runway/console/v1/console", responses((status = 200, body = ConsoleInfo), (status = 401, body = runway_api::ErrorBody)))]
async fn console_info(State(console): State<Console>, Myself(caller): Myself) -> Json<ConsoleInfo> {
    Json(ConsoleInfo {
        key: console.store().id().to_string(),
        runway_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: console.store().backend().to_string(),
        principal: principal_view(&caller.principal),
    })
}

async fn account_view(console: &Console, p: &PrincipalRecord) -> ApiResult<ServiceAccount> {
    let tokens = console.store().console_tokens(&p.id).await?;
    Ok(ServiceAccount {
        key: p.id.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        created_at_ms: p.created_at_ms,
        disabled_at_ms: p.disabled_at_ms,
        role: console
            .store()
            .service_account_role(&p.id)
            .await?
            .unwrap_or_else(|| "none".into()),
        tokens: tokens.iter().map(token_view).collect(),
    })
}

#[utoipa::path(get, path = "/_runway/console/v1/service-accounts", responses((status = 200, body = Vec<ServiceAccount>), (status = 403, body = runway_api::ErrorBody, description = "not the admin")))]
async fn list_accounts(
    State(console): State<Console>,
    admin: AdminCaller,
) -> ApiResult<Json<Vec<ServiceAccount>>> {
    Ok(Json(accounts_for(&console, &admin).await?))
}

/// Every service account (for one who may manage users).
pub(crate) async fn accounts_for(
    console: &Console,
    _admin: &AdminCaller,
) -> ApiResult<Vec<ServiceAccount>> {
    let mut out = Vec::new();
    for account in console.store().service_accounts().await? {
        out.push(account_view(console, &account).await?);
    }
    Ok(out)
}

fn check_token_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 128 || name.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("token name {name:?} is not valid: give 1–128 characters without NUL"),
        ));
    }
    Ok(())
}

/// Creates the account and its first token (named `default`).
#[utoipa::path(post, path = "/_runway/console/v1/service-accounts", request_body = CreateServiceAccount, responses((status = 201, body = AccountTokenCreated, description = "the account and its first token, shown once"), (status = 400, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn create_account(
    State(console): State<Console>,
    admin: AdminCaller,
    Json(req): Json<CreateServiceAccount>,
) -> ApiResult<(StatusCode, Json<AccountTokenCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(add_account(&console, &admin, &req).await?),
    ))
}

/// Creates a service account and its first token, returned once (API and
/// the service accounts page).
pub(crate) async fn add_account(
    console: &Console,
    AdminCaller(admin): &AdminCaller,
    req: &CreateServiceAccount,
) -> ApiResult<AccountTokenCreated> {
    let console = console.clone();
    check_name("service account", &req.name)
        .map_err(|m| ApiError::bad_request("invalid_name", m))?;
    if req.description.len() > 1024 || req.description.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the description is too long (at most 1024 bytes) or contains NUL",
        ));
    }
    // No default: an account made without thinking about its rights would
    // otherwise hold too many (before roles existed, accounts could do
    // everything).
    let Some(role) = req.role.as_deref().filter(|r| !r.trim().is_empty()) else {
        let built_in: Vec<String> = crate::access::built_in_roles()
            .into_iter()
            .map(|r| r.name)
            .collect();
        return Err(ApiError::bad_request(
            "role_required",
            format!(
                "service account '{}' needs a role: give `role` (`runway service-account create \
                 {} --role ROLE`); built-in roles: {} (`runway role list` shows custom ones too)",
                req.name,
                req.name,
                built_in.join(", ")
            ),
        ));
    };
    let role = crate::roles::existing_role(&console, role).await?;
    crate::roles::check_grant(
        &console,
        &admin.grants,
        &role,
        &format!("new service account '{}'", req.name),
    )
    .await?;
    let account = console
        .store()
        .create_service_account(
            &req.name,
            &req.description,
            &role.name,
            Some(&admin.principal.id),
        )
        .await?;
    let (token, hash) = new_token();
    let record = match console
        .store()
        .create_console_token(&account.id, "default", &hash)
        .await
    {
        Ok(record) => record,
        Err(e) => {
            // Leave nothing half made: an account nobody can use.
            let _ = console.store().disable_service_account(&account.id).await;
            return Err(e.into());
        }
    };
    Ok(AccountTokenCreated {
        account: account.name,
        info: token_view(&record),
        token,
    })
}

async fn find_account(console: &Console, name_or_key: &str) -> ApiResult<PrincipalRecord> {
    console
        .store()
        .service_account(name_or_key)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no active service account {name_or_key:?} (`runway console account list` \
                 shows them)"
            ))
        })
}

#[utoipa::path(post, path = "/_runway/console/v1/service-accounts/{account}/tokens", params(("account" = String, Path, description = "name or key")), request_body = CreateAccountToken, responses((status = 201, body = AccountTokenCreated, description = "shown once"), (status = 404, body = runway_api::ErrorBody)))]
async fn create_account_token(
    State(console): State<Console>,
    AdminCaller(admin): AdminCaller,
    Path(account): Path<String>,
    Json(req): Json<CreateAccountToken>,
) -> ApiResult<(StatusCode, Json<AccountTokenCreated>)> {
    check_token_name(&req.name)?;
    let account = find_account(&console, &account).await?;
    crate::roles::check_covers(&console, &admin, &account, "add a token to").await?;
    let (token, hash) = new_token();
    let record = console
        .store()
        .create_console_token(&account.id, &req.name, &hash)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountTokenCreated {
            account: account.name,
            info: token_view(&record),
            token,
        }),
    ))
}

#[utoipa::path(delete, path = "/_runway/console/v1/service-accounts/{account}/tokens/{id}", params(("account" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404, body = runway_api::ErrorBody)))]
async fn revoke_account_token(
    State(console): State<Console>,
    AdminCaller(admin): AdminCaller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let account = find_account(&console, &account).await?;
    crate::roles::check_covers(&console, &admin, &account, "revoke a token of").await?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_request",
            format!("token id {id:?} is not a number (`runway console account list` shows ids)"),
        )
    })?;
    if console
        .store()
        .revoke_console_token(&account.id, id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "service account {:?} has no active token {id}",
            account.name
        )))
    }
}

#[utoipa::path(delete, path = "/_runway/console/v1/service-accounts/{account}", params(("account" = String, Path)), responses((status = 204, description = "disabled, every token revoked"), (status = 404, body = runway_api::ErrorBody)))]
async fn disable_account(
    State(console): State<Console>,
    AdminCaller(admin): AdminCaller,
    Path(account): Path<String>,
) -> ApiResult<StatusCode> {
    let account = find_account(&console, &account).await?;
    crate::roles::check_covers(&console, &admin, &account, "revoke").await?;
    console.store().disable_service_account(&account.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/_runway/console/v1/service-accounts/{account}/rotate", params(("account" = String, Path)), request_body = RotateAccountTokens, responses((status = 201, body = AccountTokenCreated, description = "the new token, shown once; the others end after the grace period"), (status = 400, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn rotate_account_tokens(
    State(console): State<Console>,
    AdminCaller(admin): AdminCaller,
    Path(account): Path<String>,
    Json(req): Json<RotateAccountTokens>,
) -> ApiResult<(StatusCode, Json<AccountTokenCreated>)> {
    if req.grace_s > MAX_ROTATION_GRACE_S {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "grace_s {} is too long: the old tokens may stay valid at most {} s (7 days)",
                req.grace_s, MAX_ROTATION_GRACE_S
            ),
        ));
    }
    let account = find_account(&console, &account).await?;
    crate::roles::check_covers(&console, &admin, &account, "rotate the tokens of").await?;
    let (token, hash) = new_token();
    let name = format!("rotated-{}", runway_store::now_ms());
    let end = runway_store::now_ms() + (req.grace_s as i64) * 1000;
    let record = console
        .store()
        .rotate_console_tokens(&account.id, &name, &hash, end)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountTokenCreated {
            account: account.name,
            info: token_view(&record),
            token,
        }),
    ))
}

#[utoipa::path(post, path = "/_runway/console/v1/service-accounts/{account}/role", params(("account" = String, Path)), request_body = SetRole, responses((status = 200, body = ServiceAccount), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn set_account_role(
    State(console): State<Console>,
    AdminCaller(caller): AdminCaller,
    Path(account): Path<String>,
    Json(req): Json<SetRole>,
) -> ApiResult<Json<ServiceAccount>> {
    let account = find_account(&console, &account).await?;
    if account.id == caller.principal.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you cannot change your own role; ask another user who may manage users and roles",
        ));
    }
    crate::roles::check_covers(&console, &caller, &account, "change the role of").await?;
    let role = crate::roles::existing_role(&console, &req.role).await?;
    crate::roles::check_grant(
        &console,
        &caller.grants,
        &role,
        &format!("service account '{}'", account.name),
    )
    .await?;
    let before = console.store().service_account_role(&account.id).await?;
    console
        .store()
        .set_service_account_role(&account.id, &role.name)
        .await?;
    caller.note_change(
        serde_json::json!({"service_account": account.name, "role": before}),
        serde_json::json!({"service_account": account.name, "role": role.name}),
    );
    Ok(Json(account_view(&console, &account).await?))
}
