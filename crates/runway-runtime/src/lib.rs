//! The WebAssembly host of Runway: one wasmtime engine per process, components
//! validated and compiled ahead of time, and a fresh sandboxed instance for
//! every HTTP request.
//!
//! The runtime knows nothing about catalogs or routing. Everything a guest may
//! touch arrives in an [`Invocation`]: its configuration, a key-value backend
//! already scoped to the app, its job queue, its outbound policy and its limits. Everything it
//! produces besides the response (output lines, refused calls, late failures)
//! leaves through [`InvocationEvents`].

mod capture;
mod email;
mod engine;
mod fair;
mod host;
mod invoke;
mod jobs;
mod outbound;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use email::{
    EmailError, EmailRequest, MAX_EMAIL_BODY_BYTES, MAX_EMAIL_RECIPIENTS, MAX_EMAIL_SUBJECT_BYTES,
    Outbox, OutgoingEmail, SmtpFailure, SmtpSecurity, SmtpSender, SmtpServer, check_email,
    check_mailbox,
};
pub use engine::{
    AppUsage, DEFAULT_BODY_BUFFER_BYTES, DEFAULT_BODY_READ_TIMEOUT, Runtime, RuntimeConfig,
    RuntimeUsage, default_app_concurrency, default_app_cpu_slots, default_memory_budget_bytes,
};
pub use host::{KeyValue, KvError};
pub use invoke::{CLIENT_CLOSED, Failure, ResponseBody};
pub use jobs::{
    DEFAULT_JOB_MAX_ATTEMPTS, JobError, JobQueue, JobRequest, MAX_IDEMPOTENCY_KEY_BYTES,
    MAX_JOB_ATTEMPTS, MAX_JOB_DELAY_MS, MAX_JOB_PATH_BYTES, MAX_JOB_PAYLOAD_BYTES, check_job,
};
pub use outbound::{
    CallBudget, HOPS_HEADER, INTERNAL_SUFFIX, InternalRouter, MAX_CONCURRENT_INTERNAL_CALLS,
    MAX_INTERNAL_CALLS, OutboundPolicy,
};
pub use validate::{ComponentError, ComponentReport};
pub use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// Per-request limits for one app (the environment's bounds narrowed by the
/// app's manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub max_body_bytes: u64,
    /// The manifest's `[limits] concurrency`: narrows the environment's
    /// per-app concurrency ([`RuntimeConfig::app_concurrency`]).
    pub concurrency: Option<u32>,
}

/// Which standard stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What happens during an invocation besides the response, reported as it
/// happens (the response may stream long after [`Runtime::handle`] returned).
pub trait InvocationEvents: Send + Sync {
    /// One line the guest wrote to stdout or stderr (without the newline).
    fn output(&self, stream: Stream, line: &str);
    /// The guest tried to reach an origin outside its allow-list.
    fn outbound_denied(&self, url: &str);
    /// An app-to-app call to `url` was refused because the incoming request
    /// reached its bound on internal calls (`reason` says which).
    fn internal_call_refused(&self, url: &str, reason: &str) {
        let _ = (url, reason);
    }
    /// The invocation failed after the response had started (or the failure
    /// that [`Runtime::handle`] also returns).
    fn failed(&self, failure: &Failure);
}

/// Everything one request to one app may use.
#[derive(Clone)]
pub struct Invocation {
    pub app: Arc<str>,
    pub version: Arc<str>,
    pub request_id: String,
    /// Values served through `wasi:config/store`.
    pub config: Arc<BTreeMap<String, String>>,
    pub kv: Arc<dyn KeyValue>,
    /// The app's job queue (`runway:jobs/queue`).
    pub jobs: Arc<dyn JobQueue>,
    /// The app's outbox (`runway:email/outbox`).
    pub outbox: Arc<dyn Outbox>,
    pub outbound: Arc<OutboundPolicy>,
    pub limits: AppLimits,
    pub events: Arc<dyn InvocationEvents>,
    /// App-to-app hops that led to this request (0 from outside); bounds call loops.
    pub hops: u32,
    /// The app-to-app calls of the incoming request this one serves (shared
    /// by every app it reaches): bounds their breadth.
    pub calls: Arc<CallBudget>,
}

/// A compiled component, linked and pre-instantiated: cheap to clone, ready to
/// serve requests.
#[derive(Clone)]
pub struct LoadedComponent {
    pre: wasmtime_wasi_http::p2::bindings::ProxyPre<host::HostState>,
}
