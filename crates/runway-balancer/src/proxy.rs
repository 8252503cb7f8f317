//! The request path: pick an upstream, forward, stream the answer back.
//!
//! Bodies are streamed both ways. The one exception is a request that could
//! be retried: an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)
//! with no body or with a declared `Content-Length` of at most 64 KiB; that
//! body is read whole first so it can be sent again.
//!
//! # Retry rule
//!
//! An attempt fails when no response headers came back: connect error,
//! connection closed or reset, malformed answer. A failed attempt is retried
//! on *another* upstream, up to `max_attempts` in total, only if the request
//! is retryable as above. POST, PATCH, unknown methods and streamed bodies
//! are never retried, and nothing is retried once response headers arrived
//! (the answer, whatever its status, goes to the client).
//!
//! # Passive ejection
//!
//! A connection-level failure (connect refused or timed out, connection
//! closed or reset before the response headers) ejects the upstream from the
//! pool for `eject_for`; see [`crate::health`] for how that combines with
//! the active checks.
//!
//! # Errors
//!
//! No upstream available: `503 no_upstream`. Every attempt failed:
//! `502 upstream_unreachable`, naming the front-ends tried. Both use the API
//! error body `{code, message, details}`.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use runway_api::ErrorBody;

use crate::client::{HttpClient, UpstreamBody};
use crate::headers;
use crate::pool::{InFlight, Pool, Upstream};

/// Largest request body kept in memory so that the request can be retried.
pub(crate) const MAX_RETRY_BODY: u64 = 64 * 1024;

/// What every request handler shares.
pub(crate) struct Proxy {
    pub pool: Arc<Pool>,
    pub client: HttpClient,
    pub max_attempts: u32,
    pub eject_for: Duration,
}

impl Proxy {
    /// Serves one client request. Never fails: errors become 4xx/5xx answers.
    pub async fn handle(&self, request: Request<Incoming>, client: IpAddr) -> Response<ProxyBody> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let request_id = headers::request_id(&parts.headers);
        let method = parts.method.clone();
        let path = parts.uri.path_and_query().cloned();

        headers::to_upstream(&mut parts.headers, client, &request_id);
        parts.version = Version::HTTP_11;

        let (response, upstream, attempts) = match prepare_body(&parts, body).await {
            Ok(body) => self.forward(parts, body, &request_id).await,
            Err(response) => (response, None, 0),
        };
        let mut response = response;
        let upstream_name = upstream.as_ref().map_or("-", |u| u.name.as_str());
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
            upstream = upstream_name,
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
        parts: Parts,
        body: UpstreamBody,
        request_id: &HeaderValue,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>, u32) {
        let retryable = matches!(body, UpstreamBody::Buffered(_)) && is_idempotent(&parts.method);
        let mut parts = Some(parts);
        let mut body = Some(body);
        let mut tried: Vec<Arc<Upstream>> = Vec::new();
        let mut last_error = String::new();
        let mut attempts = 0;
        while let Some(in_flight) = self.pool.pick(&tried) {
            attempts += 1;
            let upstream = in_flight.upstream().clone();
            tried.push(upstream.clone());
            let last = !retryable || attempts >= self.max_attempts || !self.pool.has_other(&tried);
            let request = match build_request(&mut parts, &mut body, &upstream, last) {
                Some(request) => request,
                None => break,
            };
            match self.client.request(request).await {
                Ok(response) => {
                    let response = into_client_response(response, in_flight, request_id);
                    return (response, Some(upstream), attempts);
                }
                Err(error) => {
                    drop(in_flight);
                    let failure = classify(&error);
                    last_error = describe_error(&error);
                    if failure == Failure::Connection {
                        upstream.eject(self.eject_for);
                    }
                    if failure != Failure::Client {
                        tracing::warn!(
                            upstream = %upstream.name,
                            request_id = request_id.to_str().unwrap_or("-"),
                            "request to front-end {} failed before its answer ({last_error}){}",
                            upstream.name,
                            if failure == Failure::Connection && !self.eject_for.is_zero() {
                                format!(
                                    "; out of the pool for {}",
                                    crate::health::display_duration(self.eject_for)
                                )
                            } else {
                                String::new()
                            }
                        );
                    }
                    if last || failure == Failure::Client {
                        break;
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
}

/// The request body toward the front-end: streamed, or kept whole when the
/// request may be retried (see the module doc). Reading a kept body can fail
/// only on the client's side, which is answered with 400.
async fn prepare_body(parts: &Parts, body: Incoming) -> Result<UpstreamBody, Response<ProxyBody>> {
    if !is_idempotent(&parts.method) {
        return Ok(UpstreamBody::Streaming(body));
    }
    if body.is_end_stream() {
        return Ok(UpstreamBody::Buffered(None));
    }
    match body.size_hint().exact() {
        Some(length) if length <= MAX_RETRY_BODY => {
            match Limited::new(body, MAX_RETRY_BODY as usize).collect().await {
                Ok(collected) => Ok(UpstreamBody::Buffered(Some(collected.to_bytes()))),
                Err(error) => Err(error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request body could not be read: {error}"),
                    serde_json::json!({}),
                )),
            }
        }
        _ => Ok(UpstreamBody::Streaming(body)),
    }
}

/// The request for one attempt. Parts and a kept body are cloned while more
/// attempts may follow, and moved into the last one.
fn build_request(
    parts: &mut Option<Parts>,
    body: &mut Option<UpstreamBody>,
    upstream: &Upstream,
    last: bool,
) -> Option<Request<UpstreamBody>> {
    let (mut request_parts, request_body) = if last {
        (parts.take()?, body.take()?)
    } else {
        let source = parts.as_ref()?;
        let mut copy = Request::new(());
        *copy.method_mut() = source.method.clone();
        *copy.uri_mut() = source.uri.clone();
        *copy.version_mut() = source.version;
        *copy.headers_mut() = source.headers.clone();
        let copied_body = match body.as_ref()? {
            UpstreamBody::Buffered(data) => UpstreamBody::Buffered(data.clone()),
            // Streamed bodies are never retried, so their attempt is the last.
            UpstreamBody::Streaming(_) => return None,
        };
        (copy.into_parts().0, copied_body)
    };
    let mut uri = std::mem::take(&mut request_parts.uri).into_parts();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(upstream.authority.clone());
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    request_parts.uri = Uri::from_parts(uri).ok()?;
    Some(Request::from_parts(request_parts, request_body))
}

fn into_client_response(
    response: Response<Incoming>,
    in_flight: InFlight,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let upstream_name = in_flight.upstream().name_header.clone();
    headers::to_client(&mut parts.headers, request_id.clone(), upstream_name);
    let body = ProxyBody::Upstream {
        body,
        _in_flight: in_flight,
    };
    Response::from_parts(parts, body)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Why an attempt failed, as far as ejection and retry care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The upstream could not be reached or dropped the connection.
    Connection,
    /// The upstream answered something that is not HTTP.
    Upstream,
    /// The client's side failed (its body stream broke): not the upstream's
    /// fault, and not worth a retry.
    Client,
}

fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
    if error.is_connect() {
        return Failure::Connection;
    }
    match find_source::<hyper::Error>(error) {
        Some(e) if e.is_user() => Failure::Client,
        Some(e) if e.is_parse() || e.is_parse_status() => Failure::Upstream,
        _ => Failure::Connection,
    }
}

/// A short reason for a failed exchange: "connection refused", "connection
/// reset", "connection closed before message completed", …
pub(crate) fn describe_error(error: &(dyn StdError + 'static)) -> String {
    if let Some(io) = find_source::<std::io::Error>(error) {
        use std::io::ErrorKind::*;
        return match io.kind() {
            ConnectionRefused => "connection refused".into(),
            ConnectionReset => "connection reset".into(),
            ConnectionAborted => "connection aborted".into(),
            TimedOut => "connection timed out".into(),
            AddrNotAvailable => "address not available".into(),
            _ => io.to_string(),
        };
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

/// An API error body answer.
fn error_response(
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
    let mut response = Response::new(ProxyBody::Full(Some(bytes.clone())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A response body toward the client.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// The front-end's body, streamed; the request counts as outstanding on
    /// the upstream until this is dropped.
    Upstream {
        body: Incoming,
        _in_flight: InFlight,
    },
    /// An answer made by the balancer itself.
    Full(Option<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
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
            ProxyBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
