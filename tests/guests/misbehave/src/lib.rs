//! Test fixture: a guest that misbehaves on request, to check that a trap, a timeout or
//! the memory cap fails only the current request.
//!
//! * `GET /misbehave/trap`      panics (a wasm trap)
//! * `GET /misbehave/loop`      spins forever without calling any import
//! * `GET /misbehave/oom`       allocates 1 MiB chunks forever, touching every page
//! * `GET /misbehave/ok`        200 "ok\n"
//! * `POST /misbehave/echo`     200 "<request body length>\n"
//! * `GET /misbehave/print`     "hello stdout" to stdout, "hello stderr" to stderr, 200 "printed\n"
//! * `GET /misbehave/sleep?ms=N` sleeps N ms on a wasi:clocks pollable, then 200 "slept N\n"
//! * `GET /misbehave/short-body` declares `content-length: 100`, sends 10 bytes, waits 200 ms,
//!   then finishes the body (which the host refuses: too short)
//! * `GET /misbehave/broken-now` the same without waiting: the body breaks at once
//! * `GET /misbehave/long-body`  declares `content-length: 10`, sends 10 bytes, waits 200 ms,
//!   then sends 10 more and finishes
//! * `GET /misbehave/trap-mid-body` streams "partial\n" (chunked), waits 200 ms, then panics
//! * `GET /misbehave/slow-mid-body?ms=N` streams "partial\n" (chunked), then sleeps N ms
//!   (default 60 s) before finishing with "done\n"
//! * `GET /misbehave/big?mib=N` streams N MiB (chunked, default 64), then finishes
//! * anything else              404

use std::io::{Read as _, Write as _};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::OutputStream;

struct Misbehave;

wasip2::http::proxy::export!(Misbehave);

impl Guest for Misbehave {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        match path {
            "/misbehave/trap" => panic!("misbehave: trap requested"),
            "/misbehave/loop" => {
                let mut n = 0u64;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "/misbehave/oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    // Write to every page so the memory is really used.
                    for i in (0..chunk.len()).step_by(4096) {
                        chunk[i] = 1;
                    }
                    hoard.push(core::hint::black_box(chunk));
                }
            }
            "/misbehave/ok" => respond(response_out, 200, b"ok\n"),
            "/misbehave/echo" => {
                let len = read_body(request).len();
                respond(response_out, 200, format!("{len}\n").as_bytes());
            }
            "/misbehave/print" => {
                println!("hello stdout");
                eprintln!("hello stderr");
                respond(response_out, 200, b"printed\n");
            }
            "/misbehave/sleep" => {
                let ms: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ms="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                sleep_ms(ms);
                respond(response_out, 200, format!("slept {ms}\n").as_bytes());
            }
            "/misbehave/short-body" => {
                let (body, mut stream) = start(response_out, Some(100));
                send(&mut stream, b"0123456789");
                sleep_ms(200);
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/misbehave/broken-now" => {
                let (body, mut stream) = start(response_out, Some(100));
                send(&mut stream, b"0123456789");
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/misbehave/long-body" => {
                let (body, mut stream) = start(response_out, Some(10));
                send(&mut stream, b"0123456789");
                sleep_ms(200);
                send(&mut stream, b"0123456789");
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/misbehave/trap-mid-body" => {
                let (_body, mut stream) = start(response_out, None);
                send(&mut stream, b"partial\n");
                sleep_ms(200);
                panic!("misbehave: trap after the response head");
            }
            "/misbehave/slow-mid-body" => {
                let ms: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ms="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60_000);
                let (body, mut stream) = start(response_out, None);
                send(&mut stream, b"partial\n");
                sleep_ms(ms);
                send(&mut stream, b"done\n");
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/misbehave/big" => {
                let mib: usize = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("mib="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(64);
                let (body, mut stream) = start(response_out, None);
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..mib * 16 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let _ = stream.blocking_flush();
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("body consumed once");
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().expect("stream taken once");
        stream.read_to_end(&mut bytes).expect("read body");
    }
    let _ = IncomingBody::finish(body);
    bytes
}

fn respond(response_out: ResponseOutparam, status: u16, body_bytes: &[u8]) {
    let headers = Fields::new();
    headers
        .set("content-type", &[b"text/plain".to_vec()])
        .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(response_out, Ok(response));
    {
        let mut stream = body.write().expect("stream taken once");
        if stream.write_all(body_bytes).is_ok() {
            let _ = stream.blocking_flush();
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}

/// Sends a 200 head (with `content-length` when given) and returns the body
/// and its stream.
fn start(
    response_out: ResponseOutparam,
    content_length: Option<u64>,
) -> (OutgoingBody, OutputStream) {
    let headers = Fields::new();
    headers
        .set("content-type", &[b"text/plain".to_vec()])
        .expect("valid header");
    if let Some(length) = content_length {
        headers
            .set("content-length", &[length.to_string().into_bytes()])
            .expect("valid header");
    }
    let response = OutgoingResponse::new(headers);
    response.set_status_code(200).expect("valid status");
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().expect("stream taken once");
    (body, stream)
}

/// Writes and flushes `bytes`, ignoring a refusal (the host checks the
/// declared length).
fn send(stream: &mut OutputStream, bytes: &[u8]) {
    if stream.write_all(bytes).is_ok() {
        let _ = stream.blocking_flush();
    }
}
