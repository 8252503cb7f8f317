//! The smallest Runway app.
//!
//! Every request under `/hello/…` gets `200 text/plain` "Hello from Runway!".
//! (Files in `public/`, e.g. `/hello/index.txt`, are served by the platform before
//! the component is called.)
//!
//! Build: `cargo build --target wasm32-wasip2 --release` (or `runway app build`).

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let mut out = body.write().expect("stream taken once");
        out.write_all(b"Hello from Runway!\n").expect("write body");
        out.blocking_flush().expect("flush body");
        drop(out); // the stream must be dropped before the body is finished
        OutgoingBody::finish(body, None).expect("finish body");
    }
}

wasip2::http::proxy::export!(Hello);
