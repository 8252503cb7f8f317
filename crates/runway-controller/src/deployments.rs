//! Multi-app deployments for an infrastructure console: validation (the dry
//! run), run to the end, or prepare / commit / abort, and undeploy.
//!
//! A request is checked against the catalog first ([`Controller::dry_run`]):
//! every problem names the app, the cause and the fix, and any problem
//! refuses the deployment before anything is recorded. A checked request
//! becomes a [`Job`] that `deployer` runs like any other deployment — all its
//! apps switch in one generation, recorded in one transaction, or none do.
//!
//! A **prepared** deployment is staged on every front-end and stops there:
//! its staged tables and what it will record are kept in memory
//! ([`Prepared`]), its row says `prepared` with an expiry. Commit records
//! exactly that and switches; abort (or expiry, or a controller restart,
//! since the staged tables die with the process) drops the staged tables,
//! and the environment serves what it served before. While a deployment is
//! prepared no other deployment starts (`409 deployment_in_progress`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use runway_api::fleet::FrontendProgress;
use runway_api::v1::{
    Deployment, DeploymentOperation, DeploymentProblem, DeploymentRequest, DeploymentStatus,
    DryRun, MAX_DEPLOYMENT_OPERATIONS, OperationKind, OperationRequest, ProblemCode,
};
use runway_manifest::{AppName, Manifest, Version};
use runway_store::{AppRecord, PropertyChange, now_ms};

use crate::Controller;
use crate::deployer::{
    Change, Job, OnStageFailure, Staged, deployment_in_progress, deployment_view, mark_aborted,
};
use crate::{ControllerError, ControllerResult};

/// A deployment staged everywhere and waiting for its commit (or abort).
pub(crate) struct Prepared {
    id: i64,
    job: Job,
    staged: Staged,
    progress: Vec<FrontendProgress>,
    expires_at_ms: i64,
}

/// A checked request: what would block it, or the job that runs it.
pub(crate) enum Checked {
    Problems(Vec<DeploymentProblem>),
    Ready(Job),
}

/// An app as the request leaves it: its version (`None`: not deployed) and
/// that version's manifest.
struct Target {
    version: Option<String>,
    manifest: Option<Manifest>,
    /// Switched, reconfigured or undeployed by this request.
    changed: bool,
}

impl Controller {
    /// `POST /deployments/dry-run`: what would block `request`. Changes nothing.
    pub async fn dry_run(&self, request: &DeploymentRequest) -> ControllerResult<DryRun> {
        let mut problems = match self.check(request).await? {
            Checked::Problems(problems) => problems,
            Checked::Ready(_) => Vec::new(),
        };
        if let Some((id, status)) = self.store().active_deployment().await? {
            problems.push(DeploymentProblem {
                app: request.operations[0].app().to_string(),
                code: ProblemCode::DeploymentInProgress,
                message: format!(
                    "deployment {id} is {status}; one deployment runs or waits prepared at a \
                     time: wait for it to end, or commit or abort it, then deploy"
                ),
            });
        }
        Ok(DryRun {
            ok: problems.is_empty(),
            problems,
        })
    }

    /// `POST /deployments`: checks `request` as the dry run does (any problem
    /// is `409 deployment_conflict`, nothing changed), then runs it to the
    /// end, or with `prepare` stages it everywhere and stops.
    pub async fn create_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> ControllerResult<Deployment> {
        // A deployment holding the lock is refused at once; a short holder
        // (a catch-up's table, an un-marking) is waited for.
        let lock = match self.inner.deploy_lock.try_lock() {
            Ok(lock) => lock,
            Err(_) => {
                if let Some((id, status)) = self.store().active_deployment().await? {
                    return Err(deployment_in_progress(id, status));
                }
                match tokio::time::timeout(Duration::from_secs(2), self.inner.deploy_lock.lock())
                    .await
                {
                    Ok(lock) => lock,
                    Err(_) => return Err(self.busy().await),
                }
            }
        };
        if let Some((id, status)) = self.store().active_deployment().await? {
            return Err(deployment_in_progress(id, status));
        }
        let job = match self.check(request).await? {
            Checked::Ready(job) => job,
            Checked::Problems(problems) => return Err(conflict(problems)),
        };
        // Their secrets stay secret whatever later versions declare.
        for operation in &job.operations {
            if operation.kind == OperationKind::Deploy
                && let Some(version) = &operation.version
                && let Some(record) = self.store().version(&operation.app, version).await?
            {
                let manifest = Manifest::parse(&record.manifest_toml, "runway.toml")
                    .map_err(ControllerError::internal)?;
                self.mark_secrets(&operation.app, &manifest, true).await?;
            }
        }
        if !request.prepare {
            return self.run_deployment(&lock, job).await;
        }
        let (id, staged, mut progress) = self.begin_and_stage(&lock, &job).await?;
        let expires_at_ms = now_ms() + self.prepared_ttl_ms();
        if let Err(e) = self
            .store()
            .prepare_deployment(id, staged.generation(), expires_at_ms)
            .await
        {
            staged.abort().await;
            mark_aborted(&mut progress);
            self.record_progress(id, &progress).await;
            if let Err(failed) = self
                .store()
                .fail_deployment(id, "could not be recorded as prepared")
                .await
            {
                tracing::error!(id, "failed to record the failure of a deployment: {failed}");
            }
            return Err(e.into());
        }
        self.record_progress(id, &progress).await;
        tracing::info!(
            id,
            apps = job.operations.len(),
            expires_at_ms,
            "deployment prepared"
        );
        *self.prepared() = Some(Prepared {
            id,
            job,
            staged,
            progress,
            expires_at_ms,
        });
        self.spawn_expiry(id, expires_at_ms);
        Ok(deployment_view(self.deployment_record(id).await?, None))
    }

    /// `POST /deployments/{id}/commit`: records exactly the prepared table
    /// and switches every front-end to it.
    pub async fn commit_deployment(&self, id: i64) -> ControllerResult<Deployment> {
        let lock = self.inner.deploy_lock.lock().await;
        let prepared = self.take_prepared(id).await?;
        if now_ms() >= prepared.expires_at_ms {
            self.drop_prepared(prepared, EXPIRED).await?;
            return Err(not_prepared(
                id,
                "it expired and was aborted; prepare it again",
            ));
        }
        let Prepared {
            id,
            job,
            staged,
            mut progress,
            ..
        } = prepared;
        if let Err(e) = self.store().resume_deployment(id).await {
            staged.abort().await;
            mark_aborted(&mut progress);
            self.record_progress(id, &progress).await;
            return Err(e.into());
        }
        self.switch_staged(&lock, id, &job, staged, &mut progress)
            .await
    }

    /// `POST /deployments/{id}/abort`: drops the staged tables everywhere;
    /// the environment serves exactly what it served before.
    pub async fn abort_deployment(&self, id: i64, who: &str) -> ControllerResult<Deployment> {
        let _lock = self.inner.deploy_lock.lock().await;
        let prepared = self.take_prepared(id).await?;
        self.drop_prepared(
            prepared,
            &format!("aborted by token '{who}'; nothing was switched"),
        )
        .await?;
        Ok(deployment_view(self.deployment_record(id).await?, None))
    }

    /// `DELETE /apps/{app}/deployment`: an undeploy of one app, checked like
    /// any deployment.
    pub async fn undeploy(&self, app: &str) -> ControllerResult<Deployment> {
        if self.store().app(app).await?.is_none() {
            return Err(crate::deployer::app_not_found(app));
        }
        self.create_deployment(&DeploymentRequest {
            operations: vec![OperationRequest::Undeploy {
                app: app.to_string(),
            }],
            ..DeploymentRequest::default()
        })
        .await
    }

    /// `GET /deployments/{id}`.
    pub async fn deployment(&self, id: i64) -> ControllerResult<Deployment> {
        let record = self.store().deployment(id).await?.ok_or_else(|| {
            ControllerError::not_found_with(
                "deployment_not_found",
                format!("no deployment {id} in this environment; `runway deployments` lists them"),
            )
        })?;
        Ok(deployment_view(record, None))
    }

    /// Refuses a change outside deployments (a stopped app's configuration)
    /// while a deployment is prepared: it would not be in the staged table.
    pub(crate) async fn refuse_while_prepared(&self) -> ControllerResult<()> {
        match self.store().active_deployment().await? {
            Some((id, status)) => Err(deployment_in_progress(id, status)),
            None => Ok(()),
        }
    }

    /// At start (or takeover): prepared deployments of a previous process are
    /// aborted; their staged tables died with it and nothing was switched.
    pub(crate) async fn abort_leftover_prepared(&self) -> ControllerResult<()> {
        // One this process prepared before it lost and retook the lease.
        let held = self.prepared().take();
        if let Some(prepared) = held {
            prepared.staged.abort().await;
        }
        let aborted = self
            .store()
            .abort_prepared_deployments(
                "the controller restarted while it was prepared; nothing was switched: \
                 prepare it again",
            )
            .await?;
        if !aborted.is_empty() {
            tracing::warn!(
                ?aborted,
                "aborted prepared deployments left by the previous run"
            );
        }
        Ok(())
    }

    /// How long a prepared deployment waits for its commit.
    pub fn prepared_ttl_ms(&self) -> i64 {
        self.inner
            .prepared_ttl_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes how long prepared deployments wait for their commit (tests;
    /// the default is [`runway_api::v1::PREPARED_DEPLOYMENT_TTL_MS`]).
    pub fn set_prepared_ttl(&self, ttl: Duration) {
        self.inner.prepared_ttl_ms.store(
            i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn prepared(&self) -> std::sync::MutexGuard<'_, Option<Prepared>> {
        self.inner
            .prepared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The prepared deployment `id`, taken out of memory; or why not.
    async fn take_prepared(&self, id: i64) -> ControllerResult<Prepared> {
        let taken = {
            let mut prepared = self.prepared();
            match prepared.as_ref() {
                Some(p) if p.id == id => prepared.take(),
                _ => None,
            }
        };
        if let Some(prepared) = taken {
            return Ok(prepared);
        }
        let record = self.deployment(id).await?;
        let why = match record.status {
            DeploymentStatus::Prepared => {
                // Recorded prepared, but not by this process: its staged
                // tables are gone. Abort it now, as the start-up would.
                self.store()
                    .abort_deployment(id, "its staged tables were lost; nothing was switched")
                    .await?;
                "its staged tables were lost (the controller changed); prepare it again".to_string()
            }
            DeploymentStatus::Aborted => format!(
                "it was aborted ({}); prepare it again",
                record.error.as_deref().unwrap_or("no reason recorded")
            ),
            status => format!("it is {status}"),
        };
        Err(not_prepared(id, &why))
    }

    /// Aborts a prepared deployment taken out of memory: every staged table
    /// is dropped, the row says `aborted` with `reason`.
    async fn drop_prepared(&self, prepared: Prepared, reason: &str) -> ControllerResult<()> {
        let Prepared {
            id,
            staged,
            mut progress,
            ..
        } = prepared;
        staged.abort().await;
        mark_aborted(&mut progress);
        self.record_progress(id, &progress).await;
        self.store().abort_deployment(id, reason).await?;
        tracing::info!(id, reason, "prepared deployment aborted");
        Ok(())
    }

    /// Aborts prepared deployment `id` at `expires_at_ms` unless it was
    /// committed or aborted before. Holds the controller only weakly.
    fn spawn_expiry(&self, id: i64, expires_at_ms: i64) {
        let controller = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let wait = u64::try_from(expires_at_ms - now_ms()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let Some(inner) = controller.upgrade() else {
                return;
            };
            let controller = Controller { inner };
            let _lock = controller.inner.deploy_lock.lock().await;
            let expired = {
                let mut prepared = controller.prepared();
                match prepared.as_ref() {
                    Some(p) if p.id == id => prepared.take(),
                    _ => None,
                }
            };
            if let Some(prepared) = expired
                && let Err(e) = controller.drop_prepared(prepared, EXPIRED).await
            {
                tracing::error!(id, "failed to abort an expired prepared deployment: {e}");
            }
        });
    }

    /// `409 deployment_in_progress` naming the running or prepared deployment.
    async fn busy(&self) -> ControllerError {
        // The lock holder records its deployment first thing; give it a moment.
        for _ in 0..20 {
            match self.store().active_deployment().await {
                Ok(Some((id, status))) => return deployment_in_progress(id, status),
                Ok(None) => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(e) => return e.into(),
            }
        }
        ControllerError::conflict_with(
            "deployment_in_progress",
            "another deployment is starting; wait for it to end, then try again",
        )
        .with_details(serde_json::json!({ "id": null }))
    }

    /// Validates `request` against the catalog: malformed requests are a
    /// 400; everything that would block the deployment is a problem.
    pub(crate) async fn check(&self, request: &DeploymentRequest) -> ControllerResult<Checked> {
        check_shape(request)?;
        let apps: BTreeMap<String, AppRecord> = self
            .store()
            .apps()
            .await?
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        let mut problems = Vec::new();
        let mut operations = Vec::new();
        let mut change = Change::default();
        let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();

        for operation in &request.operations {
            match operation {
                OperationRequest::Deploy { app, version } => {
                    let Some(record) = self.store().version(app, version).await? else {
                        problems.push(problem(
                            app,
                            ProblemCode::UnknownVersion,
                            format!(
                                "{app} {version} is not published in this environment: import \
                                 its package (PUT /_runway/api/v1/packages/{{digest}}) or publish \
                                 it with `runway app publish`"
                            ),
                        ));
                        continue;
                    };
                    manifests.insert(
                        app.clone(),
                        parse_stored(app, &record.version, &record.manifest_toml)?,
                    );
                    change
                        .running
                        .insert(app.clone(), Some(record.version.clone()));
                    operations.push(DeploymentOperation {
                        app: app.clone(),
                        kind: OperationKind::Deploy,
                        version: Some(record.version),
                        digest: Some(record.digest),
                    });
                }
                OperationRequest::Undeploy { app } => {
                    let Some(record) = apps.get(app) else {
                        problems.push(problem(
                            app,
                            ProblemCode::UnknownApp,
                            format!(
                                "{app} is not an app of this environment, so it cannot be \
                                 undeployed; `runway app list` shows the apps"
                            ),
                        ));
                        continue;
                    };
                    let Some(running) = &record.running_version else {
                        problems.push(problem(
                            app,
                            ProblemCode::NotDeployed,
                            format!(
                                "{app} runs nothing in this environment, so there is nothing to \
                                 undeploy; remove the operation"
                            ),
                        ));
                        continue;
                    };
                    change.running.insert(app.clone(), None);
                    operations.push(DeploymentOperation {
                        app: app.clone(),
                        kind: OperationKind::Undeploy,
                        version: Some(running.clone()),
                        digest: None,
                    });
                }
            }
        }

        // Property values set as part of the deployment.
        let mut properties = Vec::new();
        for (app, patch) in &request.config {
            let Some(record) = apps.get(app) else {
                problems.push(problem(
                    app,
                    ProblemCode::UnknownApp,
                    format!(
                        "{app} is not an app of this environment, so its properties cannot be \
                         set; publish or import it first, or remove it from `config`"
                    ),
                ));
                continue;
            };
            self.check_patch(app, patch).await?;
            let mut values = self.store().properties(app).await?;
            for (key, value) in patch {
                match value {
                    Some(value) => values.insert(key.clone(), value.clone()),
                    None => values.remove(key),
                };
            }
            let changes: Vec<PropertyChange> =
                patch.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            properties.push((app.clone(), changes));
            let running_after = match change.running.get(app) {
                Some(version) => version.clone(),
                None => record.running_version.clone(),
            };
            if running_after.is_some() {
                change.values.insert(app.clone(), values);
            }
            if !change.running.contains_key(app)
                && let Some(running) = &record.running_version
            {
                // Reconfigured in the same generation as the others.
                operations.push(DeploymentOperation {
                    app: app.clone(),
                    kind: OperationKind::Config,
                    version: Some(running.clone()),
                    digest: record.running_digest.clone(),
                });
            }
        }

        // Every app as it would be after the deployment.
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        for (name, record) in &apps {
            let changed = change.touches(name);
            let version = match change.running.get(name) {
                Some(version) => version.clone(),
                None => record.running_version.clone(),
            };
            let manifest = match (&version, manifests.remove(name)) {
                (Some(_), Some(manifest)) => Some(manifest),
                (Some(version), None) => {
                    let stored = self.store().version(name, version).await?;
                    match stored {
                        Some(v) => Some(parse_stored(name, version, &v.manifest_toml)?),
                        None => None,
                    }
                }
                (None, _) => None,
            };
            targets.insert(
                name.clone(),
                Target {
                    version,
                    manifest,
                    changed,
                },
            );
        }

        // Required properties of every app switched or reconfigured.
        for (name, target) in &targets {
            let (Some(version), Some(manifest), true) =
                (&target.version, &target.manifest, target.changed)
            else {
                continue;
            };
            let values = match change.values.get(name) {
                Some(values) => values.clone(),
                None => self.store().properties(name).await?,
            };
            let missing: Vec<&str> = manifest
                .properties
                .iter()
                .filter(|(key, p)| p.required && p.default.is_none() && !values.contains_key(*key))
                .map(|(key, _)| key.as_str())
                .collect();
            for key in missing {
                problems.push(problem(
                    name,
                    ProblemCode::MissingProperty,
                    format!(
                        "{name} {version} needs property `{key}` (required, no default): set it \
                         in the plan or with `runway app config {name} {key}=…`"
                    ),
                ));
            }
        }

        // Dependencies, as they stand after the deployment.
        for (name, target) in &targets {
            let (Some(version), Some(manifest)) = (&target.version, &target.manifest) else {
                continue;
            };
            for (dependency, range) in &manifest.dependencies {
                let dependency = dependency.as_str();
                let provider = targets.get(dependency);
                let provided = provider.and_then(|t| t.version.as_deref());
                let satisfied = provided
                    .and_then(|v| Version::parse(v).ok())
                    .is_some_and(|v| range.matches(&v));
                if satisfied {
                    continue;
                }
                let provider_changed = provider.is_some_and(|t| t.changed);
                let found = match provided {
                    Some(v) => format!("{dependency} {v} would run"),
                    None => format!("{dependency} would not be deployed"),
                };
                if target.changed {
                    problems.push(problem(
                        name,
                        ProblemCode::UnmetDependency,
                        format!(
                            "{name} {version} depends on {dependency} {range}, but {found}: \
                             deploy a matching {dependency} version in the same deployment \
                             (or first)"
                        ),
                    ));
                } else if provider_changed {
                    problems.push(problem(
                        dependency,
                        ProblemCode::BreaksDependent,
                        format!(
                            "{name} {version} stays deployed and depends on {dependency} \
                             {range}, but {found}: keep a matching {dependency}, or change or \
                             undeploy {name} in the same deployment"
                        ),
                    ));
                }
            }
        }

        if !problems.is_empty() {
            return Ok(Checked::Problems(problems));
        }
        Ok(Checked::Ready(Job {
            operations,
            change,
            properties,
            on_failure: if request.disable_failed_frontends {
                OnStageFailure::DisableFrontend
            } else {
                OnStageFailure::Fail
            },
        }))
    }

    /// The same checks as `PATCH /apps/{app}/config`: every key declared by
    /// a published version of `app`, every value of its type, no NUL.
    async fn check_patch(
        &self,
        app: &str,
        patch: &BTreeMap<String, Option<String>>,
    ) -> ControllerResult<()> {
        let mut published = Vec::new();
        for version in self.store().versions(app).await? {
            published.push(parse_stored(app, &version.version, &version.manifest_toml)?);
        }
        for (key, value) in patch {
            let field = format!("config.{app}.{key}");
            if key.contains('\0') || value.as_deref().is_some_and(|v| v.contains('\0')) {
                return Err(ControllerError::invalid(
                    "invalid_property",
                    format!(
                        "{field} contains a NUL byte (\\u0000); property names and values are \
                         text without NUL"
                    ),
                )
                .with_detail("field", serde_json::json!(field)));
            }
            let Some(property) = published.iter().find_map(|m| m.properties.get(key)) else {
                return Err(ControllerError::invalid(
                    "unknown_property",
                    format!(
                        "{field}: app {app} declares no property '{key}' in any published \
                         version; `runway app config {app}` lists its properties"
                    ),
                )
                .with_detail("field", serde_json::json!(field)));
            };
            if let Some(value) = value {
                property.kind.check(value).map_err(|problem| {
                    ControllerError::invalid(
                        "invalid_property",
                        format!("{field} = {value:?}: {problem}"),
                    )
                    .with_detail("field", serde_json::json!(field))
                })?;
            }
        }
        Ok(())
    }
}

const EXPIRED: &str = "expired: not committed within the time a prepared deployment waits; \
                       nothing was switched";

fn problem(app: &str, code: ProblemCode, message: String) -> DeploymentProblem {
    DeploymentProblem {
        app: app.to_string(),
        code,
        message,
    }
}

/// `409 deployment_conflict` with every problem in `details.problems`.
fn conflict(problems: Vec<DeploymentProblem>) -> ControllerError {
    let summary: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    ControllerError::conflict_with(
        "deployment_conflict",
        format!(
            "the deployment cannot run, nothing was changed: {}",
            summary.join("; ")
        ),
    )
    .with_details(serde_json::json!({ "problems": problems }))
}

/// `409 not_prepared`.
fn not_prepared(id: i64, why: &str) -> ControllerError {
    ControllerError::conflict_with(
        "not_prepared",
        format!("deployment {id} is not prepared: {why}"),
    )
    .with_details(serde_json::json!({ "id": id }))
}

fn parse_stored(app: &str, version: &str, manifest_toml: &str) -> ControllerResult<Manifest> {
    Manifest::parse(manifest_toml, "runway.toml").map_err(|e| {
        ControllerError::internal(format!(
            "the stored manifest of {app} {version} does not parse: {e}"
        ))
    })
}

/// The checks that need no catalog: 1 to 64 operations, one per app, valid
/// names and versions. A failure is a 400 naming the field.
fn check_shape(request: &DeploymentRequest) -> ControllerResult<()> {
    let invalid = |field: String, message: String| {
        ControllerError::invalid("invalid_request", message)
            .with_detail("field", serde_json::json!(field))
    };
    let n = request.operations.len();
    if n == 0 || n > MAX_DEPLOYMENT_OPERATIONS {
        return Err(invalid(
            "operations".into(),
            format!(
                "operations: {n} given; a deployment has 1 to {MAX_DEPLOYMENT_OPERATIONS} \
                 operations, at most one per app"
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, operation) in request.operations.iter().enumerate() {
        let app = operation.app();
        if let Err(e) = AppName::parse(app) {
            return Err(invalid(
                format!("operations[{i}].app"),
                format!("operations[{i}].app {app:?}: {e}"),
            ));
        }
        if !seen.insert(app) {
            return Err(invalid(
                format!("operations[{i}].app"),
                format!(
                    "operations[{i}]: {app} has more than one operation; a deployment has at \
                     most one per app"
                ),
            ));
        }
        if let OperationRequest::Deploy { version, .. } = operation
            && let Err(e) = Version::parse(version)
        {
            return Err(invalid(
                format!("operations[{i}].version"),
                format!("operations[{i}].version {version:?}: {e}; expected semver like 1.2.3"),
            ));
        }
    }
    for app in request.config.keys() {
        if let Err(e) = AppName::parse(app) {
            return Err(invalid(
                format!("config.{app}"),
                format!("config: app name {app:?}: {e}"),
            ));
        }
    }
    Ok(())
}
