//! The front-end role: serves every app of its environment under `/{app}/`
//! and runs the deployment service that stages and commits routing tables.
//!
//! A front-end knows nothing of other environments, other front-ends or the
//! controller's code. It receives desired state through
//! [`runway_api::fleet::FrontendLink`] (in-process in `runway up`, over HTTP
//! in a farm), fetches what it lacks from an [`ArtifactSource`],
//! verifies every byte by digest, and switches atomically.

mod deploy;
mod email;
mod events;
mod internal;
mod jobs;
mod metrics;
mod node;
mod scheduler;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use runway_api::fleet::{FrontendLink, RoutingTable, StageError, StageReport};

pub use deploy::{ArtifactSource, DirSource};
pub use email::{EMAIL_MAX_ATTEMPTS, SmtpSource, StoreOutbox, StoreSmtp, smtp_server};
pub use events::{StoreJobs, StoreKv};
pub use jobs::{ATTEMPT_HEADER, JOB_HEADER};
pub use node::{FrontendNode, NodeConfig};
pub use scheduler::{TIMER_DUE_HEADER, TIMER_HEADER, TimerScheduler, TimerSettings};
pub use serve::router;

/// How a front-end is set up.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// Unique within the environment; sent as `x-runway-frontend`.
    pub name: String,
    /// Where verified copies of packages and artifacts are kept.
    pub cache_dir: PathBuf,
    /// Largest unpacked package accepted.
    pub max_package_bytes: u64,
}

/// A running front-end. Cheap to clone.
#[derive(Clone)]
pub struct Frontend {
    inner: Arc<deploy::Inner>,
}

impl Frontend {
    pub fn new(
        config: FrontendConfig,
        runtime: runway_runtime::Runtime,
        store: runway_store::Store,
        source: Arc<dyn ArtifactSource>,
    ) -> Result<Frontend, StageError> {
        deploy::Inner::new(config, runtime, store, source).map(|inner| Frontend { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// This front-end's series, for a `/_runway/metrics` endpoint
    /// (`runway_server::metrics::MetricsEndpoint`).
    pub fn metrics_registry(&self) -> Arc<prometheus_client::registry::Registry> {
        self.inner.metrics.registry.clone()
    }
}

#[async_trait]
impl FrontendLink for Frontend {
    fn name(&self) -> &str {
        &self.inner.config.name
    }

    async fn stage(&self, table: &RoutingTable) -> Result<StageReport, StageError> {
        self.inner.stage(table).await
    }

    async fn commit(&self, generation: i64) -> Result<(), StageError> {
        self.inner.commit(generation)
    }

    async fn abort(&self, generation: i64) {
        self.inner.abort(generation)
    }

    fn status(&self) -> (i64, bool) {
        self.inner.status()
    }
}
