//! Applications and their versions across environments, as the pollers
//! recorded them, and tagging: recording a version an environment has as a
//! console version (it never changes bytes: the digest is the environment's).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use runway_api::console::{ApplicationView, RunningView, TagVersion, VersionView};
use runway_client::Client;
use runway_store::console::apps::{AppVersionRecord, ApplicationRecord};

use crate::Console;
use crate::access::Level;
use crate::auth::{Access, Caller, Need, require};
use crate::environments::find_environment;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/_runway/console/v1/apps", get(list_apps))
        .route("/_runway/console/v1/apps/{app}", get(show_app))
        .route(
            "/_runway/console/v1/apps/{app}/versions",
            get(list_versions).post(tag_version),
        )
        .route("/_runway/console/v1/versions/{key}", get(show_version))
}

/// What every registered environment runs, as views.
pub async fn running_views(console: &Console) -> ApiResult<Vec<RunningView>> {
    let envs: BTreeMap<String, String> = console
        .store()
        .environments()
        .await?
        .into_iter()
        .map(|e| (e.id, e.name))
        .collect();
    Ok(console
        .store()
        .running()
        .await?
        .into_iter()
        .filter_map(|r| {
            let environment = envs.get(&r.environment_id)?.clone();
            Some(RunningView {
                app: r.application,
                app_key: r.application_id,
                environment,
                environment_key: r.environment_id,
                version: r.version,
                version_key: r.version_id,
                digest: r.digest,
                status: r.status,
                deployed_at_ms: r.deployed_at_ms,
            })
        })
        .collect())
}

/// What every registered environment runs, limited to what the caller may
/// see (monitor on that app there).
pub(crate) async fn visible_running(
    console: &Console,
    access: &Access<'_>,
) -> ApiResult<Vec<RunningView>> {
    Ok(running_views(console)
        .await?
        .into_iter()
        .filter(|r| access.level(&r.environment, Some(&r.app)) >= Level::Monitor)
        .collect())
}

/// Refuses (403, at the enforcement point) an app the caller has no access
/// to in any environment, naming an environment that runs it.
pub(crate) async fn require_sees_app(
    console: &Console,
    caller: &Caller,
    access: &Access<'_>,
    app: &str,
) -> ApiResult<()> {
    if access.sees_app(app) {
        return Ok(());
    }
    let runs_in = running_views(console)
        .await?
        .into_iter()
        .find(|r| r.app == app)
        .map(|r| r.environment);
    let env = match runs_in {
        Some(env) => env,
        None => console
            .store()
            .environments()
            .await?
            .into_iter()
            .next()
            .map(|e| e.name)
            .unwrap_or_default(),
    };
    require(
        console,
        caller,
        "see this app",
        Need::Level {
            env: &env,
            app: Some(app),
            level: Level::Monitor,
        },
    )
    .await
}

/// The application with this name or key, or a 404 naming it.
pub async fn find_application(
    console: &Console,
    name_or_key: &str,
) -> ApiResult<ApplicationRecord> {
    console
        .store()
        .application(name_or_key)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "app_not_found",
                format!(
                    "the console knows no application {name_or_key:?}; `runway apps` lists \
                     them (an app is known once an environment runs it)"
                ),
            )
        })
}

async fn application_view(
    console: &Console,
    app: &ApplicationRecord,
    running: &[RunningView],
) -> ApiResult<ApplicationView> {
    let envs = console.store().environments().await?;
    Ok(application_view_with(&envs, app, running))
}

/// An application's view, given every environment (read once for a list).
fn application_view_with(
    envs: &[runway_store::console::environments::EnvironmentRecord],
    app: &ApplicationRecord,
    running: &[RunningView],
) -> ApplicationView {
    let running: Vec<RunningView> = running
        .iter()
        .filter(|r| r.app_key == app.id)
        .cloned()
        .collect();
    // The pipeline whose environments run it: the one pipeline of every
    // environment where it runs (none if none, or if several).
    let pipelines: BTreeSet<Option<String>> = running
        .iter()
        .filter(|r| r.version.is_some())
        .filter_map(|r| envs.iter().find(|e| e.id == r.environment_key))
        .map(|e| e.pipeline.clone())
        .collect();
    let pipeline = match pipelines.len() {
        1 => pipelines.into_iter().next().flatten(),
        _ => None,
    };
    ApplicationView {
        key: app.id.clone(),
        name: app.name.clone(),
        description: app.description.clone(),
        pipeline,
        running,
    }
}

#[utoipa::path(get, path = "/_runway/console/v1/apps", responses((status = 200, body = Vec<ApplicationView>)))]
async fn list_apps(
    State(console): State<Console>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApplicationView>>> {
    Ok(Json(visible_apps(&console, &caller).await?))
}

/// The applications the caller sees, with where each runs (API and the
/// applications page).
pub(crate) async fn visible_apps(
    console: &Console,
    caller: &Caller,
) -> ApiResult<Vec<ApplicationView>> {
    let access = Access::load(console, caller).await?;
    let running = visible_running(console, &access).await?;
    let envs = console.store().environments().await?;
    let mut out = Vec::new();
    for app in console.store().applications().await? {
        if access.sees_app(&app.name) {
            out.push(application_view_with(&envs, &app, &running));
        }
    }
    Ok(out)
}

/// An application with its versions, for one who may see it (API and the
/// application page).
pub(crate) async fn app_detail_for(
    console: &Console,
    caller: &Caller,
    app: &str,
) -> ApiResult<(ApplicationView, Vec<VersionView>)> {
    let app = find_application(console, app).await?;
    let access = Access::load(console, caller).await?;
    require_sees_app(console, caller, &access, &app.name).await?;
    let running = visible_running(console, &access).await?;
    let versions = console.store().app_versions(&app.id).await?;
    Ok((
        application_view(console, &app, &running).await?,
        versions
            .into_iter()
            .map(|v| version_view(v, &running))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/_runway/console/v1/apps/{app}", params(("app" = String, Path, description = "name or key")), responses((status = 200, body = ApplicationView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_app(
    State(console): State<Console>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<ApplicationView>> {
    let app = find_application(&console, &app).await?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &app.name).await?;
    let running = visible_running(&console, &access).await?;
    Ok(Json(application_view(&console, &app, &running).await?))
}

fn version_view(v: AppVersionRecord, running: &[RunningView]) -> VersionView {
    let running_in = running
        .iter()
        .filter(|r| r.version_key.as_deref() == Some(v.id.as_str()))
        .map(|r| r.environment.clone())
        .collect();
    VersionView {
        key: v.id,
        app: v.application,
        app_key: v.application_id,
        version: v.version,
        digest: v.digest,
        description: v.description,
        changelog: v.changelog,
        created_at_ms: v.created_at_ms,
        created_by: v.created_by,
        running_in,
    }
}

#[utoipa::path(get, path = "/_runway/console/v1/apps/{app}/versions", params(("app" = String, Path)), responses((status = 200, body = Vec<VersionView>), (status = 404, body = runway_api::ErrorBody)))]
async fn list_versions(
    State(console): State<Console>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<VersionView>>> {
    let app = find_application(&console, &app).await?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &app.name).await?;
    let running = visible_running(&console, &access).await?;
    let versions = console.store().app_versions(&app.id).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| version_view(v, &running))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/_runway/console/v1/versions/{key}", params(("key" = String, Path)), responses((status = 200, body = VersionView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_version(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<VersionView>> {
    let version = console.store().app_version(&key).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!(
                "no application version with key {key:?} (`runway apps --versions` lists them)"
            ),
        )
    })?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &version.application).await?;
    let running = visible_running(&console, &access).await?;
    Ok(Json(version_view(version, &running)))
}

/// Records (tags) a version an environment has: by default the one it
/// runs, or one of its published versions by number. The digest is the
/// environment's; the bytes are not touched.
#[utoipa::path(post, path = "/_runway/console/v1/apps/{app}/versions", params(("app" = String, Path)), request_body = TagVersion, responses((status = 201, body = VersionView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody), (status = 502, body = runway_api::ErrorBody)))]
async fn tag_version(
    State(console): State<Console>,
    caller: Caller,
    Path(app): Path<String>,
    Json(req): Json<TagVersion>,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    if req.changelog.len() > 64 * 1024 || req.changelog.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the changelog is too long (at most 64 KiB) or contains NUL",
        ));
    }
    let env = find_environment(&console, &req.environment).await?;
    require(
        &console,
        &caller,
        "tag a version",
        Need::Level {
            env: &env.name,
            app: Some(&app),
            level: Level::ChangeAndDeploy,
        },
    )
    .await?;
    let credential = console.store().environment_credential(&env.id).await?;
    let client = Client::new(&env.address, Some(credential))
        .map_err(|e| ApiError::internal(format!("environment address: {e}")))?;
    let unreachable = |e: runway_client::ClientError| match e.status() {
        Some(404) => ApiError::new(
            StatusCode::NOT_FOUND,
            "app_not_found",
            format!("environment {:?} has no app {app:?}", env.name),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "environment_unreachable",
            format!(
                "cannot ask environment {:?} at {}: {e}",
                env.name, env.address
            ),
        ),
    };
    let versions = client.versions(&app).await.map_err(unreachable)?;
    let number = match &req.version {
        Some(v) => v.clone(),
        None => client
            .app(&app)
            .await
            .map_err(unreachable)?
            .summary
            .running_version
            .ok_or_else(|| {
                ApiError::conflict(format!(
                    "environment {:?} runs no version of {app:?}: give the version to tag",
                    env.name
                ))
            })?,
    };
    let found = versions
        .iter()
        .find(|v| v.version == number)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "version_not_found",
                format!(
                    "environment {:?} has no version {number} of {app:?}; publish it there first",
                    env.name
                ),
            )
        })?;
    let recorded = console
        .store()
        .tag_version(
            &app,
            &number,
            &found.digest,
            &req.changelog,
            Some(&caller.principal.id),
            Some(&env.id),
        )
        .await?;
    let running = running_views(&console).await?;
    Ok((StatusCode::CREATED, Json(version_view(recorded, &running))))
}
