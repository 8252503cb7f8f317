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
pub use serve::{request_id, router};

pub use runway_net::ConnectionSettings;

/// A running HTTP server of Runway (controller, front-end or both).
pub type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves `app` on `listener` until `stop` turns true; requests in flight
/// then finish. Connections are HTTP/1.1 with `TCP_NODELAY` (without it, a
/// response written as headers then body waits for the client's delayed ACK:
/// a 40 ms stall on a few percent of requests) and are bounded by
/// `connections` (header-read and keep-alive timeouts, at most
/// `max_connections` open; see `runway_net`). The open-file soft limit is
/// raised to the hard limit first.
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
    connections: ConnectionSettings,
) -> ServerTask {
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(runway_net::serve(listener, service, connections, stop))
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

/// Front-end names: 1 to 63 letters, digits, '-' or '.', but not `.` or
/// `..` (a name is also a directory name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// How to fix a name [`valid_name`] refuses.
pub const NAME_RULE: &str = "use 1 to 63 letters, digits, '-' or '.' (but not . or ..)";

/// Refuses an address that carries credentials (`http://user:pass@host`):
/// they would be stored, listed and logged with it. `what` names where the
/// address came from (a flag); the message shows it without the credentials.
pub fn refuse_credentials(what: &str, address: &str) -> Result<(), String> {
    let Ok(url) = url::Url::parse(address.trim()) else {
        return Ok(());
    };
    if url.username().is_empty() && url.password().is_none() {
        return Ok(());
    }
    let mut shown = url;
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    Err(format!(
        "{what} {}: the address carries credentials (user:password@); remove them \
         (Runway authenticates with tokens, not with credentials in URLs)",
        shown.as_str().trim_end_matches('/')
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_names_are_not_front_end_names() {
        for good in ["fe-1", "a.b", "x", "...", ".a", "a.."] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [".", "..", "", "a/b", "a b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn addresses_with_credentials_are_refused() {
        let error =
            refuse_credentials("--advertise", "http://user:hunter2@10.0.0.5:9101").unwrap_err();
        assert_eq!(
            error,
            "--advertise http://10.0.0.5:9101: the address carries credentials \
             (user:password@); remove them (Runway authenticates with tokens, not with \
             credentials in URLs)"
        );
        assert!(refuse_credentials("--controller", "http://token@10.0.0.5:9000").is_err());
        assert!(refuse_credentials("--advertise", "http://10.0.0.5:9101").is_ok());
        assert!(refuse_credentials("--advertise", "https://fe.example/").is_ok());
    }
}
