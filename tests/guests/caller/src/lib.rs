//! Test fixture: an outbound HTTP caller.
//!
//! `GET /caller/fetch?url=<percent-encoded absolute URL>` performs an outgoing GET
//! through `wasi:http/outgoing-handler`:
//! * on success: 200, body `status=<code>\n<response body>`
//! * on failure (refused by the allow-list, connection error, …): 502, body
//!   `error=<ErrorCode as Debug>\n`, e.g. `error=ErrorCode::HttpRequestDenied`.
//! Anything else: 404. A malformed `url` parameter: 400.

use std::io::{Read as _, Write as _};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};

struct Caller;

wasip2::http::proxy::export!(Caller);

impl Guest for Caller {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        if path != "/caller/fetch" {
            return respond(response_out, 404, b"not found\n");
        }
        let Some(url) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("url="))
            .and_then(percent_decode)
        else {
            return respond(response_out, 400, b"missing or malformed ?url=\n");
        };
        let Some((scheme, authority, path_with_query)) = split_url(&url) else {
            return respond(
                response_out,
                400,
                format!("not an absolute http(s) URL: {url}\n").as_bytes(),
            );
        };
        match fetch(scheme, authority, path_with_query) {
            Ok((status, body)) => {
                let mut out = format!("status={status}\n").into_bytes();
                out.extend_from_slice(&body);
                respond(response_out, 200, &out);
            }
            Err(error) => respond(response_out, 502, format!("error={error}\n").as_bytes()),
        }
    }
}

/// GET `scheme://authority/path_with_query`; `Err` carries the text to report.
fn fetch(scheme: Scheme, authority: &str, path_with_query: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "bad method")?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad authority {authority:?}"))?;
    request
        .set_path_with_query(Some(path_with_query))
        .map_err(|()| format!("bad path {path_with_query:?}"))?;

    let future = outgoing_handler::handle(request, None).map_err(debug)?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("response not ready after block")?
        .map_err(|()| "response already taken")?
        .map_err(debug)?;

    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "response body already taken")?;
    let mut bytes = Vec::new();
    {
        let mut stream = body
            .stream()
            .map_err(|()| "response stream already taken")?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading response body: {e}"))?;
    }
    let _ = IncomingBody::finish(body);
    Ok((status, bytes))
}

fn debug(e: ErrorCode) -> String {
    format!("{e:?}")
}

/// `http://host:port/path?q` → (scheme, "host:port", "/path?q").
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return None;
    }
    Some((scheme, authority, if path.is_empty() { "/" } else { path }))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
