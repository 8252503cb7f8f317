//! Test fixture: the app of the timer tests.
//!
//! * `POST /ticker/tasks/count` — counts a run: increments `run-<timer>-<due>`
//!   (from `x-runway-timer` and `x-runway-timer-due`) and `runs-<timer>`.
//! * `POST /ticker/tasks/trap` — counts, then traps.
//! * `POST /ticker/tasks/loop` — counts, then loops forever (its timeout stops it).
//! * `POST /ticker/tasks/slow?ms=N` — counts `start-…`, sleeps N ms (default
//!   6000), then counts `run-…`.
//! * `GET /ticker/keys?prefix=P` — `key=value` lines of every key starting with P.
//! * `GET /ticker/headers` — not a timer: echoes the timer headers it got.

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


struct Ticker;

wasip2::http::proxy::export!(Ticker);

fn header(request: &IncomingRequest, name: &str) -> String {
    request
        .headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[path = "../../common/counters.rs"]
mod counters;

use counters::{count, keys};

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}

impl Guest for Ticker {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let timer = header(&request, "x-runway-timer");
        let due = header(&request, "x-runway-timer-due");
        let run_key = format!("run-{timer}-{due}");
        let (status, body) = match path {
            "/ticker/tasks/count" => {
                count(&run_key);
                count(&format!("runs-{timer}"));
                (200, "counted\n".to_string())
            }
            "/ticker/tasks/trap" => {
                count(&run_key);
                panic!("the trap timer traps on purpose");
            }
            "/ticker/tasks/loop" => {
                count(&run_key);
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/ticker/tasks/slow" => {
                count(&format!("start-{timer}-{due}"));
                let ms = param(query, "ms").and_then(|v| v.parse().ok()).unwrap_or(6000);
                sleep_ms(ms);
                count(&run_key);
                (200, "slept\n".to_string())
            }
            "/ticker/keys" => (200, keys(&param(query, "prefix").unwrap_or_default())),
            "/ticker/headers" => (200, format!("timer={timer} due={due}\n")),
            _ => (404, "unknown path\n".to_string()),
        };
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).unwrap();
        let out = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let stream = out.write().unwrap();
        stream.blocking_write_and_flush(body.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(out, None).unwrap();
    }
}
