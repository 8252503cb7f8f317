//! Deployment plans: the heart of the console (LifeTime's deployment plans).
//!
//! A plan moves versions from a source environment to a target environment.
//! **Validate** checks the pipeline order, that each version's package is in
//! the source (or already in the target), downgrades, required properties
//! and dependencies as they would stand in the target, and that both ends
//! answer. **Execute** fetches each package from the source by digest,
//! verifies the bytes against the digest, imports it into the target only if
//! the target lacks it, then makes one multi-app deployment in the target:
//! every app switches in one generation or none does (the target's own
//! check runs again there). **Two-step** plans prepare and stop in
//! `needs_user_intervention`; `continue` commits, `abort` drops the staged
//! tables. A plan holds its target while it is `running`,
//! `needs_user_intervention` or `aborting` (the catalog refuses a second).
//!
//! A console restarted mid-plan looks at the target's deployment record to
//! learn whether the target switched ([`Console::recover_plans`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::console::plans::{
    CreatePlan, PlanConflict, PlanFrontendProgress, PlanLogEntry, PlanLogKind as WireLogKind,
    PlanLogQuery, PlanOperationRequest, PlanOperationView, PlanStatus as WireStatus,
    PlanStatusView, PlanValidation, PlanView,
};
use runway_api::v1::{
    Deployment, DeploymentRequest, DeploymentStatus, OperationKind, OperationRequest,
    PropertySource,
};
use runway_client::{Client, ClientError};
use runway_manifest::{Digest, Manifest, Package};
use runway_store::console::environments::EnvironmentRecord;
use runway_store::console::new_key;
use runway_store::console::plans::{NewPlan, PlanLogKind, PlanOperation, PlanRecord, PlanStatus};
use runway_store::now_ms;
use semver::Version;
use serde::Deserialize;

use crate::Console;
use crate::access::Level;
use crate::apps::find_application;
use crate::auth::{Caller, Need, require};
use crate::environments::find_environment;
use crate::error::{ApiError, ApiResult};

/// Largest unpacked package the console decodes to verify it.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// Most operations in one plan (the environment's limit per deployment).
pub const MAX_OPERATIONS: usize = 64;
/// How long a restarted console waits between attempts to learn a plan's
/// outcome from an unreachable target.
const RECOVERY_RETRY: Duration = Duration::from_secs(1);
/// How long a plan waits for a target that stopped answering to say what
/// happened: the prepared-deployment lifetime, after which a prepared
/// deployment has surely been aborted there.
const SETTLE_DEADLINE: Duration =
    Duration::from_millis(runway_api::v1::PREPARED_DEPLOYMENT_TTL_MS as u64);
/// How long a plan's view waits for the target to say where its front-ends
/// are: the view is shown without them rather than late.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route(
            "/_runway/console/v1/plans",
            get(list_plans).post(create_plan_route),
        )
        .route(
            "/_runway/console/v1/plans/{key}",
            get(show_plan).delete(delete_plan_route),
        )
        .route(
            "/_runway/console/v1/plans/{key}/validate",
            post(validate_route),
        )
        .route("/_runway/console/v1/plans/{key}/start", post(start_route))
        .route(
            "/_runway/console/v1/plans/{key}/continue",
            post(continue_route),
        )
        .route("/_runway/console/v1/plans/{key}/abort", post(abort_route))
        .route("/_runway/console/v1/plans/{key}/status", get(status_route))
}

pub fn wire_status(s: PlanStatus) -> WireStatus {
    match s {
        PlanStatus::Saved => WireStatus::Saved,
        PlanStatus::Running => WireStatus::Running,
        PlanStatus::NeedsUserIntervention => WireStatus::NeedsUserIntervention,
        PlanStatus::FinishedSuccessful => WireStatus::FinishedSuccessful,
        PlanStatus::FinishedWithWarnings => WireStatus::FinishedWithWarnings,
        PlanStatus::FinishedWithErrors => WireStatus::FinishedWithErrors,
        PlanStatus::Aborting => WireStatus::Aborting,
        PlanStatus::Aborted => WireStatus::Aborted,
    }
}

fn wire_kind(k: PlanLogKind) -> WireLogKind {
    match k {
        PlanLogKind::Info => WireLogKind::Info,
        PlanLogKind::Warning => WireLogKind::Warning,
        PlanLogKind::Error => WireLogKind::Error,
    }
}

fn plan_not_found(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "plan_not_found",
        format!("no deployment plan with key {key:?}; `runway deploy list` shows them"),
    )
}

fn version_not_found(app: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "version_not_found",
        format!(
            "the console knows no version {version:?} of {app}; `runway apps versions {app}` \
             lists them (a version is known once an environment runs it, or after `runway apps \
             tag`)"
        ),
    )
}

/// The plan with this key, or a 404 naming it.
pub async fn find_plan(console: &Console, key: &str) -> ApiResult<PlanRecord> {
    if !runway_store::console::is_key(key) {
        return Err(plan_not_found(key));
    }
    console
        .store()
        .plan(key)
        .await?
        .ok_or_else(|| plan_not_found(key))
}

/// A client of a registered environment, with the console's credential.
pub async fn env_client(console: &Console, env: &EnvironmentRecord) -> ApiResult<Client> {
    let credential = console.store().environment_credential(&env.id).await?;
    Client::new(&env.address, Some(credential))
        .map_err(|e| ApiError::internal(format!("environment {} address: {e}", env.name)))
}

/// The environment with this key, removed or not (plans keep their history).
async fn plan_environment(console: &Console, key: &str) -> ApiResult<EnvironmentRecord> {
    console.store().environment(key).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "environment {key} of this plan has been removed from the console; create a new \
             plan between registered environments"
        ))
    })
}

async fn log(console: &Console, plan: &str, kind: PlanLogKind, message: &str) {
    match kind {
        PlanLogKind::Error => tracing::warn!(plan, "{message}"),
        _ => tracing::info!(plan, "{message}"),
    }
    if let Err(e) = console.store().append_plan_log(plan, kind, message).await {
        tracing::error!(plan, "failed to append to the plan's log: {e:#}");
    }
}

// ---------------------------------------------------------------- create

/// Records a plan in status `saved`.
pub async fn create_plan(
    console: &Console,
    caller: &Caller,
    req: &CreatePlan,
) -> ApiResult<PlanRecord> {
    if req.operations.is_empty() || req.operations.len() > MAX_OPERATIONS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "a plan has 1–{MAX_OPERATIONS} operations, this one has {}",
                req.operations.len()
            ),
        ));
    }
    if req.notes.len() > 16 * 1024 || req.notes.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the notes are too long (at most 16 KiB) or contain NUL",
        ));
    }
    let source = find_environment(console, &req.source).await?;
    let target = find_environment(console, &req.target).await?;
    if source.id == target.id {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "source and target are both {:?}: a plan moves versions between two environments",
                source.name
            ),
        ));
    }
    let mut operations = Vec::new();
    let mut apps = BTreeMap::new();
    for op in &req.operations {
        let (app_name, operation) = match op {
            PlanOperationRequest::Deploy {
                app,
                version,
                rollback,
            } => {
                let application = find_application(console, app).await?;
                let record = match console.store().app_version(version).await? {
                    Some(v) if v.application_id == application.id => v,
                    _ => console
                        .store()
                        .app_version_by_number(&application.name, version)
                        .await?
                        .ok_or_else(|| version_not_found(&application.name, version))?,
                };
                (
                    application,
                    PlanOperation::Deploy {
                        version_id: record.id,
                        rollback: *rollback,
                    },
                )
            }
            PlanOperationRequest::Undeploy { app } => {
                let application = find_application(console, app).await?;
                let id = application.id.clone();
                (application, PlanOperation::Undeploy { application_id: id })
            }
        };
        if apps
            .insert(app_name.name.clone(), app_name.id.clone())
            .is_some()
        {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "{} appears twice in the plan: a plan has at most one operation per app",
                    app_name.name
                ),
            ));
        }
        operations.push(operation);
    }
    let mut properties = Vec::new();
    for (app, values) in &req.properties {
        let Some(app_id) = apps.get(app) else {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "properties are given for {app}, which the plan does not deploy: add an \
                     operation for it or remove its properties"
                ),
            ));
        };
        for (key, value) in values {
            if key.is_empty()
                || key.len() > 64
                || value.as_ref().is_some_and(|v| v.len() > 64 * 1024)
            {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "property {key:?} of {app}: names are 1–64 characters, values at most 64 KiB"
                    ),
                ));
            }
            properties.push((app_id.clone(), key.clone(), value.clone()));
        }
    }
    let names: Vec<&str> = apps.keys().map(String::as_str).collect();
    require_plan(
        console,
        caller,
        "create a deployment plan",
        &source.name,
        &target.name,
        &names,
    )
    .await?;
    let new = NewPlan {
        id: new_key(),
        source_environment_id: source.id.clone(),
        target_environment_id: target.id.clone(),
        notes: req.notes.clone(),
        two_step: req.two_step.unwrap_or(target.two_step),
        allow_out_of_order: req.allow_out_of_order,
        operations,
        properties,
        created_by: Some(caller.principal.id.clone()),
    };
    let plan = console.store().create_plan(&new).await?;
    log(
        console,
        &plan.id,
        PlanLogKind::Info,
        &format!(
            "plan saved by {} ({} → {}, {} operation(s){})",
            caller.principal.name,
            source.name,
            target.name,
            new.operations.len(),
            if new.two_step { ", two-step" } else { "" }
        ),
    )
    .await;
    Ok(plan)
}

/// A plan needs monitor on the source and change & deploy on the target
/// for every app in it (the enforcement point refuses, naming the first
/// app and level missing).
pub async fn require_plan(
    console: &Console,
    caller: &Caller,
    action: &str,
    source: &str,
    target: &str,
    apps: &[&str],
) -> ApiResult<()> {
    for &app in apps {
        let needs = [(target, Level::ChangeAndDeploy), (source, Level::Monitor)];
        for (env, level) in needs {
            require(
                console,
                caller,
                action,
                Need::Level {
                    env,
                    app: Some(app),
                    level,
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// The names of a stored plan's source, target and apps.
pub async fn plan_scope(
    console: &Console,
    plan: &PlanRecord,
) -> ApiResult<(String, String, Vec<String>)> {
    let name_of = |id: &str| {
        let id = id.to_string();
        async move {
            Ok::<_, ApiError>(
                console
                    .store()
                    .environment(&id)
                    .await?
                    .map_or(id.clone(), |e| e.name),
            )
        }
    };
    let source = name_of(&plan.source_environment_id).await?;
    let target = name_of(&plan.target_environment_id).await?;
    let mut apps = Vec::new();
    for op in console.store().plan_operations(&plan.id).await? {
        let app = match op {
            PlanOperation::Deploy { version_id, .. } => console
                .store()
                .app_version(&version_id)
                .await?
                .map(|v| v.application),
            PlanOperation::Undeploy { application_id } => console
                .store()
                .application(&application_id)
                .await?
                .map(|a| a.name),
        };
        apps.extend(app);
    }
    Ok((source, target, apps))
}

/// Refuses acting on a stored plan without its levels ([`require_plan`]).
pub(crate) async fn require_stored_plan(
    console: &Console,
    caller: &Caller,
    action: &str,
    key: &str,
) -> ApiResult<()> {
    let plan = find_plan(console, key).await?;
    let (source, target, apps) = plan_scope(console, &plan).await?;
    let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
    require_plan(console, caller, action, &source, &target, &apps).await
}

/// Refuses seeing a stored plan without monitor on its target.
pub(crate) async fn require_sees_plan(
    console: &Console,
    caller: &Caller,
    key: &str,
) -> ApiResult<()> {
    let plan = find_plan(console, key).await?;
    let (_, target, _) = plan_scope(console, &plan).await?;
    if crate::auth::sees_environment(console, caller, &target).await? {
        return Ok(());
    }
    require(
        console,
        caller,
        "see this deployment plan",
        Need::Level {
            env: &target,
            app: None,
            level: Level::Monitor,
        },
    )
    .await
}

/// A plan as shown.
pub async fn plan_view(console: &Console, plan: &PlanRecord) -> ApiResult<PlanView> {
    let env_name = |key: &str| {
        let key = key.to_string();
        async move {
            console
                .store()
                .environment(&key)
                .await
                .map(|e| e.map(|e| e.name).unwrap_or_else(|| key.clone()))
        }
    };
    let mut operations = Vec::new();
    for op in console.store().plan_operations(&plan.id).await? {
        operations.push(operation_view(console, &op).await?);
    }
    let mut properties: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (app_id, key, _) in console.store().plan_properties(&plan.id).await? {
        let app = console
            .store()
            .application(&app_id)
            .await?
            .map(|a| a.name)
            .unwrap_or(app_id);
        properties.entry(app).or_default().push(key);
    }
    let created_by = match &plan.created_by {
        Some(id) => console.store().principal(id).await?.map(|p| p.name),
        None => None,
    };
    Ok(PlanView {
        key: plan.id.clone(),
        source: env_name(&plan.source_environment_id).await?,
        source_key: plan.source_environment_id.clone(),
        target: env_name(&plan.target_environment_id).await?,
        target_key: plan.target_environment_id.clone(),
        notes: plan.notes.clone(),
        two_step: plan.two_step,
        allow_out_of_order: plan.allow_out_of_order,
        status: wire_status(plan.status),
        operations,
        properties,
        target_deployment_id: plan.target_deployment_id,
        created_at_ms: plan.created_at_ms,
        created_by,
        started_at_ms: plan.started_at_ms,
        finished_at_ms: plan.finished_at_ms,
        frontends: Vec::new(),
    })
}

/// Each registered front-end of the plan's target in the plan's target
/// deployment, asked from the target now: what its deployment record says
/// of each one, and — while the plan is under way — the target's other
/// registered front-ends as not reported yet. Empty for a saved plan, a
/// target without registered front-ends, or a target that does not answer
/// within [`PROGRESS_TIMEOUT`] (the progress is a view, never a reason to
/// fail).
pub async fn target_progress(console: &Console, plan: &PlanRecord) -> Vec<PlanFrontendProgress> {
    if plan.status == PlanStatus::Saved {
        return Vec::new();
    }
    let Ok(Some(target)) = console
        .store()
        .environment(&plan.target_environment_id)
        .await
    else {
        return Vec::new();
    };
    let Ok(client) = env_client(console, &target).await else {
        return Vec::new();
    };
    let mut out: Vec<PlanFrontendProgress> = Vec::new();
    if let Some(id) = plan.target_deployment_id
        && let Ok(Ok(d)) = tokio::time::timeout(PROGRESS_TIMEOUT, client.deployment(id)).await
    {
        out.extend(d.frontends.into_iter().map(|p| PlanFrontendProgress {
            frontend: p.frontend,
            state: Some(p.state),
            fetched_bytes: p.fetched_bytes,
            elapsed_ms: p.elapsed_ms,
            error: p.error,
        }));
    }
    let under_way = matches!(
        plan.status,
        PlanStatus::Running | PlanStatus::Aborting | PlanStatus::NeedsUserIntervention
    );
    if under_way
        && let Ok(Ok(info)) = tokio::time::timeout(PROGRESS_TIMEOUT, client.environment()).await
    {
        // Registered front-ends only (an in-process one has no heartbeat and
        // no part of its own in the deployment record).
        for fe in info.frontends {
            if fe.last_heartbeat_ms.is_some() && !out.iter().any(|p| p.frontend == fe.name) {
                out.push(PlanFrontendProgress {
                    frontend: fe.name,
                    state: None,
                    fetched_bytes: 0,
                    elapsed_ms: 0,
                    error: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.frontend.cmp(&b.frontend));
    out
}

async fn operation_view(console: &Console, op: &PlanOperation) -> ApiResult<PlanOperationView> {
    Ok(match op {
        PlanOperation::Deploy {
            version_id,
            rollback,
        } => {
            let v = console
                .store()
                .app_version(version_id)
                .await?
                .ok_or_else(|| ApiError::internal(format!("plan version {version_id} vanished")))?;
            PlanOperationView {
                op: "deploy".into(),
                app: v.application,
                app_key: v.application_id,
                version: Some(v.version),
                version_key: Some(v.id),
                digest: Some(v.digest),
                rollback: *rollback,
            }
        }
        PlanOperation::Undeploy { application_id } => {
            let app = console
                .store()
                .application(application_id)
                .await?
                .map(|a| a.name)
                .unwrap_or_else(|| application_id.clone());
            PlanOperationView {
                op: "undeploy".into(),
                app,
                app_key: application_id.clone(),
                version: None,
                version_key: None,
                digest: None,
                rollback: false,
            }
        }
    })
}

// ---------------------------------------------------------------- validate

/// What validation learnt, reused by the execution.
struct Checked {
    conflicts: Vec<PlanConflict>,
    warnings: Vec<String>,
}

fn conflict(app: &str, code: &str, message: String) -> PlanConflict {
    PlanConflict {
        app: app.to_string(),
        code: code.to_string(),
        message,
    }
}

fn unreachable_conflict(role: &str, env: &EnvironmentRecord, e: &ClientError) -> PlanConflict {
    conflict(
        "",
        &format!("{role}_unreachable"),
        format!(
            "the {role} environment {:?} at {} does not answer ({e}); start it (or fix its \
             address with `runway env add`), then validate again",
            env.name, env.address
        ),
    )
}

/// Checks a plan against its source and target as they are now.
pub async fn validate(console: &Console, plan: &PlanRecord) -> ApiResult<PlanValidation> {
    let checked = check(console, plan).await?;
    Ok(PlanValidation {
        ok: checked.conflicts.is_empty(),
        conflicts: checked.conflicts,
        warnings: checked.warnings,
    })
}

async fn check(console: &Console, plan: &PlanRecord) -> ApiResult<Checked> {
    let source = plan_environment(console, &plan.source_environment_id).await?;
    let target = plan_environment(console, &plan.target_environment_id).await?;
    let mut conflicts = Vec::new();
    let mut warnings = Vec::new();

    // Pipeline order: the stage right after the source, or the flag.
    let order_problem = match (
        &source.pipeline_id,
        &target.pipeline_id,
        source.position,
        target.position,
    ) {
        (Some(a), Some(b), Some(p), Some(q)) if a == b => {
            if q == p + 1 {
                None
            } else if q <= p {
                Some(format!(
                    "deploys backwards in pipeline {}: {} (stage {p}) → {} (stage {q})",
                    source.pipeline.as_deref().unwrap_or("?"),
                    source.name,
                    target.name
                ))
            } else {
                Some(format!(
                    "skips {} stage(s) of pipeline {}: {} (stage {p}) → {} (stage {q})",
                    q - p - 1,
                    source.pipeline.as_deref().unwrap_or("?"),
                    source.name,
                    target.name
                ))
            }
        }
        _ => Some(format!(
            "{} and {} are not in the same pipeline",
            source.name, target.name
        )),
    };
    if let Some(problem) = order_problem {
        if plan.allow_out_of_order {
            warnings.push(format!(
                "the plan {problem}; allowed by the out-of-order flag"
            ));
        } else {
            conflicts.push(conflict(
                "",
                "out_of_order",
                format!(
                    "the plan {problem}: deploy to the next stage, or create the plan with \
                     --allow-out-of-order if this is intended"
                ),
            ));
        }
    }

    let source_client = env_client(console, &source).await?;
    let target_client = env_client(console, &target).await?;
    let target_apps = match target_client.apps().await {
        Ok(apps) => apps,
        Err(e) => {
            conflicts.push(unreachable_conflict("target", &target, &e));
            return Ok(Checked {
                conflicts,
                warnings,
            });
        }
    };
    let running: BTreeMap<String, Option<String>> = target_apps
        .iter()
        .map(|a| (a.name.clone(), a.running_version.clone()))
        .collect();

    let operations = console.store().plan_operations(&plan.id).await?;
    let mut plan_props: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (app_id, key, value) in console.store().plan_properties(&plan.id).await? {
        plan_props.entry(app_id).or_default().insert(key, value);
    }
    // The target as it would be: app → version after the plan.
    let mut after: BTreeMap<String, Option<String>> = running.clone();
    let mut changed = BTreeSet::new();
    let mut manifests: Vec<(String, String, String, Manifest)> = Vec::new();
    let mut source_down = false;
    for op in &operations {
        let view = operation_view(console, op).await?;
        changed.insert(view.app.clone());
        match op {
            PlanOperation::Undeploy { .. } => {
                if running.get(&view.app).is_none_or(Option::is_none) {
                    conflicts.push(conflict(
                        &view.app,
                        "not_deployed",
                        format!(
                            "{} runs nothing in {}: remove the undeploy from the plan",
                            view.app, target.name
                        ),
                    ));
                }
                after.insert(view.app.clone(), None);
            }
            PlanOperation::Deploy { rollback, .. } => {
                let version = view.version.clone().unwrap_or_default();
                let digest = view.digest.clone().unwrap_or_default();
                after.insert(view.app.clone(), Some(version.clone()));
                if let (Some(Some(current)), Ok(new)) =
                    (running.get(&view.app), Version::parse(&version))
                    && let Ok(current) = Version::parse(current)
                    && new < current
                {
                    if *rollback {
                        warnings.push(format!(
                            "{} {version} is a rollback from {current} in {}",
                            view.app, target.name
                        ));
                    } else {
                        conflicts.push(conflict(
                            &view.app,
                            "downgrade",
                            format!(
                                "{} {version} is older than the {current} that runs in {}: \
                                 mark the operation as a rollback (`{}@{version} --rollback`) \
                                 if the downgrade is intended",
                                view.app, target.name, view.app
                            ),
                        ));
                    }
                }
                // The package: from the source, verified, for its manifest.
                if source_down {
                    continue;
                }
                match fetch_verified(&source_client, &digest).await {
                    Ok(package) => {
                        manifests.push((view.app.clone(), version, digest, package.manifest))
                    }
                    Err(Fetch::Unreachable(e)) => {
                        source_down = true;
                        conflicts.push(unreachable_conflict("source", &source, &e));
                    }
                    Err(Fetch::Missing) => conflicts.push(conflict(
                        &view.app,
                        "package_missing",
                        format!(
                            "the source {} does not hold {} {version} ({digest}): publish it \
                             there, or take it from the environment that runs it",
                            source.name, view.app
                        ),
                    )),
                    Err(Fetch::Corrupt(why)) => conflicts.push(conflict(
                        &view.app,
                        "digest_mismatch",
                        format!(
                            "{} {version} from {} does not match its digest {digest}: {why}; \
                             nothing was imported — check the network path to the source, then \
                             validate again",
                            view.app, source.name
                        ),
                    )),
                }
            }
        }
    }

    // Required properties and dependencies of every app the plan deploys.
    for (app, version, _digest, manifest) in &manifests {
        let app_id = find_application(console, app).await?.id;
        let in_plan = plan_props.get(&app_id);
        let in_target: BTreeSet<String> = match target_client.config(app).await {
            Ok(props) => props
                .into_iter()
                .filter(|p| p.source == PropertySource::Environment)
                .map(|p| p.name)
                .collect(),
            Err(e) if e.status() == Some(404) => BTreeSet::new(),
            Err(e) => {
                conflicts.push(unreachable_conflict("target", &target, &e));
                break;
            }
        };
        for (key, p) in &manifest.properties {
            if !p.required || p.default.is_some() {
                continue;
            }
            let set_by_plan = in_plan.and_then(|m| m.get(key));
            let ok = match set_by_plan {
                Some(Some(_)) => true,
                Some(None) => false,
                None => in_target.contains(key),
            };
            if !ok {
                conflicts.push(conflict(
                    app,
                    "missing_property",
                    format!(
                        "{app} {version} needs property `{key}` (required, no default) and {} \
                         has no value for it: set it in the plan (`--set {app}.{key}=…`) or in \
                         the target with `runway app config {app} {key}=… --env {}`",
                        target.name, target.name
                    ),
                ));
            }
        }
        for (dependency, range) in &manifest.dependencies {
            let dependency = dependency.as_str();
            let provided = after.get(dependency).cloned().flatten();
            let ok = provided
                .as_deref()
                .and_then(|v| Version::parse(v).ok())
                .is_some_and(|v| range.matches(&v));
            if !ok {
                let found = match &provided {
                    Some(v) => format!("{dependency} {v} would run in {}", target.name),
                    None => format!("{} would not run {dependency}", target.name),
                };
                conflicts.push(conflict(
                    app,
                    "unmet_dependency",
                    format!(
                        "{app} {version} depends on {dependency} {range}, but {found}: add a \
                         matching {dependency} version to the plan (or deploy it there first)"
                    ),
                ));
            }
        }
    }
    // Apps that stay in the target and depend on an app the plan changes.
    for summary in &target_apps {
        let (false, Some(version)) = (
            changed.contains(&summary.name),
            summary.running_version.as_deref(),
        ) else {
            continue;
        };
        let dependencies = match target_client.versions(&summary.name).await {
            Ok(versions) => versions
                .into_iter()
                .find(|v| v.version == version)
                .map(|v| v.dependencies)
                .unwrap_or_default(),
            Err(_) => continue,
        };
        for (dependency, range) in dependencies {
            if !changed.contains(&dependency) {
                continue;
            }
            let provided = after.get(&dependency).cloned().flatten();
            let ok = match (
                provided.as_deref().and_then(|v| Version::parse(v).ok()),
                semver::VersionReq::parse(&range),
            ) {
                (Some(v), Ok(req)) => req.matches(&v),
                _ => false,
            };
            if !ok {
                conflicts.push(conflict(
                    &dependency,
                    "breaks_dependent",
                    format!(
                        "{} {version} stays in {} and depends on {dependency} {range}, which \
                         the plan would break: keep a matching {dependency}, or add {} to the \
                         plan",
                        summary.name, target.name, summary.name
                    ),
                ));
            }
        }
    }
    Ok(Checked {
        conflicts,
        warnings,
    })
}

enum Fetch {
    Unreachable(ClientError),
    Missing,
    Corrupt(String),
}

/// Downloads a package from an environment and checks that its bytes are
/// the package `digest` names.
async fn fetch_verified(client: &Client, digest: &str) -> Result<VerifiedPackage, Fetch> {
    let bytes = match client.package(digest).await {
        Ok(bytes) => bytes,
        Err(e) if e.status() == Some(404) => return Err(Fetch::Missing),
        Err(e) => return Err(Fetch::Unreachable(e)),
    };
    let expected = Digest::parse(digest).map_err(|e| Fetch::Corrupt(e.to_string()))?;
    let package = Package::from_bytes(&bytes, MAX_UNPACKED_BYTES)
        .map_err(|e| Fetch::Corrupt(format!("the bytes are not a valid package ({e})")))?;
    if package.digest != expected {
        return Err(Fetch::Corrupt(format!(
            "the bytes received are package {}",
            package.digest
        )));
    }
    Ok(VerifiedPackage {
        manifest: package.manifest,
        bytes,
    })
}

struct VerifiedPackage {
    manifest: Manifest,
    bytes: bytes::Bytes,
}

// ---------------------------------------------------------------- run

/// Starts a saved plan: validates it (conflicts refuse the start with 409
/// and leave it saved), takes its target, and runs it in the background.
pub async fn start(console: &Console, key: &str) -> ApiResult<PlanRecord> {
    let plan = find_plan(console, key).await?;
    if plan.status != PlanStatus::Saved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "plan_not_saved",
            format!(
                "plan {} is {}: only a saved plan can be started (create a new plan to deploy \
                 again)",
                plan.id,
                plan.status.as_str()
            ),
        ));
    }
    log(console, &plan.id, PlanLogKind::Info, "validating").await;
    let checked = check(console, &plan).await?;
    for w in &checked.warnings {
        log(console, &plan.id, PlanLogKind::Warning, w).await;
    }
    if !checked.conflicts.is_empty() {
        for c in &checked.conflicts {
            log(console, &plan.id, PlanLogKind::Error, &c.message).await;
        }
        let first = checked.conflicts[0].message.clone();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "plan_conflicts",
            format!(
                "plan {} has {} conflict(s), nothing was started: {first}",
                plan.id,
                checked.conflicts.len()
            ),
        )
        .with_detail(
            "conflicts",
            serde_json::to_value(&checked.conflicts).unwrap_or_default(),
        ));
    }
    match console
        .store()
        .set_plan_status(&plan.id, PlanStatus::Saved, PlanStatus::Running, None)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::conflict(format!(
                "plan {} changed while it was being started; look at it again",
                plan.id
            )));
        }
        Err(runway_store::StoreError::Conflict(m)) => {
            let running = m.split_whitespace().nth(1).unwrap_or("").to_string();
            return Err(ApiError::new(StatusCode::CONFLICT, "target_busy", m)
                .with_detail("running_plan", serde_json::Value::String(running)));
        }
        Err(e) => return Err(e.into()),
    }
    log(console, &plan.id, PlanLogKind::Info, "plan started").await;
    let task_console = console.clone();
    let id = plan.id.clone();
    tokio::spawn(async move { execute(&task_console, &id).await });
    find_plan(console, key).await
}

/// Ends a running plan in `to` (from whatever active status it is in).
async fn finish(console: &Console, plan: &str, to: PlanStatus, message: &str) {
    let kind = match to {
        PlanStatus::FinishedSuccessful => PlanLogKind::Info,
        PlanStatus::FinishedWithWarnings | PlanStatus::Aborted => PlanLogKind::Warning,
        _ => PlanLogKind::Error,
    };
    log(console, plan, kind, message).await;
    for from in [
        PlanStatus::Running,
        PlanStatus::Aborting,
        PlanStatus::NeedsUserIntervention,
    ] {
        match console.store().set_plan_status(plan, from, to, None).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(plan, "failed to finish the plan: {e:#}");
                return;
            }
        }
    }
}

async fn current_status(console: &Console, plan: &str) -> Option<PlanStatus> {
    console
        .store()
        .plan(plan)
        .await
        .ok()
        .flatten()
        .map(|p| p.status)
}

/// Runs a started plan to its end (or to `needs_user_intervention`).
async fn execute(console: &Console, plan_id: &str) {
    if let Err(e) = execute_steps(console, plan_id).await {
        finish(
            console,
            plan_id,
            PlanStatus::FinishedWithErrors,
            &format!("plan failed: {}; the target was not changed", e.message),
        )
        .await;
    }
}

async fn execute_steps(console: &Console, plan_id: &str) -> ApiResult<()> {
    let plan = find_plan(console, plan_id).await?;
    let source = plan_environment(console, &plan.source_environment_id).await?;
    let target = plan_environment(console, &plan.target_environment_id).await?;
    let source_client = env_client(console, &source).await?;
    let target_client = env_client(console, &target).await?;
    let mut operations = Vec::new();
    for op in console.store().plan_operations(&plan.id).await? {
        operations.push(operation_view(console, &op).await?);
    }
    // Packages: each digest the target lacks, from the source, verified.
    for op in operations.iter().filter(|o| o.op == "deploy") {
        let (version, digest) = (
            op.version.clone().unwrap_or_default(),
            op.digest.clone().unwrap_or_default(),
        );
        if current_status(console, plan_id).await == Some(PlanStatus::Aborting) {
            finish(
                console,
                plan_id,
                PlanStatus::Aborted,
                "aborted before the target deployment; the target was not changed",
            )
            .await;
            return Ok(());
        }
        let has = target_client.has_package(&digest).await.map_err(|e| {
            ApiError::conflict(format!("the target {} does not answer ({e})", target.name))
        })?;
        if has {
            log(
                console,
                plan_id,
                PlanLogKind::Info,
                &format!(
                    "{} {version}: {} already holds {digest}, not uploaded again",
                    op.app, target.name
                ),
            )
            .await;
            continue;
        }
        log(
            console,
            plan_id,
            PlanLogKind::Info,
            &format!(
                "{} {version}: fetching {digest} from {}",
                op.app, source.name
            ),
        )
        .await;
        let package = fetch_verified(&source_client, &digest)
            .await
            .map_err(|e| match e {
                Fetch::Unreachable(e) => {
                    ApiError::conflict(format!("the source {} does not answer ({e})", source.name))
                }
                Fetch::Missing => ApiError::conflict(format!(
                    "the source {} no longer holds {} {version} ({digest})",
                    source.name, op.app
                )),
                Fetch::Corrupt(why) => ApiError::conflict(format!(
                    "{} {version} from {} does not match its digest {digest}: {why}; nothing \
                     was imported",
                    op.app, source.name
                )),
            })?;
        target_client
            .import_package(&digest, package.bytes)
            .await
            .map_err(|e| {
                ApiError::conflict(format!(
                    "importing {} {version} into {} failed: {e}",
                    op.app, target.name
                ))
            })?;
        log(
            console,
            plan_id,
            PlanLogKind::Info,
            &format!(
                "{} {version}: digest verified, imported into {}",
                op.app, target.name
            ),
        )
        .await;
    }
    if current_status(console, plan_id).await == Some(PlanStatus::Aborting) {
        finish(
            console,
            plan_id,
            PlanStatus::Aborted,
            "aborted before the target deployment; the target was not changed",
        )
        .await;
        return Ok(());
    }
    // One multi-app deployment in the target.
    let mut config: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (app_id, key, value) in console.store().plan_properties(&plan.id).await? {
        let app = operations
            .iter()
            .find(|o| o.app_key == app_id)
            .map(|o| o.app.clone())
            .unwrap_or(app_id);
        config.entry(app).or_default().insert(key, value);
    }
    let request = DeploymentRequest {
        operations: operations
            .iter()
            .map(|o| match &o.version {
                Some(v) if o.op == "deploy" => OperationRequest::Deploy {
                    app: o.app.clone(),
                    version: v.clone(),
                },
                _ => OperationRequest::Undeploy { app: o.app.clone() },
            })
            .collect(),
        config,
        prepare: plan.two_step,
        disable_failed_frontends: false,
    };
    log(
        console,
        plan_id,
        PlanLogKind::Info,
        &format!(
            "{} {} in {} ({})",
            if plan.two_step {
                "preparing"
            } else {
                "deploying"
            },
            operations
                .iter()
                .map(|o| match &o.version {
                    Some(v) => format!("{}@{v}", o.app),
                    None => format!("undeploy {}", o.app),
                })
                .collect::<Vec<_>>()
                .join(", "),
            target.name,
            if plan.two_step {
                "stage on every front-end, switch nothing"
            } else {
                "all apps switch in one generation"
            }
        ),
    )
    .await;
    let deployment = match target_client.create_deployment(&request).await {
        Ok(d) => d,
        Err(e) => {
            let message = match &e {
                ClientError::Api { code, message, .. } if code == "deployment_conflict" => {
                    format!("the target refused the deployment: {message}")
                }
                _ => format!("the deployment in {} failed: {e}", target.name),
            };
            // The target may have recorded (and even switched) before the
            // answer was lost: its record decides.
            return settle_from_target(console, &plan, &target_client, Some(message)).await;
        }
    };
    record_deployment(console, &plan, &deployment).await;
    conclude(console, &plan, &deployment).await;
    Ok(())
}

async fn record_deployment(console: &Console, plan: &PlanRecord, d: &Deployment) {
    for from in [PlanStatus::Running, PlanStatus::Aborting] {
        if let Ok(true) = console
            .store()
            .set_plan_status(&plan.id, from, from, Some(d.id))
            .await
        {
            return;
        }
    }
}

/// Moves a plan to the status its target deployment's record says.
async fn conclude(console: &Console, plan: &PlanRecord, d: &Deployment) {
    match d.status {
        DeploymentStatus::Succeeded => {
            // The console's record of what the target runs is refreshed before
            // the plan reads as finished: whoever waited on the plan may build
            // the next one (test → prod) on that record at once.
            if let Err(e) = console.poll_once(&plan.target_environment_id).await {
                tracing::warn!(plan = %plan.id, "cannot refresh the target's running versions: {e}");
            }
            let aborting = current_status(console, &plan.id).await == Some(PlanStatus::Aborting);
            let generation = d
                .generation
                .map(|g| format!(" (generation {g})"))
                .unwrap_or_default();
            if aborting {
                finish(
                    console,
                    &plan.id,
                    PlanStatus::FinishedWithWarnings,
                    &format!(
                        "the abort came after the target switched{generation}: the plan \
                         finished; deploy the previous versions to roll back"
                    ),
                )
                .await;
            } else {
                finish(
                    console,
                    &plan.id,
                    PlanStatus::FinishedSuccessful,
                    &format!("target deployment {} succeeded{generation}", d.id),
                )
                .await;
            }
        }
        DeploymentStatus::Prepared => {
            log(
                console,
                &plan.id,
                PlanLogKind::Info,
                &format!(
                    "prepared: target deployment {} is staged on every front-end and switches \
                     nothing until `continue` (it expires{}); `abort` leaves the target as it is",
                    d.id,
                    d.expires_at_ms
                        .map(|t| format!(" in {} s", (t - now_ms()).max(0) / 1000))
                        .unwrap_or_default()
                ),
            )
            .await;
            let _ = console
                .store()
                .set_plan_status(
                    &plan.id,
                    PlanStatus::Running,
                    PlanStatus::NeedsUserIntervention,
                    None,
                )
                .await;
            // An abort asked while preparing: drop the staged tables now.
            if current_status(console, &plan.id).await == Some(PlanStatus::Aborting) {
                let _ = Box::pin(abort_target(console, plan, d.id)).await;
            }
        }
        DeploymentStatus::Failed => {
            finish(
                console,
                &plan.id,
                PlanStatus::FinishedWithErrors,
                &format!(
                    "target deployment {} failed: {}; nothing was switched",
                    d.id,
                    d.error.as_deref().unwrap_or("no reason given")
                ),
            )
            .await
        }
        DeploymentStatus::Aborted => {
            finish(
                console,
                &plan.id,
                PlanStatus::Aborted,
                &format!(
                    "target deployment {} was aborted ({}); the target serves what it served \
                     before",
                    d.id,
                    d.error.as_deref().unwrap_or("aborted")
                ),
            )
            .await
        }
        DeploymentStatus::Running => {}
    }
}

/// After a lost answer or a restart: the target's deployment record decides
/// whether it switched. `failure` is what happened to this console's call.
/// While the target does not answer it is asked again, for at most
/// [`SETTLE_DEADLINE`]; then the plan fails, naming what to check.
async fn settle_from_target(
    console: &Console,
    plan: &PlanRecord,
    target: &Client,
    failure: Option<String>,
) -> ApiResult<()> {
    let started = std::time::Instant::now();
    let mut said = false;
    let found = loop {
        match lookup_target_deployment(console, plan, target).await {
            Ok(found) => break found,
            Err(e) if started.elapsed() < SETTLE_DEADLINE => {
                if !said {
                    said = true;
                    log(
                        console,
                        &plan.id,
                        PlanLogKind::Warning,
                        &format!(
                            "{}; the target does not answer ({e}): asking it again until it                              does, its deployment record decides",
                            failure.as_deref().unwrap_or("the console restarted")
                        ),
                    )
                    .await;
                }
                tokio::time::sleep(RECOVERY_RETRY).await;
            }
            Err(e) => {
                let plan = find_plan(console, &plan.id).await?;
                finish(
                    console,
                    &plan.id,
                    PlanStatus::FinishedWithErrors,
                    &format!(
                        "the target did not answer for {} s ({e}); its outcome is unknown to the                          console: check deployment {} there with `runway deployments`",
                        SETTLE_DEADLINE.as_secs(),
                        plan.target_deployment_id
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "(none recorded)".into())
                    ),
                )
                .await;
                return Ok(());
            }
        }
    };
    match found {
        Some(mut d) => {
            while d.status == DeploymentStatus::Running {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(next) = target.deployment(d.id).await {
                    d = next;
                }
            }
            conclude(console, plan, &d).await;
        }
        None => {
            finish(
                console,
                &plan.id,
                PlanStatus::FinishedWithErrors,
                &format!(
                    "{}; the target has no deployment of this plan, so nothing was switched",
                    failure.unwrap_or_else(|| "the console stopped during the plan".into())
                ),
            )
            .await
        }
    }
    Ok(())
}

/// The target's deployment of this plan: by the id recorded, else the one
/// started after the plan with exactly its operations. `Err` = no answer.
async fn lookup_target_deployment(
    console: &Console,
    plan: &PlanRecord,
    target: &Client,
) -> Result<Option<Deployment>, ClientError> {
    let plan = match find_plan(console, &plan.id).await {
        Ok(p) => p,
        Err(_) => return Ok(None),
    };
    if let Some(id) = plan.target_deployment_id {
        return match target.deployment(id).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        };
    }
    let list = target.deployments(None, Some(50)).await?;
    let mut wanted = BTreeSet::new();
    for op in console
        .store()
        .plan_operations(&plan.id)
        .await
        .unwrap_or_default()
    {
        if let Ok(view) = operation_view(console, &op).await {
            wanted.insert((view.app, view.version));
        }
    }
    let found = list.into_iter().find(|d| {
        plan.started_at_ms.is_some_and(|t| d.started_at_ms >= t)
            && d.operations
                .iter()
                .map(|o| {
                    (
                        o.app.clone(),
                        (o.kind == OperationKind::Deploy)
                            .then(|| o.version.clone())
                            .flatten(),
                    )
                })
                .collect::<BTreeSet<_>>()
                == wanted
    });
    if let Some(d) = &found {
        record_deployment(console, &plan, d).await;
    }
    Ok(found)
}

// ---------------------------------------------------------------- continue / abort / delete

/// Commits a prepared (two-step) plan.
pub async fn continue_plan(console: &Console, key: &str) -> ApiResult<PlanRecord> {
    let plan = find_plan(console, key).await?;
    let Some(id) = plan
        .target_deployment_id
        .filter(|_| plan.status == PlanStatus::NeedsUserIntervention)
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "plan_not_prepared",
            format!(
                "plan {} is {}: continue commits a two-step plan that waits in \
                 needs_user_intervention (prepared)",
                plan.id,
                plan.status.as_str()
            ),
        ));
    };
    if !console
        .store()
        .set_plan_status(
            &plan.id,
            PlanStatus::NeedsUserIntervention,
            PlanStatus::Running,
            None,
        )
        .await?
    {
        return Err(ApiError::conflict(format!(
            "plan {} changed meanwhile; look at it again",
            plan.id
        )));
    }
    log(
        console,
        &plan.id,
        PlanLogKind::Info,
        "continue: committing the prepared deployment",
    )
    .await;
    let target = plan_environment(console, &plan.target_environment_id).await?;
    let client = env_client(console, &target).await?;
    let task_console = console.clone();
    let task_plan = plan.clone();
    tokio::spawn(async move {
        match client.commit_deployment(id).await {
            Ok(d) => conclude(&task_console, &task_plan, &d).await,
            Err(e) => {
                let _ = settle_from_target(
                    &task_console,
                    &task_plan,
                    &client,
                    Some(format!("committing in {} failed: {e}", target.name)),
                )
                .await;
            }
        }
    });
    find_plan(console, key).await
}

async fn abort_target(console: &Console, plan: &PlanRecord, id: i64) -> ApiResult<()> {
    let target = plan_environment(console, &plan.target_environment_id).await?;
    let client = env_client(console, &target).await?;
    match client.abort_deployment(id).await {
        Ok(d) => {
            conclude(console, plan, &d).await;
            Ok(())
        }
        Err(e) => {
            // Already over there (expired, or the target restarted): its record decides.
            settle_from_target(console, plan, &client, Some(format!("abort: {e}"))).await
        }
    }
}

/// Aborts a plan: a prepared one drops its staged tables (the target stays
/// as it was); a running one stops before its target deployment, or — if the
/// switch already happened — finishes with a warning.
pub async fn abort_plan(console: &Console, key: &str) -> ApiResult<PlanRecord> {
    let plan = find_plan(console, key).await?;
    match plan.status {
        PlanStatus::NeedsUserIntervention => {
            if !console
                .store()
                .set_plan_status(
                    &plan.id,
                    PlanStatus::NeedsUserIntervention,
                    PlanStatus::Aborting,
                    None,
                )
                .await?
            {
                return Err(ApiError::conflict(format!(
                    "plan {} changed meanwhile; look at it again",
                    plan.id
                )));
            }
            log(console, &plan.id, PlanLogKind::Warning, "abort requested").await;
            if let Some(id) = plan.target_deployment_id {
                abort_target(console, &plan, id).await?;
            }
        }
        PlanStatus::Running => {
            if !console
                .store()
                .set_plan_status(&plan.id, PlanStatus::Running, PlanStatus::Aborting, None)
                .await?
            {
                return Err(ApiError::conflict(format!(
                    "plan {} changed meanwhile; look at it again",
                    plan.id
                )));
            }
            log(
                console,
                &plan.id,
                PlanLogKind::Warning,
                "abort requested: the plan stops before its target deployment (a switch \
                 already under way completes)",
            )
            .await;
        }
        status => {
            let hint = if status.is_finished() && status != PlanStatus::Aborted {
                "it is over: the target already switched; deploy the previous versions with a \
                 new plan (--rollback) to go back"
            } else {
                "only a running or prepared plan can be aborted"
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "plan_not_abortable",
                format!("plan {} is {}: {hint}", plan.id, status.as_str()),
            ));
        }
    }
    find_plan(console, key).await
}

/// Deletes a plan that does not hold its target.
pub async fn delete_plan(console: &Console, key: &str) -> ApiResult<()> {
    let plan = find_plan(console, key).await?;
    match console.store().delete_plan(&plan.id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(plan_not_found(key)),
        Err(runway_store::StoreError::Conflict(m)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "plan_running", m))
        }
        Err(e) => Err(e.into()),
    }
}

/// The status line and the log after `after`.
pub async fn status(console: &Console, key: &str, after: i64) -> ApiResult<PlanStatusView> {
    let plan = find_plan(console, key).await?;
    let log = console.store().plan_log(&plan.id, after).await?;
    let last = console
        .store()
        .plan_log(&plan.id, 0)
        .await?
        .into_iter()
        .last()
        .map(|r| r.message)
        .unwrap_or_default();
    let info = match plan.status {
        PlanStatus::NeedsUserIntervention => {
            format!("prepared: waiting for continue (commit) or abort — {last}")
        }
        _ => last,
    };
    let frontends = target_progress(console, &plan).await;
    Ok(PlanStatusView {
        key: plan.id.clone(),
        status: wire_status(plan.status),
        info,
        frontends,
        log: log
            .into_iter()
            .map(|r| PlanLogEntry {
                id: r.id,
                instant_ms: r.instant_ms,
                kind: wire_kind(r.kind),
                message: r.message,
            })
            .collect(),
    })
}

impl Console {
    /// At start-up: every plan a previous run left `running` or `aborting`
    /// is settled from its target's deployment record (switched → finished,
    /// no deployment → failed, target unchanged); a target that does not
    /// answer is asked again until it does. Plans waiting prepared stay so.
    pub async fn recover_plans(&self) -> Result<(), runway_store::StoreError> {
        for plan in self.store().plans(None, None, None).await? {
            if !matches!(plan.status, PlanStatus::Running | PlanStatus::Aborting) {
                continue;
            }
            let console = self.clone();
            tokio::spawn(async move {
                log(
                    &console,
                    &plan.id,
                    PlanLogKind::Warning,
                    "the console restarted during this plan; asking the target what happened",
                )
                .await;
                let Ok(target) = plan_environment(&console, &plan.target_environment_id).await
                else {
                    finish(
                        &console,
                        &plan.id,
                        PlanStatus::FinishedWithErrors,
                        "the target was removed from the console during the plan",
                    )
                    .await;
                    return;
                };
                let Ok(client) = env_client(&console, &target).await else {
                    return;
                };
                if let Err(e) = settle_from_target(&console, &plan, &client, None).await {
                    tracing::error!(plan = %plan.id, "failed to settle the plan: {e}");
                }
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- routes

#[derive(Debug, Deserialize)]
struct ListQuery {
    target: Option<String>,
}

#[utoipa::path(get, path = "/_runway/console/v1/plans", params(("target" = Option<String>, Query, description = "only plans to this environment (name or key)")), responses((status = 200, body = Vec<PlanView>, description = "newest first"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "environment_not_found")))]
async fn list_plans(
    State(console): State<Console>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<PlanView>>> {
    Ok(Json(
        visible_plans(&console, &caller, q.target.as_deref()).await?,
    ))
}

/// The plans (into `target`, if given) whose target the caller sees,
/// newest first (API and the plan history page).
pub(crate) async fn visible_plans(
    console: &Console,
    caller: &Caller,
    target: Option<&str>,
) -> ApiResult<Vec<PlanView>> {
    let target = match target {
        Some(t) => Some(find_environment(console, t).await?.id),
        None => None,
    };
    let access = crate::auth::Access::load(console, caller).await?;
    let mut out = Vec::new();
    for plan in console.store().plans(None, None, target.as_deref()).await? {
        // Only plans into environments the caller sees.
        let (_, target, _) = plan_scope(console, &plan).await?;
        if access.sees_environment(&target) {
            out.push(plan_view(console, &plan).await?);
        }
    }
    Ok(out)
}

/// A plan with its target's front-ends, for one who may see it.
pub(crate) async fn show_plan_for(
    console: &Console,
    caller: &Caller,
    key: &str,
) -> ApiResult<PlanView> {
    require_sees_plan(console, caller, key).await?;
    let plan = find_plan(console, key).await?;
    let mut view = plan_view(console, &plan).await?;
    view.frontends = target_progress(console, &plan).await;
    Ok(view)
}

/// A plan's status and log rows after `after`, for one who may see it.
pub(crate) async fn status_for(
    console: &Console,
    caller: &Caller,
    key: &str,
    after: i64,
) -> ApiResult<PlanStatusView> {
    require_sees_plan(console, caller, key).await?;
    status(console, key, after).await
}

/// What a caller does to a stored plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanCommand {
    Start,
    Continue,
    Abort,
}

/// Starts, continues or aborts a plan for a caller with its levels (API,
/// the LifeTime surface's commands and the pages).
pub(crate) async fn command(
    console: &Console,
    caller: &Caller,
    key: &str,
    command: PlanCommand,
) -> ApiResult<PlanRecord> {
    let action = match command {
        PlanCommand::Start => "start a deployment plan",
        PlanCommand::Continue => "continue a deployment plan",
        PlanCommand::Abort => "abort a deployment plan",
    };
    require_stored_plan(console, caller, action, key).await?;
    match command {
        PlanCommand::Start => start(console, key).await,
        PlanCommand::Continue => continue_plan(console, key).await,
        PlanCommand::Abort => abort_plan(console, key).await,
    }
}

/// Deletes a saved plan for a caller with its levels.
pub(crate) async fn delete_for(console: &Console, caller: &Caller, key: &str) -> ApiResult<()> {
    require_stored_plan(console, caller, "delete a deployment plan", key).await?;
    delete_plan(console, key).await
}

/// Validates a plan for a caller with its levels.
pub(crate) async fn validate_for(
    console: &Console,
    caller: &Caller,
    key: &str,
) -> ApiResult<PlanValidation> {
    require_stored_plan(console, caller, "validate a deployment plan", key).await?;
    let plan = find_plan(console, key).await?;
    validate(console, &plan).await
}

#[utoipa::path(post, path = "/_runway/console/v1/plans", request_body = CreatePlan, responses((status = 201, body = PlanView, description = "saved"), (status = 400, body = runway_api::ErrorBody, description = "invalid_request: no or too many operations, an app twice, properties of an app the plan does not deploy, source = target"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "environment_not_found, app_not_found, version_not_found")))]
async fn create_plan_route(
    State(console): State<Console>,
    caller: Caller,
    Json(req): Json<CreatePlan>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let plan = create_plan(&console, &caller, &req).await?;
    Ok((StatusCode::CREATED, Json(plan_view(&console, &plan).await?)))
}

#[utoipa::path(get, path = "/_runway/console/v1/plans/{key}", params(("key" = String, Path, description = "the plan key")), responses((status = 200, body = PlanView, description = "with each target front-end's stage"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found")))]
async fn show_plan(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(show_plan_for(&console, &caller, &key).await?))
}

#[utoipa::path(delete, path = "/_runway/console/v1/plans/{key}", params(("key" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found"), (status = 409, body = runway_api::ErrorBody, description = "plan_running: the plan holds its target")))]
async fn delete_plan_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    delete_for(&console, &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/_runway/console/v1/plans/{key}/validate", params(("key" = String, Path)), responses((status = 200, body = PlanValidation, description = "the conflicts, each naming the app, the cause and the fix"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found"), (status = 409, body = runway_api::ErrorBody, description = "an environment of the plan was removed")))]
async fn validate_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<PlanValidation>> {
    Ok(Json(validate_for(&console, &caller, &key).await?))
}

#[utoipa::path(post, path = "/_runway/console/v1/plans/{key}/start", params(("key" = String, Path)), responses((status = 202, body = PlanView, description = "validated and running"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found"), (status = 409, body = runway_api::ErrorBody, description = "plan_conflicts (details: conflicts), target_busy (details: running_plan), plan_not_saved")))]
async fn start_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let plan = command(&console, &caller, &key, PlanCommand::Start).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(plan_view(&console, &plan).await?),
    ))
}

#[utoipa::path(post, path = "/_runway/console/v1/plans/{key}/continue", params(("key" = String, Path)), responses((status = 202, body = PlanView, description = "committing the prepared deployment"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found"), (status = 409, body = runway_api::ErrorBody, description = "plan_not_prepared")))]
async fn continue_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let plan = command(&console, &caller, &key, PlanCommand::Continue).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(plan_view(&console, &plan).await?),
    ))
}

#[utoipa::path(post, path = "/_runway/console/v1/plans/{key}/abort", params(("key" = String, Path)), responses((status = 202, body = PlanView, description = "aborting or aborted; the target stays as it was"), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found"), (status = 409, body = runway_api::ErrorBody, description = "plan_not_abortable: saved, or already finished")))]
async fn abort_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let plan = command(&console, &caller, &key, PlanCommand::Abort).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(plan_view(&console, &plan).await?),
    ))
}

#[utoipa::path(get, path = "/_runway/console/v1/plans/{key}/status", params(("key" = String, Path), ("after" = Option<i64>, Query, description = "only log rows with a larger id")), responses((status = 200, body = PlanStatusView), (status = 401, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody, description = "plan_not_found")))]
async fn status_route(
    State(console): State<Console>,
    caller: Caller,
    Path(key): Path<String>,
    Query(q): Query<PlanLogQuery>,
) -> ApiResult<Json<PlanStatusView>> {
    Ok(Json(status_for(&console, &caller, &key, q.after).await?))
}
