//! The controller role: one per environment. Owns the catalogs, serves the
//! environment API (Server.API + Server.Identity) and runs the deployment
//! controller, which validates and compiles each component once and rolls
//! routing tables out to the front-ends through the fleet protocol.

pub mod api;
pub mod controller_error;
pub mod deployer;
mod deployments;
mod email;
pub mod error;
pub mod fleet;
mod hostname;
pub mod identity;
mod jobs;
pub mod lease;
mod metrics;
pub mod server;
mod timers;
pub mod trust;
pub mod web;
mod zones;

use std::path::PathBuf;
use std::sync::Arc;

use runway_api::fleet::FrontendLink;
use runway_api::v1::{Limits, Scope};
use runway_runtime::Runtime;
use runway_store::{BlobStore, Store};
use tokio::sync::{Mutex, Semaphore};

pub use api::router;
pub use controller_error::{ControllerError, ControllerResult, Refusal};
pub use fleet::{FarmConfig, fleet_router};
pub use lease::{LeaseConfig, Role};

/// How an environment is set up.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The environment's name (`dev`, `test`, `prod`…).
    pub environment: String,
    /// The URL every absolute URL the platform generates starts with.
    pub base_url: String,
    /// Holds `packages/` and `artifacts/`, content-addressed.
    pub data_dir: PathBuf,
    /// Bounds for every app; manifests may only narrow them.
    pub limits: Limits,
    /// Largest package upload accepted (compressed and unpacked).
    pub max_package_bytes: u64,
    /// Most package uploads received at once (`--max-uploads`); beyond, 503.
    pub max_uploads: usize,
}

/// Default of `--max-uploads`.
pub const DEFAULT_MAX_UPLOADS: usize = 4;

/// Default bounds of every app (`--timeout-ms`, `--memory-mib`,
/// `--max-body-bytes`; concurrency: each front-end's own).
pub const DEFAULT_LIMITS: Limits = Limits {
    timeout_ms: 30_000,
    memory_bytes: 128 << 20,
    max_body_bytes: 10 << 20,
    concurrency: None,
};

/// Default of `--max-package-bytes`.
pub const DEFAULT_MAX_PACKAGE_BYTES: u64 = 64 << 20;

/// Default of `--max-instances`.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Default of `--log-retention-days`: 14 days.
pub const DEFAULT_LOG_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(14 * 24 * 3600);

/// A running controller. Cheap to clone; axum state.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    config: ControllerConfig,
    /// `packages/` and `artifacts/` under the data directory.
    blobs: BlobStore,
    store: Store,
    runtime: Runtime,
    fleet: fleet::Fleet,
    /// One deployment at a time per environment: each builds on the
    /// generation the previous one committed.
    deploy_lock: Mutex<()>,
    /// Compilation is CPU-heavy; a burst of publishes must not starve serving.
    compile_slots: Semaphore,
    /// During a deployment's commit phase: its generation and the registered
    /// front-ends that staged it. They stay ready while they switch.
    committing: std::sync::Mutex<Option<(i64, Vec<String>)>>,
    /// Active, or a standby of the controller holding the lease (`lease`).
    role: std::sync::RwLock<Role>,
    /// The lease term held (0: none, or no lease: `runway up`).
    lease_term: std::sync::atomic::AtomicI64,
    /// Running apps whose version could not be loaded at start (app → why):
    /// left out of routing tables until deployed again, reported by the API.
    failed: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The deployment staged everywhere and waiting for its commit, if any.
    prepared: std::sync::Mutex<Option<deployments::Prepared>>,
    /// How long a prepared deployment waits for its commit.
    prepared_ttl_ms: std::sync::atomic::AtomicI64,
    /// The trusted console's decoded public keys (`trust`).
    trust: trust::TrustCache,
    /// The series at `/_runway/metrics`.
    metrics: metrics::ControllerMetrics,
}

impl Controller {
    pub fn new(
        config: ControllerConfig,
        store: Store,
        runtime: Runtime,
        local: Vec<Arc<dyn FrontendLink>>,
        farm: Option<FarmConfig>,
    ) -> std::io::Result<Controller> {
        let blobs = BlobStore::create(&config.data_dir)?;
        let metrics = metrics::ControllerMetrics::new(&config.environment, store.log_sink());
        Ok(Controller {
            inner: Arc::new(Inner {
                blobs,
                config,
                store,
                runtime,
                fleet: fleet::Fleet::new(local, farm),
                deploy_lock: Mutex::new(()),
                compile_slots: Semaphore::new(1),
                committing: std::sync::Mutex::new(None),
                role: std::sync::RwLock::new(Role::Active),
                lease_term: std::sync::atomic::AtomicI64::new(0),
                failed: std::sync::Mutex::new(Default::default()),
                prepared: std::sync::Mutex::new(None),
                prepared_ttl_ms: std::sync::atomic::AtomicI64::new(
                    runway_api::v1::PREPARED_DEPLOYMENT_TTL_MS,
                ),
                trust: trust::TrustCache::default(),
                metrics,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The trusted console's keys, decoded (see [`trust`]).
    pub(crate) fn trust_cache(&self) -> &trust::TrustCache {
        &self.inner.trust
    }

    /// This controller's series, for a `/_runway/metrics` endpoint
    /// (`runway_server::metrics::MetricsEndpoint`).
    pub fn metrics_registry(&self) -> Arc<prometheus_client::registry::Registry> {
        self.inner.metrics.registry.clone()
    }

    pub(crate) fn metrics(&self) -> &metrics::ControllerMetrics {
        &self.inner.metrics
    }

    /// The published packages and compiled artifacts.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Why `app`'s running version could not be loaded, if it could not.
    pub fn load_error(&self, app: &str) -> Option<String> {
        self.failed_apps().get(app).cloned()
    }

    pub(crate) fn failed_apps(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates the first admin token if the environment has none, returning
    /// its secret (to be shown once and written to `admin.token`).
    pub async fn ensure_admin_token(&self) -> Result<Option<String>, runway_store::StoreError> {
        if !self.inner.store.tokens().await?.is_empty() {
            return Ok(None);
        }
        self.create_token("admin", Scope::Admin).await.map(Some)
    }

    /// Creates the first join token if the environment never had one,
    /// returning its secret (to be written to `join.token`). A revoked one is
    /// not replaced: revoking is how an operator closes the farm to joiners.
    pub async fn ensure_join_token(&self) -> Result<Option<String>, runway_store::StoreError> {
        let tokens = self.inner.store.tokens().await?;
        if tokens.iter().any(|t| t.scope == Scope::Join) {
            return Ok(None);
        }
        self.create_token("join", Scope::Join).await.map(Some)
    }

    async fn create_token(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<String, runway_store::StoreError> {
        let (token, hash) = identity::new_token();
        self.inner.store.create_token(name, scope, &hash).await?;
        Ok(token)
    }
}

/// Writes a secret readable only by its owner (0600), atomically and
/// durably (file and directory fsynced).
pub fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    runway_store::files::write_atomically(path, format!("{secret}\n").as_bytes(), Some(0o600))
        .with_context(|| format!("failed to write {}", path.display()))
}

/// The secrets key: `explicit` (`--secrets-key-file`), which must exist, or
/// `<data_dir>/secrets.key`, created on first start.
pub fn load_secrets_key(
    data_dir: &std::path::Path,
    explicit: Option<&std::path::Path>,
) -> anyhow::Result<runway_store::SecretsKey> {
    let key = match explicit {
        Some(path) => runway_store::SecretsKey::load(path, false),
        None => runway_store::SecretsKey::load(&data_dir.join("secrets.key"), true),
    };
    Ok(key?)
}
