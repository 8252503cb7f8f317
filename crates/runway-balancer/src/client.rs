//! The HTTP client of the balancer's own requests: health checks and
//! controller discovery, plus the request body type shared with the proxy.
//!
//! It is hyper-util's pooling client over plain HTTP/1.1, so checks reuse
//! their connections. Proxied requests do not go through it: each worker
//! keeps its own connections to the front-ends (see [`crate::connect`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub(crate) type HttpClient = Client<HttpConnector, UpstreamBody>;

/// Idle keep-alive connections to a front-end are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle keep-alive connections kept per front-end.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

pub(crate) fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// A request body toward a front-end.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// No body (the balancer's own GETs).
    Empty,
    /// The client's body, forwarded frame by frame as it arrives.
    Streaming(Incoming),
}

impl UpstreamBody {
    pub fn empty() -> UpstreamBody {
        UpstreamBody::Empty
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Streaming(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Streaming(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Streaming(body) => body.size_hint(),
        }
    }
}
