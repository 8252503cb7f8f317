//! The listening side: worker threads that accept connections, serve
//! HTTP/1.1 with keep-alive, and shut down gracefully.
//!
//! # Workers
//!
//! Like nginx's worker processes, the proxy runs on `workers` OS threads,
//! each with its own single-threaded Tokio runtime and its own kept-alive
//! connections to the front-ends ([`crate::connect`]). The first worker also
//! runs the acceptor, which deals new connections to the workers in turn
//! (connections are long-lived with keep-alive, so an even deal is an even
//! load; the kernel's choice of which thread to wake is not). A request is
//! then handled start to finish on one thread: the client connection, the
//! upstream connection and the hand-offs between them never cross threads,
//! which saves a thread wake-up per hand-off. The pool snapshot and the
//! per-upstream counters are shared by all workers (atomics, no locks).
//! Discovery and health checks run on the runtime that started the balancer.
//!
//! # Connections
//!
//! Bounded as on every Runway server (`runway_net`): the acceptor admits a
//! connection through one [`runway_net::Gate`] shared by all workers (at the
//! bound the connection that waited longest for a request makes room, or
//! the newcomer gets a quick 503), and each connection has the header-read
//! and keep-alive timeouts of [`crate::BalancerConfig::connections`]. An
//! accept error such as "too many open files" pauses accepting briefly.
//!
//! # Shutdown
//!
//! Two signals. `stop` ends every accept loop (the listening socket closes,
//! so new connections are refused) and asks every connection to finish:
//! idle keep-alive connections close at once, a connection with a request in
//! flight closes after its response. `force` cuts whatever is still open when
//! the grace period is over. Every worker thread and every connection task
//! holds a clone of one channel sender, so "everything is gone" is that
//! channel closing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use runway_net::{AcceptBackoff, ConnectionSettings, Gate, Permit};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::connect::Connector;
use crate::headers::ClientAddr;
use crate::pool::Pool;
use crate::proxy::Proxy;

/// What every worker needs to build its proxy.
#[derive(Clone)]
pub(crate) struct WorkerSettings {
    pub pool: Arc<Pool>,
    pub platform: Option<Arc<Pool>>,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
    pub eject_for: Duration,
    pub connections: ConnectionSettings,
}

/// Starts `count` worker threads serving the connections accepted on
/// `listener`. Each holds a clone of `alive` until it has stopped and all
/// its connections are closed.
pub(crate) fn spawn_workers(
    listener: std::net::TcpListener,
    count: usize,
    settings: WorkerSettings,
    stop: watch::Receiver<bool>,
    force: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) -> std::io::Result<()> {
    // Worker threads log through the subscriber of the thread that started
    // the balancer, even when it is not the global one.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let (queues, inboxes): (Vec<_>, Vec<_>) = (0..count).map(|_| mpsc::unbounded_channel()).unzip();
    let mut acceptor = Some(Acceptor {
        listener,
        gate: Gate::new(settings.connections.max_connections),
        queues,
        stop: stop.clone(),
    });
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let acceptor = acceptor.take();
        let settings = settings.clone();
        let (stop, force, alive) = (stop.clone(), force.clone(), alive.clone());
        let dispatch = dispatch.clone();
        std::thread::Builder::new()
            .name(format!("runway-balancer-{index}"))
            .spawn(move || {
                let _alive = alive;
                let _logging = (!dispatch.is::<tracing::subscriber::NoSubscriber>())
                    .then(|| tracing::dispatcher::set_default(&dispatch));
                runtime.block_on(async move {
                    if let Some(acceptor) = acceptor {
                        tokio::spawn(acceptor.run());
                    }
                    let proxy = Arc::new(Proxy {
                        pool: settings.pool,
                        platform: settings.platform,
                        connector: Connector::new(index, settings.connect_timeout),
                        max_attempts: settings.max_attempts,
                        eject_for: settings.eject_for,
                    });
                    let (connections, mut closed) = mpsc::channel::<()>(1);
                    let connection_settings = settings.connections;
                    serve_loop(inbox, proxy, connection_settings, stop, force, connections).await;
                    // Every connection task holds a sender: `None` once all are done.
                    let _ = closed.recv().await;
                });
            })?;
    }
    Ok(())
}

/// Accepts connections and deals them to the workers in turn, so each worker
/// gets its share of the clients whatever the kernel would have woken.
struct Acceptor {
    listener: std::net::TcpListener,
    gate: Arc<Gate>,
    queues: Vec<mpsc::UnboundedSender<(std::net::TcpStream, Permit)>>,
    stop: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run(mut self) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!("the balancer cannot use its listening socket: {error}");
                return;
            }
        };
        let mut next = 0;
        let mut backoff = AcceptBackoff::default();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = signalled(&mut self.stop) => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    backoff.failed(&error, &self.gate).await;
                    continue;
                }
            };
            let Some(permit) = self.gate.admit() else {
                runway_net::refuse(stream);
                continue;
            };
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            let _ = self.queues[next].send((stream, permit));
            next = (next + 1) % self.queues.len();
        }
        tracing::info!("the balancer stopped accepting connections");
    }
}

/// Serves the connections the acceptor hands to this worker.
async fn serve_loop(
    mut inbox: mpsc::UnboundedReceiver<(std::net::TcpStream, Permit)>,
    proxy: Arc<Proxy>,
    settings: ConnectionSettings,
    mut stop: watch::Receiver<bool>,
    force: watch::Receiver<bool>,
    connections: mpsc::Sender<()>,
) {
    let builder = Arc::new(runway_net::http1_builder());
    loop {
        let (stream, permit) = tokio::select! {
            biased;
            _ = signalled(&mut stop) => break,
            stream = inbox.recv() => match stream {
                Some(accepted) => accepted,
                None => break,
            },
        };
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            continue;
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        let force = force.clone();
        let alive = connections.clone();
        tokio::spawn(async move {
            let client = Arc::new(ClientAddr::new(peer.ip()));
            let service = service_fn(move |request| {
                let proxy = proxy.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(proxy.handle(request, &client).await) }
            });
            runway_net::serve_connection(
                &builder,
                stream,
                service,
                permit,
                &settings,
                stop,
                Some(force),
            )
            .await;
            drop(alive);
        });
    }
}

/// Resolves once `signal` is true (at once if it already is, and also if the
/// sender is gone). The borrow of the value is not kept, so the future is
/// `Send`.
pub(crate) async fn signalled(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|on| *on).await;
}
