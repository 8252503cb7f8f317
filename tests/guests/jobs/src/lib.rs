//! Test fixture: the app of the background-job tests (`runway:jobs/queue`).
//!
//! * `POST /jobs/enqueue?n=N&path=P&key=K&delay=MS&attempts=A` — enqueues N
//!   jobs (default 1) to path P (default `/work`) with payload `<K>-<i>`
//!   (K default `job`); with `key=…` each uses the idempotency key `<K>-<i>`
//!   (`idem=0` turns that off). Answers the job ids, one a line, or 400 with
//!   the guest-visible error (`invalid: …` / `unavailable: …`).
//! * `POST /jobs/bad?case=oversized|negative|outside|other-app|not-absolute`
//!   — enqueues a job the platform must refuse; answers the error (400) or,
//!   if it was accepted, 200 `accepted <id>`.
//! * `POST /jobs/work` — the idempotent handler: counts `deliveries-<payload>`
//!   (one atomic increment: the first one is the job's effect, later ones are
//!   redeliveries it ignores); then answers 200.
//! * `POST /jobs/fail` — counts `attempt-<payload>-<x-runway-attempt>`, answers 500.
//! * `POST /jobs/flaky?ok_at=N` — 500 until attempt N, then counts `done-<payload>`.
//! * `POST /jobs/noop` — 200, nothing else (benchmarks).
//! * `GET /jobs/keys?prefix=P` — `key=value` lines of every counter starting with P.
//! * `POST /jobs/mail?to=A&n=N&subject=S&cc=C&bcc=B&html=1` — sends N emails
//!   (`runway:email/outbox`) to A (subject `S <i>`, text `mail <i>`); answers
//!   the email ids, one a line, or 400 with the guest-visible error.
//! * `POST /jobs/mail-bad?case=address|no-recipient|subject-newline|oversized|too-many|reply-to|no-body`
//!   — sends an email the platform must refuse; answers the error (400) or
//!   200 `accepted <id>`.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "runway:app/imports",
        generate_all,
    });
}

use bindings::runway::email::outbox;
use bindings::runway::jobs::queue;

struct Jobs;

wasip2::http::proxy::export!(Jobs);

fn header(request: &IncomingRequest, name: &str) -> String {
    request
        .headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn body(request: IncomingRequest) -> Vec<u8> {
    let incoming = request.consume().expect("the body");
    let stream = incoming.stream().expect("the body stream");
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend(chunk),
            Err(_) => break,
        }
    }
    drop(stream);
    IncomingBody::finish(incoming);
    out
}

#[path = "../../common/counters.rs"]
mod counters;

use counters::{count, keys};

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decoded(v))
}

/// `%XX` escapes decoded (a job path with its own query arrives escaped).
fn percent_decoded(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn shown(e: queue::Error) -> String {
    match e {
        queue::Error::Invalid(m) => format!("invalid: {m}"),
        queue::Error::Unavailable(m) => format!("unavailable: {m}"),
    }
}

fn options(delay_ms: i64, max_attempts: Option<u32>, key: Option<String>) -> queue::Options {
    queue::Options {
        delay_ms,
        max_attempts,
        idempotency_key: key,
    }
}

fn enqueue(query: &str) -> (u16, String) {
    let n: u32 = param(query, "n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let path = param(query, "path").unwrap_or_else(|| "/work".into());
    let prefix = param(query, "key").unwrap_or_else(|| "job".into());
    let idem = param(query, "idem").as_deref() != Some("0") && param(query, "key").is_some();
    let delay: i64 = param(query, "delay").and_then(|v| v.parse().ok()).unwrap_or(0);
    let attempts: Option<u32> = param(query, "attempts").and_then(|v| v.parse().ok());
    let mut out = String::new();
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        match queue::enqueue(
            &path,
            key.as_bytes(),
            &options(delay, attempts, idem.then(|| key.clone())),
        ) {
            Ok(id) => {
                out.push_str(&id);
                out.push('\n');
            }
            Err(e) => return (400, shown(e)),
        }
    }
    (200, out)
}

fn bad(query: &str) -> (u16, String) {
    let case = param(query, "case").unwrap_or_default();
    let result = match case.as_str() {
        "oversized" => queue::enqueue("/work", &vec![7u8; 256 * 1024 + 1], &options(0, None, None)),
        "negative" => queue::enqueue("/work", b"x", &options(-1, None, None)),
        "outside" => queue::enqueue("/../notes/", b"x", &options(0, None, None)),
        "other-app" => queue::enqueue("/%2e%2e/notes/work", b"x", &options(0, None, None)),
        "not-absolute" => queue::enqueue("notes/work", b"x", &options(0, None, None)),
        "attempts" => queue::enqueue("/work", b"x", &options(0, Some(0), None)),
        _ => return (404, format!("unknown case {case:?}\n")),
    };
    match result {
        Ok(id) => (200, format!("accepted {id}\n")),
        Err(e) => (400, shown(e)),
    }
}

fn mail_error(e: outbox::Error) -> String {
    match e {
        outbox::Error::Invalid(m) => format!("invalid: {m}"),
        outbox::Error::Unavailable(m) => format!("unavailable: {m}"),
    }
}

fn message(to: Vec<String>, subject: &str, text: Option<String>) -> outbox::Message {
    outbox::Message {
        to,
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: subject.to_string(),
        text,
        html: None,
        reply_to: None,
    }
}

fn list(query: &str, name: &str) -> Vec<String> {
    param(query, name)
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

fn mail(query: &str) -> (u16, String) {
    let n: u32 = param(query, "n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let subject = param(query, "subject").unwrap_or_else(|| "hello".into());
    let mut out = String::new();
    for i in 0..n {
        let mut m = message(
            list(query, "to"),
            &format!("{subject} {i}"),
            Some(format!("mail {i}\n")),
        );
        m.cc = list(query, "cc");
        m.bcc = list(query, "bcc");
        if param(query, "html").as_deref() == Some("1") {
            m.html = Some(format!("<p>mail {i}</p>"));
        }
        match outbox::send(&m) {
            Ok(id) => {
                out.push_str(&id);
                out.push('\n');
            }
            Err(e) => return (400, mail_error(e)),
        }
    }
    (200, out)
}

fn mail_bad(query: &str) -> (u16, String) {
    let case = param(query, "case").unwrap_or_default();
    let ok = || vec!["ada@example.com".to_string()];
    let m = match case.as_str() {
        "address" => message(vec!["not an address".into()], "x", Some("x".into())),
        "header-injection" => message(
            vec!["ada@example.com\r\nBcc: evil@example.com".into()],
            "x",
            Some("x".into()),
        ),
        "no-recipient" => message(Vec::new(), "x", Some("x".into())),
        "subject-newline" => message(ok(), "hi\r\nBcc: evil@example.com", Some("x".into())),
        "oversized" => message(ok(), "x", Some("x".repeat((1 << 20) + 1))),
        "too-many" => message(
            (0..51).map(|i| format!("u{i}@example.com")).collect(),
            "x",
            Some("x".into()),
        ),
        "reply-to" => {
            let mut m = message(ok(), "x", Some("x".into()));
            m.reply_to = Some("nobody@".into());
            m
        }
        "no-body" => message(ok(), "x", None),
        _ => return (404, format!("unknown case {case:?}\n")),
    };
    match outbox::send(&m) {
        Ok(id) => (200, format!("accepted {id}\n")),
        Err(e) => (400, mail_error(e)),
    }
}

impl Guest for Jobs {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .map(|(p, q)| (p.to_string(), q.to_string()))
            .unwrap_or((path_with_query.clone(), String::new()));
        let job = header(&request, "x-runway-job");
        let attempt = header(&request, "x-runway-attempt");
        let (status, text) = match path.as_str() {
            "/jobs/enqueue" => enqueue(&query),
            "/jobs/bad" => bad(&query),
            "/jobs/work" => {
                let payload = String::from_utf8_lossy(&body(request)).into_owned();
                count(&format!("deliveries-{payload}"));
                (200, "done\n".to_string())
            }
            "/jobs/fail" => {
                let payload = String::from_utf8_lossy(&body(request)).into_owned();
                count(&format!("attempt-{payload}-{attempt}"));
                (500, "failing on purpose\n".to_string())
            }
            "/jobs/flaky" => {
                let ok_at: u32 = param(&query, "ok_at").and_then(|v| v.parse().ok()).unwrap_or(2);
                let payload = String::from_utf8_lossy(&body(request)).into_owned();
                count(&format!("attempt-{payload}-{attempt}"));
                if attempt.parse::<u32>().unwrap_or(0) >= ok_at {
                    count(&format!("done-{payload}"));
                    (200, "done\n".to_string())
                } else {
                    (503, "not yet\n".to_string())
                }
            }
            "/jobs/noop" => (200, String::new()),
            "/jobs/mail" => mail(&query),
            "/jobs/mail-bad" => mail_bad(&query),
            "/jobs/keys" => (200, keys(&param(&query, "prefix").unwrap_or_default())),
            _ => (404, "unknown path\n".to_string()),
        };
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).unwrap();
        let out = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let stream = out.write().unwrap();
        for chunk in text.as_bytes().chunks(4096) {
            stream.blocking_write_and_flush(chunk).unwrap();
        }
        drop(stream);
        OutgoingBody::finish(out, None).unwrap();
    }
}
