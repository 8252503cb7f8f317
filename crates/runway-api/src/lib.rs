//! Every JSON shape that crosses a process boundary in Runway.
//!
//! `v1` is the environment's REST API (`/_runway/api/v1/…`), `fleet` is the
//! controller ↔ front-end protocol, `console` the infrastructure console's
//! API, `error` the error body shared by all, `readiness` the one rule that
//! decides whether a front-end is ready.
//! This crate holds data only: no I/O and no policy, so that the server, the
//! client and the tests agree on the wire format by construction. Its one
//! interface, `fleet::FrontendLink`, lets the controller drive front-ends
//! without depending on the front-end's code.

pub mod console;
mod email;
pub mod error;
pub mod fleet;
mod jobs;
pub mod readiness;
mod timers;
pub mod trust;
pub mod v1;
mod zones;

pub use error::ErrorBody;

/// Prefix of every platform URL; app names may never start with `_`, so no app
/// can shadow it.
pub const PLATFORM_PREFIX: &str = "/_runway";
/// Prefix of the versioned REST API.
pub const API_V1: &str = "/_runway/api/v1";
/// Header carrying the request id on every response (and accepted on requests).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header naming the front-end that served a response.
pub const FRONTEND_HEADER: &str = "x-runway-frontend";
/// Header on every answer of a standby controller: the active controller's
/// address, for clients that follow it.
pub const ACTIVE_CONTROLLER_HEADER: &str = "x-runway-active-controller";
/// Error code of a write refused by a standby controller (503); `details`
/// holds `active_id` and `active_address`.
pub const STANDBY_CODE: &str = "standby";
