//! One request, one fresh instance: limits, deadline, and the translation of
//! everything that can go wrong into a [`Failure`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::capture::Capture;
use crate::engine::{AppTicket, mib_ceil};
use crate::fair::{CpuShare, Fair};
use crate::host::{HostState, MemoryCap, MemoryCapExceeded};
use crate::outbound::OutboundHooks;
use crate::{Invocation, InvocationEvents, LoadedComponent, Runtime, Stream};

/// The body of a response produced by a guest (or by the platform on its
/// behalf): streamed, possibly while the guest still runs.
pub type ResponseBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// How long a request waits for a free instance slot before it is refused.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Why a request to an app did not get the app's response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the app trapped: {0}")]
    Trap(String),
    #[error("the app did not respond within its deadline of {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the app exceeded its memory limit: {0}")]
    MemoryLimit(String),
    #[error("the app returned without sending a response")]
    NoResponse,
    #[error("the app reported an error instead of a response: {0}")]
    GuestError(String),
    #[error("the request body is larger than the app's limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("all {0} instance slots are busy; retry later")]
    Overloaded(u32),
    #[error(
        "the request body did not arrive within {} ms; send it at once, or raise the environment's --body-read-timeout-ms",
        .0.as_millis()
    )]
    BodyTimeout(Duration),
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    #[error(
        "the environment is already buffering {} MiB of request bodies (--body-buffer-mib); retry later",
        .0 >> 20
    )]
    BodyBufferFull(u64),
    #[error(
        "the app is at its concurrency limit of {0} requests in flight; retry later \
         (`[limits] concurrency` in runway.toml or the environment's --app-concurrency sets it)"
    )]
    AppBusy(u32),
    #[error(
        "no memory budget for another instance with a {needed_mib} MiB memory cap within {} ms \
         (the app's share is {app_share_mib} MiB, the environment's --memory-budget-mib {budget_mib}); \
         retry later, or lower the app's [limits] memory_mib",
        SLOT_WAIT.as_millis()
    )]
    MemoryBudget {
        needed_mib: u32,
        app_share_mib: u32,
        budget_mib: u32,
    },
    #[error("the app could not be started: {0}")]
    Instantiate(String),
    #[error("the app's response body is broken: {0}")]
    BadResponse(String),
    #[error("the client closed the connection before the response was complete")]
    ClientClosed,
}

/// The status logged for a request whose client went away (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

impl Failure {
    /// The HTTP status the client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Overloaded(_)
            | Failure::BodyBufferFull(_)
            | Failure::AppBusy(_)
            | Failure::MemoryBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Failure::BodyRead(_) => StatusCode::BAD_REQUEST,
            Failure::ClientClosed => {
                StatusCode::from_u16(CLIENT_CLOSED).expect("499 is a valid status code")
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short stable name for logs and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "app_trapped",
            Failure::Timeout(_) => "app_timeout",
            Failure::MemoryLimit(_) => "app_memory_limit",
            Failure::NoResponse => "app_no_response",
            Failure::GuestError(_) => "app_error",
            Failure::BodyTooLarge(_) => "payload_too_large",
            Failure::Overloaded(_) => "overloaded",
            Failure::BodyTimeout(_) => "request_body_timeout",
            Failure::BodyRead(_) => "request_body_error",
            Failure::BodyBufferFull(_) => "body_buffer_full",
            Failure::AppBusy(_) => "app_busy",
            Failure::MemoryBudget { .. } => "memory_budget_exhausted",
            Failure::Instantiate(_) => "app_start_failed",
            Failure::BadResponse(_) => "app_bad_response",
            Failure::ClientClosed => "client_closed",
        }
    }
}

/// The epoch callback's way of stopping a guest at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(crate) struct DeadlineExceeded;

impl Runtime {
    /// Runs `request` on a fresh instance of `component`.
    ///
    /// Returns as soon as the guest has produced the response head; the body
    /// streams while the guest keeps running (still under its deadline).
    /// Failures after that point reach [`crate::InvocationEvents::failed`] and
    /// end the body with an error (hyper then aborts the response). Dropping
    /// this future, or the response body before its end, stops the guest at
    /// its next yield and frees its instance slot.
    pub async fn handle<B>(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        request: http::Request<B>,
    ) -> Result<http::Response<ResponseBody>, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        // Everything the platform waits for from the client comes first: a
        // slow client must not hold an instance, a slot or memory budget.
        let (request, body_permit) = match self
            .buffer_body(request, invocation.limits.max_body_bytes)
            .await
        {
            Ok(buffered) => buffered,
            Err(failure) => {
                invocation.events.failed(&failure);
                return Err(failure);
            }
        };
        let (admission, tenant) = match self.admit(&invocation).await {
            Ok(admitted) => admitted,
            Err(failure) => {
                invocation.events.failed(&failure);
                return Err(failure);
            }
        };
        let permit = (admission, body_permit);

        let limits = invocation.limits;
        let events = invocation.events.clone();
        let too_large = Arc::new(AtomicBool::new(false));
        let request = limit_body(request, limits.max_body_bytes, too_large.clone());

        let stdout = Capture::new(Stream::Stdout, events.clone());
        let stderr = Capture::new(Stream::Stderr, events.clone());
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let memory_limit = usize::try_from(limits.memory_bytes.min(inner.config.max_memory_bytes))
            .unwrap_or(usize::MAX);
        let mut store = Store::new(
            &inner.engine,
            HostState {
                wasi,
                http: WasiHttpCtx::new(),
                table: Default::default(),
                hooks: OutboundHooks {
                    policy: invocation.outbound.clone(),
                    events: events.clone(),
                    request_id: invocation.request_id.clone(),
                    hops: invocation.hops,
                    calls: invocation.calls.clone(),
                },
                config: invocation.config.clone(),
                kv: invocation.kv.clone(),
                jobs: invocation.jobs.clone(),
                outbox: invocation.outbox.clone(),
                limiter: MemoryCap {
                    limit: memory_limit,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        let deadline = Instant::now() + limits.timeout;
        // Every epoch tick a CPU-bound guest yields to the executor, so one
        // busy app cannot starve the others; past its deadline it is stopped.
        store.set_epoch_deadline(1);
        let interrupted = inner.interrupted.clone();
        // Tells the guest's run slot that it yielded still runnable.
        let yielded = Arc::new(AtomicBool::new(false));
        let tick_yielded = yielded.clone();
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline || interrupted.load(Ordering::Relaxed) {
                Err(DeadlineExceeded.into())
            } else {
                tick_yielded.store(true, Ordering::Relaxed);
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let interrupted = inner.interrupted.clone();

        // A HEAD answer has no body for hyper to poll: dropping it is not a
        // sign that the client went away.
        let head_only = request.method() == Method::HEAD;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (incoming, outparam) = {
            let mut http = store.data_mut().http();
            let incoming = http
                .new_incoming_request(Scheme::Http, request)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
            let outparam = http
                .new_response_outparam(sender)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
            (incoming, outparam)
        };

        let pre = component.pre.clone();
        let timeout = limits.timeout;
        // Who reports how the guest ended once the response went out: the
        // task if it ends after that, this function if it ended before (one
        // swap each, so exactly one of them does, and no second task per
        // request is needed).
        let handoff = Arc::new(AtomicU8::new(PENDING));
        let task_handoff = handoff.clone();
        let task_events = events.clone();
        // How the guest ended, for the response body: set before the store
        // (and with it the guest's end of the body) is dropped, so a body
        // that ends because its guest died is never taken for a complete one.
        let ended: Arc<OnceLock<Option<Failure>>> = Arc::new(OnceLock::new());
        let task_ended = ended.clone();
        // Dropping `cancel` (this future dropped by hyper, or the response
        // body dropped before its end: the client went away) stops the guest
        // at its next yield instead of its deadline, and frees its slot.
        let (mut cancel, cancelled) = cancel_pair();
        let task = tokio::spawn(async move {
            let _permit = permit;
            // Instantiation and the handler run in the tenant's CPU share;
            // the deadline and the client going away are watched outside it.
            let run = Fair::new(
                async {
                    let proxy = pre.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, incoming, outparam)
                        .await
                },
                tenant,
                yielded,
                interrupted,
            );
            // The epoch deadline stops guests that compute; this one stops
            // guests that wait (on a timer, a socket, another app).
            let outcome = tokio::select! {
                biased;
                () = cancelled => Some(Failure::ClientClosed),
                result = tokio::time::timeout(timeout, run) => match result {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(classify(&error, timeout)),
                    Err(_) => Some(Failure::Timeout(timeout)),
                },
            };
            stdout.finish();
            stderr.finish();
            let _ = task_ended.set(outcome.clone());
            drop(store);
            if task_handoff.swap(TASK_DONE, Ordering::AcqRel) == DELIVERED {
                if let Some(failure) = &outcome
                    && *failure != Failure::ClientClosed
                {
                    task_events.failed(failure);
                }
                return None;
            }
            outcome
        });

        let body_failure = move |failure: Failure| {
            if too_large.load(Ordering::Relaxed) {
                Failure::BodyTooLarge(limits.max_body_bytes)
            } else {
                failure
            }
        };
        match receiver.await {
            Ok(Ok(response)) => {
                if handoff.swap(DELIVERED, Ordering::AcqRel) == TASK_DONE
                    && let Ok(Some(failure)) = task.await
                {
                    // The guest is already gone and its head not sent yet:
                    // the client gets the error, not a body that cannot end well.
                    events.failed(&failure);
                    return Err(failure);
                }
                Ok(GuestBody::wrap(response, head_only, ended, cancel, events))
            }
            Ok(Err(code)) => {
                // An answer all the same: the guest may finish its work.
                cancel.detach();
                let failure = body_failure(Failure::GuestError(format!("{code:?}")));
                events.failed(&failure);
                Err(failure)
            }
            Err(_) => {
                let failure = match task.await {
                    Ok(Some(failure)) => failure,
                    Ok(None) => Failure::NoResponse,
                    Err(join) => Failure::Trap(format!("the request task failed: {join}")),
                };
                let failure = body_failure(failure);
                events.failed(&failure);
                Err(failure)
            }
        }
    }
}

/// What one admitted request holds until its guest task ends: its app's
/// concurrency ticket, its memory cap in the app's share and in the
/// environment's budget, and an instance slot.
struct Admission {
    _app: AppTicket,
    _app_memory: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl Runtime {
    /// Reads the whole request body (at most `max` bytes) within the body-read
    /// timeout, counting its bytes against the environment's body buffer.
    async fn buffer_body<B>(
        &self,
        request: http::Request<B>,
        max: u64,
    ) -> Result<(http::Request<Full<Bytes>>, Option<OwnedSemaphorePermit>), Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        if body.is_end_stream() {
            return Ok((
                http::Request::from_parts(parts, Full::new(Bytes::new())),
                None,
            ));
        }
        let inner = &self.inner;
        let timeout = inner.config.body_read_timeout;
        let pool = inner.body_buffer.clone();
        let read = async move {
            let mut body = std::pin::pin!(body);
            let mut chunks: Vec<Bytes> = Vec::new();
            let mut len: u64 = 0;
            let mut held: Option<OwnedSemaphorePermit> = None;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| Failure::BodyRead(e.into().to_string()))?;
                let Ok(data) = frame.into_data() else {
                    // Trailers: nothing a guest can read through wasi:http
                    // before the body; they are dropped.
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                len += data.len() as u64;
                if len > max {
                    return Err(Failure::BodyTooLarge(max));
                }
                let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
                let permit = pool
                    .clone()
                    .try_acquire_many_owned(n)
                    .map_err(|_| Failure::BodyBufferFull(inner.config.body_buffer_bytes))?;
                match &mut held {
                    Some(held) => held.merge(permit),
                    None => held = Some(permit),
                }
                chunks.push(data);
            }
            let bytes = match chunks.len() {
                0 => Bytes::new(),
                1 => chunks.pop().expect("one chunk"),
                _ => {
                    let mut all = bytes::BytesMut::with_capacity(len as usize);
                    for chunk in chunks {
                        all.extend_from_slice(&chunk);
                    }
                    all.freeze()
                }
            };
            Ok((bytes, held))
        };
        let (bytes, held) = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| Failure::BodyTimeout(timeout))??;
        Ok((http::Request::from_parts(parts, Full::new(bytes)), held))
    }

    /// Takes what an instance of the invocation's app needs: a place under
    /// its app's concurrency limit (or 503 at once), its memory cap from the
    /// app's share and the environment's budget, and an instance slot (each
    /// waited for at most [`SLOT_WAIT`] in all). Also returns the CPU share
    /// its guest runs in: its tenant's (see `fair`).
    async fn admit(&self, invocation: &Invocation) -> Result<(Admission, Arc<CpuShare>), Failure> {
        let inner = &self.inner;
        let config = &inner.config;
        let limit = invocation
            .limits
            .concurrency
            .map_or(config.app_concurrency, |c| c.min(config.app_concurrency));
        let gate = self.app_gate(&invocation.app);
        let app = gate.enter(limit).ok_or(Failure::AppBusy(limit))?;
        let until = tokio::time::Instant::now() + SLOT_WAIT;
        let needed = mib_ceil(invocation.limits.memory_bytes.min(config.max_memory_bytes));
        let no_budget = || Failure::MemoryBudget {
            needed_mib: needed,
            app_share_mib: gate.memory_share_mib,
            budget_mib: mib_ceil(config.memory_budget_bytes),
        };
        let app_memory =
            match tokio::time::timeout_at(until, gate.memory.clone().acquire_many_owned(needed))
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => return Err(no_budget()),
            };
        let memory =
            match tokio::time::timeout_at(until, inner.memory.clone().acquire_many_owned(needed))
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => return Err(no_budget()),
            };
        let slot = match tokio::time::timeout_at(until, inner.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(Failure::Overloaded(config.max_instances)),
        };
        let tenant = invocation.calls.tenant(|| gate.cpu.clone());
        let admission = Admission {
            _app: app,
            _app_memory: app_memory,
            _memory: memory,
            _slot: slot,
        };
        Ok((admission, tenant))
    }
}

/// The request's side of the guest task's cancellation: dropped before
/// [`Cancel::detach`], it stops the guest.
struct Cancel(Option<tokio::sync::oneshot::Sender<()>>);

impl Cancel {
    /// The response is complete: the guest may run on to its deadline.
    fn detach(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(());
        }
    }
}

/// A [`Cancel`] and the future that completes when it is dropped without
/// being detached.
fn cancel_pair() -> (Cancel, impl Future<Output = ()> + Send + 'static) {
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let cancelled = async move {
        if receiver.await.is_ok() {
            std::future::pending::<()>().await;
        }
    };
    (Cancel(Some(sender)), cancelled)
}

/// The guest's response body as the client gets it. It never lets a broken
/// body look complete: a body that ends short of its `content-length`, goes
/// past it, or ends because its guest trapped or timed out yields an error
/// instead of its end, which makes hyper abort the response (no terminating
/// chunk; connection closed before the declared length). To that end the last
/// byte of a `content-length` body is held back until the guest has finished
/// the body (hyper ends the response as soon as the declared length is
/// written). Dropped before its end (the client went away), it stops the guest.
struct GuestBody {
    inner: ResponseBody,
    /// The response's `content-length`, if it declared one.
    declared: Option<u64>,
    /// Data bytes passed on so far (the held byte not included).
    sent: u64,
    /// The last byte of a `content-length` body, until the guest finished it.
    held: Option<Bytes>,
    /// The body ended (well or not): nothing more to poll.
    done: bool,
    ended: Arc<OnceLock<Option<Failure>>>,
    cancel: Cancel,
    events: Arc<dyn InvocationEvents>,
}

impl GuestBody {
    fn wrap(
        response: http::Response<ResponseBody>,
        head_only: bool,
        ended: Arc<OnceLock<Option<Failure>>>,
        mut cancel: Cancel,
        events: Arc<dyn InvocationEvents>,
    ) -> http::Response<ResponseBody> {
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let status = response.status();
        // hyper sends no body for these and drops it unread.
        let bodiless = head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || declared == Some(0);
        if bodiless {
            cancel.detach();
        }
        response.map(|inner| {
            GuestBody {
                inner,
                declared,
                sent: 0,
                held: None,
                done: bodiless && !head_only,
                ended,
                cancel,
                events,
            }
            .boxed_unsync()
        })
    }

    /// Ends the body with an error (so hyper aborts the response), reporting
    /// `failure` unless the guest task already did.
    fn fail(
        &mut self,
        failure: Failure,
        report: bool,
    ) -> Poll<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        self.done = true;
        self.held = None;
        if report {
            self.events.failed(&failure);
        }
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
            failure.to_string(),
        )))))
    }

    /// Bytes the guest has written so far.
    fn written(&self) -> u64 {
        self.sent + self.held.as_ref().map_or(0, |b| b.len() as u64)
    }
}

impl http_body::Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let mut data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let total = this.written() + data.len() as u64;
                    let Some(declared) = this.declared else {
                        this.sent = total;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    };
                    if total > declared {
                        return this.fail(
                            Failure::BadResponse(format!(
                                "it declared content-length: {declared} but wrote at least {total} bytes"
                            )),
                            true,
                        );
                    }
                    if total == declared && !data.is_empty() {
                        this.held = Some(data.split_off(data.len() - 1));
                    }
                    if data.is_empty() {
                        continue;
                    }
                    this.sent += data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(_))) => {
                    // wasmtime-wasi-http aborts the body when the guest
                    // finished it short of its content-length or dropped it
                    // unfinished.
                    let written = this.written();
                    let cause = match this.declared {
                        Some(declared) if written != declared => format!(
                            "it declared content-length: {declared} but wrote {written} bytes"
                        ),
                        _ => format!(
                            "the app abandoned its response body after {written} bytes without finishing it"
                        ),
                    };
                    return this.fail(Failure::BadResponse(cause), true);
                }
                Poll::Ready(None) => {
                    if let Some(Some(failure)) = this.ended.get() {
                        // The guest died: its end of the body was dropped,
                        // which is not a finished body. The task reports it.
                        let failure = failure.clone();
                        return this.fail(failure, false);
                    }
                    let written = this.written();
                    if let Some(declared) = this.declared
                        && written != declared
                    {
                        return this.fail(
                            Failure::BadResponse(format!(
                                "it declared content-length: {declared} but wrote {written} bytes"
                            )),
                            true,
                        );
                    }
                    this.done = true;
                    this.cancel.detach();
                    return Poll::Ready(this.held.take().map(|last| Ok(Frame::data(last))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(declared) => SizeHint::with_exact(declared.saturating_sub(self.sent)),
            None => SizeHint::default(),
        }
    }
}

/// States of the report hand-off between a request and its guest task.
const PENDING: u8 = 0;
const DELIVERED: u8 = 1;
const TASK_DONE: u8 = 2;

/// Wraps the body so that reading past `max` fails the guest's read and is
/// remembered, so the client gets 413 rather than a generic error.
fn limit_body<B>(
    request: http::Request<B>,
    max: u64,
    too_large: Arc<AtomicBool>,
) -> http::Request<UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    request.map(|body| {
        http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX))
            .map_err(move |e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large.store(true, Ordering::Relaxed);
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max))
                } else {
                    wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))
                }
            })
            .boxed_unsync()
    })
}

fn classify(error: &wasmtime::Error, timeout: Duration) -> Failure {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return Failure::Timeout(timeout);
    }
    if let Some(cap) = error.downcast_ref::<MemoryCapExceeded>() {
        return Failure::MemoryLimit(cap.to_string());
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return Failure::Trap(trap.to_string());
    }
    let message = format!("{error:#}");
    Failure::Trap(
        message
            .lines()
            .next()
            .unwrap_or("unknown error")
            .to_string(),
    )
}
