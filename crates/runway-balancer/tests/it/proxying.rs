//! Forwarding: methods, paths, queries, bodies (streamed both ways), headers,
//! request ids.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::support::*;

#[tokio::test]
async fn forwards_method_path_query_and_body() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let request = http
            .request(method.clone(), "/notes/items?color=blue&n=2")
            .body(full("the body"))
            .unwrap();
        let reply = http.call(request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "the body");
        let seen = upstream.last_seen();
        assert_eq!(seen.method, method);
        assert_eq!(seen.uri.path(), "/notes/items");
        assert_eq!(seen.uri.query(), Some("color=blue&n=2"));
        assert_eq!(seen.body, "the body");
    }
    let reply = http.get("/hello/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-from-upstream"], "yes");
    assert_eq!(upstream.last_seen().method, Method::GET);
    balancer.shutdown().await;
}

#[tokio::test]
async fn streams_the_response_body() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    let request = http
        .request(Method::GET, "/stream-response")
        .body(empty())
        .unwrap();
    let mut body = http.send(request).await.into_body();
    // The front-end holds the rest of its body until released: the first
    // chunk can only arrive here if the balancer does not buffer.
    let first = bounded("first chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    upstream.release();
    let rest = bounded("rest of the body", body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second");
    balancer.shutdown().await;
}

#[tokio::test]
async fn streams_the_request_body() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, BoxError>>();
    let request = http
        .request(Method::POST, "/stream-request")
        .body(StreamBody::new(rx).boxed())
        .unwrap();
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"hello "))))
        .unwrap();
    let response = tokio::spawn(async move { http.call(request).await });
    // The client has not finished its body, yet the front-end already got a
    // chunk of it.
    eventually("the front-end reads the first chunk", || {
        upstream.first_chunk_seen()
    })
    .await;
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"world"))))
        .unwrap();
    drop(tx);
    let reply = bounded("reply", response).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "11");
    balancer.shutdown().await;
}

#[tokio::test]
async fn large_bodies_pass_through_whole() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    let upload: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let reply = http
        .call(
            http.request(Method::PUT, "/upload")
                .body(full(upload.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), upload.len());
    assert!(reply.body == upload, "the echoed body differs");

    let reply = http.get("/big?bytes=5000000").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 5_000_000);
    balancer.shutdown().await;
}

#[tokio::test]
async fn rewrites_headers_both_ways() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    let request = http
        .request(Method::GET, "/notes/")
        .header("host", "app.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("connection", "x-secret")
        .header("x-secret", "hidden")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-request-id", "abc.DEF_123-x")
        .header("x-app", "kept")
        .body(empty())
        .unwrap();
    let reply = http.call(request).await;
    assert_eq!(reply.status, StatusCode::OK);

    let seen = upstream.last_seen().headers;
    assert_eq!(seen["host"], "app.example.com");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "app.example.com");
    assert_eq!(
        seen["forwarded"],
        "for=203.0.113.9, for=127.0.0.1;proto=http;host=\"app.example.com\""
    );
    assert_eq!(seen["x-request-id"], "abc.DEF_123-x");
    assert_eq!(seen["x-app"], "kept");
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(seen.get(gone).is_none(), "{gone} reached the front-end");
    }

    assert_eq!(reply.headers["x-request-id"], "abc.DEF_123-x");
    assert_eq!(reply.headers["x-runway-upstream"], upstream.name().as_str());
    assert_eq!(reply.headers["x-from-upstream"], "yes");
    for gone in ["x-upstream-secret", "keep-alive", "proxy-authenticate"] {
        assert!(
            reply.headers.get(gone).is_none(),
            "{gone} reached the client"
        );
    }
    balancer.shutdown().await;
}

#[tokio::test]
async fn makes_a_request_id_when_there_is_no_sane_one() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(static_config(&[&upstream])).await;
    let http = Http::new(balancer.addr());

    let too_long = "a".repeat(129);
    for sent in [
        None,
        Some("has space"),
        Some("semi;colon"),
        Some(too_long.as_str()),
    ] {
        let mut request = http.request(Method::GET, "/x");
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let reply = http.call(request.body(empty()).unwrap()).await;
        let made = reply.headers["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(made.len(), 32, "{made:?} is not a simple UUID");
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(Some(made.as_str()), sent);
        assert_eq!(upstream.last_seen().headers["x-request-id"], made.as_str());
    }
    balancer.shutdown().await;
}

#[tokio::test]
async fn platform_api_paths_go_to_the_controller_when_configured() {
    let frontend = FakeUpstream::start().await;
    let controller = FakeUpstream::start().await;
    // The controller is not health-checked: not ready, it still gets the API.
    controller.set_ready(false);
    let mut config = static_config(&[&frontend]);
    config.platform = Some(controller.url());
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());

    let reply = http.get("/_runway/api/v1/apps").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(controller.last_seen().uri.path(), "/_runway/api/v1/apps");
    let reply = http.get("/hello/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(frontend.last_seen().uri.path(), "/hello/");
    // Only the API prefix: the front-ends' own platform paths stay theirs.
    let before = controller.hits();
    http.get("/_runway/ready").await;
    assert_eq!(controller.hits(), before);
    balancer.shutdown().await;
}
