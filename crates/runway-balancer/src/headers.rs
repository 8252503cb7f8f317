//! Header rewriting between the client and the front-end.
//!
//! Toward the front-end: hop-by-hop headers go, `X-Forwarded-For` and RFC 7239
//! `Forwarded` get the client appended, `X-Forwarded-Proto` and
//! `X-Forwarded-Host` are set, the original `Host` is kept (front-ends route
//! by path), and the request id is kept or created. Back toward the client:
//! hop-by-hop headers go, and `x-request-id` and `x-runway-upstream` are set.

use std::net::IpAddr;

use http::header::{
    CONNECTION, EXPECT, FORWARDED, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static(runway_api::REQUEST_ID_HEADER);
pub(crate) const UPSTREAM: HeaderName = HeaderName::from_static("x-runway-upstream");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const PROXY_AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("proxy-authentication-info");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus the `Proxy-*` family, which is addressed to this proxy.
const HOP_BY_HOP: [HeaderName; 10] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATION_INFO,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The caller's request id if it is 1–128 characters of `[A-Za-z0-9._-]`,
/// otherwise a new one (UUID v4, simple form).
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&REQUEST_ID)
        && is_sane_request_id(value.as_bytes())
    {
        return value.clone();
    }
    // A v4 UUID from the thread-local generator: no system call per request.
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = [0u8; 32];
    let id = id.simple().encode_lower(&mut buffer);
    HeaderValue::from_str(id).expect("hex digits are a valid header value")
}

fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names is cheaper than a
    // lookup per hop-by-hop name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
        for value in named {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',') {
                let name = name.trim();
                if !name.is_empty() {
                    headers.remove(name);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The protocol an HTTP/1.1 request asks to switch to (`Upgrade:` with
/// `Connection: upgrade`), e.g. `websocket`; `None` for other requests.
pub(crate) fn upgrade_of<B>(request: &http::Request<B>) -> Option<HeaderValue> {
    if request.version() != http::Version::HTTP_11 {
        return None;
    }
    let protocol = request.headers().get(UPGRADE)?;
    let asks = request
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| protocol.clone())
}

/// Puts back the two hop-by-hop headers of an upgrade (stripped with the
/// others) so that the next hop sees the same request or `101`.
pub(crate) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(UPGRADE, protocol);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
}

/// The client end of a connection, formatted once per connection for the
/// forwarding headers of each of its requests.
pub(crate) struct ClientAddr {
    /// `192.0.2.7` or `2001:db8::1`, as `X-Forwarded-For` lists it.
    ip: HeaderValue,
    /// `for=192.0.2.7;proto=http` or `for="[2001:db8::1]";proto=https`.
    forwarded: String,
    /// The scheme of the listener the connection came in on.
    proto: HeaderValue,
}

impl ClientAddr {
    /// A client connected over TLS (`https`) or plain HTTP (`http`): what
    /// `X-Forwarded-Proto` and `Forwarded: proto=` say is the real listener,
    /// never what the client claims.
    pub fn with_tls(ip: IpAddr, tls: bool) -> ClientAddr {
        let ip = ip.to_canonical();
        let proto = if tls { "https" } else { "http" };
        let forwarded = match ip {
            IpAddr::V4(ip) => format!("for={ip};proto={proto}"),
            IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={proto}"),
        };
        ClientAddr {
            ip: HeaderValue::try_from(ip.to_string())
                .expect("an IP address is a valid header value"),
            forwarded,
            proto: HeaderValue::from_static(proto),
        }
    }
}

/// Rewrites a client's request headers for the front-end.
pub(crate) fn to_upstream(headers: &mut HeaderMap, client: &ClientAddr, request_id: &HeaderValue) {
    // Room for the headers added below, so that the map grows once at most.
    headers.reserve(6);
    strip_hop_by_hop(headers);
    // The balancer answered any `Expect: 100-continue` itself when it started
    // reading the body.
    headers.remove(EXPECT);
    let host = headers.get(HOST).cloned();

    if headers.contains_key(&X_FORWARDED_FOR) {
        let mut forwarded_for = String::with_capacity(64);
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(value) = value.to_str() {
                forwarded_for.push_str(value);
                forwarded_for.push_str(", ");
            }
        }
        forwarded_for.push_str(client.ip.to_str().unwrap_or_default());
        set(headers, X_FORWARDED_FOR, forwarded_for);
    } else {
        headers.insert(X_FORWARDED_FOR, client.ip.clone());
    }

    let mut forwarded = String::with_capacity(96);
    for value in headers.get_all(FORWARDED) {
        if let Ok(value) = value.to_str() {
            forwarded.push_str(value);
            forwarded.push_str(", ");
        }
    }
    forwarded.push_str(&client.forwarded);
    if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
        forwarded.push_str(";host=\"");
        for c in host.chars() {
            if c == '"' || c == '\\' {
                forwarded.push('\\');
            }
            forwarded.push(c);
        }
        forwarded.push('"');
    }
    set(headers, FORWARDED, forwarded);

    headers.insert(X_FORWARDED_PROTO, client.proto.clone());
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers.insert(REQUEST_ID, request_id.clone());
}

/// Rewrites a front-end's response headers for the client.
pub(crate) fn to_client(headers: &mut HeaderMap, request_id: HeaderValue, upstream: HeaderValue) {
    headers.reserve(2);
    strip_hop_by_hop(headers);
    headers.insert(REQUEST_ID, request_id);
    headers.insert(UPSTREAM, upstream);
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    // Built from valid header values, an IP address and fixed text; a header
    // that was not valid UTF-8 was skipped above.
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_request_ids() {
        assert!(is_sane_request_id(b"abc-DEF_0.9"));
        assert!(is_sane_request_id(&[b'a'; 128]));
        assert!(!is_sane_request_id(&[b'a'; 129]));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"has space"));
        assert!(!is_sane_request_id(b"semi;colon"));
    }

    #[test]
    fn connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("close, X-Secret"));
        headers.append(CONNECTION, HeaderValue::from_static("x-other"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-other", HeaderValue::from_static("1"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn forwarded_headers_append_and_quote_ipv6() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com:8080"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        headers.insert(FORWARDED, HeaderValue::from_static("for=203.0.113.9"));
        let id = HeaderValue::from_static("rid");
        to_upstream(
            &mut headers,
            &ClientAddr::with_tls("2001:db8::1".parse().unwrap(), false),
            &id,
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.9, 2001:db8::1");
        assert_eq!(
            headers[FORWARDED],
            "for=203.0.113.9, for=\"[2001:db8::1]\";proto=http;host=\"example.com:8080\""
        );
        assert_eq!(headers[&X_FORWARDED_HOST], "example.com:8080");
        assert_eq!(headers[HOST], "example.com:8080");
    }

    #[test]
    fn tls_clients_are_forwarded_as_https_whatever_they_claim() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        let id = HeaderValue::from_static("rid");
        to_upstream(
            &mut headers,
            &ClientAddr::with_tls("192.0.2.7".parse().unwrap(), true),
            &id,
        );
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[FORWARDED], "for=192.0.2.7;proto=https");
    }

    #[test]
    fn ipv4_mapped_clients_are_shown_as_ipv4() {
        let mut headers = HeaderMap::new();
        let id = HeaderValue::from_static("rid");
        to_upstream(
            &mut headers,
            &ClientAddr::with_tls("::ffff:192.0.2.7".parse().unwrap(), false),
            &id,
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(headers[FORWARDED], "for=192.0.2.7;proto=http");
        assert!(headers.get(&X_FORWARDED_HOST).is_none());
    }
}
