//! Keep-alive connections from one worker to the front-ends.
//!
//! Each [`Upstream`] has one idle list per worker thread; a worker only ever
//! touches its own, so the lock around it is never contended and a
//! connection's whole life (its hyper connection task included) stays on one
//! thread. A request takes the most recently used idle connection (or opens a
//! new one), and the response body gives it back once the front-end's answer
//! was read to the end; a connection whose answer was cut is closed instead.
//!
//! This is hyper's low-level HTTP/1.1 client rather than hyper-util's pooling
//! client for one reason besides speed: a request that could not be written
//! (connect error, or a kept-alive connection the front-end had just closed)
//! comes back whole, body included, so it can be sent elsewhere without the
//! proxy ever copying it.
//!
//! Each connection counts the bytes it received, so that when an exchange
//! breaks the proxy knows whether any of the answer had arrived (such a
//! request is never sent again).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::client::UpstreamBody;
use crate::pool::Upstream;

/// Idle connections kept per front-end and per worker; more are closed.
const MAX_IDLE: usize = 1024;

/// One connection to a front-end: where requests are sent, and how many
/// bytes came back on it so far.
pub(crate) struct Conn {
    pub sender: SendRequest<UpstreamBody>,
    pub received: Arc<AtomicU64>,
}

impl Conn {
    /// Bytes received from the front-end on this connection so far.
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }
}

/// The idle connections of one upstream, one list per worker.
pub(crate) struct IdleConnections {
    per_worker: Box<[Mutex<Vec<Conn>>]>,
}

impl IdleConnections {
    pub fn new(workers: usize) -> IdleConnections {
        IdleConnections {
            per_worker: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    fn take(&self, worker: usize) -> Option<Conn> {
        self.per_worker[worker]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    fn put(&self, worker: usize, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.per_worker[worker]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

impl std::fmt::Debug for IdleConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConnections").finish_non_exhaustive()
    }
}

/// A connection lent to one request; given back with [`release`].
pub(crate) struct Lent {
    pub conn: Conn,
    /// Whether it had served a request before (and so may have been closed
    /// by the front-end meanwhile).
    pub reused: bool,
}

/// Opens and reuses one worker's connections.
pub(crate) struct Connector {
    worker: usize,
    connect_timeout: Duration,
    builder: Builder,
}

impl Connector {
    pub fn new(worker: usize, connect_timeout: Duration) -> Connector {
        Connector {
            worker,
            connect_timeout,
            builder: Builder::new(),
        }
    }

    /// A connection ready for a request: an idle one unless `fresh`, else a
    /// new one. The error is the reason a new connection failed.
    pub async fn checkout(&self, upstream: &Upstream, fresh: bool) -> Result<Lent, String> {
        if !fresh {
            // Only ready connections are given back, so one that is not
            // ready any more has been closed.
            while let Some(conn) = upstream.idle.take(self.worker) {
                if conn.sender.is_ready() {
                    return Ok(Lent { conn, reused: true });
                }
            }
        }
        let conn = self.connect(upstream, false).await?;
        Ok(Lent {
            conn,
            reused: false,
        })
    }

    /// A new connection that may be taken over after a `101 Switching
    /// Protocols` (never kept for other requests).
    pub async fn connect_upgradable(&self, upstream: &Upstream) -> Result<Conn, String> {
        self.connect(upstream, true).await
    }

    async fn connect(&self, upstream: &Upstream, upgrades: bool) -> Result<Conn, String> {
        let connecting = async {
            let addrs: Vec<SocketAddr> = match upstream.socket_addr {
                Some(addr) => vec![addr],
                None => tokio::net::lookup_host(upstream.authority.as_str())
                    .await
                    .map_err(|e| format!("cannot resolve {}: {e}", upstream.authority))?
                    .collect(),
            };
            let mut last_error = format!("{} resolves to no address", upstream.authority);
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last_error = describe_io(&error),
                }
            }
            Err(last_error)
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "connect timed out after {}",
                    crate::health::display_duration(self.connect_timeout)
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        let received = Arc::new(AtomicU64::new(0));
        let stream = Counted {
            inner: stream,
            received: received.clone(),
        };
        let (sender, connection) = self
            .builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let ended = if upgrades {
                connection.with_upgrades().await
            } else {
                connection.await
            };
            if let Err(error) = ended {
                tracing::debug!("a connection to a front-end ended: {error}");
            }
        });
        Ok(Conn { sender, received })
    }

    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// Gives a connection back to `worker`'s idle list after its answer was read
/// to the end. It usually is ready for the next request at once; when it is
/// not (the front-end answered before the request body was all sent, say), a
/// small task waits for it, so that the idle lists only hold ready
/// connections.
pub(crate) fn release(upstream: &Arc<Upstream>, worker: usize, mut conn: Conn) {
    if conn.sender.is_ready() {
        upstream.idle.put(worker, conn);
        return;
    }
    let upstream = upstream.clone();
    tokio::spawn(async move {
        if conn.sender.ready().await.is_ok() {
            upstream.idle.put(worker, conn);
        }
    });
}

/// A stream that counts the bytes read from it.
struct Counted {
    inner: TcpStream,
    received: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.received.fetch_add(read as u64, Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// "connection refused", "connection reset", …
pub(crate) fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut => "connection timed out".into(),
        AddrNotAvailable => "address not available".into(),
        _ => error.to_string(),
    }
}
