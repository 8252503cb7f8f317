//! The LifeTime Deployment API v2–compatible surface, `/lifetimeapi/rest/v2`.
//!
//! Followed reference: OutSystems' public "LifeTime API v2" (docs-product,
//! `src/ref/apis/auto/lifetime-deployment-api-v2.md`; swagger at
//! `/lifetimeapi/rest/v2/swagger.json` on a LifeTime). Field names, status
//! values and codes are the reference's; the error body is its `Exception`
//! (`{Errors, StatusCode}`) on every error. Every route answers with and
//! without the reference's trailing slash (no redirects); query booleans
//! are case-insensitive (`true`, `True`, `TRUE`).
//!
//! Mapping: a LifeTime deployment is a console plan (same key, same
//! statuses); an environment has one default deployment zone whose key is
//! the environment's key; an application has one module (its component);
//! Runway versions (package semver) are the LifeTime version strings.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::request::Parts;
use runway_api::console::RunningView;
use runway_api::console::lifetime::{
    AppStatusInEnv, Application, ApplicationConflict, ApplicationOperation, ApplicationVersion,
    ApplicationVersionCreate, ApplicationVersionCreated, Deployment, DeploymentCreate,
    DeploymentDetail, DeploymentMessage, DeploymentStatus, DeploymentTechnology, DeploymentZone,
    Environment, Exception, LIFETIME_API_V2, ModuleStatusInEnv, format_instant, parse_instant,
};
use runway_api::console::plans::{CreatePlan, PlanOperationRequest, PlanView};
use runway_api::v1::AppStatus;
use runway_store::console::apps::{AppVersionRecord, ApplicationRecord};
use runway_store::console::environments::EnvironmentRecord;
use runway_store::console::plans::{PlanRecord, PlanStatus};

use crate::Console;
use crate::access::Level;
use crate::apps::{require_sees_app, visible_running};
use crate::auth::{Access, Caller, Need, authenticate_parts, require};
use crate::error::ApiError;
use crate::plans;

/// An error of this surface: the reference's `Exception` body.
#[derive(Debug)]
pub struct LtError {
    status: StatusCode,
    errors: Vec<String>,
}

impl LtError {
    fn new(status: StatusCode, message: impl Into<String>) -> LtError {
        LtError {
            status,
            errors: vec![message.into()],
        }
    }
}

impl From<ApiError> for LtError {
    fn from(e: ApiError) -> LtError {
        let mut errors = vec![e.message.clone()];
        if let Some(conflicts) = e.details.get("conflicts").and_then(|c| c.as_array()) {
            errors.extend(
                conflicts
                    .iter()
                    .filter_map(|c| c.get("message").and_then(|m| m.as_str()))
                    .map(str::to_string),
            );
        }
        // Internal errors keep the console's generic message and request id.
        let response = e.into_response();
        let status = response.status();
        if status.is_server_error() {
            errors = vec![format!(
                "internal error in the console, see its log (request id {})",
                crate::error::current_request_id()
            )];
        }
        LtError { status, errors }
    }
}

impl From<runway_store::StoreError> for LtError {
    fn from(e: runway_store::StoreError) -> LtError {
        ApiError::from(e).into()
    }
}

impl IntoResponse for LtError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(Exception {
                errors: self.errors,
                status_code: self.status.as_u16(),
            }),
        )
            .into_response()
    }
}

type LtResult<T> = Result<T, LtError>;

/// A caller of the surface: a service account, a user's session or the
/// admin, in `Authorization: Bearer …`. Each route checks the levels it
/// needs like the console's own API (listings show only what the caller
/// may see).
pub struct LtCaller(pub Caller);

impl FromRequestParts<Console> for LtCaller {
    type Rejection = LtError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, LtError> {
        Ok(LtCaller(authenticate_parts(console, parts).await?))
    }
}

/// Both spellings of a route: with and without the reference's trailing
/// slash, neither redirecting.
fn both(router: Router<Console>, path: &str, method: MethodRouter<Console>) -> Router<Console> {
    let full = format!("{LIFETIME_API_V2}{path}");
    router
        .route(&full, method.clone())
        .route(&format!("{full}/"), method)
}

pub(crate) fn routes() -> Router<Console> {
    let mut r = Router::new();
    r = both(r, "/environments", get(list_environments));
    r = both(r, "/environments/{env}", get(show_environment));
    r = both(r, "/environments/{env}/applications", get(env_applications));
    r = both(
        r,
        "/environments/{env}/applications/{app}",
        get(env_application),
    );
    r = both(
        r,
        "/environments/{env}/applications/{app}/versions",
        post(tag_version),
    );
    r = both(r, "/environments/{env}/deploymentzones", get(zones));
    r = both(r, "/applications", get(list_applications));
    r = both(r, "/applications/{app}", get(show_application));
    r = both(r, "/applications/{app}/versions", get(list_versions));
    r = both(
        r,
        "/applications/{app}/versions/{version}",
        get(show_version),
    );
    r = both(
        r,
        "/deployments",
        get(list_deployments).post(create_deployment),
    );
    r = both(
        r,
        "/deployments/{key}",
        get(show_deployment).delete(delete_deployment),
    );
    r = both(r, "/deployments/{key}/status", get(deployment_status));
    r = both(r, "/deployments/{key}/{command}", post(command));
    r.route(
        &format!("{LIFETIME_API_V2}/{{*rest}}"),
        axum::routing::any(unknown_route),
    )
}

/// Refuses an environment the caller has no access to (403 at the
/// enforcement point).
async fn require_sees_env(console: &Console, caller: &Caller, env: &str) -> LtResult<()> {
    if !crate::auth::sees_environment(console, caller, env).await? {
        require(
            console,
            caller,
            "see this environment",
            Need::Level {
                env,
                app: None,
                level: Level::Monitor,
            },
        )
        .await?;
    }
    Ok(())
}

async fn unknown_route(uri: http::Uri) -> LtError {
    LtError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no LifeTime API v2 endpoint {}: Runway implements environments, applications, \
             deployment zones and deployments",
            uri.path()
        ),
    )
}

/// A query boolean, case-insensitive; absent = false.
fn flag(q: &HashMap<String, String>, name: &str) -> LtResult<bool> {
    match q.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(LtError::new(
            StatusCode::BAD_REQUEST,
            format!("{name}={v:?} is not a boolean: use true or false"),
        )),
    }
}

async fn environment(console: &Console, key: &str) -> LtResult<EnvironmentRecord> {
    let found = if runway_store::console::is_key(key) {
        console.store().environment(key).await?
    } else {
        None
    };
    found.ok_or_else(|| {
        LtError::new(
            StatusCode::NOT_FOUND,
            format!("no environment with key {key:?} (GET /environments lists them)"),
        )
    })
}

async fn application(console: &Console, key: &str) -> LtResult<ApplicationRecord> {
    let found = if runway_store::console::is_key(key) {
        console.store().application(key).await?
    } else {
        None
    };
    found.ok_or_else(|| {
        LtError::new(
            StatusCode::NOT_FOUND,
            format!("no application with key {key:?} (GET /applications lists them)"),
        )
    })
}

async fn environment_view(console: &Console, env: &EnvironmentRecord) -> LtResult<Environment> {
    let health = console.store().environment_health(&env.id).await?;
    let stages = match &env.pipeline_id {
        Some(p) => console.store().pipeline_environments(p).await?.len() as i64,
        None => 0,
    };
    let order = env.position.unwrap_or(0);
    let environment_type = match (order, stages) {
        (0, _) => "Development",
        (1, _) => "Development",
        (o, n) if o == n => "Production",
        _ => "Test",
    };
    let host = url::Url::parse(&env.address)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Environment {
        key: env.id.clone(),
        name: env.name.clone(),
        os_version: health
            .as_ref()
            .and_then(|h| h.runway_version.clone())
            .unwrap_or_default(),
        order,
        host_name: host,
        use_https: env.address.starts_with("https://"),
        environment_type: environment_type.into(),
        number_of_front_ends: health.as_ref().map_or(0, |h| h.frontends.len() as i64),
        application_server_type: "WebAssembly".into(),
        application_server: "Runway".into(),
        database_provider: String::new(),
        is_cloud_environment: false,
    })
}

async fn list_environments(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
) -> LtResult<Json<Vec<Environment>>> {
    let access = Access::load(&console, &caller).await?;
    let mut out = Vec::new();
    for env in console.store().environments().await? {
        if access.sees_environment(&env.name) {
            out.push(environment_view(&console, &env).await?);
        }
    }
    Ok(Json(out))
}

async fn show_environment(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(env): Path<String>,
) -> LtResult<Json<Environment>> {
    let env = environment(&console, &env).await?;
    require_sees_env(&console, &caller, &env.name).await?;
    Ok(Json(environment_view(&console, &env).await?))
}

fn status_in_env(r: &RunningView, modules: bool) -> AppStatusInEnv {
    let version_key = r.version_key.clone().unwrap_or_default();
    let modified = r.version_key.is_none();
    let (consistency, messages) = if r.status == AppStatus::Failed {
        ("Failed", "the running version could not be loaded")
    } else {
        ("OK", "")
    };
    AppStatusInEnv {
        environment_key: r.environment_key.clone(),
        base_application_version_key: version_key.clone(),
        is_modified: modified,
        is_modified_reason: if modified {
            "NotTagged".into()
        } else {
            String::new()
        },
        is_modified_message: if modified {
            format!(
                "{} runs bytes ({}) that are not a console version; tag them",
                r.environment,
                r.digest.as_deref().unwrap_or("?")
            )
        } else {
            String::new()
        },
        consistency_status: consistency.into(),
        consistency_status_messages: messages.into(),
        mobile_apps_status: Vec::new(),
        module_status_in_envs: modules.then(|| {
            vec![ModuleStatusInEnv {
                application_key: r.app_key.clone(),
                environment_key: r.environment_key.clone(),
                module_version_key: version_key,
                consistency_status: consistency.into(),
                consistency_status_messages: messages.into(),
            }]
        }),
        deployment_zone_key: r.environment_key.clone(),
    }
}

fn application_view(
    app: &ApplicationRecord,
    running: &[RunningView],
    env: Option<&str>,
    statuses: bool,
    modules: bool,
) -> Application {
    Application {
        key: app.id.clone(),
        name: app.name.clone(),
        kind: "WebResponsive".into(),
        team: String::new(),
        description: app.description.clone().unwrap_or_default(),
        url_path: format!("/{}", app.name),
        icon_hash: String::new(),
        icon_url: String::new(),
        is_system: false,
        app_status_in_envs: statuses.then(|| {
            running
                .iter()
                .filter(|r| r.app_key == app.id && r.version.is_some())
                .filter(|r| env.is_none_or(|e| r.environment_key == e))
                .map(|r| status_in_env(r, modules))
                .collect()
        }),
    }
}

fn include_flags(q: &HashMap<String, String>) -> LtResult<(bool, bool)> {
    let statuses = flag(q, "IncludeEnvStatus")?;
    let modules = flag(q, "IncludeModules")?;
    if modules && !statuses {
        return Err(LtError::new(
            StatusCode::BAD_REQUEST,
            "IncludeModules=true needs IncludeEnvStatus=true (modules are listed per environment)",
        ));
    }
    Ok((statuses, modules))
}

async fn env_applications(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(env): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<Json<Vec<Application>>> {
    let (statuses, modules) = include_flags(&q)?;
    let env = environment(&console, &env).await?;
    require_sees_env(&console, &caller, &env.name).await?;
    let access = Access::load(&console, &caller).await?;
    let running = visible_running(&console, &access).await?;
    let mut out = Vec::new();
    for app in console.store().applications().await? {
        if running
            .iter()
            .any(|r| r.app_key == app.id && r.environment_key == env.id && r.version.is_some())
        {
            out.push(application_view(
                &app,
                &running,
                Some(&env.id),
                statuses,
                modules,
            ));
        }
    }
    Ok(Json(out))
}

async fn env_application(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path((env, app)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<Json<Application>> {
    let (statuses, modules) = include_flags(&q)?;
    let env = environment(&console, &env).await?;
    let app = application(&console, &app).await?;
    require(
        &console,
        &caller,
        "see this app",
        Need::Level {
            env: &env.name,
            app: Some(&app.name),
            level: Level::Monitor,
        },
    )
    .await?;
    let access = Access::load(&console, &caller).await?;
    let running = visible_running(&console, &access).await?;
    if !running
        .iter()
        .any(|r| r.app_key == app.id && r.environment_key == env.id && r.version.is_some())
    {
        return Err(LtError::new(
            StatusCode::NOT_FOUND,
            format!(
                "application {} does not run in environment {}",
                app.name, env.name
            ),
        ));
    }
    Ok(Json(application_view(
        &app,
        &running,
        Some(&env.id),
        statuses,
        modules,
    )))
}

/// Creates a version from what the environment runs (tagging): the digest
/// is the environment's; no bytes change.
async fn tag_version(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path((env, app)): Path<(String, String)>,
    Json(req): Json<ApplicationVersionCreate>,
) -> LtResult<(StatusCode, Json<ApplicationVersionCreated>)> {
    let env = environment(&console, &env).await?;
    let app = application(&console, &app).await?;
    require(
        &console,
        &caller,
        "tag a version",
        Need::Level {
            env: &env.name,
            app: Some(&app.name),
            level: Level::ChangeAndDeploy,
        },
    )
    .await?;
    if req.change_log.len() > 64 * 1024 || req.change_log.contains('\0') {
        return Err(LtError::new(
            StatusCode::BAD_REQUEST,
            "ChangeLog is too long (at most 64 KiB) or contains NUL",
        ));
    }
    let client = plans::env_client(&console, &env).await?;
    let detail = client.app(&app.name).await.map_err(|e| match e.status() {
        Some(404) => LtError::new(
            StatusCode::NOT_FOUND,
            format!(
                "application {} does not run in environment {}",
                app.name, env.name
            ),
        ),
        _ => LtError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "environment {} at {} does not answer: {e}",
                env.name, env.address
            ),
        ),
    })?;
    let (Some(running), Some(digest)) = (
        detail.summary.running_version.clone(),
        detail.summary.running_digest.clone(),
    ) else {
        return Err(LtError::new(
            StatusCode::NOT_FOUND,
            format!(
                "application {} runs nothing in environment {}",
                app.name, env.name
            ),
        ));
    };
    if let Some(v) = req.version.as_deref().filter(|v| !v.is_empty())
        && v != running
    {
        return Err(LtError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Version {v:?} is not the version {} runs ({running}): Runway versions are the \
                 package's own semver and tagging never renames bytes; send Version {running:?} \
                 or leave it out",
                env.name
            ),
        ));
    }
    let recorded = console
        .store()
        .tag_version(
            &app.name,
            &running,
            &digest,
            &req.change_log,
            Some(&caller.principal.id),
            Some(&env.id),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApplicationVersionCreated {
            application_version_key: recorded.id,
        }),
    ))
}

async fn zones(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(env): Path<String>,
) -> LtResult<Json<Vec<DeploymentZone>>> {
    let env = environment(&console, &env).await?;
    require_sees_env(&console, &caller, &env.name).await?;
    Ok(Json(vec![DeploymentZone {
        key: env.id.clone(),
        name: "Global".into(),
        is_default: true,
        deployment_technology: DeploymentTechnology {
            key: env.id,
            name: "Runway".into(),
        },
    }]))
}

async fn list_applications(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<Json<Vec<Application>>> {
    let (statuses, modules) = include_flags(&q)?;
    let access = Access::load(&console, &caller).await?;
    let running = visible_running(&console, &access).await?;
    Ok(Json(
        console
            .store()
            .applications()
            .await?
            .iter()
            .filter(|a| access.sees_app(&a.name))
            .map(|a| application_view(a, &running, None, statuses, modules))
            .collect(),
    ))
}

async fn show_application(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(app): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<Json<Application>> {
    let (statuses, modules) = include_flags(&q)?;
    let app = application(&console, &app).await?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &app.name).await?;
    let running = visible_running(&console, &access).await?;
    Ok(Json(application_view(
        &app, &running, None, statuses, modules,
    )))
}

fn version_view(v: AppVersionRecord, running: &[RunningView]) -> ApplicationVersion {
    ApplicationVersion {
        in_use: running
            .iter()
            .any(|r| r.version_key.as_deref() == Some(v.id.as_str())),
        key: v.id,
        application_key: v.application_id,
        version: v.version,
        change_log: v.changelog,
        created_on: format_instant(v.created_at_ms),
        mobile_versions: Vec::new(),
        module_versions: Vec::new(),
    }
}

async fn list_versions(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(app): Path<String>,
) -> LtResult<Json<Vec<ApplicationVersion>>> {
    let app = application(&console, &app).await?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &app.name).await?;
    let running = visible_running(&console, &access).await?;
    Ok(Json(
        console
            .store()
            .app_versions(&app.id)
            .await?
            .into_iter()
            .map(|v| version_view(v, &running))
            .collect(),
    ))
}

async fn show_version(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path((app, version)): Path<(String, String)>,
) -> LtResult<Json<ApplicationVersion>> {
    let app = application(&console, &app).await?;
    let access = Access::load(&console, &caller).await?;
    require_sees_app(&console, &caller, &access, &app.name).await?;
    let found = if runway_store::console::is_key(&version) {
        console.store().app_version(&version).await?
    } else {
        None
    };
    let Some(v) = found.filter(|v| v.application_id == app.id) else {
        return Err(LtError::new(
            StatusCode::NOT_FOUND,
            format!(
                "application {} has no version with key {version:?}",
                app.name
            ),
        ));
    };
    let running = visible_running(&console, &access).await?;
    Ok(Json(version_view(v, &running)))
}

// ---------------------------------------------------------------- deployments

async fn plan(console: &Console, key: &str) -> LtResult<PlanRecord> {
    plans::find_plan(console, key).await.map_err(|_| {
        LtError::new(
            StatusCode::NOT_FOUND,
            format!("no deployment with key {key:?} (GET /deployments lists them)"),
        )
    })
}

async fn deployment_view(console: &Console, plan: &PlanRecord) -> LtResult<Deployment> {
    let view: PlanView = plans::plan_view(console, plan).await?;
    let by = view.created_by.clone().unwrap_or_default();
    let log = console.store().plan_log(&plan.id, 0).await?;
    let aborted = log
        .iter()
        .find(|r| r.message.starts_with("abort requested"))
        .map(|r| format_instant(r.instant_ms));
    Ok(Deployment {
        key: plan.id.clone(),
        source_environment_key: plan.source_environment_id.clone(),
        target_environment_key: plan.target_environment_id.clone(),
        notes: plan.notes.clone(),
        created_on: format_instant(plan.created_at_ms),
        created_by: by.clone(),
        created_by_username: by.clone(),
        saved_on: format_instant(plan.created_at_ms),
        saved_by: by.clone(),
        saved_by_username: by.clone(),
        started_on: plan.started_at_ms.map(format_instant),
        started_by: plan.started_at_ms.map(|_| by.clone()),
        started_by_username: plan.started_at_ms.map(|_| by.clone()),
        aborted_by: aborted.as_ref().map(|_| by.clone()),
        aborted_by_username: aborted.as_ref().map(|_| by.clone()),
        aborted_on: aborted,
        application_operations: view
            .operations
            .iter()
            .map(|o| ApplicationOperation {
                application_key: o.app_key.clone(),
                application_version_key: o.version_key.clone().unwrap_or_default(),
                deployment_operation: match &o.version {
                    Some(v) => format!("Deploy {v}"),
                    None => "Undeploy".into(),
                },
                deployment_zone_key: plan.target_environment_id.clone(),
            })
            .collect(),
    })
}

async fn list_deployments(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<Json<Vec<Deployment>>> {
    let date = |name: &str| -> LtResult<Option<i64>> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => parse_instant(v).map(Some).ok_or_else(|| {
                LtError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{name}={v:?} is not a date: use 2014-12-31 or 2014-12-31T23:59:59.938Z"
                    ),
                )
            }),
        }
    };
    let (min, max) = (date("MinDate")?, date("MaxDate")?);
    let target = match q.get("TargetEnvironmentKey") {
        Some(k) => Some(environment(&console, k).await?.id),
        None => None,
    };
    let access = Access::load(&console, &caller).await?;
    let mut out = Vec::new();
    for plan in console.store().plans(min, max, target.as_deref()).await? {
        let (_, target, _) = plans::plan_scope(&console, &plan).await?;
        if access.sees_environment(&target) {
            out.push(deployment_view(&console, &plan).await?);
        }
    }
    Ok(Json(out))
}

async fn create_deployment(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Json(req): Json<DeploymentCreate>,
) -> LtResult<(StatusCode, Json<String>)> {
    let bad = |m: String| LtError::new(StatusCode::BAD_REQUEST, m);
    let source = environment(&console, &req.source_environment_key)
        .await
        .map_err(|_| {
            bad(format!(
                "SourceEnvironmentKey {:?} is not an environment",
                req.source_environment_key
            ))
        })?;
    let target = environment(&console, &req.target_environment_key)
        .await
        .map_err(|_| {
            bad(format!(
                "TargetEnvironmentKey {:?} is not an environment",
                req.target_environment_key
            ))
        })?;
    let mut operations = Vec::new();
    for op in &req.application_operations {
        if let Some(zone) = &op.deployment_zone_key
            && !zone.is_empty()
            && !zone.eq_ignore_ascii_case(&target.id)
        {
            return Err(bad(format!(
                "DeploymentZoneKey {zone:?} is not a zone of the target environment {} (its \
                 only zone is {})",
                target.name, target.id
            )));
        }
        let version = if runway_store::console::is_key(&op.application_version_key) {
            console
                .store()
                .app_version(&op.application_version_key)
                .await?
        } else {
            None
        };
        let Some(version) = version else {
            return Err(bad(format!(
                "ApplicationVersionKey {:?} is not an application version (GET \
                 /applications/{{ApplicationKey}}/versions lists them)",
                op.application_version_key
            )));
        };
        operations.push(PlanOperationRequest::Deploy {
            app: version.application_id,
            version: version.id,
            rollback: false,
        });
    }
    let plan = plans::create_plan(
        &console,
        &caller,
        &CreatePlan {
            source: source.id,
            target: target.id,
            operations,
            properties: Default::default(),
            notes: req.notes,
            two_step: None,
            allow_out_of_order: false,
        },
    )
    .await
    .map_err(|e| {
        let mut e = LtError::from(e);
        if e.status == StatusCode::NOT_FOUND {
            e.status = StatusCode::BAD_REQUEST;
        }
        e
    })?;
    Ok((StatusCode::CREATED, Json(plan.id)))
}

async fn show_deployment(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(key): Path<String>,
) -> LtResult<Json<DeploymentDetail>> {
    let plan = plan(&console, &key).await?;
    plans::require_sees_plan(&console, &caller, &plan.id).await?;
    let deployment = deployment_view(&console, &plan).await?;
    let conflicts = if plan.status == PlanStatus::Saved {
        plans::validate(&console, &plan).await?.conflicts
    } else {
        Vec::new()
    };
    let names: Vec<String> = plans::plan_view(&console, &plan)
        .await?
        .operations
        .into_iter()
        .map(|o| o.app)
        .collect();
    let application_conflicts = conflicts
        .into_iter()
        .map(|c| ApplicationConflict {
            producer_application_operation: names
                .iter()
                .position(|n| *n == c.app)
                .and_then(|i| deployment.application_operations.get(i).cloned()),
            consumer_application_operation: None,
            message: c.message,
        })
        .collect();
    Ok(Json(DeploymentDetail {
        deployment,
        applications_to_redeploy: Vec::new(),
        application_conflicts,
    }))
}

async fn delete_deployment(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(key): Path<String>,
) -> LtResult<StatusCode> {
    let plan = plan(&console, &key).await?;
    plans::require_stored_plan(&console, &caller, "delete a deployment plan", &plan.id).await?;
    if plan.status != PlanStatus::Saved {
        return Err(LtError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "deployment {} is {}: only a saved deployment can be deleted",
                plan.id,
                plan.status.as_str()
            ),
        ));
    }
    plans::delete_plan(&console, &plan.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn command(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path((key, command)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> LtResult<StatusCode> {
    let plan = plan(&console, &key).await?;
    plans::require_stored_plan(
        &console,
        &caller,
        &format!("{} a deployment plan", command.to_ascii_lowercase()),
        &plan.id,
    )
    .await?;
    match command.to_ascii_lowercase().as_str() {
        "start" => {
            // Runway has no "outdated consumers" to redeploy: dependencies are
            // semver ranges checked at validation. The flag is still checked.
            flag(&q, "RedeployOutdated")?;
            plans::start(&console, &plan.id)
                .await
                .map_err(as_bad_request)?;
        }
        "continue" => {
            plans::continue_plan(&console, &plan.id)
                .await
                .map_err(as_bad_request)?;
        }
        "abort" => {
            plans::abort_plan(&console, &plan.id)
                .await
                .map_err(as_bad_request)?;
        }
        other => {
            return Err(LtError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown command {other:?}: the commands are start, continue and abort"),
            ));
        }
    }
    Ok(StatusCode::ACCEPTED)
}

/// A refused command is the reference's 400 (not a 409).
fn as_bad_request(e: ApiError) -> LtError {
    let mut e = LtError::from(e);
    if e.status == StatusCode::CONFLICT {
        e.status = StatusCode::BAD_REQUEST;
    }
    e
}

async fn deployment_status(
    State(console): State<Console>,
    LtCaller(caller): LtCaller,
    Path(key): Path<String>,
) -> LtResult<Json<DeploymentStatus>> {
    let plan = plan(&console, &key).await?;
    plans::require_sees_plan(&console, &caller, &plan.id).await?;
    let status = plans::status(&console, &plan.id, 0).await?;
    Ok(Json(DeploymentStatus {
        deployment_status: plan.status.as_str().into(),
        info: status.info,
        deployment_log: status
            .log
            .into_iter()
            .map(|r| DeploymentMessage {
                instant: format_instant(r.instant_ms),
                message: r.message,
            })
            .collect(),
    }))
}
