//! The front-end role: serves every app of its environment under `/{app}/`
//! and runs the deployment service that stages and commits routing tables.
//!
//! A front-end knows nothing of other environments or other front-ends. It
//! receives desired state through [`FrontendLink`] (in-process in `runway up`,
//! over HTTP in a farm), fetches what it lacks from an [`ArtifactSource`],
//! verifies every byte by digest, and switches atomically.

mod deploy;
mod events;
mod node;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use runway_api::fleet::{RoutingTable, StageReport};

pub use deploy::{ArtifactKind, ArtifactSource, DirSource, StageError};
pub use events::StoreKv;
pub use node::{FrontendNode, NodeConfig, error_chain};
pub use serve::router;

/// A listener whose connections send small writes at once (`TCP_NODELAY`).
/// Without it, a response written as headers then body waits for the
/// client's delayed ACK (Nagle's algorithm): a 40 ms stall on a few percent
/// of requests.
fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// A running HTTP server of Runway (controller, front-end or both).
pub type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves `app` on `listener` (with `TCP_NODELAY`) until `stop` turns true;
/// requests in flight then finish.
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ServerTask {
    tokio::spawn(async move {
        axum::serve(no_delay(listener), app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await
    })
}

/// Waits for servers told to stop, at most `deadline` (then they are left
/// to die with the process, with a warning).
pub async fn join_servers(
    servers: impl IntoIterator<Item = ServerTask>,
    deadline: std::time::Duration,
) -> anyhow::Result<()> {
    use anyhow::Context;
    match tokio::time::timeout(deadline, futures::future::join_all(servers)).await {
        Ok(joined) => {
            for server in joined {
                server
                    .context("a server task panicked")?
                    .context("a server failed")?;
            }
        }
        Err(_) => tracing::warn!("requests still in flight after {deadline:?}; stopping anyway"),
    }
    Ok(())
}

/// Front-end names: 1 to 63 letters, digits, '-' or '.'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The message of an error answer from a Runway API (its `ErrorBody`), or
/// the answer's text if it is not one.
pub fn error_message(text: &str) -> String {
    serde_json::from_str::<runway_api::ErrorBody>(text)
        .map(|b| b.message)
        .unwrap_or_else(|_| text.to_string())
}

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

/// The controller's view of one front-end: the fleet protocol.
#[async_trait]
pub trait FrontendLink: Send + Sync {
    fn name(&self) -> &str;
    /// Prepares `table` without changing what is served.
    async fn stage(&self, table: &RoutingTable) -> Result<StageReport, StageError>;
    /// Switches to the staged table of `generation`.
    async fn commit(&self, generation: i64) -> Result<(), StageError>;
    /// Drops a staged table that will not be committed.
    async fn abort(&self, generation: i64);
    /// The generation being served, and whether the front-end is ready.
    fn status(&self) -> (i64, bool);
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
