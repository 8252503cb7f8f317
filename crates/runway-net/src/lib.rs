//! Client connections of every Runway HTTP server (controller, front-end,
//! standalone, balancer): how many may be open, how long each may sit idle
//! or half-sent, and the open-file limit they live under.
//!
//! - [`Gate`] bounds the connections open at once. At the bound it makes
//!   room like nginx's reusable connections: the connection that has waited
//!   longest for a request (an idle keep-alive one, or one that has not sent
//!   a whole request head) is closed for the newcomer. Connections with a
//!   request in flight are never closed for room; when all are busy the
//!   newcomer gets a quick `503` and is closed, so the server never stalls.
//! - [`serve_connection`] serves one HTTP/1.1 connection (TCP, or TLS over
//!   it) with keep-alive and
//!   three timeouts: a request head must be complete within
//!   `header_read_timeout` of its first byte (or of the accept), a
//!   kept-alive connection may wait at most `keep_alive_timeout` for its next
//!   request, and a write to the client may make no progress for at most
//!   `send_timeout` (nginx's `send_timeout`: a client that stops reading its
//!   response is disconnected, which also stops the guest producing it).
//!   Graceful shutdown lets the request in flight finish.
//! - [`raise_open_file_limit`] raises `RLIMIT_NOFILE` to its hard limit, and
//!   the bound is clamped below it, so idle connections cannot exhaust the
//!   descriptors the server needs for everything else.
//!
//! The hot path costs two clock reads and two relaxed atomic stores per
//! request, and a relaxed load per write; the gate's lock is taken once per
//! connection.

pub mod metrics;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// Connection bounds of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// A request head must be complete within this long of its first byte
    /// (of the accept, for a connection's first request). Default 10 s.
    pub header_read_timeout: Duration,
    /// A kept-alive connection waiting for its next request is closed after
    /// this long. Default 60 s.
    pub keep_alive_timeout: Duration,
    /// Most client connections open at once (clamped below the open-file
    /// limit). Default 10 000.
    pub max_connections: usize,
    /// A connection whose writes to the client make no progress for this
    /// long (the client stopped reading) is closed. Default 60 s.
    pub send_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            keep_alive_timeout: Duration::from_millis(DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            send_timeout: Duration::from_millis(DEFAULT_SEND_TIMEOUT_MS),
        }
    }
}

/// Default of `--header-read-timeout-ms`.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default of `--keep-alive-timeout-ms`.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_MS: u64 = 60_000;
/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of `--send-timeout-ms` (nginx's `send_timeout`).
pub const DEFAULT_SEND_TIMEOUT_MS: u64 = 60_000;

impl ConnectionSettings {
    /// The settings of the flags `--header-read-timeout-ms`,
    /// `--keep-alive-timeout-ms`, `--max-connections` and
    /// `--send-timeout-ms`, checked.
    pub fn from_flags(
        header_read_timeout_ms: u64,
        keep_alive_timeout_ms: u64,
        max_connections: usize,
        send_timeout_ms: u64,
    ) -> Result<ConnectionSettings, String> {
        let settings = ConnectionSettings {
            header_read_timeout: Duration::from_millis(header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(keep_alive_timeout_ms),
            max_connections,
            send_timeout: Duration::from_millis(send_timeout_ms),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Names the flag that is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_read_timeout.is_zero() {
            return Err("--header-read-timeout-ms must be greater than 0 (default 10000)".into());
        }
        if self.keep_alive_timeout.is_zero() {
            return Err("--keep-alive-timeout-ms must be greater than 0 (default 60000)".into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be greater than 0 (default 10000)".into());
        }
        if self.send_timeout.is_zero() {
            return Err("--send-timeout-ms must be greater than 0 (default 60000)".into());
        }
        Ok(())
    }
}

/// Descriptors kept for everything but client connections (catalog pools,
/// upstream connections, artifacts, logs).
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit to the hard limit (once per process) and
/// returns the soft limit in force, if it is known.
pub fn raise_open_file_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!("open-file limit: {limit}");
            Some(limit)
        }
        Err(error) => {
            tracing::warn!("cannot raise the open-file limit (RLIMIT_NOFILE): {error}");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    })
}

/// `wanted`, or fewer if the open-file limit would not leave room for the
/// rest of the server (with a warning that says how to fix it).
fn clamp_to_open_files(wanted: usize) -> usize {
    let Some(limit) = raise_open_file_limit() else {
        return wanted;
    };
    let room = limit.saturating_sub(RESERVED_FILES).max(16);
    if (wanted as u64) <= room {
        return wanted;
    }
    tracing::warn!(
        "--max-connections {wanted} exceeds what the open-file limit ({limit}) allows; \
         using {room} (raise the hard limit, e.g. `ulimit -Hn` or LimitNOFILE= in systemd)"
    );
    room as usize
}

/// What a connection is doing, as far as its limits care.
const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// The shared state of one connection.
struct Tracker {
    epoch: Instant,
    /// `HEAD`: reading a request head (or waiting for the first one);
    /// `BUSY`: a request is being served; `IDLE`: kept alive, no byte of a
    /// next request yet.
    phase: AtomicU8,
    /// When `phase` last changed to `HEAD` or `IDLE`, in ms since `epoch`.
    since_ms: AtomicU64,
    /// Since when a write to the client has been making no progress, in ms
    /// since `epoch` plus one; 0 while writes go through.
    stalled_since: AtomicU64,
    /// Set by the gate when it closes this connection to make room.
    evicted: AtomicBool,
    evict: Notify,
}

impl Tracker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Relaxed);
        self.phase.store(phase, Relaxed);
    }

    #[inline]
    fn bytes_arrived(&self) {
        if self.phase.load(Relaxed) == IDLE {
            self.enter(HEAD);
        }
    }

    /// Notes whether a write (or flush) to the client made progress.
    #[inline]
    fn wrote<T>(&self, polled: &Poll<T>) {
        let stalled = self.stalled_since.load(Relaxed);
        match polled {
            Poll::Ready(_) if stalled != 0 => self.stalled_since.store(0, Relaxed),
            Poll::Pending if stalled == 0 => self.stalled_since.store(self.now_ms() + 1, Relaxed),
            _ => {}
        }
    }
}

/// Bounds the connections of one server (see the crate docs).
pub struct Gate {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
    refusals: AtomicU64,
}

/// A connection's place under the [`Gate`]; dropping it frees the place.
pub struct Permit {
    gate: Arc<Gate>,
    id: u64,
    tracker: Arc<Tracker>,
}

impl Permit {
    /// Marks the connection as serving for good, so the gate never closes it
    /// to make room: for connections [`serve_connection`] does not serve
    /// (HTTP/2, whose streams the gate cannot see), which are still counted.
    pub fn hold_busy(&self) {
        self.tracker.phase.store(BUSY, Relaxed);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.tracker.evicted.load(Relaxed) {
            self.gate.lock().remove(&self.id);
        }
    }
}

impl Gate {
    /// A gate for `max_connections`, clamped below the open-file limit
    /// (which is raised to its hard limit first).
    pub fn new(max_connections: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max: clamp_to_open_files(max_connections.max(1)),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            refusals: AtomicU64::new(0),
        })
    }

    /// The bound in force.
    pub fn max_connections(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracker>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a new connection: at once below the bound; at the bound,
    /// the place of the connection that has waited longest for a request,
    /// which is closed; `None` if every connection is serving a request.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut open = self.lock();
        if open.len() >= self.max && !Self::evict_one(&mut open) {
            drop(open);
            let refused = self.refusals.fetch_add(1, Relaxed);
            if refused.is_power_of_two() {
                tracing::warn!(
                    "{} connection(s) refused: all {} connections are serving requests \
                     (raise --max-connections if the machine has room)",
                    refused + 1,
                    self.max
                );
            }
            return None;
        }
        let tracker = Arc::new(Tracker {
            epoch: self.epoch,
            phase: AtomicU8::new(HEAD),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            stalled_since: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Relaxed);
        open.insert(id, tracker.clone());
        Some(Permit {
            gate: self.clone(),
            id,
            tracker,
        })
    }

    /// Closes the connection that has waited longest for a request, if any
    /// is waiting (used when the process runs out of descriptors).
    pub fn shed(&self) -> bool {
        Self::evict_one(&mut self.lock())
    }

    fn evict_one(open: &mut HashMap<u64, Arc<Tracker>>) -> bool {
        let victim = open
            .iter()
            .filter(|(_, t)| t.phase.load(Relaxed) != BUSY)
            .min_by_key(|(_, t)| t.since_ms.load(Relaxed))
            .map(|(id, _)| *id);
        let Some(tracker) = victim.and_then(|id| open.remove(&id)) else {
            return false;
        };
        tracker.evicted.store(true, Relaxed);
        tracker.evict.notify_one();
        true
    }
}

/// The answer to a connection refused at the bound.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
content-length: 127\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
{\"code\":\"too_many_connections\",\"message\":\"the server is at its connection limit with every connection busy; retry in a moment\"}";

/// Answers 503 to a connection refused at the bound (best effort, never
/// waits) and closes it.
pub fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

/// The HTTP/1.1 settings every server uses: keep-alive, a timer; the
/// timeouts are enforced by [`serve_connection`].
pub fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        // `serve_connection` enforces it (hyper's would also bound the
        // keep-alive wait by the header timeout).
        .header_read_timeout(None::<Duration>);
    builder
}

/// Resolves once `signal` is true (at once if it already is, and also if the
/// sender is gone).
pub async fn signalled(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|on| *on).await;
}

/// Serves one connection under `permit` until it ends, a timeout closes it
/// (header read, keep-alive, or a write that makes no progress),
/// the gate evicts it, or `stop` turns true (then the request in flight
/// finishes and the connection closes; `force` cuts it).
pub async fn serve_connection<T, S, B>(
    builder: &http1::Builder,
    stream: T,
    service: S,
    permit: Permit,
    settings: &ConnectionSettings,
    mut stop: watch::Receiver<bool>,
    mut force: Option<watch::Receiver<bool>>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tracker = permit.tracker.clone();
    let io = TokioIo::new(Tracked {
        inner: stream,
        tracker: tracker.clone(),
    });
    let service = TrackedService {
        inner: service,
        tracker: tracker.clone(),
    };
    // With upgrades: a service may take the connection over after a `101`
    // (the balancer's WebSocket pass-through); others never notice.
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let header = settings.header_read_timeout;
    let keep_alive = settings.keep_alive_timeout;
    let send = settings.send_timeout;
    // Every wake-up is at most `check` after the previous one, so a head
    // that starts, or a write that stalls, after it is still caught by its
    // own deadline (late by at most `check`).
    let check = header.min(keep_alive).min(send);
    let at = |ms: u64| tracker.epoch + Duration::from_millis(ms);
    let sleep = tokio::time::sleep(check);
    tokio::pin!(sleep);
    let evict = tracker.evict.notified();
    tokio::pin!(evict);
    let (mut evicted, mut stopping) = (false, false);
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!("connection ended: {error}");
                }
                break;
            }
            _ = &mut evict, if !evicted => {
                evicted = true;
                match tracker.phase.load(Relaxed) {
                    IDLE => connection.as_mut().graceful_shutdown(),
                    HEAD => break,
                    _ => connection.as_mut().graceful_shutdown(),
                }
            }
            _ = signalled(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = async { signalled(force.as_mut().expect("checked")).await }, if stopping && force.is_some() => break,
            () = &mut sleep => {
                let now = tracker.now_ms();
                let stalled = tracker.stalled_since.load(Relaxed);
                let send_deadline = (stalled != 0).then(|| stalled - 1 + send.as_millis() as u64);
                if send_deadline.is_some_and(|deadline| deadline <= now) {
                    // Also after the response was handed over: hyper may
                    // still hold its last bytes, and a graceful shutdown
                    // would wait for them forever.
                    tracing::debug!("closing a connection: the client read nothing of its response for {send:?}");
                    break;
                }
                let since = tracker.since_ms.load(Relaxed);
                let next = match tracker.phase.load(Relaxed) {
                    HEAD => {
                        let deadline = since + header.as_millis() as u64;
                        if deadline <= now {
                            tracing::debug!("closing a connection: no complete request head within {header:?}");
                            break;
                        }
                        deadline
                    }
                    IDLE => {
                        let deadline = since + keep_alive.as_millis() as u64;
                        if deadline <= now {
                            connection.as_mut().graceful_shutdown();
                            now + check.as_millis() as u64
                        } else {
                            deadline.min(now + check.as_millis() as u64)
                        }
                    }
                    _ => now + check.as_millis() as u64,
                };
                let next = send_deadline.map_or(next, |deadline| next.min(deadline));
                sleep.as_mut().reset(at(next));
            }
        }
    }
    drop(permit);
}

/// Accepts connections on `listener` and serves each with a clone of
/// `service` (with `TCP_NODELAY`) under `settings`, until `stop` turns true;
/// then returns once every connection has finished.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    settings: ConnectionSettings,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let gate = Gate::new(settings.max_connections);
    let builder = Arc::new(http1_builder());
    let (alive, mut gone) = mpsc::channel::<()>(1);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = signalled(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                backoff.failed(&error, &gate).await;
                continue;
            }
        };
        let Some(permit) = gate.admit() else {
            refuse(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
        let service = WithPeer {
            inner: service.clone(),
            peer: stream.peer_addr().ok(),
        };
        let (builder, stop, alive) = (builder.clone(), stop.clone(), alive.clone());
        tokio::spawn(async move {
            serve_connection(&builder, stream, service, permit, &settings, stop, None).await;
            drop(alive);
        });
    }
    drop(listener);
    drop(alive);
    let _ = gone.recv().await;
    Ok(())
}

/// The client address of a request served by [`serve`] (a request
/// extension; absent when the socket could not tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Adds [`PeerAddr`] to every request of one connection.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: Option<std::net::SocketAddr>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for WithPeer<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(PeerAddr(peer));
        }
        self.inner.call(req)
    }
}

/// What an accept error does: a connection that died in the queue is
/// skipped; anything else (out of descriptors, out of memory) closes the
/// longest-waiting connection to make room and pauses accepting briefly
/// instead of spinning, with a warning at most once a second.
#[derive(Default)]
pub struct AcceptBackoff {
    last_warning: Option<Instant>,
}

/// How long accepting pauses after an error such as "too many open files".
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

impl AcceptBackoff {
    pub async fn failed(&mut self, error: &std::io::Error, gate: &Gate) {
        use std::io::ErrorKind::*;
        if matches!(
            error.kind(),
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
        ) {
            return;
        }
        let shed = gate.shed();
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                "accepting a connection failed: {error}; pausing {ACCEPT_BACKOFF:?}{} \
                 (lower --max-connections or raise the open-file limit)",
                if shed {
                    ", closed an idle connection"
                } else {
                    ""
                }
            );
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

pin_project_lite::pin_project! {
    /// A TCP stream that notes when bytes of a new request arrive.
    struct Tracked<T> {
        #[pin]
        inner: T,
        tracker: Arc<Tracker>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.tracker.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        this.tracker.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        this.tracker.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_flush(cx);
        this.tracker.wrote(&polled);
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Marks the connection busy while a request is served.
struct TrackedService<S> {
    inner: S,
    tracker: Arc<Tracker>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for TrackedService<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.tracker.phase.store(BUSY, Relaxed);
        TrackedFuture {
            inner: self.inner.call(request),
            tracker: Some(self.tracker.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        tracker: Option<Arc<Tracker>>,
    }
}

impl<F, B, E> std::future::Future for TrackedFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let done = IdleOnDrop(this.tracker.take());
        Poll::Ready(Ok(response.map(|inner| TrackedBody { inner, _done: done })))
    }
}

/// Marks the connection idle (kept alive, waiting) when the response is done.
struct IdleOnDrop(Option<Arc<Tracker>>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        if let Some(tracker) = &self.0 {
            tracker.enter(IDLE);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that marks its connection idle once it is dropped
    /// (hyper drops it when the last byte is written).
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _done: IdleOnDrop,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "too_many_connections");
        assert!(json["message"].as_str().unwrap().contains("retry"));
    }

    #[tokio::test]
    async fn at_the_bound_the_longest_waiting_connection_makes_room() {
        let gate = Gate::new(2);
        let first = gate.admit().expect("room");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = gate.admit().expect("room");
        second.tracker.phase.store(BUSY, Relaxed);
        let third = gate.admit().expect("the waiting connection makes room");
        assert!(first.tracker.evicted.load(Relaxed));
        assert!(!second.tracker.evicted.load(Relaxed));
        third.tracker.phase.store(BUSY, Relaxed);
        assert!(gate.admit().is_none(), "every connection is busy");
        drop(first);
        assert_eq!(gate.open_connections(), 2);
        drop(second);
        assert_eq!(gate.open_connections(), 1);
        drop(third);
        assert_eq!(gate.open_connections(), 0);
    }
}
