//! App-to-app calls across deployment zones (issue 12 part 2).
//!
//! `http://<app>.internal/…` is served in-process when the target app is
//! loaded here, and also when it runs in this front-end's own zone (the
//! seeds' local-serving rule: a call whose address would be this zone's
//! balancer is served locally, never sent out to come back). Otherwise the
//! call goes to the target zone's address (`runway zone create … --address`),
//! over HTTPS when the zone says so, verified against the CA bundle given to
//! the front-end (`--internal-ca`), else the web PKI roots.
//!
//! The hop count travels with the call (`x-runway-hops`), signed with the
//! environment's internal-call key (`x-runway-hops-sig`, HMAC-SHA256 of hops,
//! call budget, method and path; the key is one setting of the platform
//! catalog that every front-end shares), so a loop across zones ends at the
//! same depth as one inside a process, while a client still cannot claim hops.
//!
//! **One call budget across zones.** The call takes a share of its incoming
//! request's app-to-app call budget with it (`x-runway-calls`, signed with
//! the hops; see [`runway_runtime::CallBudget::reserve_share`]); the other
//! zone's front-end serves it with a budget of exactly that share and
//! answers how many calls it used (`x-runway-calls-used`, set by the
//! front-end, never by the app), and the caller gets the unused part back.
//! A call that failed after it was sent counts its whole share.
//!
//! **Where apps run** is cached here ([`InternalCalls::location`]): the hot
//! path reads the catalog only for an app not seen since the zones last
//! changed. The cache is dropped when the zone watch
//! ([`InternalCalls::watch_zones`], every heartbeat of a farm front-end) sees
//! any zone change (address, HTTPS flag, or a zone's table: an app deployed,
//! moved or removed), and an app's entry when a call to it could not be
//! delivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use http::HeaderValue;
use http_body::Frame;
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use runway_manifest::AppName;
use runway_runtime::{CallBudget, HOPS_HEADER};
use runway_store::{AppLocation, Store, StoreError, ZoneRecord};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use wasmtime_wasi_http::{Error, WasiBody};

/// Header signing [`HOPS_HEADER`] on a call between front-ends.
pub(crate) const HOPS_SIGNATURE_HEADER: &str = "x-runway-hops-sig";
/// Header of a call between front-ends: the app-to-app calls the request
/// may cause (its share of the calling request's budget); signed with the hops.
pub(crate) const CALLS_HEADER: &str = "x-runway-calls";
/// Header of the answer to a call between front-ends: the app-to-app calls
/// the request caused, set by the answering front-end.
pub(crate) const CALLS_USED_HEADER: &str = "x-runway-calls-used";
/// The platform setting holding the environment's internal-call key.
const CALL_KEY_SETTING: &str = "internal.call_key";
/// How long a connection to another zone may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// This front-end's side of app-to-app calls to other zones.
pub(crate) struct InternalCalls {
    /// The zone this front-end belongs to.
    pub(crate) zone: String,
    http: reqwest::Client,
    key: tokio::sync::OnceCell<Vec<u8>>,
    /// Where apps not loaded here run (`None`: nowhere), as last read.
    locations: RwLock<HashMap<String, Option<AppLocation>>>,
    /// The zones as the watch last saw them.
    zones: Mutex<Option<Vec<ZoneRecord>>>,
}

/// What a verified call from another front-end brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VerifiedHop {
    pub(crate) hops: u32,
    /// The call budget it brought (`None`: the calling front-end sent none).
    pub(crate) calls: Option<u32>,
}

impl InternalCalls {
    /// `ca_bundle`: PEM certificates that HTTPS zone addresses are verified
    /// against (instead of the web PKI roots).
    pub(crate) fn new(zone: &str, ca_bundle: Option<&[u8]>) -> Result<InternalCalls, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The target is named by the zone, never by an answer.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_bundle {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                format!("the internal CA bundle holds no usable PEM certificate: {e}")
            })?;
            if certificates.is_empty() {
                return Err("the internal CA bundle holds no PEM certificate".to_string());
            }
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the internal HTTP client: {e}"))?;
        Ok(InternalCalls {
            zone: zone.to_string(),
            http,
            key: tokio::sync::OnceCell::new(),
            locations: RwLock::new(HashMap::new()),
            zones: Mutex::new(None),
        })
    }

    /// Where `app` runs: from the cache, else from the catalog (then cached).
    pub(crate) async fn location(
        &self,
        store: &Store,
        app: &str,
    ) -> Result<Option<AppLocation>, StoreError> {
        if let Some(location) = self
            .locations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(app)
        {
            return Ok(location.clone());
        }
        let location = store.app_location(app).await?;
        self.locations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(app.to_string(), location.clone());
        Ok(location)
    }

    /// Forgets where `app` runs (a call to it could not be delivered).
    fn forget(&self, app: &str) {
        self.locations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app);
    }

    /// The zone watch: reads the zones and forgets every cached location
    /// when any of them changed since the last look (an address or HTTPS
    /// flag, or a zone's table: every deployment that adds, moves or removes
    /// an app changes the generation of the zones it touches).
    pub(crate) async fn watch_zones(&self, store: &Store) -> Result<(), StoreError> {
        let zones = store.zones().await?;
        let mut seen = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        if seen.as_ref() != Some(&zones) {
            if seen.is_some() {
                tracing::debug!("the zones changed: forgetting where apps run");
            }
            self.locations
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            *seen = Some(zones);
        }
        Ok(())
    }

    async fn key(&self, store: &Store) -> Result<&[u8], String> {
        self.key
            .get_or_try_init(|| async {
                let fresh = hex::encode(rand::random::<[u8; 32]>());
                let key = store
                    .setting_or_insert(CALL_KEY_SETTING, &fresh)
                    .await
                    .map_err(|e| e.to_string())?;
                hex::decode(key.trim()).map_err(|e| format!("setting {CALL_KEY_SETTING}: {e}"))
            })
            .await
            .map(Vec::as_slice)
    }

    /// The hops and call budget a request from another front-end carries,
    /// if its signature holds; `None` for anything else (a client's claim is
    /// ignored).
    pub(crate) async fn verified_hop(
        &self,
        store: &Store,
        headers: &http::HeaderMap,
        method: &http::Method,
        path_and_query: &str,
    ) -> Option<VerifiedHop> {
        let hops: u32 = headers.get(HOPS_HEADER)?.to_str().ok()?.parse().ok()?;
        let calls: Option<u32> = match headers.get(CALLS_HEADER) {
            Some(value) => Some(value.to_str().ok()?.parse().ok()?),
            None => None,
        };
        let signature = headers.get(HOPS_SIGNATURE_HEADER)?.to_str().ok()?;
        let key = self.key(store).await.ok()?;
        let expected = sign(key, hops, calls, method, path_and_query);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
            .then_some(VerifiedHop { hops, calls })
    }

    /// Sends an app-to-app call to the zone where `target` runs.
    pub(crate) async fn forward(
        &self,
        store: &Store,
        target: &AppName,
        location: AppLocation,
        request: http::Request<WasiBody>,
        hops: u32,
    ) -> Result<http::Response<WasiBody>, Error> {
        let Some(address) = location.address else {
            tracing::warn!(
                app = %target,
                zone = %location.zone,
                "app-to-app call refused: app {target} runs in zone {}, which has no address; \
                 set it with `runway zone set {} --address URL`",
                location.zone,
                location.zone
            );
            return Err(Error::DestinationUnavailable);
        };
        if location.https_internal && !address.starts_with("https://") {
            tracing::warn!(
                app = %target,
                zone = %location.zone,
                "app-to-app call refused: zone {} uses HTTPS for internal calls but its address \
                 {address} is not https://; fix it with `runway zone set`",
                location.zone
            );
            return Err(Error::HttpRequestDenied);
        }
        let key = self.key(store).await.map_err(|e| {
            tracing::warn!("app-to-app call to {target} refused: no internal-call key: {e}");
            Error::InternalError(Some(e))
        })?;
        let (parts, body) = request.into_parts();
        // The share of the incoming request's budget this call takes along.
        let share = match parts.extensions.get::<Arc<CallBudget>>() {
            Some(budget) => Some(Share::take(budget.clone()).await),
            None => None,
        };
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let path = format!("/{target}{path_and_query}");
        let url = format!("{}{path}", address.trim_end_matches('/'));
        let mut outgoing = self.http.request(parts.method.clone(), &url);
        for (name, value) in &parts.headers {
            if is_hop_by_hop(name.as_str())
                || name == HOPS_HEADER
                || name == HOPS_SIGNATURE_HEADER
                || name == CALLS_HEADER
            {
                continue;
            }
            outgoing = outgoing.header(name, value);
        }
        let calls = share.as_ref().map(|s| s.reserved);
        let signature = sign(key, hops, calls, &parts.method, &path);
        if let Some(calls) = calls {
            outgoing = outgoing.header(CALLS_HEADER, HeaderValue::from(calls));
        }
        outgoing = outgoing
            .header(HOPS_HEADER, HeaderValue::from(hops))
            .header(HOPS_SIGNATURE_HEADER, signature)
            .body(reqwest::Body::wrap_stream(BodyDataStream::new(body)));
        let response = match outgoing.send().await {
            Ok(response) => response,
            Err(e) => {
                // The address may have changed: read it again next time.
                self.forget(target.as_str());
                tracing::warn!(app = %target, zone = %location.zone, "app-to-app call to {url} failed: {}", runway_server::error_chain(&e));
                return Err(if let Some(tls) = tls_failure(&e) {
                    // The other zone's certificate was refused (or TLS
                    // failed) before anything was sent.
                    if let Some(share) = share {
                        share.settle(0);
                    }
                    tls
                } else if e.is_connect() {
                    // Never reached the other zone: nothing of the share was used.
                    if let Some(share) = share {
                        share.settle(0);
                    }
                    Error::ConnectionRefused
                } else if e.is_timeout() {
                    Error::ConnectionTimeout
                } else {
                    Error::HttpProtocolError
                });
            }
        };
        if let Some(share) = share {
            // An answer without the count (a balancer's error page, say)
            // used the whole share, as far as anyone can tell.
            let used = response
                .headers()
                .get(CALLS_USED_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(share.reserved);
            share.settle(used);
        }
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            if !is_hop_by_hop(name.as_str()) && name != CALLS_USED_HEADER {
                builder = builder.header(name, value);
            }
        }
        let stream = futures::StreamExt::map(response.bytes_stream(), |chunk| {
            chunk
                .map(Frame::data)
                .map_err(|_| Error::ConnectionTerminated)
        });
        builder
            .body(StreamBody::new(stream).boxed_unsync())
            .map_err(|e| Error::InternalError(Some(e.to_string())))
    }
}

/// The part of a request's call budget that one call to another zone took
/// along; given back (less what the other zone used) when it is settled, and
/// counted as used whole if dropped unsettled.
struct Share {
    budget: Arc<CallBudget>,
    reserved: u32,
    settled: bool,
}

impl Share {
    async fn take(budget: Arc<CallBudget>) -> Share {
        let reserved = budget.reserve_share().await;
        Share {
            budget,
            reserved,
            settled: false,
        }
    }

    fn settle(mut self, used: u32) {
        self.budget.settle(self.reserved, used.min(self.reserved));
        self.settled = true;
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if !self.settled {
            self.budget.settle(self.reserved, self.reserved);
        }
    }
}

/// The guest-visible error of a TLS failure in `e`'s causes: a certificate
/// that does not verify against `--internal-ca` (or the web PKI roots) is
/// `TLS-certificate-error`, any other TLS failure `TLS-protocol-error`.
fn tls_failure(e: &reqwest::Error) -> Option<Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tls) = as_rustls(err) {
            return Some(match tls {
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    Error::TlsCertificateError
                }
                _ => Error::TlsProtocolError,
            });
        }
        source = err.source();
    }
    None
}

/// `err` as rustls' error, also inside an `io::Error` (whose `source()`
/// skips what it wraps).
fn as_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return io.get_ref().and_then(|inner| as_rustls(inner));
    }
    None
}

/// Where an app-to-app call to `target` goes: `None` = served here (loaded
/// here, runs in this zone, or runs nowhere: the local answer says so).
pub(crate) fn remote_location(
    calls: &InternalCalls,
    location: Option<AppLocation>,
) -> Option<AppLocation> {
    location.filter(|l| l.zone != calls.zone)
}

fn sign(
    key: &[u8],
    hops: u32,
    calls: Option<u32>,
    method: &http::Method,
    path_and_query: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    let calls = calls.map_or_else(|| "-".to_string(), |c| c.to_string());
    mac.update(format!("{hops}\n{calls}\n{method}\n{path_and_query}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}
