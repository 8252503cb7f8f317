//! Test fixture: exports the HTTP handler, but also imports `test:extra/secret-sauce`,
//! which Runway does not provide. Runway must refuse it when validating/linking.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "test:extra/w",
    });
}

struct BadImport;

wasip2::http::proxy::export!(BadImport);

impl Guest for BadImport {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        // Calling the import keeps it in the component (unused imports are dropped).
        let magic = bindings::test::extra::secret_sauce::magic();
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));
        {
            let mut stream = body.write().expect("stream taken once");
            if stream
                .write_all(format!("magic={magic}\n").as_bytes())
                .is_ok()
            {
                let _ = stream.blocking_flush();
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
