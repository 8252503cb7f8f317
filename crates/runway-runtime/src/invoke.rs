//! One request, one fresh instance: limits, deadline, and the translation of
//! everything that can go wrong into a [`Failure`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::capture::Capture;
use crate::engine::{AppTicket, mib_ceil};
use crate::host::{HostState, MemoryCap, MemoryCapExceeded};
use crate::outbound::OutboundHooks;
use crate::{Invocation, LoadedComponent, Runtime, Stream};

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
}

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
        }
    }
}

/// The epoch callback's way of stopping a guest at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
struct DeadlineExceeded;

impl Runtime {
    /// Runs `request` on a fresh instance of `component`.
    ///
    /// Returns as soon as the guest has produced the response head; the body
    /// streams while the guest keeps running (still under its deadline).
    /// Failures after that point reach [`crate::InvocationEvents::failed`].
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
        let admission = match self.admit(&invocation).await {
            Ok(admission) => admission,
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
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline || interrupted.load(Ordering::Relaxed) {
                Err(DeadlineExceeded.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

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
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            // The epoch deadline stops guests that compute; this one stops
            // guests that wait (on a timer, a socket, another app).
            let outcome = match tokio::time::timeout(timeout, run).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(classify(&error, timeout)),
                Err(_) => Some(Failure::Timeout(timeout)),
            };
            stdout.finish();
            stderr.finish();
            if task_handoff.swap(TASK_DONE, Ordering::AcqRel) == DELIVERED {
                if let Some(failure) = &outcome {
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
                    events.failed(&failure);
                }
                Ok(response)
            }
            Ok(Err(code)) => {
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
    /// waited for at most [`SLOT_WAIT`] in all).
    async fn admit(&self, invocation: &Invocation) -> Result<Admission, Failure> {
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
        Ok(Admission {
            _app: app,
            _app_memory: app_memory,
            _memory: memory,
            _slot: slot,
        })
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
