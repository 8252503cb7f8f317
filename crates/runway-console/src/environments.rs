//! Environments and pipelines.
//!
//! Registering an environment uses an admin token of that environment once,
//! to mint the console's own `console`-scope token there (named
//! `console:<console key>`); only the minted token is kept, sealed with the
//! console key. The admin token is never stored. Addresses must be HTTPS
//! unless loopback or explicitly allowed (`allow_insecure`).

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::console::{
    AddEnvironment, CreatePipeline, EnvironmentDetail, EnvironmentView, FrontendView, HealthView,
    PipelineStage, PipelineView, RemoveEnvironment, SetEnvironmentPipeline,
};
use runway_api::v1::{CreateToken, Scope};
use runway_client::{Client, ClientError};
use runway_store::console::environments::{EnvironmentRecord, NewEnvironment, PipelineRecord};
use runway_store::console::new_key;

use crate::access::Level;

use crate::auth::{Caller, Need, require, sees_environment};
use crate::error::{ApiError, ApiResult};
use crate::{Console, check_name};

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route(
            "/_runway/console/v1/environments",
            get(list_environments).post(add_environment),
        )
        .route(
            "/_runway/console/v1/environments/{env}",
            get(show_environment).delete(remove_environment),
        )
        .route(
            "/_runway/console/v1/environments/{env}/pipeline",
            put(set_pipeline),
        )
        .route(
            "/_runway/console/v1/pipelines",
            get(list_pipelines).post(create_pipeline),
        )
        .route(
            "/_runway/console/v1/pipelines/{pipeline}",
            get(show_pipeline),
        )
}

/// The environment with this name or key, or a 404 naming it.
pub async fn find_environment(
    console: &Console,
    name_or_key: &str,
) -> ApiResult<EnvironmentRecord> {
    console
        .store()
        .environment(name_or_key)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "environment_not_found",
                format!(
                    "no registered environment {name_or_key:?}; `runway env list` shows them, \
                     `runway env add NAME URL --token …` registers one"
                ),
            )
        })
}

/// The environment's view: record and last poll.
pub async fn environment_view(
    console: &Console,
    env: &EnvironmentRecord,
) -> ApiResult<EnvironmentView> {
    let health = console.store().environment_health(&env.id).await?;
    Ok(EnvironmentView {
        key: env.id.clone(),
        name: env.name.clone(),
        address: env.address.clone(),
        pipeline: env.pipeline.clone(),
        order: env.position,
        allow_insecure: env.allow_insecure,
        two_step: env.two_step,
        created_at_ms: env.created_at_ms,
        health: health.map(|h| HealthView {
            reachable: h.reachable,
            checked_at_ms: h.checked_at_ms,
            error: h.error,
            runway_version: h.runway_version,
            generation: h.generation,
            last_seen_at_ms: h.last_seen_at_ms,
            frontends: h
                .frontends
                .into_iter()
                .map(|f| FrontendView {
                    name: f.name,
                    address: f.address,
                    state: f.state,
                    generation: f.generation,
                    enabled: f.enabled,
                })
                .collect(),
        }),
    })
}

/// Checks an environment address: `http(s)://host[:port]`, no credentials,
/// path, query or fragment; plain HTTP only to a loopback host unless
/// `allow_insecure`. Returns it normalised (no trailing slash).
pub fn check_address(address: &str, allow_insecure: bool) -> Result<String, ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(
            "invalid_address",
            format!("environment address {address:?} {why}"),
        )
    };
    let url = url::Url::parse(address.trim())
        .map_err(|e| bad(format!("is not a URL ({e}); give https://host[:port]")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(format!(
            "has scheme {:?}; give https://host[:port]",
            url.scheme()
        )));
    }
    let Some(host) = url.host() else {
        return Err(bad("has no host; give https://host[:port]".into()));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "carries credentials; give the address alone and the token with --token".into(),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "has a path, query or fragment; give only https://host[:port]".into(),
        ));
    }
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    if url.scheme() == "http" && !loopback && !allow_insecure {
        return Err(ApiError::bad_request(
            "insecure_address",
            format!(
                "environment address {address:?} is plain http to a host that is not loopback: \
                 the console sends its credential to every environment, so it requires HTTPS; \
                 give an https:// address, or --allow-insecure on a network you trust"
            ),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// What an environment's answer to the admin token means for registration.
fn refused(name: &str, address: &str, e: ClientError) -> ApiError {
    match e.status() {
        Some(401) => ApiError::bad_request(
            "environment_token_refused",
            format!(
                "environment {name:?} at {address} refused the token given with --token ({e}); \
                 give an admin token of that environment (its data dir's admin.token, or \
                 `runway token create NAME --scope admin`). Nothing was registered."
            ),
        ),
        Some(403) => ApiError::bad_request(
            "environment_token_refused",
            format!(
                "the token given for environment {name:?} at {address} is not an admin token \
                 ({e}); registration mints the console's own token there, which needs scope \
                 admin. Nothing was registered."
            ),
        ),
        Some(status) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "environment_refused",
            format!(
                "environment {name:?} at {address} refused the registration (HTTP {status}): \
                 {e}. Nothing was registered."
            ),
        ),
        None => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "environment_unreachable",
            format!(
                "cannot reach environment {name:?} at {address}: {e}. Check the address and \
                 that the environment is running. Nothing was registered."
            ),
        ),
    }
}

#[utoipa::path(post, path = "/_runway/console/v1/environments", request_body = AddEnvironment, responses((status = 201, body = EnvironmentView), (status = 400, body = runway_api::ErrorBody, description = "invalid_name, invalid_address, insecure_address, environment_token_refused"), (status = 404, body = runway_api::ErrorBody, description = "pipeline_not_found"), (status = 409, body = runway_api::ErrorBody), (status = 502, body = runway_api::ErrorBody, description = "environment_unreachable")))]
async fn add_environment(
    State(console): State<Console>,
    caller: Caller,
    Json(req): Json<AddEnvironment>,
) -> ApiResult<(StatusCode, Json<EnvironmentView>)> {
    require(
        &console,
        &caller,
        "register an environment",
        Need::ManageInfrastructure,
    )
    .await?;
    check_name("environment", &req.name).map_err(|m| ApiError::bad_request("invalid_name", m))?;
    let address = check_address(&req.address, req.allow_insecure)?;
    if req.order.is_some() && req.pipeline.is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "--order places the environment in a pipeline: give --pipeline too",
        ));
    }
    if let Some(order) = req.order
        && !(1..=1000).contains(&order)
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("--order {order} is out of range: give 1–1000 (1 = first stage)"),
        ));
    }
    let store = console.store();
    if store.environment(&req.name).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "an environment named {:?} is already registered (`runway env show {}`); pick \
             another name or remove it first",
            req.name, req.name
        )));
    }
    // Check the pipeline and place before touching the environment.
    let pipeline = match &req.pipeline {
        None => None,
        Some(name) => {
            let pipeline = store.pipeline(name).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "pipeline_not_found",
                    format!(
                        "no pipeline named {name:?}; create it first with \
                         `runway pipeline add {name}`"
                    ),
                )
            })?;
            let stages = store.pipeline_environments(&pipeline.id).await?;
            let order = match req.order {
                Some(order) => {
                    if let Some(taken) = stages.iter().find(|e| e.position == Some(order)) {
                        return Err(ApiError::conflict(format!(
                            "place {order} of pipeline {:?} is taken by environment {:?}; give \
                             another --order",
                            pipeline.name, taken.name
                        )));
                    }
                    order
                }
                None => stages.iter().filter_map(|e| e.position).max().unwrap_or(0) + 1,
            };
            Some((pipeline.name, order))
        }
    };

    // The admin token is used here, once, and dropped with `admin`.
    let admin = Client::new(&address, Some(req.token.clone()))
        .map_err(|e| ApiError::bad_request("invalid_address", e.to_string()))?;
    admin
        .tokens()
        .await
        .map_err(|e| refused(&req.name, &address, e))?;
    let credential_name = format!("console:{}", store.id());
    let minted = admin
        .create_token(&CreateToken {
            name: credential_name.clone(),
            scope: Scope::Console,
        })
        .await
        .map_err(|e| match e.status() {
            Some(409) => ApiError::conflict(format!(
                "environment {:?} at {address} already has a token named {credential_name:?} \
                 (from an earlier registration with this console): revoke it there first \
                 (`runway token revoke {credential_name} --env {address}`), then add the \
                 environment again. Nothing was registered.",
                req.name
            )),
            _ => refused(&req.name, &address, e),
        })?;
    // Forget the minted token on the environment if recording fails.
    let undo = |why: ApiError| {
        let admin = admin.clone();
        let name = credential_name.clone();
        async move {
            if let Err(e) = admin.revoke_token(&name).await {
                tracing::warn!(token = %name, "could not revoke the token minted for a failed registration: {e}");
            }
            why
        }
    };
    // The environment learns the console's keys before it is recorded: a
    // registered environment always trusts the console's tokens.
    let id = new_key();
    if let Err(why) = console
        .push_keys_with(&id, &address, minted.token.clone())
        .await
    {
        return Err(undo(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "environment_refused",
            format!(
                "environment {:?} at {address} did not take the console's signing keys                  ({why}). Nothing was registered.",
                req.name
            ),
        ))
        .await);
    }
    let recorded = store
        .add_environment(&NewEnvironment {
            id: id.clone(),
            name: req.name.clone(),
            address: address.clone(),
            pipeline,
            allow_insecure: req.allow_insecure,
            two_step: req.two_step,
            credential: minted.token,
            credential_name: credential_name.clone(),
            created_by: Some(caller.principal.id.clone()),
        })
        .await;
    let env = match recorded {
        Ok(env) => env,
        Err(e) => return Err(undo(e.into()).await),
    };
    tracing::info!(environment = %env.name, key = %env.id, address = %env.address, "registered an environment");
    // First poll now, so the answer shows its health; then every interval.
    let _ = console.poll_once(&env.id).await;
    console.start_poller(&env.id);
    Ok((
        StatusCode::CREATED,
        Json(environment_view(&console, &env).await?),
    ))
}

#[utoipa::path(get, path = "/_runway/console/v1/environments", responses((status = 200, body = Vec<EnvironmentView>)))]
async fn list_environments(
    State(console): State<Console>,
    caller: Caller,
) -> ApiResult<Json<Vec<EnvironmentView>>> {
    Ok(Json(visible_environments(&console, &caller).await?))
}

/// The environments the caller sees, with their last poll (API and the
/// infrastructure page).
pub(crate) async fn visible_environments(
    console: &Console,
    caller: &Caller,
) -> ApiResult<Vec<EnvironmentView>> {
    let access = crate::auth::Access::load(console, caller).await?;
    let mut out = Vec::new();
    for env in console.store().environments().await? {
        // Environments the caller has no access to are not listed.
        if access.sees_environment(&env.name) {
            out.push(environment_view(console, &env).await?);
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/_runway/console/v1/environments/{env}", params(("env" = String, Path, description = "name or key")), responses((status = 200, body = EnvironmentDetail), (status = 404, body = runway_api::ErrorBody)))]
async fn show_environment(
    State(console): State<Console>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<EnvironmentDetail>> {
    let env = find_environment(&console, &env).await?;
    if !sees_environment(&console, &caller, &env.name).await? {
        require(
            &console,
            &caller,
            "see this environment",
            Need::Level {
                env: &env.name,
                app: None,
                level: Level::Monitor,
            },
        )
        .await?;
    }
    // Only the apps the caller may see there.
    let mut apps = Vec::new();
    for r in crate::apps::running_views(&console).await? {
        if r.environment_key == env.id
            && crate::auth::level_of(&console, &caller, &env.name, Some(&r.app)).await?
                >= Level::Monitor
        {
            apps.push(r);
        }
    }
    Ok(Json(EnvironmentDetail {
        environment: environment_view(&console, &env).await?,
        apps,
    }))
}

#[utoipa::path(delete, path = "/_runway/console/v1/environments/{env}", params(("env" = String, Path), RemoveEnvironment), responses((status = 204), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody, description = "a plan that is not finished uses it"), (status = 502, body = runway_api::ErrorBody, description = "the console cannot revoke its token on the environment (nothing removed; see `force`)")))]
async fn remove_environment(
    State(console): State<Console>,
    caller: Caller,
    Path(env): Path<String>,
    Query(query): Query<RemoveEnvironment>,
) -> ApiResult<StatusCode> {
    require(
        &console,
        &caller,
        "remove an environment",
        Need::ManageInfrastructure,
    )
    .await?;
    let env = find_environment(&console, &env).await?;
    // Refuses while plans target it, before the credential is given back.
    console.store().check_environment_removable(&env.id).await?;
    let client = crate::plans::env_client(&console, &env).await?;
    match client.revoke_own_token().await {
        Ok(()) => {}
        // Already revoked on the environment (or the catalog was reset).
        Err(e) if e.status() == Some(401) => {}
        Err(e) if query.force => tracing::warn!(
            environment = %env.name,
            token = %env.credential_name,
            "removing the environment without revoking the console's token there: {e}"
        ),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "environment_unreachable",
                format!(
                    "cannot revoke the console's token {} on environment {:?} at {}: {e}. \
                     Nothing was removed. Retry when it answers, or remove it anyway with \
                     --force (the token then stays on the environment until an admin runs \
                     `runway token revoke {} --env {}`)",
                    env.credential_name, env.name, env.address, env.credential_name, env.address
                ),
            ));
        }
    }
    console.store().remove_environment(&env.id).await?;
    console.stop_poller(&env.id);
    console.forget_pushed(&env.id);
    tracing::info!(environment = %env.name, key = %env.id, "removed an environment");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/_runway/console/v1/environments/{env}/pipeline", params(("env" = String, Path)), request_body = SetEnvironmentPipeline, responses((status = 200, body = EnvironmentView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn set_pipeline(
    State(console): State<Console>,
    caller: Caller,
    Path(env): Path<String>,
    Json(req): Json<SetEnvironmentPipeline>,
) -> ApiResult<Json<EnvironmentView>> {
    require(
        &console,
        &caller,
        "change an environment's pipeline",
        Need::ManageInfrastructure,
    )
    .await?;
    let env = find_environment(&console, &env).await?;
    let before = serde_json::json!({"pipeline": env.pipeline, "order": env.position});
    let store = console.store();
    match &req.pipeline {
        None => store.set_environment_pipeline(&env.id, None).await?,
        Some(name) => {
            let pipeline = find_pipeline(&console, name).await?;
            let order = match req.order {
                Some(order) if (1..=1000).contains(&order) => order,
                Some(order) => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        format!("order {order} is out of range: give 1–1000"),
                    ));
                }
                None => {
                    store
                        .pipeline_environments(&pipeline.id)
                        .await?
                        .iter()
                        .filter(|e| e.id != env.id)
                        .filter_map(|e| e.position)
                        .max()
                        .unwrap_or(0)
                        + 1
                }
            };
            store
                .set_environment_pipeline(&env.id, Some((&pipeline.id, order)))
                .await?;
        }
    }
    let env = find_environment(&console, &env.id).await?;
    if let Some(slot) = &caller.audit {
        slot.change(
            before,
            serde_json::json!({"pipeline": env.pipeline, "order": env.position}),
        );
    }
    Ok(Json(environment_view(&console, &env).await?))
}

async fn find_pipeline(console: &Console, name_or_key: &str) -> ApiResult<PipelineRecord> {
    console.store().pipeline(name_or_key).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "pipeline_not_found",
            format!(
                "no pipeline {name_or_key:?}; `runway pipeline list` shows them, \
                     `runway pipeline add NAME` creates one"
            ),
        )
    })
}

async fn pipeline_view(console: &Console, p: &PipelineRecord) -> ApiResult<PipelineView> {
    let stages = console.store().pipeline_environments(&p.id).await?;
    Ok(PipelineView {
        key: p.id.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        created_at_ms: p.created_at_ms,
        environments: stages
            .into_iter()
            .map(|e| PipelineStage {
                order: e.position.unwrap_or_default(),
                key: e.id,
                name: e.name,
                address: e.address,
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/_runway/console/v1/pipelines", request_body = CreatePipeline, responses((status = 201, body = PipelineView), (status = 409, body = runway_api::ErrorBody)))]
async fn create_pipeline(
    State(console): State<Console>,
    caller: Caller,
    Json(req): Json<CreatePipeline>,
) -> ApiResult<(StatusCode, Json<PipelineView>)> {
    require(
        &console,
        &caller,
        "create a pipeline",
        Need::ManageInfrastructure,
    )
    .await?;
    check_name("pipeline", &req.name).map_err(|m| ApiError::bad_request("invalid_name", m))?;
    if req.description.len() > 1024 || req.description.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the description is too long (at most 1024 bytes) or contains NUL",
        ));
    }
    let p = console
        .store()
        .create_pipeline(&req.name, &req.description, Some(&caller.principal.id))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(pipeline_view(&console, &p).await?),
    ))
}

#[utoipa::path(get, path = "/_runway/console/v1/pipelines", responses((status = 200, body = Vec<PipelineView>)))]
async fn list_pipelines(
    State(console): State<Console>,
    caller: Caller,
) -> ApiResult<Json<Vec<PipelineView>>> {
    let mut out = Vec::new();
    for p in console.store().pipelines().await? {
        out.push(visible_stages(&console, &caller, pipeline_view(&console, &p).await?).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/_runway/console/v1/pipelines/{pipeline}", params(("pipeline" = String, Path)), responses((status = 200, body = PipelineView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_pipeline(
    State(console): State<Console>,
    caller: Caller,
    Path(pipeline): Path<String>,
) -> ApiResult<Json<PipelineView>> {
    let p = find_pipeline(&console, &pipeline).await?;
    let view = pipeline_view(&console, &p).await?;
    Ok(Json(visible_stages(&console, &caller, view).await?))
}

/// A pipeline without the environments the caller has no access to.
async fn visible_stages(
    console: &Console,
    caller: &Caller,
    mut view: PipelineView,
) -> ApiResult<PipelineView> {
    let mut stages = Vec::new();
    for stage in view.environments {
        if sees_environment(console, caller, &stage.name).await? {
            stages.push(stage);
        }
    }
    view.environments = stages;
    Ok(view)
}
