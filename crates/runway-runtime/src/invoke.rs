//! One request, one fresh instance: limits, deadline, and the translation of
//! everything that can go wrong into a [`Failure`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::capture::Capture;
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
    #[error("the app could not be started: {0}")]
    Instantiate(String),
}

impl Failure {
    /// The HTTP status the client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        let permit =
            match tokio::time::timeout(SLOT_WAIT, inner.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(Failure::Overloaded(inner.config.max_instances)),
            };

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
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
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
