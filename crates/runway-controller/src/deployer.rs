//! The deployment controller: publish (validate, compile once, store), and
//! deployments (build the next routing table, stage it on every front-end,
//! commit it, record it).
//!
//! A deployment is a two-phase commit whose decision is the catalog:
//!
//! 1. **stage** the new table on every target front-end (in-process ones, and
//!    in a farm every registered front-end that is enabled and online);
//! 2. **record** the new running versions and generation in one transaction —
//!    from here on the deployment has happened;
//! 3. **commit** on every staged front-end (an atomic switch each).
//!
//! A failure before 2 aborts the staged tables: the catalog and what is served
//! stay exactly as they were. A front-end that misses 3 (it died, or the
//! network did) is marked behind and is not ready until it has caught up on
//! its own (see `fleet`), so no ready front-end serves an older generation.
//! A controller that stops during 1 leaves a `running` deployment, which the
//! next start marks failed (nothing was switched); one that stops after 2
//! leaves front-ends behind, which catch up by themselves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use runway_api::fleet::{AppAssignment, FrontendProgress, FrontendProgressState, RoutingTable};
use runway_api::fleet::{FrontendLink, StageError};
use runway_api::v1::{
    Deployment, DeploymentOperation, DeploymentStatus, Limits, OperationKind, PropertySource,
    PropertyView, PublishResult,
};
use runway_manifest::{AppName, Digest, Manifest, Package, Version};
use runway_runtime::ComponentError;
use runway_store::{
    ArtifactRecord, BeginDeployment, BlobKind, DeploymentRecord, InsertVersion, NewVersion, now_ms,
    plain_bytes,
};

use crate::Controller;
use crate::{ControllerError, ControllerResult};

/// What a deployment changes relative to the committed state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Change {
    /// Apps switched: `Some(version)` runs that version, `None` undeploys.
    pub(crate) running: BTreeMap<String, Option<String>>,
    /// Apps run with these environment property values (instead of the
    /// stored ones).
    pub(crate) values: BTreeMap<String, BTreeMap<String, String>>,
    /// Apps moved to another deployment zone (app → zone).
    pub(crate) zones: BTreeMap<String, String>,
    /// Environment settings changed with it (`None` unsets): the hostname,
    /// which every staged table carries as its base URL.
    pub(crate) settings: BTreeMap<String, Option<String>>,
}

impl Change {
    /// Re-apply the committed state (startup, recovery, catch-up).
    fn nothing() -> Change {
        Change::default()
    }

    /// Whether `app` is switched or reconfigured by this change.
    pub(crate) fn touches(&self, app: &str) -> bool {
        self.running.contains_key(app)
            || self.values.contains_key(app)
            || self.zones.contains_key(app)
    }
}

/// One deployment to run: what it records and what it changes.
pub(crate) struct Job {
    /// Every app it switches, in request order (the first describes it).
    pub(crate) operations: Vec<DeploymentOperation>,
    pub(crate) change: Change,
    /// Property changes written in the transaction that records it.
    pub(crate) properties: Vec<(String, Vec<runway_store::PropertyChange>)>,
    pub(crate) on_failure: OnStageFailure,
}

impl Job {
    /// The running versions it records (`None`: undeployed).
    fn running(&self) -> Vec<(String, Option<String>)> {
        self.change
            .running
            .iter()
            .map(|(app, version)| (app.clone(), version.clone()))
            .collect()
    }
}

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn scopeguard<F: FnMut()>(f: F) -> OnDrop<F> {
    OnDrop(f)
}

/// What a deployment records when it is decided.
struct Record<'a> {
    id: i64,
    running: &'a [(String, Option<String>)],
    /// Property changes, per app.
    properties: &'a [(String, Vec<runway_store::PropertyChange>)],
}

/// What a deployment does when a front-end fails to stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnStageFailure {
    /// Nothing switches anywhere.
    Fail,
    /// That front-end is disabled; the others switch.
    DisableFrontend,
}

/// A deployment that passed: times of its two phases.
pub(crate) struct Rollout {
    generation: i64,
    stage_ms: u64,
    commit_ms: u64,
}

/// A table staged on the deployment's targets, not switched anywhere yet.
pub(crate) struct Staged {
    generation: i64,
    /// Front-ends that staged it.
    ready: Vec<Arc<dyn FrontendLink>>,
    /// Front-ends that could not be reached: behind once it is recorded.
    down: Vec<String>,
    /// Front-ends that failed to stage and are disabled once it is recorded
    /// (`disable_failed_frontends`).
    disabled: Vec<(Arc<dyn FrontendLink>, String)>,
    stage_ms: u64,
    /// Apps it moves between zones, and the zones whose table it changes.
    zones: runway_store::ZoneChanges,
}

impl Staged {
    pub(crate) fn generation(&self) -> i64 {
        self.generation
    }

    /// Drops the staged table everywhere: nothing was switched.
    pub(crate) async fn abort(&self) {
        for frontend in &self.ready {
            frontend.abort(self.generation).await;
        }
    }
}

impl Controller {
    /// Publishes a package: validates it, compiles its component (unless an
    /// artifact for this component and engine exists), stores both, records
    /// the version, and deploys it when asked. Returns whether the version
    /// is new.
    pub async fn publish(
        &self,
        bytes: Bytes,
        deploy: bool,
    ) -> ControllerResult<(PublishResult, bool)> {
        self.publish_upload(Upload::Bytes(bytes), deploy, None)
            .await
    }

    /// [`Controller::publish`] of an upload received into a temporary file
    /// next to `packages/`: verified from disk, then renamed into place.
    pub async fn publish_file(
        &self,
        file: tempfile::TempPath,
        deploy: bool,
    ) -> ControllerResult<(PublishResult, bool)> {
        self.publish_upload(Upload::File(file), deploy, None).await
    }

    /// Imports a package published in another environment (`PUT
    /// /packages/{digest}`): like a publish without deploying, refused with
    /// `400 digest_mismatch` (nothing stored) unless the package's digest is
    /// `expected`.
    pub async fn import_file(
        &self,
        file: tempfile::TempPath,
        expected: Digest,
    ) -> ControllerResult<(PublishResult, bool)> {
        self.publish_upload(Upload::File(file), false, Some(expected))
            .await
    }

    async fn publish_upload(
        &self,
        upload: Upload,
        deploy: bool,
        expected: Option<Digest>,
    ) -> ControllerResult<(PublishResult, bool)> {
        let started = Instant::now();
        let max = self.config().max_package_bytes;
        let decoded = match &upload {
            Upload::Bytes(bytes) => {
                let bytes = bytes.clone();
                tokio::task::spawn_blocking(move || Package::from_bytes(&bytes, max)).await
            }
            Upload::File(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || Package::from_file(&path, max)).await
            }
        };
        let package = decoded
            .map_err(ControllerError::internal)?
            .map_err(|e| ControllerError::invalid("invalid_package", e.to_string()))?;
        if let Some(expected) = expected
            && package.digest != expected
        {
            // Before anything is stored: the upload is a temporary file,
            // deleted when dropped.
            return Err(ControllerError::invalid(
                "digest_mismatch",
                format!(
                    "the uploaded package has digest {}, not {expected} as the URL says; it was \
                     changed in transit or is another package: nothing was stored, send the \
                     bytes of {expected} again",
                    package.digest
                ),
            )
            .with_details(serde_json::json!({
                "expected": expected.to_string(),
                "actual": package.digest.to_string(),
            })));
        }
        let size_bytes = match &upload {
            Upload::Bytes(bytes) => bytes.len() as u64,
            Upload::File(path) => tokio::fs::metadata(path)
                .await
                .map_err(ControllerError::internal)?
                .len(),
        };
        let app = package.manifest.app.name.to_string();
        let version = package.manifest.app.version.to_string();

        // Also finds a version equal under semver precedence (`1.0.0+a` for
        // `1.0.0+b`): the same version, so refused like any republish.
        if let Some(existing) = self.store().version(&app, &version).await? {
            if existing.version != version {
                return Err(same_version_conflict(
                    &app,
                    &version,
                    &existing.version,
                    &existing.digest,
                    &package.digest,
                ));
            }
            if existing.digest != package.digest.to_string() {
                return Err(version_conflict(
                    &app,
                    &version,
                    &existing.digest,
                    &package.digest,
                ));
            }
        }
        let validate_ms = started.elapsed().as_millis() as u64;
        // Before the version is recorded: its secrets are never stored or
        // shown in plaintext, whatever later versions declare.
        self.mark_secrets(
            &app,
            &package.manifest,
            self.store().version(&app, &version).await?.is_none(),
        )
        .await?;

        let (artifact_digest, compiled, compile_ms) = self
            .ensure_artifact(&package.component, package.component_digest)
            .await?;

        if !self.blobs().contains(BlobKind::Package, &package.digest) {
            match upload {
                Upload::Bytes(bytes) => self
                    .blobs()
                    .write(BlobKind::Package, &package.digest, bytes.to_vec())
                    .await
                    .map_err(ControllerError::internal)?,
                Upload::File(file) => {
                    // Received in `packages/` itself: a rename puts it in place.
                    let to = self.blobs().path(BlobKind::Package, &package.digest);
                    tokio::task::spawn_blocking(move || file.persist(&to))
                        .await
                        .map_err(ControllerError::internal)?
                        .map_err(ControllerError::internal)?;
                }
            }
        }
        let outcome = self
            .store()
            .insert_version(&NewVersion {
                app: app.clone(),
                version: version.clone(),
                digest: package.digest.to_string(),
                component_digest: package.component_digest.to_string(),
                description: package.manifest.app.description.clone(),
                manifest_toml: package.manifest_toml.clone(),
                size_bytes: size_bytes as i64,
            })
            .await?;
        let created = match outcome {
            InsertVersion::Created => true,
            InsertVersion::Unchanged => false,
            InsertVersion::SameVersion {
                existing_version,
                existing_digest,
            } => {
                return Err(same_version_conflict(
                    &app,
                    &version,
                    &existing_version,
                    &existing_digest,
                    &package.digest,
                ));
            }
            InsertVersion::Conflict { existing_digest } => {
                return Err(version_conflict(
                    &app,
                    &version,
                    &existing_digest,
                    &package.digest,
                ));
            }
        };
        tracing::info!(%app, %version, digest = %package.digest, created, compiled, "published");

        let deployment = if deploy {
            Some(match self.deploy(&app, &version).await {
                Ok(deployment) => deployment,
                // The version is published either way; the failed deployment
                // is reported, not hidden behind an error status.
                Err(e) => failed_deployment(&app, &version, &e),
            })
        } else {
            None
        };
        let result = PublishResult {
            app,
            version,
            digest: package.digest.to_string(),
            component_digest: package.component_digest.to_string(),
            artifact_digest: artifact_digest.to_string(),
            created,
            compiled,
            validate_ms,
            compile_ms,
            deployment,
        };
        Ok((result, created))
    }

    /// Returns the artifact for a component under this engine, compiling it
    /// only if none exists yet. (digest, compiled now?, compile time)
    async fn ensure_artifact(
        &self,
        component: &[u8],
        component_digest: Digest,
    ) -> ControllerResult<(Digest, bool, u64)> {
        let engine = self.runtime().engine_fingerprint().to_string();
        let key = component_digest.to_string();
        if let Some(record) = self.store().artifact(&key, &engine).await? {
            let digest =
                Digest::parse(&record.artifact_digest).map_err(ControllerError::internal)?;
            if self.artifact_is_intact(&digest).await {
                return Ok((digest, false, 0));
            }
        }
        let _slot = self
            .inner
            .compile_slots
            .acquire()
            .await
            .map_err(ControllerError::internal)?;
        let started = Instant::now();
        let runtime = self.runtime().clone();
        let component = component.to_vec();
        let (artifact, _report) = tokio::task::spawn_blocking(move || runtime.compile(&component))
            .await
            .map_err(ControllerError::internal)?
            .map_err(component_error)?;
        let compile_ms = started.elapsed().as_millis() as u64;
        let digest = Digest::of(&artifact);
        self.blobs()
            .write(BlobKind::Artifact, &digest, artifact.clone())
            .await
            .map_err(ControllerError::internal)?;
        self.store()
            .insert_artifact(&ArtifactRecord {
                component_digest: key,
                engine,
                artifact_digest: digest.to_string(),
                size_bytes: artifact.len() as i64,
                compile_ms: compile_ms as i64,
                created_at_ms: now_ms(),
            })
            .await?;
        Ok((digest, true, compile_ms))
    }

    /// Whether `artifacts/<digest>.cwasm` exists and hashes to `digest`.
    async fn artifact_is_intact(&self, digest: &Digest) -> bool {
        self.blobs()
            .read_verified(BlobKind::Artifact, digest, plain_bytes)
            .await
            .is_ok()
    }

    /// The stored package of a version, decoded (which verifies every entry)
    /// and checked against the digest it was published with.
    async fn stored_package(&self, digest: &Digest) -> ControllerResult<Package> {
        let max = self.config().max_package_bytes;
        self.blobs()
            .read_verified(BlobKind::Package, digest, move |bytes| {
                let package = Package::from_bytes(&bytes, max).map_err(|e| e.to_string())?;
                Ok((package.digest, package))
            })
            .await
            .map_err(|e| {
                ControllerError::damaged(
                    "package_unusable",
                    format!("the stored package {e}; publish this version again"),
                )
            })
    }

    /// Switches `app` to `version` on every front-end: the rollback path too.
    pub async fn deploy(&self, app: &str, version: &str) -> ControllerResult<Deployment> {
        self.deploy_with(app, version, false).await
    }

    /// [`Controller::deploy`]; with `disable_failed`, front-ends that fail to
    /// stage are disabled and the deployment goes on without them.
    pub async fn deploy_with(
        &self,
        app: &str,
        version: &str,
        disable_failed: bool,
    ) -> ControllerResult<Deployment> {
        let on_failure = if disable_failed {
            OnStageFailure::DisableFrontend
        } else {
            OnStageFailure::Fail
        };
        let lock = self.inner.deploy_lock.lock().await;
        let digest = match self.store().version(app, version).await? {
            Some(record) => {
                if let Ok(manifest) = Manifest::parse(&record.manifest_toml, "runway.toml") {
                    self.mark_secrets(app, &manifest, true).await?;
                }
                Some(record.digest)
            }
            None => None,
        };
        let job = Job {
            operations: vec![DeploymentOperation {
                app: app.to_string(),
                kind: OperationKind::Deploy,
                version: Some(version.to_string()),
                digest,
            }],
            change: Change {
                running: BTreeMap::from([(app.to_string(), Some(version.to_string()))]),
                ..Change::default()
            },
            properties: Vec::new(),
            on_failure,
        };
        self.run_deployment(&lock, job).await
    }

    /// Sets (or unsets, with `None`) environment values of an app's
    /// properties; a running app is redeployed with them, atomically.
    pub async fn set_config(
        &self,
        app: &str,
        patch: &BTreeMap<String, Option<String>>,
    ) -> ControllerResult<Vec<PropertyView>> {
        // Read and change under the deployment lock: a deployment or another
        // patch in between would otherwise be recorded over.
        let lock = self.inner.deploy_lock.lock().await;
        let (record, manifest, mut values) = self.app_config(app).await?;
        // A key may be declared by any published version: an operator sets
        // what the next version requires before deploying it.
        let mut published = Vec::new();
        for version in self.store().versions(app).await? {
            published.push(
                Manifest::parse(&version.manifest_toml, "runway.toml")
                    .map_err(ControllerError::internal)?,
            );
        }
        for (key, value) in patch {
            let declared_by = std::iter::once(&manifest)
                .chain(published.iter())
                .find_map(|m| m.properties.get(key));
            let Some(property) = declared_by else {
                let mut declared: Vec<&str> = published
                    .iter()
                    .flat_map(|m| m.properties.keys().map(String::as_str))
                    .collect();
                declared.sort_unstable();
                declared.dedup();
                return Err(ControllerError::invalid(
                    "unknown_property",
                    format!(
                        "app {app} declares no property '{key}' in any published version (declared: {}); add it under [properties.{key}] in runway.toml",
                        if declared.is_empty() {
                            "none".to_string()
                        } else {
                            declared.join(", ")
                        }
                    ),
                ));
            };
            if let Some(value) = value {
                property.kind.check(value).map_err(|problem| {
                    ControllerError::invalid(
                        "invalid_property",
                        format!("property {key} of app {app} = {value:?}: {problem}"),
                    )
                })?;
            }
        }
        for (key, value) in patch {
            match value {
                Some(value) => values.insert(key.clone(), value.clone()),
                None => values.remove(key),
            };
        }
        let changes: Vec<(String, Option<String>)> =
            patch.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match record.running_version {
            Some(version) => {
                let job = Job {
                    operations: vec![DeploymentOperation {
                        app: app.to_string(),
                        kind: OperationKind::Config,
                        version: Some(version),
                        digest: record.running_digest.clone(),
                    }],
                    change: Change {
                        values: BTreeMap::from([(app.to_string(), values.clone())]),
                        ..Change::default()
                    },
                    properties: vec![(app.to_string(), changes)],
                    on_failure: OnStageFailure::Fail,
                };
                self.run_deployment(&lock, job).await?;
            }
            None => {
                // Not deployed: nothing is staged, but a prepared deployment
                // staged this app's values and would record others.
                self.refuse_while_prepared().await?;
                self.store().set_properties(app, &changes).await?
            }
        }
        self.property_views(app, &manifest, &values).await
    }

    /// [`property_views`] of `app`, with its secret marks.
    pub async fn property_views(
        &self,
        app: &str,
        manifest: &Manifest,
        values: &BTreeMap<String, String>,
    ) -> ControllerResult<Vec<PropertyView>> {
        let marked = self.store().secret_marks(app).await?;
        Ok(property_views(manifest, values, &marked))
    }

    /// Marks the properties `manifest` declares secret: they stay secret
    /// (masked and encrypted) even if a later version declares them not
    /// secret. With `overrule_unmark`, also those an admin un-marked.
    pub(crate) async fn mark_secrets(
        &self,
        app: &str,
        manifest: &Manifest,
        overrule_unmark: bool,
    ) -> ControllerResult<()> {
        let keys: Vec<String> = manifest
            .properties
            .iter()
            .filter(|(_, p)| p.secret)
            .map(|(k, _)| k.clone())
            .collect();
        self.store()
            .mark_secret_properties(app, &keys, overrule_unmark)
            .await?;
        Ok(())
    }

    /// Un-marks a property that no version the configuration follows
    /// declares secret any more: its value is shown and stored in plaintext.
    pub async fn unmark_secret(&self, app: &str, key: &str) -> ControllerResult<Vec<PropertyView>> {
        let _lock = self.inner.deploy_lock.lock().await;
        let (record, manifest, _) = self.app_config(app).await?;
        let (_, config_version) = self
            .manifest_for_config(app, record.running_version.as_deref())
            .await?;
        if manifest.properties.get(key).is_some_and(|p| p.secret) {
            return Err(ControllerError::conflict(format!(
                "property '{key}' of {app} is declared secret by {app} {config_version}, \
                 whose configuration applies; publish a version that declares it without \
                 `secret = true` first"
            )));
        }
        if !self.store().secret_marks(app).await?.contains(key) {
            return Err(ControllerError::not_found(format!(
                "property '{key}' of {app} is not marked secret; `runway app config {app}` shows its properties"
            )));
        }
        self.store().unmark_secret_property(app, key).await?;
        tracing::warn!(%app, property = key, "secret property un-marked: its value is stored and shown in plaintext");
        let values = self.store().properties(app).await?;
        self.property_views(app, &manifest, &values).await
    }

    /// At start: marks the secret properties of every published version (a
    /// catalog from before marks existed), keeping admins' un-markings, and
    /// so encrypts any plaintext secret value.
    async fn mark_published_secrets(&self) -> ControllerResult<()> {
        for app in self.store().apps().await? {
            for version in self.store().versions(&app.name).await? {
                match Manifest::parse(&version.manifest_toml, "runway.toml") {
                    Ok(manifest) => self.mark_secrets(&app.name, &manifest, false).await?,
                    Err(e) => {
                        tracing::warn!(app = %app.name, version = %version.version, "stored manifest does not parse: {e}")
                    }
                }
            }
        }
        Ok(())
    }

    /// An app's record, the manifest its configuration follows, and its
    /// environment property values.
    pub async fn app_config(
        &self,
        app: &str,
    ) -> ControllerResult<(runway_store::AppRecord, Manifest, BTreeMap<String, String>)> {
        let record = self
            .store()
            .app(app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        let (manifest, _) = self
            .manifest_for_config(app, record.running_version.as_deref())
            .await?;
        let values = self.store().properties(app).await?;
        Ok((record, manifest, values))
    }

    /// The manifest whose properties an app's configuration follows: the
    /// running version's, or the newest published one's.
    pub async fn manifest_for_config(
        &self,
        app: &str,
        running: Option<&str>,
    ) -> ControllerResult<(Manifest, String)> {
        let record = match running {
            Some(version) => self.store().version(app, version).await?,
            None => self.store().versions(app).await?.into_iter().next(),
        }
        .ok_or_else(|| app_not_found(app))?;
        let manifest = Manifest::parse(&record.manifest_toml, "runway.toml")
            .map_err(ControllerError::internal)?;
        Ok((manifest, record.version))
    }

    /// Runs one deployment to its end; the caller holds the environment's
    /// deployment lock (`lock`). Its property changes are written in the
    /// same transaction that records it.
    pub(crate) async fn run_deployment(
        &self,
        lock: &tokio::sync::MutexGuard<'_, ()>,
        job: Job,
    ) -> ControllerResult<Deployment> {
        let (id, staged, mut progress) = self.begin_and_stage(lock, &job).await?;
        self.switch_staged(lock, id, &job, staged, &mut progress)
            .await
    }

    /// Records the start of `job` and stages its table on every target.
    /// On failure the deployment is recorded failed and nothing is staged.
    pub(crate) async fn begin_and_stage(
        &self,
        _lock: &tokio::sync::MutexGuard<'_, ()>,
        job: &Job,
    ) -> ControllerResult<(i64, Staged, Vec<FrontendProgress>)> {
        // Every zone an app of it will run in needs a front-end: refused
        // before anything is recorded.
        let plan = self.zone_plan(&job.change).await?;
        self.refuse_zones_without_frontends(&plan, &job.change)
            .await?;
        let id = match self.store().begin_deployment_of(&job.operations).await? {
            BeginDeployment::Started(id) => id,
            BeginDeployment::Busy { id, status } => return Err(deployment_in_progress(id, status)),
        };
        let mut progress = Vec::new();
        let staged = async {
            let mut table = self.build_table(job.change.clone()).await?;
            table.generation = self.store().claim_generation(id).await?;
            self.stage(&table, &plan, job.on_failure, &mut progress)
                .await
        }
        .await;
        match staged {
            Ok(staged) => Ok((id, staged, progress)),
            Err(e) => Err(self.record_failure(id, &job.operations, e, &progress).await),
        }
    }

    /// Records `job` (deployment `id`, staged as `staged`) and switches every
    /// front-end that staged it. On failure nothing switched and the
    /// deployment is recorded failed.
    pub(crate) async fn switch_staged(
        &self,
        _lock: &tokio::sync::MutexGuard<'_, ()>,
        id: i64,
        job: &Job,
        staged: Staged,
        progress: &mut [FrontendProgress],
    ) -> ControllerResult<Deployment> {
        let running = job.running();
        let record = Record {
            id,
            running: &running,
            properties: &job.properties,
        };
        match self.switch(staged, record, progress).await {
            Ok(rollout) => {
                self.metrics().deployment(true);
                self.record_progress(id, progress).await;
                let first = &job.operations[0];
                tracing::info!(
                    id,
                    app = %first.app,
                    apps = job.operations.len(),
                    generation = rollout.generation,
                    "deployment committed"
                );
                for operation in &job.operations {
                    self.failed_apps().remove(&operation.app);
                }
                let record = self.deployment_record(id).await?;
                Ok(deployment_view(record, Some(&rollout)))
            }
            Err(e) => Err(self.record_failure(id, &job.operations, e, progress).await),
        }
    }

    /// Records that deployment `id` failed with `e` (and each front-end's
    /// part); returns the error to answer.
    async fn record_failure(
        &self,
        id: i64,
        operations: &[DeploymentOperation],
        e: ControllerError,
        progress: &[FrontendProgress],
    ) -> ControllerError {
        self.metrics().deployment(false);
        self.record_progress(id, progress).await;
        // The record is shown to API callers: the public message only,
        // never an internal cause (database text, host paths).
        if let Err(failed) = self.store().fail_deployment(id, e.public_message()).await {
            return failed.into();
        }
        let first = &operations[0];
        tracing::warn!(id, app = %first.app, apps = operations.len(), "deployment failed: {e}");
        if progress.is_empty() {
            e
        } else {
            e.with_detail("frontends", serde_json::json!(progress))
        }
    }

    pub(crate) async fn record_progress(&self, id: i64, progress: &[FrontendProgress]) {
        if progress.is_empty() {
            return;
        }
        if let Err(e) = self.store().set_deployment_progress(id, progress).await {
            tracing::warn!("deployment {id}: failed to record each front-end's part: {e}");
        }
    }

    pub(crate) async fn deployment_record(&self, id: i64) -> ControllerResult<DeploymentRecord> {
        self.store().deployment(id).await?.ok_or_else(|| {
            ControllerError::internal(format!("deployment {id} vanished from the catalog"))
        })
    }

    /// At startup: marks deployments the previous process left unfinished as
    /// failed (their decision was never recorded, so nothing switched), and
    /// re-applies the committed state to the in-process front-ends, so they
    /// serve exactly what the catalog says before they are ready. Registered
    /// front-ends catch up by themselves.
    pub async fn restore(&self) -> ControllerResult<()> {
        let _lock = self.inner.deploy_lock.lock().await;
        let failed = self
            .store()
            .fail_unfinished_deployments(
                "the controller stopped during the deployment, before it was recorded; \
                 nothing was switched: deploy again",
            )
            .await?;
        if failed > 0 {
            tracing::warn!(failed, "marked interrupted deployments as failed");
        }
        self.abort_leftover_prepared().await?;
        self.mark_published_secrets().await?;
        // Every running app's artifact is checked (and recompiled from its
        // stored package if missing or corrupt); an app that cannot be
        // loaded is marked failed and the others serve.
        let table = self.build_table_with(Change::nothing(), true).await?;
        // In-process front-ends are in zone global: they load its apps only.
        let plan = self.zone_plan(&Change::nothing()).await?;
        let mut table = plan.table_for(&table, runway_store::GLOBAL_ZONE);
        table.generation = self
            .store()
            .zone_generation(runway_store::GLOBAL_ZONE)
            .await?;
        for frontend in &self.inner.fleet.local {
            // Each failed app is dropped from the table and the rest staged
            // again: at most one more attempt per app.
            loop {
                match frontend.stage(&table).await {
                    Ok(_) => break,
                    Err(e) => {
                        let Some(app) = stage_error_app(&e)
                            .filter(|app| table.apps.iter().any(|a| a.app == *app))
                        else {
                            return Err(stage_error(e));
                        };
                        let app = app.to_string();
                        tracing::error!(%app, "cannot be loaded, the other apps serve: {e}");
                        table.apps.retain(|a| a.app != app);
                        table.failed.insert(app.clone(), e.to_string());
                        self.failed_apps().insert(app, e.to_string());
                    }
                }
            }
        }
        for frontend in &self.inner.fleet.local {
            frontend
                .commit(table.generation)
                .await
                .map_err(stage_error)?;
        }
        Ok(())
    }

    /// The committed routing table of zone `zone`, for a front-end of it
    /// catching up. Refused while a deployment runs: its table could mix
    /// recorded and unrecorded state.
    pub async fn committed_table(&self, zone: &str) -> ControllerResult<RoutingTable> {
        let Ok(_lock) = self.inner.deploy_lock.try_lock() else {
            return Err(ControllerError::busy(
                "deployment_in_progress",
                "a deployment is in progress; ask again after it ends",
            ));
        };
        self.build_committed_table(zone).await
    }

    async fn build_committed_table(&self, zone: &str) -> ControllerResult<RoutingTable> {
        let table = self.build_table(Change::nothing()).await?;
        let plan = self.zone_plan(&Change::nothing()).await?;
        let mut table = plan.table_for(&table, zone);
        // The zone's committed generation itself, not the next one.
        table.generation = self.store().zone_generation(zone).await?;
        Ok(table)
    }

    /// Stages `table` on every target. Fills `progress` with each registered
    /// front-end's part. If staging fails (and the failed front-ends are not
    /// to be disabled), every staged table is aborted: nothing was switched.
    async fn stage(
        &self,
        table: &RoutingTable,
        plan: &crate::zones::ZonePlan,
        on_failure: OnStageFailure,
        progress: &mut Vec<FrontendProgress>,
    ) -> ControllerResult<Staged> {
        let generation = table.generation;
        // Only the front-ends of the zones whose table changes, each with its
        // zone's apps.
        let (zoned, skipped) = self.deployment_targets(Some(&plan.touched)).await?;
        let tables: BTreeMap<&str, RoutingTable> = plan
            .touched
            .iter()
            .map(|zone| (zone.as_str(), plan.table_for(table, zone)))
            .collect();
        let remote = |name: &str| !self.inner.fleet.local.iter().any(|l| l.name() == name);
        progress.extend(skipped);
        let started = Instant::now();
        let staged = futures::future::join_all(
            zoned
                .iter()
                .map(|(f, zone)| f.stage(&tables[zone.as_str()])),
        )
        .await;
        let targets: Vec<Arc<dyn FrontendLink>> = zoned.into_iter().map(|(f, _)| f).collect();
        let mut ready = Vec::new();
        let mut down = Vec::new();
        let mut failures = Vec::new();
        for (target, result) in targets.iter().zip(staged) {
            match result {
                Ok(report) => {
                    if remote(target.name()) {
                        progress.push(FrontendProgress {
                            frontend: target.name().to_string(),
                            state: FrontendProgressState::Staged,
                            fetched_bytes: report.fetched_bytes,
                            elapsed_ms: report.elapsed_ms,
                            error: None,
                        });
                    }
                    ready.push(target.clone());
                }
                // Down: it serves nothing now, and catches up before it is
                // ready again. The deployment goes on without it.
                Err(error @ StageError::Unreachable { .. }) if remote(target.name()) => {
                    down.push(target.name().to_string());
                    progress.push(FrontendProgress {
                        frontend: target.name().to_string(),
                        state: FrontendProgressState::Behind,
                        fetched_bytes: 0,
                        elapsed_ms: 0,
                        error: Some(format!("{error}; it catches up before it serves again")),
                    });
                }
                Err(error) => failures.push((target.clone(), error)),
            }
        }
        let stage_ms = started.elapsed().as_millis() as u64;
        let disable = on_failure == OnStageFailure::DisableFrontend
            && failures.iter().all(|(f, _)| remote(f.name()))
            && (!ready.is_empty() || targets.is_empty());
        for (frontend, error) in &failures {
            frontend.abort(generation).await;
            progress.push(FrontendProgress {
                frontend: frontend.name().to_string(),
                state: if disable {
                    FrontendProgressState::Disabled
                } else {
                    FrontendProgressState::Failed
                },
                fetched_bytes: 0,
                elapsed_ms: stage_ms,
                error: Some(error.to_string()),
            });
        }
        if !failures.is_empty() && !disable {
            for frontend in &ready {
                frontend.abort(generation).await;
            }
            let errors: Vec<String> = failures.iter().map(|(_, e)| e.to_string()).collect();
            return Err(if errors.len() > 1 {
                ControllerError::rollout(
                    "deployment_failed",
                    format!(
                        "staging failed on {} front-ends, nothing was switched: {}",
                        errors.len(),
                        errors.join("; ")
                    ),
                )
            } else {
                stage_error(failures.swap_remove(0).1)
            });
        }
        Ok(Staged {
            generation,
            ready,
            down,
            disabled: failures
                .into_iter()
                .map(|(f, e)| (f, e.to_string()))
                .collect(),
            stage_ms,
            zones: plan.changes(),
        })
    }

    /// Records the deployment (the decision), then commits on every front-end
    /// that staged it. After the record nothing can fail the deployment: a
    /// front-end that misses its commit is marked behind and catches up;
    /// bookkeeping errors are logged. If the record fails, every staged
    /// table is aborted.
    async fn switch(
        &self,
        staged: Staged,
        record: Record<'_>,
        progress: &mut [FrontendProgress],
    ) -> ControllerResult<Rollout> {
        let Staged {
            generation,
            ready,
            down,
            disabled,
            stage_ms,
            zones,
        } = staged;
        let remote = |name: &str| !self.inner.fleet.local.iter().any(|l| l.name() == name);

        // From the record on, the staged front-ends are switching: they stay
        // ready (their heartbeats may still report the old generation).
        let staged_remote: Vec<String> = ready
            .iter()
            .map(|f| f.name().to_string())
            .filter(|n| remote(n))
            .collect();
        *self.committing() = Some((generation, staged_remote));
        // Whatever happens below, the commit phase ends with this function.
        let _switching = scopeguard(|| *self.committing() = None);
        let recorded = self
            .store()
            .commit_deployment_in_zones(
                record.id,
                generation,
                record.running,
                record.properties,
                &zones,
            )
            .await;
        if let Err(e) = recorded {
            for frontend in &ready {
                frontend.abort(generation).await;
            }
            mark_aborted(progress);
            return Err(e.into());
        }

        // Decided. Switch first, then the bookkeeping, whose errors are only logged.
        let started = Instant::now();
        let committed = futures::future::join_all(ready.iter().map(|f| f.commit(generation))).await;
        let commit_ms = started.elapsed().as_millis() as u64;
        let mut behind = down;
        for (frontend, result) in ready.iter().zip(committed) {
            let name = frontend.name();
            let entry = progress
                .iter_mut()
                .find(|p| p.frontend == name && p.state == FrontendProgressState::Staged);
            match result {
                Ok(()) => {
                    if remote(name)
                        && let Err(e) = self.store().record_frontend_commit(name, generation).await
                    {
                        tracing::warn!(frontend = name, "failed to record its commit: {e}");
                    }
                    if let Some(entry) = entry {
                        entry.state = FrontendProgressState::Committed;
                    }
                }
                Err(error) => {
                    // Recorded, so this front-end is behind: keep it out of the
                    // pool until it has caught up.
                    tracing::warn!(frontend = name, "missed the commit: {error}");
                    if let Some((_, staged)) = self.committing().as_mut() {
                        staged.retain(|s| s != name);
                    }
                    if remote(name) {
                        behind.push(name.to_string());
                    }
                    if let Some(entry) = entry {
                        entry.state = FrontendProgressState::Behind;
                        entry.error = Some(error.to_string());
                    }
                }
            }
        }
        // Skipped front-ends did not get this generation either.
        behind.extend(
            progress
                .iter()
                .filter(|p| p.state == FrontendProgressState::Skipped)
                .map(|p| p.frontend.clone()),
        );
        for name in &behind {
            if let Err(e) = self.store().mark_frontend_behind(name).await {
                tracing::warn!(frontend = %name, "failed to mark it behind: {e}");
            }
        }
        for (frontend, error) in &disabled {
            tracing::warn!(
                frontend = frontend.name(),
                "disabled: staging failed: {error}"
            );
            if let Err(e) = self
                .store()
                .set_frontend_enabled(frontend.name(), false)
                .await
            {
                tracing::error!(frontend = frontend.name(), "failed to disable it: {e}");
            }
        }
        Ok(Rollout {
            generation,
            stage_ms,
            commit_ms,
        })
    }

    fn committing(&self) -> std::sync::MutexGuard<'_, Option<(i64, Vec<String>)>> {
        self.inner
            .committing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a front-end staged the deployment being committed right now
    /// (it counts as ready while it switches).
    pub(crate) fn is_switching(&self, frontend: &str) -> bool {
        self.committing()
            .as_ref()
            .is_some_and(|(_, staged)| staged.iter().any(|s| s == frontend))
    }

    /// The routing table of the next generation: every running app, with
    /// `change` applied.
    async fn build_table(&self, change: Change) -> ControllerResult<RoutingTable> {
        self.build_table_with(change, false).await
    }

    /// [`Controller::build_table`]. Apps that failed to load are left out
    /// (and listed as failed) unless `change` is about them. With `tolerant`
    /// (at start), artifacts are verified and recompiled when needed, and an
    /// app that still cannot be assigned is marked failed instead of failing
    /// the whole table.
    async fn build_table_with(
        &self,
        change: Change,
        tolerant: bool,
    ) -> ControllerResult<RoutingTable> {
        let mut running: BTreeMap<String, String> = self
            .store()
            .apps()
            .await?
            .into_iter()
            .filter_map(|a| a.running_version.map(|v| (a.name, v)))
            .collect();
        for (app, version) in &change.running {
            match version {
                Some(version) => running.insert(app.clone(), version.clone()),
                None => running.remove(app),
            };
        }
        let mut failed = self.failed_apps().clone();
        // Deploying, reconfiguring or undeploying a failed app retries (or
        // forgets) it.
        failed.retain(|app, _| !change.touches(app));
        let mut apps = Vec::with_capacity(running.len());
        for (app, version) in running {
            if failed.contains_key(&app) {
                continue;
            }
            let assignment = async {
                let values = match change.values.get(&app) {
                    Some(values) => values.clone(),
                    None => self.store().properties(&app).await?,
                };
                let verify = tolerant || change.touches(&app);
                self.assignment(&app, &version, &values, verify).await
            }
            .await;
            match assignment {
                Ok(assignment) => apps.push(assignment),
                Err(e) if tolerant => {
                    let reason = e.to_string();
                    tracing::error!(%app, %version, "cannot be loaded, the other apps serve: {reason}");
                    failed.insert(app.clone(), reason.clone());
                    self.failed_apps().insert(app, reason);
                }
                Err(e) => return Err(e),
            }
        }
        failed.retain(|app, _| !apps.iter().any(|a| a.app == *app));
        Ok(RoutingTable {
            generation: self.store().generation().await? + 1,
            environment: self.config().environment.clone(),
            base_url: self.base_url_with(&change).await?,
            apps,
            failed,
        })
    }

    async fn assignment(
        &self,
        app: &str,
        version: &str,
        values: &BTreeMap<String, String>,
        verify: bool,
    ) -> ControllerResult<AppAssignment> {
        let record = self.store().version(app, version).await?.ok_or_else(|| {
            ControllerError::not_found(format!(
                "app {app} has no version {version}; `runway app versions {app}` lists the published ones"
            ))
        })?;
        let manifest = Manifest::parse(&record.manifest_toml, "runway.toml")
            .map_err(ControllerError::internal)?;
        let mut config = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, property) in &manifest.properties {
            match values.get(name).or(property.default.as_ref()) {
                Some(value) => {
                    config.insert(name.clone(), value.clone());
                }
                None if property.required => missing.push(name.clone()),
                None => {}
            }
        }
        if !missing.is_empty() {
            let example = missing
                .iter()
                .map(|m| format!("{m}=…"))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(ControllerError::conflict_with("missing_property",
                format!(
                    "{app} {version} requires properties with no value in this environment: {}; set them with `runway app config {app} {example}`",
                    missing.join(", ")
                ),
            )
            .with_details(serde_json::json!({ "missing": missing })));
        }
        // An artifact compiled by another engine configuration (e.g. after an
        // upgrade) is recompiled from the stored package, once.
        let package_digest = Digest::parse(&record.digest).map_err(ControllerError::internal)?;
        let component_digest =
            Digest::parse(&record.component_digest).map_err(ControllerError::internal)?;
        let engine = self.runtime().engine_fingerprint().to_string();
        // So is one whose file is missing or corrupt (checked when `verify`:
        // at start, and before a front-end fetches it).
        let known = match self
            .store()
            .artifact(&record.component_digest, &engine)
            .await?
        {
            Some(artifact) => {
                let digest =
                    Digest::parse(&artifact.artifact_digest).map_err(ControllerError::internal)?;
                (!verify || self.artifact_is_intact(&digest).await).then_some(digest)
            }
            None => None,
        };
        let artifact_digest = match known {
            Some(digest) => digest.to_string(),
            None => {
                let package = self.stored_package(&package_digest).await?;
                let (digest, compiled, _) = self
                    .ensure_artifact(&package.component, component_digest)
                    .await?;
                if compiled {
                    tracing::warn!(%app, %version, artifact = %digest, "compiled artifact was missing or corrupt: recompiled from the stored package");
                }
                digest.to_string()
            }
        };
        Ok(AppAssignment {
            app: app.to_string(),
            version: version.to_string(),
            package_digest: record.digest,
            artifact_digest,
            config,
            limits: narrow(self.config().limits, &manifest),
            outbound_allow: manifest
                .outbound
                .allow
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
}

/// The environment's bounds narrowed by an app's `[limits]`.
pub fn narrow(bounds: Limits, manifest: &Manifest) -> Limits {
    let limits = &manifest.limits;
    Limits {
        timeout_ms: limits
            .timeout_ms
            .map_or(bounds.timeout_ms, |t| t.min(bounds.timeout_ms)),
        memory_bytes: limits.memory_mib.map_or(bounds.memory_bytes, |m| {
            m.saturating_mul(1 << 20).min(bounds.memory_bytes)
        }),
        max_body_bytes: limits
            .max_body_bytes
            .map_or(bounds.max_body_bytes, |b| b.min(bounds.max_body_bytes)),
        concurrency: match (limits.concurrency, bounds.concurrency) {
            (Some(app), Some(env)) => Some(app.min(env)),
            (app, env) => app.or(env),
        },
    }
}

/// Every declared property with its effective value (secrets never shown:
/// those the manifest declares secret, and those `marked` secret because an
/// earlier version did).
pub fn property_views(
    manifest: &Manifest,
    values: &BTreeMap<String, String>,
    marked: &std::collections::BTreeSet<String>,
) -> Vec<PropertyView> {
    manifest
        .properties
        .iter()
        .map(|(name, property)| {
            let secret = property.secret || marked.contains(name);
            let (value, source) = match (values.get(name), &property.default) {
                (Some(v), _) => (Some(v.clone()), PropertySource::Environment),
                (None, Some(d)) => (Some(d.clone()), PropertySource::Default),
                (None, None) => (None, PropertySource::Unset),
            };
            PropertyView {
                name: name.clone(),
                kind: property.kind.as_str().to_string(),
                required: property.required,
                secret,
                description: property.description.clone(),
                value: if secret { None } else { value },
                source,
            }
        })
        .collect()
}

pub(crate) fn deployment_view(record: DeploymentRecord, rollout: Option<&Rollout>) -> Deployment {
    Deployment {
        id: record.id,
        app: record.app,
        version: record.version,
        kind: record.kind,
        status: record.status,
        operations: record.operations,
        error: record.error,
        generation: record.generation,
        started_at_ms: record.started_at_ms,
        finished_at_ms: record.finished_at_ms,
        expires_at_ms: record.expires_at_ms,
        stage_ms: rollout.map(|r| r.stage_ms),
        commit_ms: rollout.map(|r| r.commit_ms),
        frontends: record.frontends,
    }
}

fn failed_deployment(app: &str, version: &str, error: &ControllerError) -> Deployment {
    Deployment {
        id: 0,
        app: app.to_string(),
        version: version.to_string(),
        kind: OperationKind::Deploy,
        status: DeploymentStatus::Failed,
        operations: vec![DeploymentOperation {
            app: app.to_string(),
            kind: OperationKind::Deploy,
            version: Some(version.to_string()),
            digest: None,
        }],
        expires_at_ms: None,
        error: Some(error.public_message().to_string()),
        generation: None,
        started_at_ms: now_ms(),
        finished_at_ms: Some(now_ms()),
        stage_ms: None,
        commit_ms: None,
        frontends: error
            .details()
            .get("frontends")
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default(),
    }
}

pub fn app_not_found(app: &str) -> ControllerError {
    ControllerError::not_found(format!(
        "no app named '{app}' in this environment; `runway app list` shows the published apps"
    ))
}

fn version_conflict(app: &str, version: &str, existing: &str, new: &Digest) -> ControllerError {
    ControllerError::conflict(format!(
        "{app} {version} is already published with digest {existing}, and this package has digest {new}; \
         versions are immutable: bump [app] version in runway.toml"
    ))
    .with_details(serde_json::json!({ "existing_digest": existing, "digest": new.to_string() }))
}

/// `version` differs from a published one only in build metadata.
fn same_version_conflict(
    app: &str,
    version: &str,
    existing_version: &str,
    existing_digest: &str,
    new: &Digest,
) -> ControllerError {
    ControllerError::conflict(format!(
        "{app} {version} is the same version as the published {app} {existing_version} \
         (semver ignores build metadata after '+'), which has other content (digest \
         {existing_digest}, this package {new}); versions are immutable: bump [app] version \
         in runway.toml"
    ))
    .with_details(serde_json::json!({
        "existing_version": existing_version,
        "existing_digest": existing_digest,
        "digest": new.to_string(),
    }))
}

fn component_error(e: ComponentError) -> ControllerError {
    ControllerError::unrunnable("invalid_component", format!("component.wasm: {e}"))
}

/// Marks every front-end that had staged as aborted (its table was dropped).
pub(crate) fn mark_aborted(progress: &mut [FrontendProgress]) {
    for p in progress {
        if p.state == FrontendProgressState::Staged {
            p.state = FrontendProgressState::Aborted;
        }
    }
}

/// `409 deployment_in_progress`: deployment `id` is running or prepared.
pub(crate) fn deployment_in_progress(id: i64, status: DeploymentStatus) -> ControllerError {
    let how = match status {
        DeploymentStatus::Prepared => format!(
            "commit it (POST /_runway/api/v1/deployments/{id}/commit) or abort it \
             (POST /_runway/api/v1/deployments/{id}/abort) first"
        ),
        _ => "wait for it to end, then try again".to_string(),
    };
    ControllerError::conflict_with(
        "deployment_in_progress",
        format!(
            "deployment {id} is {status}: one deployment runs or waits prepared at a time; {how}"
        ),
    )
    .with_details(serde_json::json!({ "id": id, "status": status }))
}

/// The app a staging error is about, if it is about one.
fn stage_error_app(e: &StageError) -> Option<&str> {
    match e {
        StageError::Fetch { app, .. }
        | StageError::Digest { app, .. }
        | StageError::Load { app, .. } => Some(app),
        _ => None,
    }
}

fn stage_error(e: StageError) -> ControllerError {
    ControllerError::rollout(
        "deployment_failed",
        format!("deployment failed, nothing was switched: {e}"),
    )
}

/// Parses `NAME` and `VERSION` from path segments with precise errors.
pub fn parse_app_version(app: &str, version: &str) -> ControllerResult<(AppName, Version)> {
    let name = AppName::parse(app).map_err(|e| {
        ControllerError::invalid("invalid_app_name", format!("app name '{app}': {e}"))
    })?;
    let version = Version::parse(version).map_err(|e| {
        ControllerError::invalid(
            "invalid_version",
            format!("version '{version}': {e}; expected semver like 1.2.3"),
        )
    })?;
    Ok((name, version))
}

/// A package upload: in memory, or received into a temporary file.
enum Upload {
    Bytes(Bytes),
    File(tempfile::TempPath),
}
