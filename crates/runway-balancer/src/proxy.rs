//! The request path: pick an upstream, forward, stream the answer back.
//!
//! Bodies are streamed both ways and never copied: the request body goes to
//! the front-end as it arrives, the answer comes back frame by frame, and the
//! request counts as outstanding on its upstream until the last frame was
//! sent to the client.
//!
//! # Retry rule
//!
//! A request is *retryable* when its method is idempotent (GET, HEAD,
//! OPTIONS, PUT, DELETE, TRACE) and it has no body or a declared
//! `Content-Length` of at most 64 KiB. Only a request that was never written
//! to a front-end is retried: the connection to the chosen upstream could not
//! be opened (refused, timed out, unresolvable) or closed before the request
//! went out. Such a request is still whole, body included (see
//! [`crate::connect`]), so it goes to *another* upstream as is, up to
//! `max_attempts` in total. A retryable request *without a body* is also
//! sent to another upstream when the connection failed after it was written
//! but before any byte of an answer came (the front-end died mid-request): a
//! copy of its head is kept for that. Each connection counts the bytes it
//! received, so a request whose answer had started to arrive (even a partial
//! head) is never sent again. POST, PATCH and other methods, and bodies over
//! 64 KiB, are never sent to another upstream; a request with a body is not
//! retried once written, and nothing is retried after response headers
//! arrived (the answer, whatever its status, goes to the client).
//!
//! Separately, a kept-alive connection that turns out to have been closed by
//! the front-end before the request was written is replaced by a new
//! connection to the *same* upstream, once, for any method: that is not a
//! retry, the request simply had not left yet.
//!
//! # Passive ejection
//!
//! Only a failure of the front-end itself ejects it from the pool for
//! `eject_for`: a connection could not be opened (refused, timed out,
//! unresolvable), or a new connection was closed or reset before any byte of
//! the request was written. An exchange that breaks once the request went out
//! (no answer, a truncated or malformed answer) is one app's problem, not the
//! front-end's: a guest whose response is broken must not take every other
//! app off that front-end, so it ejects nothing. (A kept-alive connection
//! found closed is not a failure either: it may be the front-end closing an
//! idle connection at the very moment it was reused.) Ejections never take
//! more than `max_ejection_percent` of the pool out (see [`crate::pool`]);
//! see [`crate::health`] for how ejection combines with the active checks.
//!
//! # Errors
//!
//! No upstream available: `503 no_upstream`. Every attempt failed:
//! `502 upstream_unreachable`, naming the front-ends tried. Both use the API
//! error body `{code, message, details}`.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use runway_api::ErrorBody;

use crate::client::UpstreamBody;
use crate::connect::{self, Conn, Connector};
use crate::headers::{self, ClientAddr};
use crate::pool::{Ejection, InFlight, Pool, Upstream};
use crate::routes::RouteTable;

/// Largest request body of a request that may be sent to another upstream.
pub(crate) const MAX_RETRY_BODY: u64 = 64 * 1024;

/// One worker's request handler.
pub(crate) struct Proxy {
    /// Where requests go by host and path (one catch-all pool unless the
    /// balancer is a reverse proxy with routes).
    pub routes: Arc<RouteTable>,
    /// The controller, for its API and dashboard (see [`crate::BalancerConfig::platform`]).
    pub platform: Option<Arc<Pool>>,
    pub connector: Connector,
    pub max_attempts: u32,
    pub eject_for: Duration,
    /// `/_runway/metrics` and the counts behind it.
    pub metrics: Arc<crate::metrics::BalancerMetrics>,
}

/// How one attempt on one upstream ended.
enum Attempt {
    /// Response headers came back.
    Answered(Response<Incoming>, Conn),
    /// The request was not written; here it is back, with the reason.
    Unsent(Request<UpstreamBody>, String),
    /// The request was (at least partly) written, then the exchange failed;
    /// `answered`: some bytes of an answer had arrived.
    Failed { error: hyper::Error, answered: bool },
}

impl Proxy {
    /// Serves one client request. Never fails: errors become 5xx answers.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        client: &ClientAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        // `Upgrade` (WebSocket) over HTTP/1.1: passed through, see `tunnel`.
        let upgrade = headers::upgrade_of(&request)
            .map(|protocol| (protocol, hyper::upgrade::on(&mut request)));
        let (mut parts, body) = request.into_parts();
        let request_id = headers::request_id(&parts.headers);
        let method = parts.method.clone();
        let path = parts.uri.path_and_query().cloned();

        // HTTP/2 carries the host in the request's authority: front-ends
        // (and forwarding headers) get it as `Host`, as from HTTP/1.1.
        if !parts.headers.contains_key(HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(HOST, host);
        }
        headers::to_upstream(&mut parts.headers, client, &request_id);
        parts.version = Version::HTTP_11;
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            // An absolute-form target: front-ends get the origin form.
            let origin = path.clone().unwrap_or(PathAndQuery::from_static("/"));
            parts.uri = Uri::from(origin);
        }
        if let Some((protocol, _)) = &upgrade {
            headers::keep_upgrade(&mut parts.headers, protocol.clone());
        }
        let request = Request::from_parts(parts, UpstreamBody::Streaming(body));

        let path_only = path.as_ref().map_or("/", |p| p.path());
        if path_only == runway_net::metrics::ENVIRONMENT_PATH && method == Method::GET {
            let (parts, text) = self
                .metrics
                .endpoint
                .respond(request.headers())
                .into_parts();
            let mut response =
                Response::from_parts(parts, ProxyBody::Full(Some(Bytes::from(text))));
            response
                .headers_mut()
                .insert(headers::REQUEST_ID, request_id.clone());
            return response;
        }
        let pool = match &self.platform {
            Some(platform) if crate::config::is_platform_path(path_only) => Some(platform),
            _ => {
                let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
                self.routes.pick(host, path_only)
            }
        };
        let (mut response, upstream, attempts) = match (pool, upgrade) {
            (Some(pool), Some((_, client_side))) => {
                self.tunnel(pool, request, client_side, &request_id).await
            }
            (Some(pool), None) => self.forward(pool, request, &request_id).await,
            (None, _) => (no_route(&request), None, 0),
        };
        self.metrics.count(
            upstream.as_ref().map(|u| u.name.as_str()),
            response.status().as_u16(),
        );
        if response.headers().get(&headers::REQUEST_ID).is_none() {
            response
                .headers_mut()
                .insert(headers::REQUEST_ID, request_id.clone());
        }
        tracing::info!(
            target: "runway_balancer::access",
            method = %method,
            path = path.as_ref().map_or("/", |p| p.as_str()),
            status = response.status().as_u16(),
            upstream = upstream.as_ref().map_or("-", |u| u.name.as_str()),
            attempts,
            elapsed_ms = started.elapsed().as_millis() as u64,
            request_id = request_id.to_str().unwrap_or("-"),
        );
        response
    }

    /// Sends the request to upstreams until one answers or the retry rule
    /// says stop. Returns the answer, the upstream that gave it and the
    /// number of attempts.
    async fn forward(
        &self,
        pool: &Pool,
        mut request: Request<UpstreamBody>,
        request_id: &HeaderValue,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>, u32) {
        let retryable = is_retryable(&request);
        // An HTTP/1.0 client may send no Host; the front-end then gets the
        // upstream's own.
        let needs_host = !request.headers().contains_key(HOST);
        let mut tried: Vec<Arc<Upstream>> = Vec::new();
        let mut last_error = String::new();
        let mut attempts = 0;
        while let Some(in_flight) = pool.pick(&tried) {
            attempts += 1;
            let upstream = in_flight.upstream().clone();
            if needs_host && let Ok(host) = HeaderValue::from_str(upstream.authority.as_str()) {
                request.headers_mut().insert(HOST, host);
            }
            // A bodiless idempotent request can be sent again even after it
            // was written, as long as no answer came back: keep a copy.
            let spare =
                (retryable && request.body().is_end_stream()).then(|| bodiless_copy(&request));
            match self.send(&upstream, request).await {
                Attempt::Answered(response, conn) => {
                    let response = self.answer(response, in_flight, conn, request_id);
                    return (response, Some(upstream), attempts);
                }
                Attempt::Unsent(returned, reason) => {
                    drop(in_flight);
                    // The front-end itself failed: nothing of the request
                    // reached it.
                    let ejection = pool.eject(&upstream, self.eject_for);
                    self.warn_failed(&upstream, request_id, &reason, ejection);
                    last_error = reason;
                    tried.push(upstream);
                    if !retryable || attempts >= self.max_attempts {
                        break;
                    }
                    request = returned;
                }
                Attempt::Failed { error, answered } => {
                    drop(in_flight);
                    // The request reached the front-end: whatever broke
                    // (one app's answer, most likely) is no reason to take
                    // the front-end out for every other app.
                    let failure = classify(&error);
                    last_error = describe_error(&error);
                    if failure != Failure::Client {
                        self.warn_failed(&upstream, request_id, &last_error, Ejection::Disabled);
                    }
                    tried.push(upstream);
                    match spare {
                        Some(copy)
                            if failure == Failure::Connection
                                && !answered
                                && attempts < self.max_attempts =>
                        {
                            request = copy;
                        }
                        _ => break,
                    }
                }
            }
        }
        let response = if tried.is_empty() {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_upstream",
                "no front-end is ready to serve this request; check `runway frontend list`"
                    .to_string(),
                serde_json::json!({}),
            )
        } else {
            let names: Vec<&str> = tried.iter().map(|u| u.name.as_str()).collect();
            error_response(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "no answer from front-end{} {} ({last_error}); check `runway frontend list` \
                     and the front-ends' logs",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                ),
                serde_json::json!({ "tried": names }),
            )
        };
        (response, None, attempts)
    }

    /// An `Upgrade` request (a WebSocket handshake): sent once, on a new
    /// connection of its own, never retried. If the front-end answers `101`,
    /// the client's and the front-end's connections are joined and bytes
    /// are copied both ways until either side closes; the request counts as
    /// outstanding on its upstream for as long. Any other answer is passed
    /// on as usual.
    async fn tunnel(
        &self,
        pool: &Pool,
        request: Request<UpstreamBody>,
        client_side: hyper::upgrade::OnUpgrade,
        request_id: &HeaderValue,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>, u32) {
        let Some(in_flight) = pool.pick(&[]) else {
            return (
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_upstream",
                    "no front-end is ready to serve this request; check `runway frontend list`"
                        .to_string(),
                    serde_json::json!({}),
                ),
                None,
                0,
            );
        };
        let upstream = in_flight.upstream().clone();
        let unreachable = |reason: String| {
            error_response(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "no answer from front-end {} to an upgrade request ({reason}); check \
                     `runway frontend list` and the front-ends' logs",
                    upstream.name
                ),
                serde_json::json!({ "tried": [upstream.name] }),
            )
        };
        let mut conn = match self.connector.connect_upgradable(&upstream).await {
            Ok(conn) => conn,
            Err(reason) => return (unreachable(reason), Some(upstream.clone()), 1),
        };
        let mut response = match conn.sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                return (
                    unreachable(describe_error(&error)),
                    Some(upstream.clone()),
                    1,
                );
            }
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let response = self.answer(response, in_flight, conn, request_id);
            return (response, Some(upstream), 1);
        }
        let upstream_side = hyper::upgrade::on(&mut response);
        let protocol = response.headers().get(http::header::UPGRADE).cloned();
        let (mut parts, _) = response.into_parts();
        let upstream_name = in_flight.upstream().name_header.clone();
        headers::to_client(&mut parts.headers, request_id.clone(), upstream_name);
        if let Some(protocol) = protocol {
            headers::keep_upgrade(&mut parts.headers, protocol);
        }
        let name = upstream.name.clone();
        tokio::spawn(async move {
            // Held until the tunnel closes: the upstream is busy meanwhile.
            let _in_flight = in_flight;
            let _conn = conn;
            match tokio::try_join!(client_side, upstream_side) {
                Ok((client_io, upstream_io)) => {
                    let mut client_io = hyper_util::rt::TokioIo::new(client_io);
                    let mut upstream_io = hyper_util::rt::TokioIo::new(upstream_io);
                    if let Err(error) =
                        tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io).await
                    {
                        tracing::debug!(upstream = %name, "an upgraded connection ended: {error}");
                    }
                }
                Err(error) => {
                    tracing::debug!(upstream = %name, "an upgrade did not complete: {error}");
                }
            }
        });
        let response = Response::from_parts(parts, ProxyBody::Full(None));
        (response, Some(upstream), 1)
    }

    /// One attempt on `upstream`, on a kept-alive connection if there is one.
    async fn send(&self, upstream: &Upstream, mut request: Request<UpstreamBody>) -> Attempt {
        let mut fresh = false;
        loop {
            let lent = match self.connector.checkout(upstream, fresh).await {
                Ok(lent) => lent,
                Err(reason) => return Attempt::Unsent(request, reason),
            };
            let mut conn = lent.conn;
            let received = conn.received();
            match conn.sender.try_send_request(request).await {
                Ok(response) => return Attempt::Answered(response, conn),
                Err(mut error) => match error.take_message() {
                    // The front-end had closed this kept-alive connection:
                    // the request did not leave, a new connection takes it.
                    Some(returned) if lent.reused => {
                        request = returned;
                        fresh = true;
                    }
                    Some(returned) => {
                        return Attempt::Unsent(returned, describe_error(error.error()));
                    }
                    None => {
                        return Attempt::Failed {
                            error: error.into_error(),
                            answered: conn.received() > received,
                        };
                    }
                },
            }
        }
    }

    fn answer(
        &self,
        response: Response<Incoming>,
        in_flight: InFlight,
        conn: Conn,
        request_id: &HeaderValue,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        let upstream_name = in_flight.upstream().name_header.clone();
        headers::to_client(&mut parts.headers, request_id.clone(), upstream_name);
        let body = ProxyBody::Upstream {
            body,
            finished: false,
            conn: Some(conn),
            worker: self.connector.worker(),
            in_flight,
        };
        Response::from_parts(parts, body)
    }

    fn warn_failed(
        &self,
        upstream: &Upstream,
        request_id: &HeaderValue,
        reason: &str,
        ejection: Ejection,
    ) {
        let consequence = match ejection {
            Ejection::Ejected => format!(
                "; out of the pool for {}",
                crate::health::display_duration(self.eject_for)
            ),
            Ejection::Disabled => String::new(),
            Ejection::Capped { ejected, of } => format!(
                "; left in the pool: {ejected} of {of} front-ends are out already and \
                 --max-ejection-percent allows no more"
            ),
        };
        tracing::warn!(
            upstream = %upstream.name,
            request_id = request_id.to_str().unwrap_or("-"),
            "request to front-end {} failed before its answer ({reason}){consequence}",
            upstream.name,
        );
    }
}

/// See the retry rule in the module doc.
/// The same request without a body (for one that has none).
fn bodiless_copy(request: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(UpstreamBody::empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn is_retryable(request: &Request<UpstreamBody>) -> bool {
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let small = request.body().is_end_stream()
        || request
            .body()
            .size_hint()
            .exact()
            .is_some_and(|length| length <= MAX_RETRY_BODY);
    idempotent && small
}

/// Why an exchange failed after the request was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The front-end closed or reset the connection.
    Connection,
    /// The front-end answered something that is not HTTP.
    Upstream,
    /// The client's side failed (its body stream broke): not the front-end's
    /// fault.
    Client,
}

fn classify(error: &hyper::Error) -> Failure {
    if error.is_user() {
        Failure::Client
    } else if error.is_parse() || error.is_parse_status() {
        Failure::Upstream
    } else {
        Failure::Connection
    }
}

/// A short reason for a failed exchange: "connection refused", "connection
/// reset", "connection closed before message completed", …
pub(crate) fn describe_error(error: &(dyn StdError + 'static)) -> String {
    if let Some(io) = find_source::<std::io::Error>(error) {
        return connect::describe_io(io);
    }
    if let Some(hyper) = find_source::<hyper::Error>(error) {
        return hyper.to_string();
    }
    let mut innermost: &dyn StdError = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The answer to a request that no route of a reverse proxy takes.
fn no_route(request: &Request<UpstreamBody>) -> Response<ProxyBody> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("(no host)");
    error_response(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route of this proxy serves host {host} and path {}; check the host name and \
             the path, or add a [[route]] to the proxy's configuration",
            request.uri().path()
        ),
        serde_json::json!({ "host": host, "path": request.uri().path() }),
    )
}

/// An API error body answer.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    details: serde_json::Value,
) -> Response<ProxyBody> {
    let body = ErrorBody {
        code: code.to_string(),
        message,
        details,
    };
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let length = bytes.len();
    let mut response = Response::new(ProxyBody::Full(Some(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A response body toward the client.
pub(crate) enum ProxyBody {
    /// The front-end's body, streamed. The request counts as outstanding on
    /// its upstream until this is dropped; the connection goes back to the
    /// worker's idle list then, if the body was read to the end.
    Upstream {
        body: Incoming,
        finished: bool,
        conn: Option<Conn>,
        worker: usize,
        in_flight: InFlight,
    },
    /// An answer made by the balancer itself.
    Full(Option<Bytes>),
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let ProxyBody::Upstream {
            body,
            finished,
            conn,
            worker,
            in_flight,
        } = self
            && (*finished || body.is_end_stream())
            && let Some(conn) = conn.take()
        {
            connect::release(in_flight.upstream(), *worker, conn);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, finished, .. } => {
                let frame = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(None) = frame {
                    *finished = true;
                }
                frame
            }
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
