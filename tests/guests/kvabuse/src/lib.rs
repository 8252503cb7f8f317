//! Test fixture: a guest that feeds `wasi:keyvalue` bad input, to check that
//! every backend gives the same, precise, guest-visible error (never a raw
//! database message) and that the per-app quota holds.
//!
//! Each path answers 200 with `ok <detail>` or `error <debug of the kv error>`:
//!
//! * `/kvabuse/nul-key`        set "a\0b"
//! * `/kvabuse/nul-get`        get "a\0b"
//! * `/kvabuse/nul-bucket`     open "b\0"
//! * `/kvabuse/long-key?n=N`   set a key of N bytes
//! * `/kvabuse/long-bucket`    open a bucket with a 129-byte name
//! * `/kvabuse/nul-increment`  increment "c\0"
//! * `/kvabuse/nul-batch`      set-many with one good and one NUL key (the good one must not land)
//! * `/kvabuse/get?key=K`      get K (ok <len> or ok none)
//! * `/kvabuse/fill?n=N&size=S` set keys fill-0.. fill-(N-1) of S bytes each; stops at the first error
//!   and answers `ok <N>` or `error after <i>: <error>`

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "runway:app/imports",
        generate_all,
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store as kv};

struct KvAbuse;

wasip2::http::proxy::export!(KvAbuse);

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn number(query: &str, name: &str, default: usize) -> usize {
    param(query, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn result<T: std::fmt::Debug>(r: Result<T, kv::Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error {e:?}"),
    }
}

fn run(path: &str, query: &str) -> String {
    let open = || kv::open("default");
    match path {
        "/kvabuse/nul-key" => result(open().and_then(|b| b.set("a\0b", b"v"))),
        "/kvabuse/nul-get" => result(open().and_then(|b| b.get("a\0b"))),
        "/kvabuse/nul-bucket" => result(kv::open("b\0").map(|_| ())),
        "/kvabuse/long-key" => {
            let key = "k".repeat(number(query, "n", 1025));
            result(open().and_then(|b| b.set(&key, b"v")))
        }
        "/kvabuse/long-bucket" => result(kv::open(&"b".repeat(129)).map(|_| ())),
        "/kvabuse/nul-increment" => result(open().and_then(|b| atomics::increment(&b, "c\0", 1))),
        "/kvabuse/nul-batch" => result(open().and_then(|b| {
            batch::set_many(
                &b,
                &[
                    ("good".to_string(), b"v".to_vec()),
                    ("ba\0d".to_string(), b"v".to_vec()),
                ],
            )
        })),
        "/kvabuse/get" => {
            let key = param(query, "key").unwrap_or_default();
            result(open().and_then(|b| b.get(&key)).map(|v| v.map(|v| v.len())))
        }
        "/kvabuse/fill" => {
            let n = number(query, "n", 10);
            let value = vec![b'x'; number(query, "size", 1)];
            let bucket = match open() {
                Ok(b) => b,
                Err(e) => return format!("error {e:?}"),
            };
            for i in 0..n {
                if let Err(e) = bucket.set(&format!("fill-{i}"), &value) {
                    return format!("error after {i}: {e:?}");
                }
            }
            format!("ok {n}")
        }
        _ => "error unknown path".to_string(),
    }
}

impl Guest for KvAbuse {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let body = run(path, query) + "\n";
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(200).unwrap();
        let out = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let stream = out.write().unwrap();
        stream.blocking_write_and_flush(body.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(out, None).unwrap();
    }
}
