//! The one rule of front-end readiness; every crate that needs it calls here
//! (the front-end for `/_runway/ready` and its heartbeats, the controller for
//! `GET /frontends` and deployments, the balancer for its pool).
//!
//! A front-end is **ready** when it has committed a routing table and serves a
//! generation no older than the committed one it knows of. As the controller
//! sees it, it must also be enabled and heartbeating, and a front-end being
//! switched by a deployment counts as serving the new generation. A balancer
//! sends app traffic only to a ready, enabled front-end that serves apps.

use crate::v1::{FrontendInfo, FrontendState};

/// Whether a front-end serves what it must: it has committed a table
/// (`loaded`) and the generation it serves is not older than `committed`.
pub fn serves_committed(loaded: bool, served: i64, committed: i64) -> bool {
    loaded && served >= committed
}

/// What the controller knows of one front-end when it decides its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Not disabled by an operator.
    pub enabled: bool,
    /// Heard from within the offline timeout (always, for an in-process one).
    pub heartbeating: bool,
    /// Its own last word on [`serves_committed`].
    pub reported_ready: bool,
    /// The generation it serves.
    pub served: i64,
    /// The environment's committed generation.
    pub committed: i64,
    /// A deployment is switching it to the committed generation right now.
    pub switching: bool,
}

/// A front-end's state as the controller reports it.
pub fn state(o: Observed) -> FrontendState {
    if !o.enabled {
        FrontendState::Disabled
    } else if !o.heartbeating {
        FrontendState::Offline
    } else if o.reported_ready && (o.served >= o.committed || o.switching) {
        // Its last word was "ready", and nothing was committed since that it
        // has not got (a controller that recorded a deployment and died
        // before switching anyone leaves such rows behind).
        FrontendState::Ready
    } else {
        FrontendState::CatchingUp
    }
}

impl FrontendInfo {
    /// Whether a balancer may send it new app requests.
    pub fn takes_traffic(&self) -> bool {
        self.enabled && self.flags.serves_apps && self.state == FrontendState::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> Observed {
        Observed {
            enabled: true,
            heartbeating: true,
            reported_ready: true,
            served: 5,
            committed: 5,
            switching: false,
        }
    }

    #[test]
    fn states() {
        assert_eq!(state(observed()), FrontendState::Ready);
        let behind = Observed {
            served: 4,
            ..observed()
        };
        assert_eq!(state(behind), FrontendState::CatchingUp);
        let switching = Observed {
            switching: true,
            ..behind
        };
        assert_eq!(state(switching), FrontendState::Ready);
        let starting = Observed {
            reported_ready: false,
            ..observed()
        };
        assert_eq!(state(starting), FrontendState::CatchingUp);
        let silent = Observed {
            heartbeating: false,
            ..observed()
        };
        assert_eq!(state(silent), FrontendState::Offline);
        let disabled = Observed {
            enabled: false,
            heartbeating: false,
            ..observed()
        };
        assert_eq!(state(disabled), FrontendState::Disabled);
    }

    #[test]
    fn a_front_end_serving_an_older_generation_is_not_ready() {
        assert!(serves_committed(true, 3, 3));
        assert!(serves_committed(true, 4, 3));
        assert!(!serves_committed(true, 2, 3));
        assert!(!serves_committed(false, 3, 3));
    }
}
