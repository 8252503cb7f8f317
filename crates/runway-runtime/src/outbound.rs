//! Outbound HTTP from guests: only to origins on the app's allow-list, plus
//! `http://<app>.internal/…` to reach another app of the same environment
//! without leaving the process.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::Scheme;
use http_body::{Frame, SizeHint};
use runway_manifest::{AllowedOrigin, AppName};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::InvocationEvents;
use crate::fair::CpuShare;

/// Suffix of the host names that address apps of the same environment.
pub const INTERNAL_SUFFIX: &str = ".internal";
/// Header carrying how many app-to-app hops led to a request.
pub const HOPS_HEADER: &str = "x-runway-hops";
/// Deepest chain of app-to-app calls; beyond it the call fails as a loop.
const MAX_HOPS: u32 = 8;
/// Most app-to-app calls in flight at once for one incoming request (all the
/// apps it reaches together); beyond it a guest's outgoing call fails.
pub const MAX_CONCURRENT_INTERNAL_CALLS: u32 = 8;
/// Most app-to-app calls one incoming request may cause in total.
pub const MAX_INTERNAL_CALLS: u32 = 64;

/// The app-to-app calls caused by one incoming request: every app it reaches
/// shares this budget (it travels with internal calls as a request
/// extension), so a fan-out is bounded in breadth as well as depth. It also
/// names the tenant whose CPU share every guest of the request uses: the
/// app of the incoming request (set by the runtime when it serves it).
///
/// Across deployment zones the budget is shared by reservation: a call that
/// leaves for another zone takes a share of what is left with it
/// ([`CallBudget::reserve_share`]), the other zone serves it with a budget of
/// exactly that share ([`CallBudget::with_limit`]) and answers how many it
/// used, and the unused part comes back ([`CallBudget::settle`]). So one
/// incoming request causes at most [`MAX_INTERNAL_CALLS`] calls in all the
/// zones together.
#[derive(Debug)]
pub struct CallBudget {
    in_flight: AtomicU32,
    total: AtomicU32,
    /// Calls this budget may count ([`MAX_INTERNAL_CALLS`], or the share a
    /// call from another zone brought).
    limit: u32,
    /// Calls in flight that took a share with them to another zone.
    forwarded: AtomicU32,
    /// Set once a request from another zone answered ([`CallBudget::close`]).
    closed: AtomicBool,
    /// Wakes calls waiting for a share when one comes back.
    returned: tokio::sync::Notify,
    tenant: OnceLock<Arc<CpuShare>>,
}

impl Default for CallBudget {
    fn default() -> Self {
        CallBudget::with_limit(MAX_INTERNAL_CALLS)
    }
}

impl CallBudget {
    /// A budget of at most `limit` calls (never more than
    /// [`MAX_INTERNAL_CALLS`]): what a call from another zone brought.
    pub fn with_limit(limit: u32) -> CallBudget {
        CallBudget {
            in_flight: AtomicU32::new(0),
            total: AtomicU32::new(0),
            limit: limit.min(MAX_INTERNAL_CALLS),
            forwarded: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            returned: tokio::sync::Notify::new(),
            tenant: OnceLock::new(),
        }
    }

    /// Takes the share of the calls left that a call in flight carries to
    /// another zone: what is left divided by the calls in flight that have
    /// not taken a share yet (this one included), so calls started together
    /// get equal shares and a lone call gets everything left. When nothing is
    /// left but other calls to other zones hold shares, it waits for one of
    /// them to answer and give back what it did not use, rather than leave
    /// with nothing (calls started a moment apart would otherwise find the
    /// first one holding everything). Counted as used until
    /// [`CallBudget::settle`].
    pub async fn reserve_share(&self) -> u32 {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let others = self.forwarded.load(Ordering::Acquire);
            let unshared = self
                .in_flight
                .load(Ordering::Acquire)
                .saturating_sub(others)
                .max(1);
            let mut share = 0;
            let taken = self
                .total
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    share = self.limit.saturating_sub(n) / unshared;
                    (share > 0 || others == 0).then_some(n + share)
                });
            if taken.is_ok() {
                self.forwarded.fetch_add(1, Ordering::AcqRel);
                return share;
            }
            returned.await;
        }
    }

    /// Ends a call that took `reserved` calls to another zone, which used
    /// `used` of them: the rest can be used again.
    pub fn settle(&self, reserved: u32, used: u32) {
        let unused = reserved.saturating_sub(used);
        if unused > 0 {
            self.total.fetch_sub(unused, Ordering::AcqRel);
        }
        self.forwarded.fetch_sub(1, Ordering::AcqRel);
        self.returned.notify_waiters();
    }

    /// Stops counting calls and returns how many were made: every later
    /// call is refused. A request from another zone is closed when it
    /// answers, because its answer tells the calling zone what it used.
    pub fn close(&self) -> u32 {
        self.closed.store(true, Ordering::Release);
        self.total.load(Ordering::Acquire)
    }

    /// The CPU share of the request's tenant: `first`'s for the incoming
    /// request itself, the same for every app-to-app call it causes.
    pub(crate) fn tenant(&self, first: impl FnOnce() -> Arc<CpuShare>) -> Arc<CpuShare> {
        self.tenant.get_or_init(first).clone()
    }

    /// Counts one more call, or says which bound it would break.
    fn start(self: &Arc<Self>) -> Result<CallTicket, String> {
        if self.closed.load(Ordering::Acquire) {
            return Err(
                "app-to-app call refused: this request came from another zone and has \
                 already answered (its calls were counted then); make app-to-app calls before \
                 answering"
                    .to_string(),
            );
        }
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(format!(
                "app-to-app call refused: one incoming request may cause at most \
                 {MAX_INTERNAL_CALLS} app-to-app calls in total (counted across every zone it \
                 reaches)"
            ));
        }
        if self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONCURRENT_INTERNAL_CALLS).then_some(n + 1)
            })
            .is_err()
        {
            return Err(format!(
                "app-to-app call refused: one incoming request may have at most \
                 {MAX_CONCURRENT_INTERNAL_CALLS} app-to-app calls in flight; wait for one to finish"
            ));
        }
        Ok(CallTicket {
            budget: self.clone(),
        })
    }

    /// App-to-app calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// App-to-app calls started so far.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Acquire)
    }
}

/// One app-to-app call in flight, until its response body is done or dropped.
struct CallTicket {
    budget: Arc<CallBudget>,
}

impl Drop for CallTicket {
    fn drop(&mut self) {
        self.budget.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its call counted while it streams.
struct TicketBody {
    inner: WasiBody,
    _ticket: CallTicket,
}

impl http_body::Body for TicketBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Delivers app-to-app calls. `http://notes.internal/x` reaches app `notes`
/// with the path `/notes/x`, exactly as a request from outside would.
pub trait InternalRouter: Send + Sync {
    fn call(
        &self,
        target: AppName,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Result<http::Response<WasiBody>, Error>>;
}

/// Where one app may send requests.
#[derive(Clone, Default)]
pub struct OutboundPolicy {
    pub allow: Vec<AllowedOrigin>,
    pub internal: Option<Arc<dyn InternalRouter>>,
}

impl OutboundPolicy {
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allow
            .iter()
            .any(|origin| origin.allows(scheme, host, port))
    }
}

/// The `wasi:http` hooks of one request's store.
pub(crate) struct OutboundHooks {
    pub(crate) policy: Arc<OutboundPolicy>,
    pub(crate) events: Arc<dyn InvocationEvents>,
    pub(crate) request_id: String,
    /// Hops that led to the current request (0 for a request from outside).
    pub(crate) hops: u32,
    /// The app-to-app calls of the incoming request being served.
    pub(crate) calls: Arc<CallBudget>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri().clone();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTP { 80 } else { 443 });

        if let Some(app) = host.strip_suffix(INTERNAL_SUFFIX) {
            let Some(router) = self.policy.internal.clone() else {
                return Box::new(async { Err(Error::HttpRequestDenied) });
            };
            let Ok(target) = AppName::parse(app) else {
                return Box::new(async { Err(Error::DestinationNotFound) });
            };
            if self.hops >= MAX_HOPS {
                return Box::new(async { Err(Error::LoopDetected) });
            }
            let ticket = match self.calls.start() {
                Ok(ticket) => ticket,
                Err(reason) => {
                    self.events.internal_call_refused(&uri.to_string(), &reason);
                    return Box::new(async move { Err(Error::InternalError(Some(reason))) });
                }
            };
            request.extensions_mut().insert(self.calls.clone());
            let headers = request.headers_mut();
            headers.insert(HOPS_HEADER, http::HeaderValue::from(self.hops + 1));
            if let Ok(id) = http::HeaderValue::from_str(&self.request_id) {
                headers.insert(runway_api_request_id(), id);
            }
            let call = router.call(target, request);
            return Box::new(async move {
                let response = call.await?.map(|inner| {
                    use http_body_util::BodyExt;
                    TicketBody {
                        inner,
                        _ticket: ticket,
                    }
                    .boxed_unsync()
                });
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }

        if !self.policy.allows(scheme.as_str(), &host, port) {
            self.events.outbound_denied(&uri.to_string());
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            use http_body_util::BodyExt;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

fn runway_api_request_id() -> http::HeaderName {
    http::HeaderName::from_static("x-request-id")
}
