//! Why a balancer could not start. Every message names what is wrong, where,
//! and the flag that fixes it; the CLI prints it as the one-line error.

use std::net::SocketAddr;

/// `Result` with [`BalancerError`].
pub type Result<T, E = BalancerError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("invalid {setting}: {value}; {fix}")]
    Invalid {
        setting: &'static str,
        value: String,
        fix: &'static str,
    },

    #[error(
        "no upstreams to balance over: pass at least one --upstream http://HOST:PORT, \
         or --controller URL to discover the front-ends"
    )]
    NoUpstreams,

    #[error("the upstream {url} {reason}; pass it as --upstream http://HOST:PORT")]
    BadUpstream { url: String, reason: String },

    #[error("the upstream {name} is listed twice; pass each --upstream once")]
    DuplicateUpstream { name: String },

    #[error("{0}")]
    Connections(String),

    #[error("the controller URL {url} {reason}; pass it as --controller http://HOST:PORT")]
    BadController { url: String, reason: String },

    #[error(
        "no token for the controller at {controller}: pass an admin or read token with --token"
    )]
    NoToken { controller: String },

    #[error(
        "the token contains characters that cannot go in an HTTP header: \
         pass it with --token exactly as it was printed when it was created"
    )]
    BadToken,

    #[error(
        "cannot reach the controller at {controller} ({reason}): \
         is `runway controller serve` running there? check --controller"
    )]
    ControllerUnreachable { controller: String, reason: String },

    #[error(
        "the controller at {controller} refused the token ({status}): \
         pass an admin or read token with --token"
    )]
    ControllerRefusedToken { controller: String, status: u16 },

    #[error(
        "the controller at {controller} answered {status} to GET /_runway/api/v1/frontends{detail}: \
         is it a Runway controller of the same version? check --controller"
    )]
    ControllerStatus {
        controller: String,
        status: u16,
        detail: String,
    },

    #[error(
        "the controller at {controller} sent a front-end list the balancer cannot read ({reason}): \
         are the balancer and the controller the same Runway version?"
    )]
    ControllerBadList { controller: String, reason: String },

    #[error("cannot listen on {addr}: {reason}; pick another with --listen")]
    Listen { addr: SocketAddr, reason: String },

    #[error("{0}")]
    Certificate(crate::tls::CertificateError),

    #[error("{0}")]
    File(crate::file::FileError),

    #[error(
        "{at}: zone {zone:?} is not a zone of the environment (its zones: {known}); create it \
         with `runway zone create {zone} --address URL`, or route to one of its zones"
    )]
    UnknownZone {
        at: String,
        zone: String,
        known: String,
    },

    #[error("cannot start the balancer's worker threads: {0}")]
    Workers(#[source] std::io::Error),
}
