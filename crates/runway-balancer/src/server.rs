//! The listening side: worker threads that accept connections, serve
//! HTTP/1.1 with keep-alive, and shut down gracefully.
//!
//! # Workers
//!
//! Like nginx's worker processes, the proxy runs on `workers` OS threads,
//! each with its own single-threaded Tokio runtime and its own kept-alive
//! connections to the front-ends ([`crate::connect`]). The first worker also
//! runs the acceptors (one per listener), which deals new connections to the workers in turn
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
//! # Listeners
//!
//! Each listener is a [`Door`]: plain HTTP/1.1; HTTPS (TLS handshake within
//! the header-read timeout, then HTTP/2 if ALPN chose `h2`, else HTTP/1.1
//! with the same timeouts as plain); or a redirect to HTTPS. The connection
//! knows which door it came in by, so forwarding headers tell the real
//! scheme. HTTP/2 connections count under the gate but are never evicted
//! (their streams are invisible to it).
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use runway_net::{AcceptBackoff, ConnectionSettings, Gate, Permit};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::connect::Connector;
use crate::headers::ClientAddr;
use crate::pool::Pool;
use crate::proxy::{Proxy, ProxyBody};
use crate::routes::RouteTable;

/// What every worker needs to build its proxy.
#[derive(Clone)]
pub(crate) struct WorkerSettings {
    pub routes: Arc<RouteTable>,
    pub platform: Option<Arc<Pool>>,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
    pub eject_for: Duration,
    pub connections: ConnectionSettings,
    pub metrics: Arc<crate::metrics::BalancerMetrics>,
}

/// What a listener does with the connections it accepts.
pub(crate) struct Door {
    /// TLS first (HTTPS listener).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Answer every request with a redirect to HTTPS on this port instead of
    /// proxying it.
    pub redirect_to: Option<u16>,
}

type Accepted = (std::net::TcpStream, Permit, Arc<Door>);

/// Starts `count` worker threads serving the connections accepted on
/// `listeners`. Each holds a clone of `alive` until it has stopped and all
/// its connections are closed.
pub(crate) fn spawn_workers(
    listeners: Vec<(std::net::TcpListener, Arc<Door>)>,
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
    let gate = Gate::new(settings.connections.max_connections);
    let next = Arc::new(AtomicUsize::new(0));
    let mut acceptors: Option<Vec<Acceptor>> = Some(
        listeners
            .into_iter()
            .map(|(listener, door)| Acceptor {
                listener,
                door,
                gate: gate.clone(),
                queues: queues.clone(),
                next: next.clone(),
                stop: stop.clone(),
            })
            .collect(),
    );
    drop(queues);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let acceptors = acceptors.take();
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
                    for acceptor in acceptors.into_iter().flatten() {
                        tokio::spawn(acceptor.run());
                    }
                    let proxy = Arc::new(Proxy {
                        routes: settings.routes,
                        platform: settings.platform,
                        connector: Connector::new(index, settings.connect_timeout),
                        max_attempts: settings.max_attempts,
                        eject_for: settings.eject_for,
                        metrics: settings.metrics,
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

/// Accepts connections on one listener and deals them to the workers in
/// turn (one turn shared by every listener), so each worker gets its share
/// of the clients whatever the kernel would have woken.
struct Acceptor {
    listener: std::net::TcpListener,
    door: Arc<Door>,
    gate: Arc<Gate>,
    queues: Vec<mpsc::UnboundedSender<Accepted>>,
    next: Arc<AtomicUsize>,
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
            let next = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
            let _ = self.queues[next].send((stream, permit, self.door.clone()));
        }
        tracing::info!(
            "the balancer stopped accepting connections on {}",
            listener
                .local_addr()
                .map_or_else(|_| "its listener".to_string(), |a| a.to_string())
        );
    }
}

/// Serves the connections the acceptors hand to this worker.
async fn serve_loop(
    mut inbox: mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
    settings: ConnectionSettings,
    mut stop: watch::Receiver<bool>,
    force: watch::Receiver<bool>,
    connections: mpsc::Sender<()>,
) {
    let builder = Arc::new(runway_net::http1_builder());
    loop {
        let (stream, permit, door) = tokio::select! {
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
            let client = Arc::new(ClientAddr::with_tls(peer.ip(), door.tls.is_some()));
            let redirect_to = door.redirect_to;
            let service = service_fn(move |request| {
                let proxy = proxy.clone();
                let client = client.clone();
                async move {
                    Ok::<_, Infallible>(match redirect_to {
                        Some(port) => redirect(&request, port),
                        None => proxy.handle(request, &client).await,
                    })
                }
            });
            match &door.tls {
                None => {
                    runway_net::serve_connection(
                        &builder,
                        stream,
                        service,
                        permit,
                        &settings,
                        stop,
                        Some(force),
                    )
                    .await
                }
                Some(acceptor) => {
                    // The handshake is part of the request head: same bound.
                    let handshake =
                        tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream))
                            .await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {error}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not done within the header-read timeout");
                            return;
                        }
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_h2(tls, service, permit, stop, force).await;
                    } else {
                        runway_net::serve_connection(
                            &builder,
                            tls,
                            service,
                            permit,
                            &settings,
                            stop,
                            Some(force),
                        )
                        .await;
                    }
                }
            }
            drop(alive);
        });
    }
}

/// Serves one HTTP/2 connection (negotiated by ALPN) until the client closes
/// it or `stop` turns true (then open streams finish; `force` cuts them).
async fn serve_h2<T, S>(
    io: T,
    service: S,
    permit: Permit,
    mut stop: watch::Receiver<bool>,
    mut force: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    // The gate cannot see an HTTP/2 connection's streams: never evict it.
    permit.hold_busy();
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!("HTTP/2 connection ended: {error}");
                }
                break;
            }
            _ = signalled(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = signalled(&mut force), if stopping => break,
        }
    }
    drop(permit);
}

/// `308` to the same host and path on the HTTPS listener's port. A host
/// that is not a plain host name or address gets `400`.
fn redirect(request: &Request<Incoming>, https_port: u16) -> Response<ProxyBody> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(crate::routes::strip_port)
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
                })
        });
    let Some(host) = host else {
        return crate::proxy::error_response(
            StatusCode::BAD_REQUEST,
            "bad_host",
            "the request has no usable Host header to redirect to https://; send the host name"
                .to_string(),
            serde_json::json!({}),
        );
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return crate::proxy::error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request cannot be redirected to https://".to_string(),
            serde_json::json!({}),
        );
    };
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::new())));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response.headers_mut().insert(LOCATION, location);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// Resolves once `signal` is true (at once if it already is, and also if the
/// sender is gone). The borrow of the value is not kept, so the future is
/// `Send`.
pub(crate) async fn signalled(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|on| *on).await;
}
