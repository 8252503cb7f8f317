//! Test fixture: a guest whose output would flood, poison or bloat the log
//! catalog if the platform let it.
//!
//! * `GET /flood/lines?n=N` writes N short lines to stdout, then 200 "flooded N\n"
//! * `GET /flood/bad`       writes a line with NUL bytes and one with invalid UTF-8
//! * `GET /flood/long`      writes one 100 KiB line
//! * anything else          404

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Flood;

wasip2::http::proxy::export!(Flood);

impl Guest for Flood {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let mut out = std::io::stdout().lock();
        match path {
            "/flood/lines" => {
                let n: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("n="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                for i in 0..n {
                    let _ = writeln!(out, "flood line {i}");
                }
                let _ = out.flush();
                respond(response_out, 200, format!("flooded {n}\n").as_bytes());
            }
            "/flood/bad" => {
                let _ = out.write_all(b"nul \0 inside \0\n");
                let _ = out.write_all(b"invalid \xff\xfe utf-8\n");
                let _ = out.flush();
                respond(response_out, 200, b"bad\n");
            }
            "/flood/long" => {
                let mut line = vec![b'L'; 100 * 1024];
                line.push(b'\n');
                let _ = out.write_all(&line);
                let _ = out.flush();
                respond(response_out, 200, b"long\n");
            }
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
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
