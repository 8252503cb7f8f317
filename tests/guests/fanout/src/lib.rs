//! Test fixture: a guest that fans out app-to-app calls and holds memory, to
//! check that one request cannot take the environment's instances, memory or
//! app-to-app calls for itself.
//!
//! * `GET /fanout/fan?n=N&to=APP&path=/P` starts N calls to
//!   `http://APP.internal/P` (the app's `/APP/P`) at once (all started
//!   before any is awaited), then waits for each: 200 `ok=K err=E\n` (K
//!   answered 200) followed by the first error.
//! * `GET /fanout/nest?n=N&depth=D` starts N calls to itself with `depth=D-1`
//!   at once (none at depth 0), then waits for each: 200 `calls=C\n` where C
//!   counts the calls of the whole tree below that answered 200.
//! * `GET /fanout/hog?mib=M&ms=T` allocates M MiB (every page touched),
//!   holds them for T ms, then 200 `hogged M\n`.
//! * anything else: 404.

use std::io::{Read as _, Write as _};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler::{self, FutureIncomingResponse};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};

struct Fanout;

wasip2::http::proxy::export!(Fanout);

impl Guest for Fanout {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let number = |name: &str| param(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match path {
            "/fanout/fan" => {
                let to = param("to").unwrap_or_else(|| "fanout".into());
                let target = param("path").unwrap_or_else(|| "/".into());
                let results: Vec<Result<(), String>> = fan(&to, &vec![target; number("n") as usize])
                    .into_iter()
                    .map(|r| match r {
                        Ok((200, _)) => Ok(()),
                        Ok((status, body)) => Err(format!("status {status}: {body}")),
                        Err(e) => Err(e),
                    })
                    .collect();
                let ok = results.iter().filter(|r| r.is_ok()).count();
                let first_error = results.iter().find_map(|r| r.as_ref().err());
                let body = format!(
                    "ok={ok} err={}\n{}",
                    results.len() - ok,
                    first_error.map(String::as_str).unwrap_or("")
                );
                respond(response_out, 200, body.as_bytes());
            }
            "/fanout/nest" => {
                let n = number("n");
                let depth = number("depth");
                let mut calls = 0u64;
                if depth > 0 {
                    let child = format!("/nest?n={n}&depth={}", depth - 1);
                    for (status, body) in fan("fanout", &vec![child; n as usize])
                        .into_iter()
                        .flatten()
                    {
                        if status == 200 {
                            calls += 1 + body
                                .trim()
                                .strip_prefix("calls=")
                                .and_then(|c| c.parse::<u64>().ok())
                                .unwrap_or(0);
                        }
                    }
                }
                respond(response_out, 200, format!("calls={calls}\n").as_bytes());
            }
            "/fanout/hog" => {
                let mib = number("mib") as usize;
                let mut hoard = vec![0u8; mib << 20];
                for i in (0..hoard.len()).step_by(4096) {
                    hoard[i] = 1;
                }
                let hoard = core::hint::black_box(hoard);
                wasip2::clocks::monotonic_clock::subscribe_duration(number("ms") * 1_000_000)
                    .block();
                drop(hoard);
                respond(response_out, 200, format!("hogged {mib}\n").as_bytes());
            }
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

/// Starts a GET to `http://{to}.internal{path}` for every path, all at once,
/// then waits for each: its status and body, or the error as text.
fn fan(to: &str, paths: &[String]) -> Vec<Result<(u16, String), String>> {
    let authority = format!("{to}.internal");
    let started: Vec<Result<FutureIncomingResponse, String>> = paths
        .iter()
        .map(|path| {
            let request = OutgoingRequest::new(Fields::new());
            request.set_method(&Method::Get).map_err(|()| "bad method")?;
            request
                .set_scheme(Some(&Scheme::Http))
                .map_err(|()| "bad scheme")?;
            request
                .set_authority(Some(&authority))
                .map_err(|()| "bad authority")?;
            request
                .set_path_with_query(Some(path))
                .map_err(|()| "bad path")?;
            outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))
        })
        .collect();
    started
        .into_iter()
        .map(|future| {
            let future = future?;
            future.subscribe().block();
            let response = future
                .get()
                .ok_or("response not ready after block")?
                .map_err(|()| "response already taken")?
                .map_err(|e| format!("{e:?}"))?;
            let status = response.status();
            let body = response.consume().map_err(|()| "body already taken")?;
            let mut bytes = Vec::new();
            {
                let mut stream = body.stream().map_err(|()| "stream already taken")?;
                stream
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("reading the response: {e}"))?;
            }
            let _ = IncomingBody::finish(body);
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
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
