//! A Runway app: a WebAssembly component serving HTTP.
//!
//! * The component exports `wasi:http/incoming-handler` (via `wasip2::http::proxy::export!`):
//!   `handle` runs once per request, in a fresh instance. Nothing kept in memory survives
//!   between requests; keep state in the key-value store.
//! * `wit/` describes what Runway adds to `wasi:http/proxy`, and `wit_bindgen::generate!`
//!   turns it into Rust:
//!   - `wasi:config/store`: the app's properties (see `[properties.*]` in `runway.toml`)
//!     plus `runway.environment`, `runway.base_url`, `runway.app`, `runway.version`;
//!   - `wasi:keyvalue/store` and `wasi:keyvalue/atomics`: buckets persisted by the
//!     platform and private to this app;
//!   - `runway:jobs/queue`: `enqueue(path, payload, options)` stores a background
//!     job, delivered later to this app as `POST /<app name><path>` (headers
//!     `x-runway-job`, `x-runway-attempt`; a 2xx completes it, anything else retries).
//! * The app is mounted at `/<app name>/`; the handler sees the full path.
//!
//! `GET /<app>/` greets the visitor (`?name=Ada` to be greeted by name) and counts visits.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "runway:app/imports",
        generate_all,
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, store as kv};

struct App;

wasip2::http::proxy::export!(App);

impl Guest for App {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = match request.method() {
            Method::Get => greet(&request).unwrap_or_else(|e| (500, format!("error: {e}\n"))),
            _ => (405, "only GET is supported\n".to_string()),
        };
        send(response_out, status, &body);
    }
}

fn greet(request: &IncomingRequest) -> Result<(u16, String), String> {
    // A property: its value is set per environment, defaulting to `runway.toml`'s.
    let greeting = config::get("greeting")
        .map_err(|e| format!("reading property `greeting`: {e:?}"))?
        .unwrap_or_else(|| "Hello".to_string());

    let path_with_query = request.path_with_query().unwrap_or_default();
    let name = path_with_query
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .filter(|name| !name.is_empty())
        .unwrap_or("world");

    // Instances may run concurrently: let the store count, atomically.
    let bucket = kv::open("default").map_err(|e| format!("opening bucket: {e:?}"))?;
    let visits =
        atomics::increment(&bucket, "visits", 1).map_err(|e| format!("counting: {e:?}"))?;

    Ok((
        200,
        format!("{greeting}, {name}! This page has had {visits} visit(s).\n"),
    ))
}

fn send(response_out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::new();
    headers
        .set("content-type", &[b"text/plain; charset=utf-8".to_vec()])
        .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status code");
    let body = response.body().expect("the body is taken once");
    // Send the head first, then stream the body.
    ResponseOutparam::set(response_out, Ok(response));
    {
        let mut stream = body.write().expect("the body stream is taken once");
        if stream.write_all(text.as_bytes()).is_ok() {
            let _ = stream.blocking_flush();
        }
    } // drop the stream before finishing the body
    let _ = OutgoingBody::finish(body, None);
}
