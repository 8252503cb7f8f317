//! The controller role: one per environment. Owns the catalogs, serves the
//! environment API (Server.API + Server.Identity) and runs the deployment
//! controller, which validates and compiles each component once and rolls
//! routing tables out to the front-ends through the fleet protocol.

pub mod api;
pub mod deployer;
pub mod error;
pub mod identity;
pub mod standalone;

use std::path::PathBuf;
use std::sync::Arc;

use runway_api::v1::Limits;
use runway_frontend::FrontendLink;
use runway_runtime::Runtime;
use runway_store::Store;
use tokio::sync::{Mutex, Semaphore};

pub use api::router;

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
}

/// A running controller. Cheap to clone; axum state.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    config: ControllerConfig,
    store: Store,
    runtime: Runtime,
    frontends: Vec<Arc<dyn FrontendLink>>,
    /// One deployment at a time per environment: each builds on the
    /// generation the previous one committed.
    deploy_lock: Mutex<()>,
    /// Compilation is CPU-heavy; a burst of publishes must not starve serving.
    compile_slots: Semaphore,
}

impl Controller {
    pub fn new(
        config: ControllerConfig,
        store: Store,
        runtime: Runtime,
        frontends: Vec<Arc<dyn FrontendLink>>,
    ) -> std::io::Result<Controller> {
        for dir in ["packages", "artifacts"] {
            std::fs::create_dir_all(config.data_dir.join(dir))?;
        }
        Ok(Controller {
            inner: Arc::new(Inner {
                config,
                store,
                runtime,
                frontends,
                deploy_lock: Mutex::new(()),
                compile_slots: Semaphore::new(1),
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

    /// Creates the first admin token if the environment has none, returning
    /// its secret (to be shown once and written to `admin.token`).
    pub async fn ensure_admin_token(&self) -> Result<Option<String>, runway_store::StoreError> {
        if !self.inner.store.tokens().await?.is_empty() {
            return Ok(None);
        }
        let (token, hash) = identity::new_token();
        self.inner
            .store
            .create_token("admin", "admin", &hash)
            .await?;
        Ok(Some(token))
    }
}
