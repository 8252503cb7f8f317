//! The listening side: accept connections, serve HTTP/1.1 with keep-alive,
//! and shut down gracefully.
//!
//! Shutdown has two signals. `stop` ends the accept loop (the listener is
//! closed, so new connections are refused) and asks every connection to
//! finish: idle keep-alive connections close at once, a connection with a
//! request in flight closes after its response. `force` cuts whatever is still
//! open when the grace period is over. Every connection task holds a clone of
//! a channel sender, so "all connections are gone" is the channel closing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::proxy::Proxy;

/// A client must send its request headers within this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After an accept error such as "too many open files", wait this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) fn spawn_accept_loop(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    mut stop: watch::Receiver<bool>,
    force: watch::Receiver<bool>,
    connections: mpsc::Sender<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let builder = Arc::new(builder);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            let builder = builder.clone();
            let mut stop = stop.clone();
            let mut force = force.clone();
            let alive = connections.clone();
            tokio::spawn(async move {
                let client = peer.ip();
                let service = service_fn(move |request| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(request, client).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    _ = stop.wait_for(|stopped| *stopped) => {
                        connection.as_mut().graceful_shutdown();
                        tokio::select! {
                            _ = connection.as_mut() => {}
                            _ = force.wait_for(|forced| *forced) => {}
                        }
                    }
                }
                drop(alive);
            });
        }
        drop(listener);
        tracing::info!("the balancer stopped accepting connections");
    })
}
