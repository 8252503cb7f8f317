//! What every Runway server role shares, and nothing of any one role:
//! starting and stopping an HTTP server ([`spawn_server`], [`join_servers`]),
//! request ids, the error answer of every JSON API ([`api_error`]), reading
//! another Runway server's error answers, and the name and address rules
//! several roles check.
//!
//! The controller and the front-end both use it and know nothing of each
//! other; the `runway` binary composes them.

pub mod api_error;

use std::time::Duration;

use http::HeaderMap;
use runway_api::REQUEST_ID_HEADER;

pub use runway_net::{ConnectionSettings, PeerAddr, metrics};

/// A running HTTP server of Runway (controller, front-end or both).
pub type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves `app` on `listener` until `stop` turns true; requests in flight
/// then finish. Connections are HTTP/1.1 with `TCP_NODELAY` (without it, a
/// response written as headers then body waits for the client's delayed ACK:
/// a 40 ms stall on a few percent of requests) and are bounded by
/// `connections` (header-read and keep-alive timeouts, at most
/// `max_connections` open; see `runway_net`). The open-file soft limit is
/// raised to the hard limit first.
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
    connections: ConnectionSettings,
) -> ServerTask {
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(runway_net::serve(listener, service, connections, stop))
}

/// Waits for servers told to stop, at most `deadline` (then they are left
/// to die with the process, with a warning).
pub async fn join_servers(
    servers: impl IntoIterator<Item = ServerTask>,
    deadline: Duration,
) -> anyhow::Result<()> {
    use anyhow::Context;
    match tokio::time::timeout(deadline, futures::future::join_all(servers)).await {
        Ok(joined) => {
            for server in joined {
                server
                    .context("a server task panicked")?
                    .context("a server failed")?;
            }
        }
        Err(_) => tracing::warn!("requests still in flight after {deadline:?}; stopping anyway"),
    }
    Ok(())
}

/// A request id supplied by the caller is kept if it is short and plain;
/// otherwise a new one is made.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The message of an error answer from a Runway API (its `ErrorBody`), or
/// the answer's text if it is not one.
pub fn error_message(text: &str) -> String {
    serde_json::from_str::<runway_api::ErrorBody>(text)
        .map(|b| b.message)
        .unwrap_or_else(|_| text.to_string())
}

/// An error and its sources, `outer: inner: …` (reqwest's own message
/// rarely says why a connection failed).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Front-end names: 1 to 63 letters, digits, '-' or '.', but not `.` or
/// `..` (a name is also a directory name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// How to fix a name [`valid_name`] refuses.
pub const NAME_RULE: &str = "use 1 to 63 letters, digits, '-' or '.' (but not . or ..)";

/// Environment names (`--name`): 1 to 63 lowercase letters, digits and '-'.
/// The error names the flag, the value and the rule.
pub fn validate_environment_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "--name {name:?}: environment names use 1 to 63 lowercase letters, digits and '-', e.g. dev"
        ));
    }
    Ok(())
}

/// Refuses an address that carries credentials (`http://user:pass@host`):
/// they would be stored, listed and logged with it. `what` names where the
/// address came from (a flag); the message shows it without the credentials.
pub fn refuse_credentials(what: &str, address: &str) -> Result<(), String> {
    let Ok(url) = url::Url::parse(address.trim()) else {
        return Ok(());
    };
    if url.username().is_empty() && url.password().is_none() {
        return Ok(());
    }
    let mut shown = url;
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    Err(format!(
        "{what} {}: the address carries credentials (user:password@); remove them \
         (Runway authenticates with tokens, not with credentials in URLs)",
        shown.as_str().trim_end_matches('/')
    ))
}

/// The route answering a scrape of `endpoint` at `path`
/// ([`metrics::ENVIRONMENT_PATH`] on the environment's roles,
/// [`metrics::CONSOLE_PATH`] on the console), for merging into a role's
/// router.
pub fn metrics_router(endpoint: metrics::MetricsEndpoint, path: &str) -> axum::Router {
    axum::Router::new().route(
        path,
        axum::routing::get(move |headers: http::HeaderMap| {
            let endpoint = endpoint.clone();
            async move { endpoint.respond(&headers).map(axum::body::Body::from) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_names_are_not_front_end_names() {
        for good in ["fe-1", "a.b", "x", "...", ".a", "a.."] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [".", "..", "", "a/b", "a b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn addresses_with_credentials_are_refused() {
        let error =
            refuse_credentials("--advertise", "http://user:hunter2@10.0.0.5:9101").unwrap_err();
        assert_eq!(
            error,
            "--advertise http://10.0.0.5:9101: the address carries credentials \
             (user:password@); remove them (Runway authenticates with tokens, not with \
             credentials in URLs)"
        );
        assert!(refuse_credentials("--controller", "http://token@10.0.0.5:9000").is_err());
        assert!(refuse_credentials("--advertise", "http://10.0.0.5:9101").is_ok());
        assert!(refuse_credentials("--advertise", "https://fe.example/").is_ok());
    }
}
