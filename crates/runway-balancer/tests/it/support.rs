//! Real loopback servers for the tests: fake front-ends, a fake controller,
//! and an HTTP client. Everything is bounded by timeouts so a test can fail
//! but never hang.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use runway_api::ErrorBody;
use runway_api::v1::{FrontendFlags, FrontendInfo, FrontendList, FrontendState};
use runway_balancer::{Balancer, BalancerConfig, Discovery, UpstreamStatus, defaults};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use url::Url;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

/// Upper bound of any single step of a test.
pub const STEP: Duration = Duration::from_secs(10);
/// Token the fake controller accepts.
pub const TOKEN: &str = "secret-read-token";

pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Polls `condition` until it holds, for at most 5 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            panic!("never happened within 5s: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> TestBody {
    full(Bytes::new())
}

// ---------------------------------------------------------------------------
// Fake front-ends

/// A request as a fake front-end saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

struct UpstreamState {
    ready: AtomicBool,
    hits: AtomicUsize,
    health_hits: AtomicUsize,
    connections: AtomicUsize,
    first_chunk_seen: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    release: watch::Sender<bool>,
}

/// A front-end on 127.0.0.1 with a few endpoints:
///
/// - `/_runway/ready`: 200, or 503 after `set_ready(false)`;
/// - `/hold…`: answers only after `release()`;
/// - `/stream-response`: sends `first`, and `second` after `release()`;
/// - `/stream-request`: reads one body chunk, notes it, then the rest, and
///   answers with the body length;
/// - `/reset-after-headers`: sends headers and part of the body, then breaks
///   the connection;
/// - `/die-before-answer`: reads the request, then closes the connection
///   without answering;
/// - `/no-content`: 204;
/// - `/big?bytes=N`: N bytes of `x`;
/// - anything else: echoes the body, with a few headers of its own.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (release, _) = watch::channel(false);
        let state = Arc::new(UpstreamState {
            ready: AtomicBool::new(true),
            hits: AtomicUsize::new(0),
            health_hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            first_chunk_seen: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            release,
        });
        let upstream = FakeUpstream {
            addr: listener.local_addr().unwrap(),
            state,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        upstream.serve(listener);
        upstream
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                state.connections.fetch_add(1, SeqCst);
                let state = state.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            // The front-end dies with the request read and
                            // no answer sent: the connection just closes.
                            if request.uri().path() == "/die-before-answer" {
                                state.hits.fetch_add(1, SeqCst);
                                return Err::<UpstreamResponse, _>(std::io::Error::other("died"));
                            }
                            Ok(upstream_handler(state, request).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// The name the balancer gives it in a static list.
    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    pub fn url(&self) -> Url {
        format!("http://127.0.0.1:{}", self.addr.port())
            .parse()
            .unwrap()
    }

    pub fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, SeqCst);
    }

    /// App requests served (health checks not counted).
    pub fn hits(&self) -> usize {
        self.state.hits.load(SeqCst)
    }

    pub fn health_hits(&self) -> usize {
        self.state.health_hits.load(SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(SeqCst)
    }

    pub fn first_chunk_seen(&self) -> bool {
        self.state.first_chunk_seen.load(SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last_seen(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }

    /// Lets every held request finish.
    pub fn release(&self) {
        self.state.release.send_replace(true);
    }

    /// Stops listening and cuts every connection: the port refuses.
    pub fn kill(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port after [`FakeUpstream::kill`].
    pub async fn revive(&self) {
        // The killed listener closes when its aborted task is dropped,
        // which the runtime does shortly after `kill`.
        let listener = bounded("rebinding the port", async {
            loop {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => break listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await;
        self.serve(listener);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.kill();
    }
}

type UpstreamResponse = Response<BoxBody<Bytes, BoxError>>;

async fn upstream_handler(
    state: Arc<UpstreamState>,
    request: Request<Incoming>,
) -> UpstreamResponse {
    let path = request.uri().path().to_string();
    if path == "/_runway/ready" {
        // Read before counting, so a test that counts checks from before a
        // `set_ready` counts every check that saw the new value.
        let status = if state.ready.load(SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        state.health_hits.fetch_add(1, SeqCst);
        return reply(status, full("{}"));
    }
    state.hits.fetch_add(1, SeqCst);
    let (parts, body) = request.into_parts();
    let mut seen = Seen {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: Bytes::new(),
    };
    let mut release = state.release.subscribe();
    match path.as_str() {
        p if p.starts_with("/hold") => {
            state.seen.lock().unwrap().push(seen);
            let _ = release.wait_for(|released| *released).await;
            reply(StatusCode::OK, full("released"))
        }
        "/stream-response" => {
            state.seen.lock().unwrap().push(seen);
            let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, BoxError>>();
            tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"first"))))
                .unwrap();
            tokio::spawn(async move {
                let _ = release.wait_for(|released| *released).await;
                let _ = tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"second"))));
            });
            reply(StatusCode::OK, StreamBody::new(rx).boxed())
        }
        "/stream-request" => {
            let mut body = body;
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    total += data.len();
                    state.first_chunk_seen.store(true, SeqCst);
                }
            }
            state.seen.lock().unwrap().push(seen);
            reply(StatusCode::OK, full(total.to_string()))
        }
        "/reset-after-headers" => {
            state.seen.lock().unwrap().push(seen);
            // The break comes after the headers and a chunk are surely on
            // the wire.
            let chunks = futures::stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"partial"))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((
                            Err::<Frame<Bytes>, BoxError>("the front-end broke".into()),
                            2,
                        ))
                    }
                    _ => None,
                }
            });
            let mut response = reply(StatusCode::OK, StreamBody::new(chunks).boxed());
            response.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from_static("1000"),
            );
            response
        }
        "/no-content" => {
            state.seen.lock().unwrap().push(seen);
            reply(StatusCode::NO_CONTENT, empty())
        }
        "/big" => {
            state.seen.lock().unwrap().push(seen);
            let query: HashMap<_, _> = parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let mut left: usize = query.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = std::iter::from_fn(move || {
                if left == 0 {
                    return None;
                }
                let n = left.min(chunk.len());
                left -= n;
                Some(Ok::<_, BoxError>(Frame::data(chunk.slice(..n))))
            });
            reply(
                StatusCode::OK,
                StreamBody::new(futures::stream::iter(chunks)).boxed(),
            )
        }
        _ => {
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            seen.body = body.clone();
            state.seen.lock().unwrap().push(seen);
            let mut response = reply(StatusCode::OK, full(body));
            let headers = response.headers_mut();
            headers.insert("x-from-upstream", HeaderValue::from_static("yes"));
            headers.insert("connection", HeaderValue::from_static("x-upstream-secret"));
            headers.insert("x-upstream-secret", HeaderValue::from_static("1"));
            headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            headers.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
            response
        }
    }
}

fn reply(status: StatusCode, body: TestBody) -> UpstreamResponse {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

// ---------------------------------------------------------------------------
// Fake controller

struct ControllerState {
    list: Mutex<FrontendList>,
    failing: AtomicBool,
    polls: AtomicUsize,
}

/// Serves `GET /_runway/api/v1/frontends` from a list the test changes,
/// only to `Authorization: Bearer {TOKEN}`.
pub struct FakeController {
    pub addr: SocketAddr,
    state: Arc<ControllerState>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl FakeController {
    pub async fn start(frontends: Vec<FrontendInfo>) -> FakeController {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ControllerState {
            list: Mutex::new(FrontendList {
                generation: 1,
                offline_after_secs: 15,
                frontends,
                zones: Vec::new(),
            }),
            failing: AtomicBool::new(false),
            polls: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let connections = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(controller_handler(&state, request)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                connections.lock().unwrap().push(connection.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        FakeController { addr, state, tasks }
    }

    pub fn url(&self) -> Url {
        format!("http://127.0.0.1:{}", self.addr.port())
            .parse()
            .unwrap()
    }

    pub fn set(&self, frontends: Vec<FrontendInfo>) {
        self.state.list.lock().unwrap().frontends = frontends;
    }

    /// Answer 500 to every poll (or stop doing so).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, SeqCst);
    }

    /// Authorized polls answered so far.
    pub fn polls(&self) -> usize {
        self.state.polls.load(SeqCst)
    }

    /// Stops listening: discovery polls fail with "connection refused".
    pub fn kill(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.kill();
    }
}

fn controller_handler(state: &ControllerState, request: Request<Incoming>) -> UpstreamResponse {
    let json = |status: StatusCode, body: Vec<u8>| {
        let mut response = reply(status, full(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    if request.uri().path() != "/_runway/api/v1/frontends" {
        return json(StatusCode::NOT_FOUND, b"{}".to_vec());
    }
    let authorized = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
    if !authorized {
        let body = ErrorBody {
            code: "unauthorized".into(),
            message: "missing or unknown token".into(),
            details: serde_json::Value::Null,
        };
        return json(StatusCode::UNAUTHORIZED, serde_json::to_vec(&body).unwrap());
    }
    if state.failing.load(SeqCst) {
        return json(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec());
    }
    state.polls.fetch_add(1, SeqCst);
    let list = state.list.lock().unwrap().clone();
    json(StatusCode::OK, serde_json::to_vec(&list).unwrap())
}

/// A ready, enabled, app-serving front-end at `upstream`.
pub fn frontend(name: &str, upstream: &FakeUpstream) -> FrontendInfo {
    FrontendInfo {
        name: name.to_string(),
        address: upstream.url().as_str().trim_end_matches('/').to_string(),
        state: FrontendState::Ready,
        generation: 1,
        last_heartbeat_ms: Some(0),
        flags: FrontendFlags::default(),
        enabled: true,
        zone: "global".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Balancer and client

/// Defaults of the brief, on a free port, with fast health checks.
pub fn config(discovery: Discovery) -> BalancerConfig {
    let mut config = defaults("127.0.0.1:0".parse().unwrap(), discovery);
    config.health.interval = Duration::from_millis(50);
    config.health.timeout = Duration::from_millis(500);
    config.shutdown_grace = Duration::from_secs(5);
    config
}

pub fn static_config(upstreams: &[&FakeUpstream]) -> BalancerConfig {
    config(Discovery::Static(
        upstreams.iter().map(|u| u.url()).collect(),
    ))
}

pub fn controller_config(controller: &FakeController, token: &str) -> BalancerConfig {
    config(Discovery::Controller {
        url: controller.url(),
        token: token.to_string(),
        interval: Duration::from_millis(50),
    })
}

pub async fn start(config: BalancerConfig) -> Balancer {
    bounded("balancer start", Balancer::start(config))
        .await
        .expect("the balancer starts")
}

pub fn status(balancer: &Balancer, name: &str) -> Option<UpstreamStatus> {
    balancer.upstreams().into_iter().find(|u| u.name == name)
}

/// An answer read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn upstream(&self) -> String {
        self.headers
            .get("x-runway-upstream")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP client aimed at one balancer.
pub struct Http {
    client: Client<HttpConnector, TestBody>,
    addr: SocketAddr,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path))
    }

    /// Sends and returns as soon as the response headers are in.
    pub async fn send(&self, request: Request<TestBody>) -> Response<Incoming> {
        bounded("response headers", self.client.request(request))
            .await
            .expect("the balancer answers")
    }

    /// Sends and reads the whole answer.
    pub async fn call(&self, request: Request<TestBody>) -> Reply {
        let response = self.send(request).await;
        let (parts, body) = response.into_parts();
        let body = bounded("response body", body.collect())
            .await
            .expect("a complete body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(self.request(Method::GET, path).body(empty()).unwrap())
            .await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.call(self.request(Method::POST, path).body(full(body)).unwrap())
            .await
    }
}

/// An address where nothing listens.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

impl Http {
    /// Sends and reads the whole answer, returning the client's error
    /// instead of failing the test.
    pub async fn client_request(
        &self,
        request: Request<TestBody>,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
