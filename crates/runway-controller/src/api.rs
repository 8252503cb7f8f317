//! Server.API: the environment's REST surface under `/_runway/api/v1`, and
//! its OpenAPI document at `/_runway/api/openapi.json`.
//!
//! Every handler takes a `Caller<Scope>` argument: an endpoint without one
//! cannot be reached, by construction, without a valid token of that scope.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use runway_api::v1::*;
use runway_store::{BlobKind, DeleteVersion, LogQuery, StoreError};
use serde::Deserialize;
use utoipa::OpenApi;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::Controller;
use crate::deployer::{app_not_found, deployment_view, narrow, parse_app_version};
use crate::error::{ApiError, ApiResult, MAX_JSON_BODY_BYTES, api_layer};
use crate::identity::{Admin, Caller, Console, Deploy, Principal, Read, new_token};

#[derive(OpenApi)]
#[openapi(
    info(title = "Runway environment API", version = "1"),
    paths(
        environment, publish, download_package, has_package, import_package, list_apps, show_app,
        list_versions, delete_version, deploy, undeploy, list_deployments, create_deployment, dry_run,
        get_deployment, commit_deployment, abort_deployment, get_config, patch_config, unmark_secret,
        logs, list_tokens, create_token, revoke_token, revoke_own_token, list_frontends, enable_frontend,
        disable_frontend, remove_frontend
    ),
    components(schemas(runway_api::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The controller's routes. Anything not matched falls through to whatever
/// this router is merged with (the front-end in `runway up`); unknown API
/// paths get a JSON 404.
pub fn router(controller: Controller) -> Router {
    let uploads = UploadSlots(Arc::new(Semaphore::new(controller.config().max_uploads)));
    let api = Router::new()
        .route("/environment", get(environment))
        .route("/packages", post(publish))
        .route(
            "/packages/{digest}",
            get(download_package).head(has_package).put(import_package),
        )
        .route("/apps", get(list_apps))
        .route("/apps/{app}", get(show_app))
        .route("/apps/{app}/versions", get(list_versions))
        .route("/apps/{app}/versions/{version}", delete(delete_version))
        .route("/apps/{app}/deployments", post(deploy))
        .route("/apps/{app}/deployment", delete(undeploy))
        .route("/apps/{app}/config", get(get_config).patch(patch_config))
        .route(
            "/apps/{app}/config/{key}/unmark-secret",
            post(unmark_secret),
        )
        .route(
            "/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/deployments/dry-run", post(dry_run))
        .route("/deployments/{id}", get(get_deployment))
        .route("/deployments/{id}/commit", post(commit_deployment))
        .route("/deployments/{id}/abort", post(abort_deployment))
        .route("/logs", get(logs))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{token}", delete(revoke_token))
        .route("/token", delete(revoke_own_token))
        .route("/frontends", get(list_frontends))
        .route("/frontends/{name}", delete(remove_frontend))
        .route("/frontends/{name}/enable", post(enable_frontend))
        .route("/frontends/{name}/disable", post(disable_frontend))
        .merge(crate::timers::routes())
        .merge(crate::jobs::routes())
        .merge(crate::email::routes())
        .merge(crate::trust::routes())
        .merge(crate::zones::routes())
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            controller.clone(),
            crate::identity::audit_layer,
        ))
        .layer(Extension(uploads))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(middleware::from_fn(api_layer));
    Router::new()
        .route(
            "/_runway/api/openapi.json",
            get(openapi).layer(middleware::from_fn(api_layer)),
        )
        .nest("/_runway/api/v1", api)
        // A standby serves reads only (see `lease`).
        .route_layer(axum::middleware::from_fn_with_state(
            controller.clone(),
            crate::lease::standby_guard,
        ))
        .with_state(controller.clone())
        // The dashboard's pages (`web`), under `/_runway/` too.
        .merge(crate::web::router(controller))
}

/// Package uploads being received at once (`--max-uploads`).
#[derive(Clone)]
struct UploadSlots(Arc<Semaphore>);

async fn api_not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no API endpoint at {}; the endpoints are listed in /_runway/api/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; the endpoints and their methods are listed in /_runway/api/openapi.json",
            uri.path()
        ),
    )
}

async fn openapi(_caller: Caller<Read>) -> Response {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::timers::TimersDoc::openapi());
    doc.merge(crate::jobs::JobsDoc::openapi());
    doc.merge(crate::email::EmailDoc::openapi());
    doc.merge(crate::trust::TrustDoc::openapi());
    doc.merge(crate::zones::ZonesDoc::openapi());
    doc.merge(crate::hostname::HostnameDoc::openapi());
    Json(doc).into_response()
}

fn log_dropped(d: runway_store::LogDrops) -> runway_api::v1::LogDropped {
    runway_api::v1::LogDropped {
        queue_full: d.queue_full,
        output_rate_limit: d.output_rate_limit,
        rejected: d.rejected,
        database_unavailable: d.database_unavailable,
        size_cap: d.size_cap,
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/environment", responses((status = 200, body = EnvironmentInfo)))]
async fn environment(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<EnvironmentInfo>> {
    Ok(Json(EnvironmentInfo {
        name: c.config().environment.clone(),
        base_url: c.base_url().await?,
        runway_version: env!("CARGO_PKG_VERSION").to_string(),
        engine: c.runtime().engine_fingerprint().to_string(),
        generation: c.store().generation().await?,
        limits: c.config().limits,
        frontends: c.frontend_list().await?.frontends,
        log_dropped: log_dropped(c.store().log_drops().await?),
        zones: c.zone_views().await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PublishParams {
    /// Deploy the version once published (default true).
    deploy: Option<bool>,
}

#[utoipa::path(
    post, path = "/_runway/api/v1/packages", params(PublishParams),
    request_body(content = Vec<u8>, content_type = "application/vnd.runway.package"),
    responses(
        (status = 201, body = PublishResult, description = "new version"),
        (status = 200, body = PublishResult, description = "identical version already published"),
        (status = 400, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody),
        (status = 413, body = runway_api::ErrorBody), (status = 422, body = runway_api::ErrorBody),
        (status = 503, body = runway_api::ErrorBody, description = "too many uploads at once (--max-uploads); retry after the Retry-After seconds"),
    )
)]
async fn publish(
    State(c): State<Controller>,
    Extension(UploadSlots(slots)): Extension<UploadSlots>,
    _caller: Caller<Deploy>,
    Query(params): Query<PublishParams>,
    body: Body,
) -> ApiResult<Response> {
    // Refused before a byte of the body is read: the upload slot bounds disk
    // and decoding work, not only memory.
    let Ok(_slot) = slots.try_acquire_owned() else {
        return Ok(too_many_uploads(&c));
    };
    let file = receive_upload(&c, body).await?;
    let (result, created) = c.publish_file(file, params.deploy.unwrap_or(true)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(result)).into_response())
}

/// The 503 answer (with `Retry-After`) when every `--max-uploads` slot is taken.
fn too_many_uploads(c: &Controller) -> Response {
    let limit = c.config().max_uploads;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(http::header::RETRY_AFTER, "5")],
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_uploads",
            format!(
                "{limit} package uploads are already being received, this environment's limit (--max-uploads); retry in a few seconds"
            ),
        )
        .with_detail("retry_after_secs", serde_json::json!(5)),
    )
        .into_response()
}

/// A package digest from a URL path: `sha256:` and 64 lowercase hex digits.
fn parse_digest(digest: &str) -> ApiResult<runway_manifest::Digest> {
    runway_manifest::Digest::parse(digest).map_err(|e| {
        ApiError::bad_request(
            "invalid_digest",
            format!(
                "package digest {digest:?}: {e}; expected sha256: and 64 lowercase hex digits, as `runway app versions APP` shows"
            ),
        )
    })
}

fn package_not_found(digest: &runway_manifest::Digest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "package_not_found",
        format!(
            "this environment holds no package {digest}; import it with PUT /_runway/api/v1/packages/{digest} or publish it"
        ),
    )
}

/// The exact `.rwp` bytes that were published as `digest`.
#[utoipa::path(
    get, path = "/_runway/api/v1/packages/{digest}",
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody),
    )
)]
async fn download_package(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let digest = parse_digest(&digest)?;
    let path = c.blobs().path(BlobKind::Package, &digest);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(package_not_found(&digest));
        }
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot open {}: {e}",
                path.display()
            )));
        }
    };
    let length = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?
        .len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (
                http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (http::header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Whether the environment holds package `digest` (200) or not (404).
#[utoipa::path(
    head, path = "/_runway/api/v1/packages/{digest}",
    responses((status = 200), (status = 404))
)]
async fn has_package(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let digest = parse_digest(&digest)?;
    match tokio::fs::metadata(c.blobs().path(BlobKind::Package, &digest)).await {
        Ok(meta) => Ok((
            [
                (
                    http::header::CONTENT_TYPE,
                    "application/octet-stream".to_string(),
                ),
                (http::header::CONTENT_LENGTH, meta.len().to_string()),
            ],
            StatusCode::OK,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(package_not_found(&digest)),
        Err(e) => Err(ApiError::internal(format!(
            "cannot stat package {digest}: {e}"
        ))),
    }
}

/// Imports a package published elsewhere. Its bytes must have digest
/// `{digest}` (else `400 digest_mismatch`, nothing stored); never deploys;
/// idempotent (`created: false` the second time).
#[utoipa::path(
    put, path = "/_runway/api/v1/packages/{digest}",
    request_body(content = Vec<u8>, content_type = "application/vnd.runway.package"),
    responses(
        (status = 200, body = PublishResult),
        (status = 400, body = runway_api::ErrorBody, description = "invalid_package, invalid_digest or digest_mismatch"),
        (status = 409, body = runway_api::ErrorBody), (status = 413, body = runway_api::ErrorBody),
        (status = 422, body = runway_api::ErrorBody), (status = 503, body = runway_api::ErrorBody),
    )
)]
async fn import_package(
    State(c): State<Controller>,
    Extension(UploadSlots(slots)): Extension<UploadSlots>,
    _caller: Caller<Deploy>,
    Path(digest): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let expected = parse_digest(&digest)?;
    let Ok(_slot) = slots.try_acquire_owned() else {
        return Ok(too_many_uploads(&c));
    };
    let file = receive_upload(&c, body).await?;
    let (result, _created) = c.import_file(file, expected).await?;
    Ok(Json(result).into_response())
}

/// Streams an upload into a temporary file in `packages/` (never whole in
/// memory), refusing it as soon as it passes `--max-package-mib`. The file is
/// deleted when the returned path is dropped, unless it is kept.
async fn receive_upload(c: &Controller, body: Body) -> ApiResult<tempfile::TempPath> {
    let max = c.config().max_package_bytes;
    let dir = c.blobs().dir(BlobKind::Package);
    let temp = tempfile::Builder::new()
        .prefix(".upload-")
        .suffix(".rwp.tmp")
        .tempfile_in(&dir)
        .map_err(|e| {
            ApiError::internal(format!(
                "cannot create an upload file in {}: {e}",
                dir.display()
            ))
        })?;
    let (file, path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "invalid_package",
                format!(
                    "the upload was cut off after {received} bytes ({e}); send the .rwp file again"
                ),
            )
        })?;
        received += chunk.len() as u64;
        if received > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the package is larger than this environment's limit of {max} bytes (--max-package-mib); make the app smaller or raise the limit"
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::internal(format!("cannot write upload {}: {e}", path.display()))
        })?;
    }
    if received == 0 {
        return Err(ApiError::bad_request(
            "invalid_package",
            "the request body is empty: send the .rwp file built by `runway app build`",
        ));
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("cannot write upload {}: {e}", path.display())))?;
    Ok(path)
}

async fn summary(c: &Controller, record: runway_store::AppRecord) -> ApiResult<AppSummary> {
    let description = match &record.running_version {
        Some(v) => c
            .store()
            .version(&record.name, v)
            .await?
            .and_then(|v| v.description),
        None => None,
    };
    let load_error = c.load_error(&record.name);
    let status = match (&record.running_version, &load_error) {
        (None, _) => AppStatus::Stopped,
        (Some(_), Some(_)) => AppStatus::Failed,
        (Some(_), None) => AppStatus::Running,
    };
    Ok(AppSummary {
        zone: c.store().app_zone(&record.name).await?,
        url: format!("{}/{}/", c.base_url().await?, record.name),
        status,
        load_error,
        name: record.name,
        running_version: record.running_version,
        running_digest: record.running_digest,
        description,
        deployed_at_ms: record.deployed_at_ms,
        version_count: record.version_count,
    })
}

#[utoipa::path(get, path = "/_runway/api/v1/apps", responses((status = 200, body = Vec<AppSummary>)))]
pub(crate) async fn list_apps(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<Vec<AppSummary>>> {
    let mut apps = Vec::new();
    for record in c.store().apps().await? {
        apps.push(summary(&c, record).await?);
    }
    Ok(Json(apps))
}

#[utoipa::path(get, path = "/_runway/api/v1/apps/{app}", responses((status = 200, body = AppDetail), (status = 404, body = runway_api::ErrorBody)))]
pub(crate) async fn show_app(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(app): Path<String>,
) -> ApiResult<Json<AppDetail>> {
    let (record, manifest, values) = c.app_config(&app).await?;
    Ok(Json(AppDetail {
        summary: summary(&c, record).await?,
        properties: c.property_views(&app, &manifest, &values).await?,
        timers: manifest
            .timers
            .iter()
            .map(|t| TimerView {
                name: t.name.clone(),
                schedule: t.schedule.clone(),
                path: t.path.clone(),
                timeout_secs: t.timeout_secs,
            })
            .collect(),
        dependencies: manifest
            .dependencies
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        outbound_allow: manifest
            .outbound
            .allow
            .iter()
            .map(ToString::to_string)
            .collect(),
        limits: narrow(c.config().limits, &manifest),
    }))
}

#[utoipa::path(get, path = "/_runway/api/v1/apps/{app}/versions", responses((status = 200, body = Vec<VersionSummary>)))]
pub(crate) async fn list_versions(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<VersionSummary>>> {
    let record = c
        .store()
        .app(&app)
        .await?
        .ok_or_else(|| app_not_found(&app))?;
    let mut summaries = Vec::new();
    for v in c.store().versions(&app).await? {
        // Published manifests were parsed before they were stored; one that
        // no longer parses is a damaged catalog, not something to hide.
        let manifest =
            runway_manifest::Manifest::parse(&v.manifest_toml, "runway.toml").map_err(|e| {
                ApiError::internal(format!(
                    "the stored manifest of {app} {} does not parse: {e}",
                    v.version
                ))
            })?;
        summaries.push(VersionSummary {
            running: record.running_version.as_deref() == Some(v.version.as_str()),
            app: v.app,
            version: v.version,
            digest: v.digest,
            component_digest: v.component_digest,
            size_bytes: v.size_bytes,
            published_at_ms: v.published_at_ms,
            description: v.description,
            dependencies: manifest
                .dependencies
                .iter()
                .map(|(k, r)| (k.to_string(), r.to_string()))
                .collect(),
        });
    }
    Ok(Json(summaries))
}

#[utoipa::path(delete, path = "/_runway/api/v1/apps/{app}/versions/{version}", responses((status = 204), (status = 409, body = runway_api::ErrorBody)))]
async fn delete_version(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path((app, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    parse_app_version(&app, &version)?;
    let record = c.store().version(&app, &version).await?;
    // As published (`1.0.0` names `1.0.0+build`, the same version).
    let stored = record
        .as_ref()
        .map_or(version.as_str(), |r| r.version.as_str());
    match c.store().delete_version(&app, stored).await? {
        DeleteVersion::Deleted => {
            if let Some(record) = record
                && let Ok(digest) = runway_manifest::Digest::parse(&record.digest)
            {
                let _ = c.blobs().remove(BlobKind::Package, &digest).await;
            }
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteVersion::NotFound => Err(ApiError::not_found(format!(
            "app {app} has no version {version}; `runway app versions {app}` lists them"
        ))),
        DeleteVersion::Running => Err(ApiError::conflict(format!(
            "{app} {version} is running and cannot be deleted; deploy another version first (`runway app deploy {app}@VERSION`)"
        ))),
        DeleteVersion::Deploying { deployment } => Err(ApiError::conflict(format!(
            "{app} {version} is being deployed by deployment {deployment} (running, or \
             prepared and waiting for its commit) and cannot be deleted; wait for it, or \
             commit or abort it first (a prepared one from its console: `runway deploy \
             continue|abort PLAN`)"
        ))),
    }
}

#[utoipa::path(post, path = "/_runway/api/v1/apps/{app}/deployments", request_body = DeployRequest, responses((status = 200, body = Deployment), (status = 404, body = runway_api::ErrorBody)))]
async fn deploy(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(app): Path<String>,
    Json(request): Json<DeployRequest>,
) -> ApiResult<Json<Deployment>> {
    parse_app_version(&app, &request.version)?;
    let Some(record) = c.store().version(&app, &request.version).await? else {
        return Err(ApiError::not_found(format!(
            "app {app} has no version {}; `runway app versions {app}` lists the published ones",
            request.version
        )));
    };
    // As published (`1.0.0` names `1.0.0+build`, the same version).
    Ok(Json(
        c.deploy_with(&app, &record.version, request.disable_failed_frontends)
            .await?,
    ))
}

/// Removes an app from the routing table (requests get 404 `app_not_found`);
/// its versions, key-value data and properties stay.
#[utoipa::path(delete, path = "/_runway/api/v1/apps/{app}/deployment", responses((status = 200, body = Deployment), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody, description = "deployment_conflict (not deployed, a dependent app) or deployment_in_progress")))]
async fn undeploy(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(app): Path<String>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(c.undeploy(&app).await?))
}

/// Deploys and undeploys several apps in one generation. Checked as the dry
/// run checks (any problem: `409 deployment_conflict` with
/// `details.problems`, nothing changed). With `prepare` (scope console) it
/// stages everywhere and stops: status `prepared`, to commit or abort.
#[utoipa::path(
    post, path = "/_runway/api/v1/deployments", request_body = DeploymentRequest,
    responses(
        (status = 201, body = Deployment),
        (status = 400, body = runway_api::ErrorBody),
        (status = 403, body = runway_api::ErrorBody, description = "prepare needs scope console"),
        (status = 409, body = runway_api::ErrorBody, description = "deployment_conflict (details.problems) or deployment_in_progress (details.id)"),
        (status = 502, body = runway_api::ErrorBody, description = "staging failed; nothing was switched"),
    )
)]
async fn create_deployment(
    State(c): State<Controller>,
    caller: Caller<Deploy>,
    Json(request): Json<DeploymentRequest>,
) -> ApiResult<Response> {
    let scope = caller.scope;
    if request.prepare
        && (scope < Scope::Console || !matches!(caller.principal, Principal::Token(_)))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} has scope {scope}; preparing a deployment needs an environment token of scope console (or admin): create one with `runway token create NAME --scope console`",
                caller.describe()
            ),
        ));
    }
    let deployment = c.create_deployment(&request).await?;
    Ok((StatusCode::CREATED, Json(deployment)).into_response())
}

/// What would block a deployment: per app, with a code and a message naming
/// the cause and the fix. Changes nothing.
#[utoipa::path(post, path = "/_runway/api/v1/deployments/dry-run", request_body = DeploymentRequest, responses((status = 200, body = DryRun), (status = 400, body = runway_api::ErrorBody)))]
async fn dry_run(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Json(request): Json<DeploymentRequest>,
) -> ApiResult<Json<DryRun>> {
    Ok(Json(c.dry_run(&request).await?))
}

#[utoipa::path(get, path = "/_runway/api/v1/deployments/{id}", responses((status = 200, body = Deployment), (status = 404, body = runway_api::ErrorBody)))]
async fn get_deployment(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(c.deployment(id).await?))
}

/// Records and switches exactly the prepared table.
#[utoipa::path(post, path = "/_runway/api/v1/deployments/{id}/commit", responses((status = 200, body = Deployment), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody, description = "not_prepared (also once expired)")))]
async fn commit_deployment(
    State(c): State<Controller>,
    _caller: Caller<Console>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(c.commit_deployment(id).await?))
}

/// Drops a prepared deployment's staged tables: the environment serves
/// exactly what it served before.
#[utoipa::path(post, path = "/_runway/api/v1/deployments/{id}/abort", responses((status = 200, body = Deployment), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody, description = "not_prepared")))]
async fn abort_deployment(
    State(c): State<Controller>,
    caller: Caller<Console>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Deployment>> {
    // Scope console: only environment tokens reach here.
    let who = match &caller.principal {
        Principal::Token(t) => t.name.clone(),
        Principal::Console(c) => c.sub.clone(),
    };
    Ok(Json(c.abort_deployment(id, &who).await?))
}

#[utoipa::path(get, path = "/_runway/api/v1/deployments", params(DeploymentQueryParams), responses((status = 200, body = Vec<Deployment>)))]
async fn list_deployments(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(params): Query<DeploymentQueryParams>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let records = c
        .store()
        .deployments(
            params.app.as_deref(),
            params.limit.unwrap_or(50).clamp(1, 1000),
        )
        .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| deployment_view(r, None))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/_runway/api/v1/apps/{app}/config", responses((status = 200, body = Vec<PropertyView>)))]
async fn get_config(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<PropertyView>>> {
    let (_, manifest, values) = c.app_config(&app).await?;
    Ok(Json(c.property_views(&app, &manifest, &values).await?))
}

/// Un-marks a property that was secret in an earlier version: from now on
/// its value is stored and shown in plaintext (admin only).
#[utoipa::path(post, path = "/_runway/api/v1/apps/{app}/config/{key}/unmark-secret", responses((status = 200, body = Vec<PropertyView>), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn unmark_secret(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult<Json<Vec<PropertyView>>> {
    Ok(Json(c.unmark_secret(&app, &key).await?))
}

#[utoipa::path(patch, path = "/_runway/api/v1/apps/{app}/config", request_body = ConfigPatch, responses((status = 200, body = Vec<PropertyView>), (status = 400, body = runway_api::ErrorBody)))]
async fn patch_config(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(app): Path<String>,
    audit: Option<axum::Extension<crate::identity::AuditSlot>>,
    Json(patch): Json<ConfigPatch>,
) -> ApiResult<Json<Vec<PropertyView>>> {
    // Refused here, the same on every backend (PostgreSQL TEXT has no NUL),
    // before anything is staged. The value is not echoed: it may be a secret.
    for (key, value) in &patch.values {
        let field = format!("values.{key}");
        if key.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_property",
                format!(
                    "property name {key:?} of app {app} contains a NUL byte (\\u0000); remove it"
                ),
            )
            .with_detail("field", serde_json::json!(field)));
        }
        if let Some(at) = value.as_deref().and_then(|v| v.find('\0')) {
            return Err(ApiError::bad_request(
                "invalid_property",
                format!(
                    "the value of property {key} of app {app} contains a NUL byte (\\u0000) at byte {at}; remove it (property values are text without NUL)"
                ),
            )
            .with_detail("field", serde_json::json!(field)));
        }
    }
    let before = match c.app_config(&app).await {
        Ok((_, manifest, values)) => Some(c.property_views(&app, &manifest, &values).await?),
        Err(_) => None,
    };
    let after = c.set_config(&app, &patch.values).await?;
    if let (Some(axum::Extension(slot)), Some(before)) = (audit, before) {
        let keys: Vec<&String> = patch.values.keys().collect();
        slot.change(
            crate::identity::config_change_view(&before, &keys),
            crate::identity::config_change_view(&after, &keys),
        );
    }
    Ok(Json(after))
}

#[utoipa::path(get, path = "/_runway/api/v1/logs", params(LogQueryParams), responses((status = 200, body = Vec<LogEntry>)))]
async fn logs(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(params): Query<LogQueryParams>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    let kinds = params.kind.map(|k| k.0).unwrap_or_default();
    let query = LogQuery {
        app: params.app,
        kinds,
        errors_only: params.errors.unwrap_or(false),
        after_id: params.after,
        since_ms: params.since_ms,
        until_ms: params.until_ms,
        limit: params.limit.unwrap_or(100).clamp(1, 5000),
        frontend: params.frontend,
        status: params.status,
    };
    let entries = c.store().logs(&query).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| LogEntry {
                id: e.id,
                at_ms: e.at_ms,
                kind: e.kind,
                level: e.level,
                app: e.app,
                version: e.version,
                frontend: e.frontend,
                request_id: e.request_id,
                method: e.method,
                path: e.path,
                status: e.status,
                duration_us: e.duration_us,
                bytes_out: e.bytes_out,
                stream: e.stream,
                message: e.message,
            })
            .collect(),
    ))
}

fn token_info(t: runway_store::TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id,
        scope: t.scope,
        name: t.name,
        created_at_ms: t.created_at_ms,
        last_used_at_ms: t.last_used_at_ms,
        revoked_at_ms: t.revoked_at_ms,
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/tokens", responses((status = 200, body = Vec<TokenInfo>)))]
async fn list_tokens(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(
        c.store()
            .tokens()
            .await?
            .into_iter()
            .map(token_info)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/_runway/api/v1/tokens", request_body = CreateToken, responses((status = 201, body = TokenCreated), (status = 409, body = runway_api::ErrorBody)))]
async fn create_token(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(request): Json<CreateToken>,
) -> ApiResult<Response> {
    let name = request.name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch))
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("token name {name:?}: use 1 to 64 letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    if name.chars().all(|ch| ch.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("token name {name:?}: must not be all digits (ids are numbers)"),
        ));
    }
    let (token, hash) = new_token();
    let record = match c.store().create_token(name, request.scope, &hash).await {
        Ok(record) => record,
        Err(StoreError::Conflict(message)) => return Err(ApiError::conflict(message)),
        Err(e) => return Err(e.into()),
    };
    let created = TokenCreated {
        info: token_info(record),
        token,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(delete, path = "/_runway/api/v1/tokens/{token}", responses((status = 204), (status = 404, body = runway_api::ErrorBody), (status = 409, description = "the last admin token cannot be revoked", body = runway_api::ErrorBody)))]
async fn revoke_token(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(token): Path<String>,
) -> ApiResult<StatusCode> {
    let revoked = match c.store().revoke_token(&token).await {
        Ok(revoked) => revoked,
        Err(StoreError::Conflict(message)) => return Err(ApiError::conflict(message)),
        Err(e) => return Err(e.into()),
    };
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no active token with id or name '{token}'; `runway token list` shows them"
        )))
    }
}

/// Revokes the token that makes this request: how a holder (the console when
/// an environment is removed from it) gives its credential back.
#[utoipa::path(delete, path = "/_runway/api/v1/token", responses((status = 204), (status = 409, description = "the last admin token cannot be revoked", body = runway_api::ErrorBody)))]
async fn revoke_own_token(
    State(c): State<Controller>,
    caller: Caller<Read>,
) -> ApiResult<StatusCode> {
    let Principal::Token(token) = &caller.principal else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_revocable",
            format!(
                "{} is a console-issued token: it cannot be revoked here and expires by itself within 10 minutes",
                caller.describe()
            ),
        ));
    };
    match c.store().revoke_token(&token.id.to_string()).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::Conflict(message)) => Err(ApiError::conflict(message)),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/frontends", responses((status = 200, body = FrontendList)))]
async fn list_frontends(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(watch): Query<FrontendWatch>,
) -> ApiResult<Response> {
    // A watch (long poll, see `FrontendWatch`): answer once the list's tag
    // differs from the caller's, or at the deadline. Changes wake the wait;
    // a re-check every second also catches front-ends going offline (a
    // heartbeat that stops changes nothing by itself).
    let wait = Duration::from_millis(
        watch
            .wait_ms
            .unwrap_or(MAX_FRONTEND_WATCH_MS)
            .min(MAX_FRONTEND_WATCH_MS),
    );
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = c.inner.fleet.changes.subscribe();
    loop {
        changes.mark_unchanged();
        let list = c.frontend_list().await?;
        let tag = frontend_list_tag(&list);
        let now = tokio::time::Instant::now();
        if watch.watch.as_deref() != Some(tag.as_str()) || now >= deadline {
            let mut response = Json(list).into_response();
            if let Ok(value) = http::HeaderValue::from_str(&tag) {
                response
                    .headers_mut()
                    .insert(FRONTEND_LIST_TAG_HEADER, value);
            }
            return Ok(response);
        }
        let recheck = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(recheck, changes.changed()).await;
    }
}

/// What a watcher of the front-end list compares: everything but the
/// heartbeat times (which change every second and decide nothing by
/// themselves).
fn frontend_list_tag(list: &FrontendList) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(list.generation.to_le_bytes());
    for f in &list.frontends {
        hasher.update(f.name.as_bytes());
        hasher.update([0]);
        hasher.update(f.address.as_bytes());
        hasher.update([0]);
        hasher.update(f.state.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(f.generation.to_le_bytes());
        hasher.update([
            u8::from(f.enabled),
            u8::from(f.flags.serves_apps),
            u8::from(f.flags.runs_timers),
            u8::from(f.flags.sends_email),
        ]);
    }
    hex::encode(&hasher.finalize()[..12])
}

#[utoipa::path(post, path = "/_runway/api/v1/frontends/{name}/enable", responses((status = 204), (status = 404, body = runway_api::ErrorBody)))]
pub(crate) async fn enable_frontend(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.set_frontend_enabled(&name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/_runway/api/v1/frontends/{name}/disable", responses((status = 204), (status = 404, body = runway_api::ErrorBody)))]
pub(crate) async fn disable_frontend(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.set_frontend_enabled(&name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/_runway/api/v1/frontends/{name}", responses((status = 204), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn remove_frontend(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.remove_frontend(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
