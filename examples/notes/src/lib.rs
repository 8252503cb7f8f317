//! `notes`: a tiny note store, and the example to learn Runway's guest pattern from.
//!
//! # How a Runway app is put together
//!
//! * A Runway app is a WebAssembly **component** targeting the `wasi:http/proxy` world:
//!   it exports `wasi:http/incoming-handler`, whose `handle` function is called once per
//!   request. Every request gets a **fresh instance**: nothing in memory (statics,
//!   caches) survives from one request to the next. State lives in the key-value store.
//! * HTTP types come from the [`wasip2`] crate. `wasip2::http::proxy::export!` wires our
//!   type up as the exported handler.
//! * The platform's extra capabilities are described in WIT (`../../wit`), and
//!   `wit_bindgen::generate!` turns them into Rust functions:
//!   - `wasi:config/store` — the app's **properties** (declared in `runway.toml` under
//!     `[properties.*]`, set per environment by an operator) plus `runway.environment`,
//!     `runway.base_url`, `runway.app` and `runway.version`;
//!   - `wasi:keyvalue/store` and `wasi:keyvalue/atomics` — **key-value buckets**
//!     persisted by the platform, private to this app.
//! * The platform routes `/notes/…` to this component without stripping the prefix, so
//!   the handler sees the full path (`/notes/`, `/notes/3`, …). Files under `public/`
//!   (see `[static]` in `runway.toml`) are served by the platform itself, e.g.
//!   `/notes/help.txt`, before the component is called.
//!
//! # Routes
//!
//! | request              | answer                                                      |
//! |----------------------|-------------------------------------------------------------|
//! | `GET /notes/`        | 200: the `title` property, then one `id: text` line a note  |
//! | `POST /notes/`       | 201: stores the body as a new note, answers `<id>\n`        |
//! | `GET /notes/<id>`    | 200 with the note's text, or 404                            |
//! | `DELETE /notes/<id>` | 204                                                         |
//! | `GET /notes/_env`    | 200: `environment=`, `base_url=`, `app=`, `version=` lines  |
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (or `runway app build`);
//! the output `target/wasm32-wasip2/release/notes.wasm` is already a component.

use std::io::{Read as _, Write as _};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Bindings for the imports Runway adds to `wasi:http/proxy` (see `../../wit/world.wit`).
/// Kept in their own module so their `wasi::…` paths don't mix with `wasip2`'s.
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "runway:app/imports",
        // wasi:config and wasi:keyvalue come from the WIT's own `deps/` directory.
        generate_all,
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, store as kv};

/// All notes live in this bucket. Runway scopes buckets to the app: another app opening
/// "default" gets its own, separate bucket.
const BUCKET: &str = "default";
/// Notes are stored under `note:<id>`.
const NOTE_PREFIX: &str = "note:";
/// The counter `atomics::increment` bumps to hand out ids.
const NEXT_ID: &str = "next-id";

struct Notes;

// Export `Notes` as the component's `wasi:http/incoming-handler`.
wasip2::http::proxy::export!(Notes);

impl Guest for Notes {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        // Handlers return `Result`; anything unexpected (e.g. a storage error) becomes a
        // 500 with a message instead of a trap, so the caller gets an answer.
        let response =
            route(request).unwrap_or_else(|e| Response::text(500, format!("error: {e}\n")));
        response.send(response_out);
    }
}

fn route(request: IncomingRequest) -> Result<Response, String> {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query.split('?').next().unwrap_or_default();
    // The full path arrives, prefix included: `/notes/`, `/notes/3`, `/notes/_env`.
    let rest = path
        .strip_prefix("/notes")
        .unwrap_or(path)
        .trim_start_matches('/');

    match (request.method(), rest) {
        (Method::Get, "") => list(),
        (Method::Post, "") => create(read_body(request)?),
        (Method::Get, "_env") => env(),
        (Method::Get, id) => get(id),
        (Method::Delete, id) => delete(id),
        _ => Ok(Response::text(405, "method not allowed\n")),
    }
}

/// `GET /notes/`: the title, then every note as `id: text`, sorted by id.
fn list() -> Result<Response, String> {
    // A property: `None` only if the platform has no value for it at all.
    let title = config::get("title")
        .map_err(|e| format!("reading property `title`: {e:?}"))?
        .unwrap_or_else(|| "Notes".to_string());

    let bucket = open_bucket()?;
    let mut ids = Vec::new();
    // `list-keys` is paginated: keep asking until there is no cursor.
    let mut cursor = None;
    loop {
        let page = bucket
            .list_keys(cursor)
            .map_err(|e| format!("listing keys: {e:?}"))?;
        ids.extend(
            page.keys
                .iter()
                .filter_map(|key| key.strip_prefix(NOTE_PREFIX)?.parse::<u64>().ok()),
        );
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.sort_unstable();

    let mut out = format!("{title}\n");
    for id in ids {
        // A note deleted since the listing simply doesn't show up.
        if let Some(text) = bucket
            .get(&note_key(id))
            .map_err(|e| format!("reading note {id}: {e:?}"))?
        {
            // One line a note: drop the note's own trailing line break.
            let text = String::from_utf8_lossy(&text);
            out.push_str(&format!("{id}: {}\n", text.trim_end_matches(['\r', '\n'])));
        }
    }
    Ok(Response::text(200, out))
}

/// `POST /notes/`: store the body as a new note, answer its id.
fn create(text: Vec<u8>) -> Result<Response, String> {
    let bucket = open_bucket()?;
    // Instances are per request and may run concurrently: never "read max id, add one"
    // in guest code. The atomic counter hands out each id exactly once.
    let id =
        atomics::increment(&bucket, NEXT_ID, 1).map_err(|e| format!("allocating an id: {e:?}"))?;
    bucket
        .set(&note_key(id), &text)
        .map_err(|e| format!("storing note {id}: {e:?}"))?;
    Ok(Response::text(201, format!("{id}\n")))
}

/// `GET /notes/<id>`: the note's text as it was posted.
fn get(id: &str) -> Result<Response, String> {
    let Some(id) = parse_id(id) else {
        return Ok(Response::text(404, "no such note\n"));
    };
    match open_bucket()?
        .get(&note_key(id))
        .map_err(|e| format!("reading note {id}: {e:?}"))?
    {
        Some(text) => Ok(Response::text(200, text)),
        None => Ok(Response::text(404, "no such note\n")),
    }
}

/// `DELETE /notes/<id>`: deleting a note that doesn't exist is not an error.
fn delete(id: &str) -> Result<Response, String> {
    let Some(id) = parse_id(id) else {
        return Ok(Response::text(404, "no such note\n"));
    };
    open_bucket()?
        .delete(&note_key(id))
        .map_err(|e| format!("deleting note {id}: {e:?}"))?;
    Ok(Response::empty(204))
}

/// `GET /notes/_env`: the platform's own configuration keys.
fn env() -> Result<Response, String> {
    let value = |key: &str| -> Result<String, String> {
        Ok(config::get(key)
            .map_err(|e| format!("reading `{key}`: {e:?}"))?
            .unwrap_or_default())
    };
    Ok(Response::text(
        200,
        format!(
            "environment={}\nbase_url={}\napp={}\nversion={}\n",
            value("runway.environment")?,
            value("runway.base_url")?,
            value("runway.app")?,
            value("runway.version")?
        ),
    ))
}

fn open_bucket() -> Result<kv::Bucket, String> {
    kv::open(BUCKET).map_err(|e| format!("opening bucket `{BUCKET}`: {e:?}"))
}

fn note_key(id: u64) -> String {
    format!("{NOTE_PREFIX}{id}")
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

// ---------------------------------------------------------------------------------
// Small HTTP helpers over the raw `wasi:http` resources.
// ---------------------------------------------------------------------------------

/// Reads the whole request body. (The platform enforces the body size limit.)
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "request body already consumed".to_string())?;
    let mut bytes = Vec::new();
    {
        // The stream is a child of `body`: it must be dropped before `body` is.
        let mut stream = body
            .stream()
            .map_err(|()| "request body stream already taken".to_string())?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading request body: {e}"))?;
    }
    let _trailers = IncomingBody::finish(body);
    Ok(bytes)
}

struct Response {
    status: u16,
    /// `None`: no body and no content type (e.g. 204).
    body: Option<Vec<u8>>,
}

impl Response {
    fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            body: Some(body.into()),
        }
    }

    fn empty(status: u16) -> Self {
        Response { status, body: None }
    }

    fn send(self, response_out: ResponseOutparam) {
        let headers = Fields::new();
        if self.body.is_some() {
            headers
                .set("content-type", &[b"text/plain; charset=utf-8".to_vec()])
                .expect("content-type is a valid, mutable header");
        }
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(self.status)
            .expect("valid status code");
        let body = response.body().expect("the body is taken once");
        // Hand the response head to the host first, then stream the body.
        ResponseOutparam::set(response_out, Ok(response));

        if let Some(bytes) = self.body {
            let mut stream = body.write().expect("the body stream is taken once");
            // If the client went away there is nobody left to tell: ignore write errors.
            if stream.write_all(&bytes).is_ok() {
                let _ = stream.blocking_flush();
            }
        } // the stream is dropped here, before the body is finished
        let _ = OutgoingBody::finish(body, None);
    }
}
