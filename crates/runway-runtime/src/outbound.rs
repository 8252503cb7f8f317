//! Outbound HTTP from guests: only to origins on the app's allow-list, plus
//! `http://<app>.internal/…` to reach another app of the same environment
//! without leaving the process.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::uri::Scheme;
use runway_manifest::{AllowedOrigin, AppName};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::InvocationEvents;

/// Suffix of the host names that address apps of the same environment.
pub const INTERNAL_SUFFIX: &str = ".internal";
/// Header carrying how many app-to-app hops led to a request.
pub const HOPS_HEADER: &str = "x-runway-hops";
/// Deepest chain of app-to-app calls; beyond it the call fails as a loop.
const MAX_HOPS: u32 = 8;

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
            let headers = request.headers_mut();
            headers.insert(HOPS_HEADER, http::HeaderValue::from(self.hops + 1));
            if let Ok(id) = http::HeaderValue::from_str(&self.request_id) {
                headers.insert(runway_api_request_id(), id);
            }
            let call = router.call(target, request);
            return Box::new(async move {
                let response = call.await?;
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
