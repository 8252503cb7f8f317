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
//! method and path; the key is one setting of the platform catalog that every
//! front-end shares), so a loop across zones ends at the same depth as one
//! inside a process, while a client still cannot claim hops.

use std::time::Duration;

use hmac::{Hmac, Mac};
use http::HeaderValue;
use http_body::Frame;
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use runway_manifest::AppName;
use runway_runtime::HOPS_HEADER;
use runway_store::{AppLocation, Store};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use wasmtime_wasi_http::{Error, WasiBody};

/// Header signing [`HOPS_HEADER`] on a call between front-ends.
pub(crate) const HOPS_SIGNATURE_HEADER: &str = "x-runway-hops-sig";
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
        })
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

    /// The hops a request from another front-end carries, if its signature
    /// holds; `None` for anything else (a client's claim is ignored).
    pub(crate) async fn verified_hops(
        &self,
        store: &Store,
        headers: &http::HeaderMap,
        method: &http::Method,
        path_and_query: &str,
    ) -> Option<u32> {
        let hops: u32 = headers.get(HOPS_HEADER)?.to_str().ok()?.parse().ok()?;
        let signature = headers.get(HOPS_SIGNATURE_HEADER)?.to_str().ok()?;
        let key = self.key(store).await.ok()?;
        let expected = sign(key, hops, method, path_and_query);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes())).then_some(hops)
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
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let path = format!("/{target}{path_and_query}");
        let url = format!("{}{path}", address.trim_end_matches('/'));
        let mut outgoing = self.http.request(parts.method.clone(), &url);
        for (name, value) in &parts.headers {
            if is_hop_by_hop(name.as_str()) || name == HOPS_HEADER || name == HOPS_SIGNATURE_HEADER
            {
                continue;
            }
            outgoing = outgoing.header(name, value);
        }
        let signature = sign(key, hops, &parts.method, &path);
        outgoing = outgoing
            .header(HOPS_HEADER, HeaderValue::from(hops))
            .header(HOPS_SIGNATURE_HEADER, signature)
            .body(reqwest::Body::wrap_stream(BodyDataStream::new(body)));
        let response = outgoing.send().await.map_err(|e| {
            tracing::warn!(app = %target, zone = %location.zone, "app-to-app call to {url} failed: {e}");
            if e.is_connect() {
                Error::ConnectionRefused
            } else if e.is_timeout() {
                Error::ConnectionTimeout
            } else {
                Error::HttpProtocolError
            }
        })?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            if !is_hop_by_hop(name.as_str()) {
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

/// Where an app-to-app call to `target` goes: `None` = served here (loaded
/// here, runs in this zone, or runs nowhere: the local answer says so).
pub(crate) fn remote_location(
    calls: &InternalCalls,
    location: Option<AppLocation>,
) -> Option<AppLocation> {
    location.filter(|l| l.zone != calls.zone)
}

fn sign(key: &[u8], hops: u32, method: &http::Method, path_and_query: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{hops}\n{method}\n{path_and_query}").as_bytes());
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
