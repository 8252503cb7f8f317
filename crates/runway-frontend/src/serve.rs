//! App traffic: `/{app}/…` to the app's static files or a fresh instance of
//! its component, plus the front-end's `/_runway/health` and `/_runway/ready`.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use percent_encoding::percent_decode_str;
use runway_api::v1::Health;
use runway_api::{ErrorBody, FRONTEND_HEADER, REQUEST_ID_HEADER};
use runway_manifest::AppName;
use runway_runtime::{
    CLIENT_CLOSED, CallBudget, HOPS_HEADER, InternalRouter, Invocation, ResponseBody,
};
use runway_store::{LogKind, LogLevel, LogSink, NewLogEntry, now_ms};

use crate::Frontend;
use crate::deploy::{Inner, RunningApp};
use crate::events::RequestEvents;

/// The front-end's HTTP surface. App traffic is the fallback so that a
/// controller router can be merged in front of it (`runway up`).
pub fn router(frontend: Frontend) -> Router {
    Router::new()
        .route("/_runway/health", get(health))
        .route("/_runway/ready", get(ready))
        .fallback(serve)
        .with_state(frontend)
}

async fn health(State(frontend): State<Frontend>) -> Response {
    let (generation, _) = frontend.inner.status();
    axum::Json(Health {
        status: "ok".into(),
        frontend: frontend.name().to_string(),
        generation,
    })
    .into_response()
}

/// Ready once the committed routing table is loaded: a front-end that is
/// behind is never sent traffic.
async fn ready(State(frontend): State<Frontend>) -> Response {
    let (generation, ready) = frontend.inner.status();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ready { "ready" } else { "starting" }.into(),
        frontend: frontend.name().to_string(),
        generation,
    };
    (status, axum::Json(body)).into_response()
}

async fn serve(State(frontend): State<Frontend>, mut request: Request) -> Response {
    // Hops count app-to-app calls; a client cannot claim them, only another
    // front-end of the environment (signed, see `internal`), which also
    // says how many app-to-app calls the request may still cause.
    let mut hop = None;
    if request.headers().contains_key(HOPS_HEADER) {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let calls = frontend.inner.internal.load_full();
        hop = calls
            .verified_hop(
                &frontend.inner.store,
                request.headers(),
                request.method(),
                &path_and_query,
            )
            .await;
    }
    let headers = request.headers_mut();
    headers.remove(HOPS_HEADER);
    headers.remove(crate::internal::HOPS_SIGNATURE_HEADER);
    headers.remove(crate::internal::CALLS_HEADER);
    let budget = hop.map(|hop| {
        let budget = Arc::new(
            hop.calls
                .map_or_else(CallBudget::default, CallBudget::with_limit),
        );
        // Read by `serve_app` (clients cannot set extensions).
        request.extensions_mut().insert(budget.clone());
        budget
    });
    let hops = hop.map_or(0, |hop| hop.hops);
    let mut response = frontend.inner.dispatch(request, hops).await;
    // Only this front-end says how many calls a request caused.
    response
        .headers_mut()
        .remove(crate::internal::CALLS_USED_HEADER);
    if let Some(budget) = budget {
        response.headers_mut().insert(
            crate::internal::CALLS_USED_HEADER,
            http::HeaderValue::from(budget.close()),
        );
    }
    response.map(Body::new)
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let body = ErrorBody {
        code: code.to_string(),
        message,
        details: serde_json::json!({ "request_id": request_id }),
    };
    let json = serde_json::to_vec(&body).expect("error body serializes");
    http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(json))
        .expect("static response parts are valid")
}

/// Where a request path points inside an app.
enum Target<'a> {
    /// `/{app}` without the slash: redirect.
    Bare(&'a str),
    App(&'a str, &'a str),
    Root,
}

fn split_path(path: &str) -> Target<'_> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Target::Root;
    }
    match trimmed.split_once('/') {
        None => Target::Bare(trimmed),
        Some((app, rest)) => Target::App(app, rest),
    }
}

/// Decodes the path inside the app and refuses anything that could climb
/// out of it.
fn inner_path(rest: &str) -> Result<String, String> {
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| "the path is not valid UTF-8 once percent-decoded".to_string())?;
    for segment in decoded.split('/') {
        if segment == ".." || segment == "." {
            return Err(format!("the path contains a '{segment}' segment"));
        }
        if segment.contains('\\') || segment.contains('\0') {
            return Err("the path contains a backslash or NUL byte".into());
        }
    }
    Ok(decoded.into_owned())
}

impl Inner {
    /// Routes one request. Never fails: every problem becomes a response that
    /// carries the request id.
    pub(crate) async fn dispatch(
        &self,
        request: http::Request<Body>,
        hops: u32,
    ) -> http::Response<ResponseBody> {
        let started = Instant::now();
        let in_flight = crate::metrics::InFlight::start(&self.metrics.in_flight);
        let request_id = runway_server::request_id(request.headers());
        let routes = self.routes.load_full();
        // Logs the request with 499 if hyper drops this future (the client
        // went away before the response head).
        let mut abandoned = Abandoned {
            log: self.log.clone(),
            metrics: self.metrics.clone(),
            in_flight: Some(in_flight),
            frontend: self.config.name.clone(),
            started,
            request_id: request_id.clone(),
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            app: None,
            armed: true,
        };
        let path = abandoned.path.clone();

        let (app, response) = match split_path(&path) {
            Target::Root => (
                None,
                error_response(
                    StatusCode::NOT_FOUND,
                    "app_not_found",
                    "no app is served at /: apps live under /{app}/ (`runway app list` shows them)"
                        .into(),
                    &request_id,
                ),
            ),
            Target::Bare(name) if routes.apps.contains_key(name) => {
                let location = match request.uri().query() {
                    Some(query) => format!("/{name}/?{query}"),
                    None => format!("/{name}/"),
                };
                let response = http::Response::builder()
                    .status(StatusCode::PERMANENT_REDIRECT)
                    .header(LOCATION, location)
                    .body(full(Bytes::new()))
                    .expect("redirect parts are valid");
                (routes.apps.get(name).cloned(), response)
            }
            Target::Bare(name) | Target::App(name, _) if routes.failed.contains_key(name) => (
                None,
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "app_failed",
                    format!(
                        "app '{name}' could not be loaded in this environment; \
                         `runway app show {name}` says why, and deploying it again retries"
                    ),
                    &request_id,
                ),
            ),
            Target::Bare(name) | Target::App(name, _) if !routes.apps.contains_key(name) => (
                None,
                error_response(
                    StatusCode::NOT_FOUND,
                    "app_not_found",
                    format!(
                        "no app named '{name}' is running here; `runway app list` shows the deployed apps"
                    ),
                    &request_id,
                ),
            ),
            Target::Bare(_) => unreachable!("handled above"),
            Target::App(name, rest) => {
                let app = routes.apps.get(name).cloned().expect("checked above");
                abandoned.app = Some(app.clone());
                let response = self
                    .serve_app(&app, rest.to_string(), request, &request_id, hops)
                    .await;
                (Some(app), response)
            }
        };
        abandoned.armed = false;
        let method = abandoned.method.clone();
        let mut response = response;
        // The request stays in flight until its body is done.
        if let Some(guard) = abandoned.in_flight.take() {
            response.extensions_mut().insert(Arc::new(guard));
        }
        self.finish(response, started, request_id, method, path, app, &self.log)
    }

    /// A request the platform itself makes into an app (a timer run): the
    /// same path as app traffic from `serve_app` on (admission, fair share,
    /// memory budget, request log), with `app` as given (its limits may
    /// differ from the served ones: a timer's timeout).
    pub(crate) async fn run_internal(
        &self,
        app: &Arc<RunningApp>,
        request_id: &str,
        request: http::Request<Body>,
    ) -> http::Response<ResponseBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let rest = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map_or(String::new(), |(_, rest)| rest.to_string());
        let response = self.serve_app(app, rest, request, request_id, 0).await;
        self.finish(
            response,
            started,
            request_id.to_string(),
            method,
            path,
            Some(app.clone()),
            &self.log,
        )
    }

    async fn serve_app(
        &self,
        app: &Arc<RunningApp>,
        rest: String,
        request: http::Request<Body>,
        request_id: &str,
        hops: u32,
    ) -> http::Response<ResponseBody> {
        let inner = match inner_path(&rest) {
            Ok(inner) => inner,
            Err(reason) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!("{reason}; request paths must stay inside /{}/", app.name),
                    request_id,
                );
            }
        };
        if matches!(*request.method(), Method::GET | Method::HEAD)
            && let Some(response) = static_file(app, &inner, request.headers())
        {
            return response;
        }

        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > app.limits.max_body_bytes) {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than the limit of {} bytes for app {}",
                    app.limits.max_body_bytes, app.name
                ),
                request_id,
            );
        }

        let events = Arc::new(RequestEvents {
            log: self.log.clone(),
            app: Arc::from(app.name.as_str()),
            version: app.version.clone(),
            frontend: Arc::from(self.config.name.as_str()),
            request_id: request_id.to_string(),
        });
        let invocation = Invocation {
            app: Arc::from(app.name.as_str()),
            version: app.version.clone(),
            request_id: request_id.to_string(),
            config: app.config.clone(),
            kv: app.kv.clone(),
            jobs: app.jobs.clone(),
            outbox: app.outbox.clone(),
            outbound: app.outbound.clone(),
            limits: app.limits,
            events,
            hops,
            // An app-to-app call carries the budget of the incoming request
            // that caused it (set by the runtime; clients cannot set
            // extensions); a request from outside starts a new one.
            calls: request
                .extensions()
                .get::<Arc<CallBudget>>()
                .cloned()
                .unwrap_or_default(),
        };
        match self
            .runtime
            .handle(&app.component, invocation, request)
            .await
        {
            Ok(response) => response,
            Err(failure) => error_response(
                failure.status(),
                failure.code(),
                format!("app {}@{}: {failure}", app.name, app.version),
                request_id,
            ),
        }
    }

    /// Adds the platform headers and wraps the body so the request is logged
    /// when the body is done (with its real size and duration).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        response: http::Response<ResponseBody>,
        started: Instant,
        request_id: String,
        method: Method,
        path: String,
        app: Option<Arc<RunningApp>>,
        log: &LogSink,
    ) -> http::Response<ResponseBody> {
        let (mut parts, body) = response.into_parts();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            parts.headers.insert(REQUEST_ID_HEADER, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.config.name) {
            parts.headers.insert(FRONTEND_HEADER, value);
        }
        let entry = NewLogEntry {
            at_ms: now_ms(),
            kind: LogKind::Request,
            level: if parts.status.is_server_error() {
                LogLevel::Error
            } else {
                LogLevel::Info
            },
            app: app.as_ref().map(|a| a.name.to_string()),
            version: app.as_ref().map(|a| a.version.to_string()),
            frontend: Some(self.config.name.clone()),
            request_id: Some(request_id),
            method: Some(method.to_string()),
            path: Some(path),
            status: Some(i64::from(parts.status.as_u16())),
            ..Default::default()
        };
        // hyper sends no body for these and may drop it unread.
        let bodiless = method == Method::HEAD
            || parts.status.is_informational()
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED;
        let body = LoggedBody {
            metrics: self.metrics.clone(),
            in_flight: parts.extensions.remove::<Arc<crate::metrics::InFlight>>(),
            inner: body,
            bytes: 0,
            started,
            complete: bodiless,
            entry: Some(entry),
            log: log.clone(),
        };
        http::Response::from_parts(parts, body.boxed_unsync())
    }
}

fn static_file(
    app: &RunningApp,
    inner: &str,
    headers: &HeaderMap,
) -> Option<http::Response<ResponseBody>> {
    let key = if inner.is_empty() || inner.ends_with('/') {
        format!("{inner}index.html")
    } else {
        inner.to_string()
    };
    let bytes = app.package.static_file(&key)?;
    let etag = format!("\"{}-{}\"", &app.package.digest.hex()[..16], key.len());
    if headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return http::Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(ETAG, etag)
            .body(full(Bytes::new()))
            .ok();
    }
    let mime = mime_guess::from_path(&key).first_or_octet_stream();
    http::Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, mime.as_ref())
        .header(ETAG, etag)
        .header(CACHE_CONTROL, "no-cache")
        .body(full(Bytes::copy_from_slice(bytes)))
        .ok()
}

/// Counts the bytes of a response body and writes the request log row when
/// the body ends. Dropped before its end, the client went away: the row says
/// 499. A body that fails (a broken guest response, aborted on the wire)
/// makes the row an error.
struct LoggedBody {
    inner: ResponseBody,
    bytes: u64,
    started: Instant,
    /// The body was sent to its end, failed, or is never sent.
    complete: bool,
    entry: Option<NewLogEntry>,
    log: LogSink,
    metrics: Arc<crate::metrics::FrontendMetrics>,
    /// Ends with the body.
    #[allow(dead_code)]
    in_flight: Option<Arc<crate::metrics::InFlight>>,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(error))) => {
                self.complete = true;
                if let Some(entry) = &mut self.entry {
                    entry.level = LogLevel::Error;
                    entry.message = Some(format!("response aborted after the head: {error}"));
                }
            }
            Poll::Ready(None) => self.complete = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            if !self.complete && !http_body::Body::is_end_stream(&self.inner) {
                entry.status = Some(i64::from(CLIENT_CLOSED));
                entry.level = LogLevel::Info;
                entry.message = Some("client closed the connection during the response".into());
            }
            entry.duration_us = Some(self.started.elapsed().as_micros() as i64);
            entry.bytes_out = Some(self.bytes as i64);
            self.metrics.observe(&entry);
            self.log.write(entry);
        }
    }
}

/// The request row of a request whose response head was never produced
/// because hyper dropped [`Inner::dispatch`] (the client went away): 499.
/// Dropping the dispatch future also drops the runtime's, which stops the
/// guest.
struct Abandoned {
    log: LogSink,
    metrics: Arc<crate::metrics::FrontendMetrics>,
    in_flight: Option<crate::metrics::InFlight>,
    frontend: String,
    started: Instant,
    request_id: String,
    method: Method,
    path: String,
    app: Option<Arc<RunningApp>>,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let entry = NewLogEntry {
            at_ms: now_ms(),
            kind: LogKind::Request,
            level: LogLevel::Info,
            app: self.app.as_ref().map(|a| a.name.to_string()),
            version: self.app.as_ref().map(|a| a.version.to_string()),
            frontend: Some(self.frontend.clone()),
            request_id: Some(std::mem::take(&mut self.request_id)),
            method: Some(self.method.to_string()),
            path: Some(std::mem::take(&mut self.path)),
            status: Some(i64::from(CLIENT_CLOSED)),
            duration_us: Some(self.started.elapsed().as_micros() as i64),
            bytes_out: Some(0),
            message: Some("client closed the connection before the response".into()),
            ..Default::default()
        };
        self.metrics.observe(&entry);
        self.log.write(entry);
    }
}

/// App-to-app calls (`http://<app>.internal/…`) re-enter the front-end's
/// dispatch without a network hop.
pub(crate) struct AppToApp {
    pub(crate) frontend: Weak<Inner>,
}

impl InternalRouter for AppToApp {
    fn call(
        &self,
        target: AppName,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
    ) -> BoxFuture<
        'static,
        Result<http::Response<wasmtime_wasi_http::WasiBody>, wasmtime_wasi_http::Error>,
    > {
        let frontend = self.frontend.clone();
        Box::pin(async move {
            let Some(frontend) = frontend.upgrade() else {
                return Err(wasmtime_wasi_http::Error::DestinationUnavailable);
            };
            let hops = request
                .headers()
                .get(HOPS_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            // Not loaded here: served by the zone it runs in, unless that is
            // this front-end's own zone (then the local answer stands).
            let loaded = {
                let routes = frontend.routes.load();
                routes.apps.contains_key(target.as_str())
                    || routes.failed.contains_key(target.as_str())
            };
            if !loaded {
                let calls = frontend.internal.load_full();
                let location = match calls.location(&frontend.store, target.as_str()).await {
                    Ok(location) => location,
                    Err(e) => {
                        tracing::warn!(app = %target, "app-to-app call: cannot find where the app runs: {e}");
                        return Err(wasmtime_wasi_http::Error::DestinationUnavailable);
                    }
                };
                if let Some(location) = crate::internal::remote_location(&calls, location) {
                    return calls
                        .forward(&frontend.store, &target, location, request, hops)
                        .await;
                }
            }
            let (mut parts, body) = request.into_parts();
            let path_and_query = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let uri = format!("/{target}{path_and_query}");
            parts.uri = uri
                .parse()
                .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
            let request = http::Request::from_parts(parts, Body::new(body));
            Ok(frontend.dispatch(request, hops).await)
        })
    }
}
