//! The health poller: one task per registered environment asks it, every
//! poll interval, for its state (reachable, Runway version, front-ends and
//! their states, generation, apps and their running versions) with the
//! console's credential, and records what it saw. An environment that does
//! not answer is marked unreachable (with the cause); nothing else stops.

use std::time::Duration;

use runway_client::Client;
use runway_store::console::apps::{ObservedApp, Poll};
use runway_store::console::environments::FrontendSnapshot;

use crate::Console;

/// Longest a poll may take before the environment counts as unreachable.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a poll did not record a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The environment is not registered (any more).
    #[error("environment {0} is not registered")]
    Unknown(String),
    /// The environment did not answer, or refused: recorded as unreachable.
    #[error("{0}")]
    Unreachable(String),
    /// The console's own catalog failed.
    #[error(transparent)]
    Store(#[from] runway_store::StoreError),
}

impl Console {
    /// Starts a poller for every registered environment.
    pub async fn start_pollers(&self) -> Result<(), runway_store::StoreError> {
        for env in self.store().environments().await? {
            self.start_poller(&env.id);
        }
        Ok(())
    }

    /// Starts (or restarts) the poller of one environment.
    pub fn start_poller(&self, environment_id: &str) {
        let console = self.clone();
        let id = environment_id.to_string();
        let interval = self.poll_interval();
        let task = tokio::spawn(async move {
            loop {
                match console.poll_once(&id).await {
                    Ok(()) | Err(PollError::Unreachable(_)) => {}
                    Err(PollError::Unknown(_)) => return,
                    Err(PollError::Store(e)) => {
                        tracing::warn!(environment = %id, "cannot record a poll: {e}");
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
        if let Some(old) = self.pollers().insert(environment_id.to_string(), task) {
            old.abort();
        }
    }

    /// Stops the poller of one environment.
    pub fn stop_poller(&self, environment_id: &str) {
        if let Some(task) = self.pollers().remove(environment_id) {
            task.abort();
        }
    }

    /// Polls one environment now and records the result.
    pub async fn poll_once(&self, environment_id: &str) -> Result<(), PollError> {
        let store = self.store();
        let env = store
            .environment(environment_id)
            .await?
            .ok_or_else(|| PollError::Unknown(environment_id.to_string()))?;
        let credential = store.environment_credential(&env.id).await?;
        let seen = match tokio::time::timeout(POLL_TIMEOUT, ask(&env.address, credential)).await {
            Ok(Ok(poll)) => poll,
            Ok(Err(why)) => {
                store.record_unreachable(&env.id, &why).await?;
                return Err(PollError::Unreachable(why));
            }
            Err(_) => {
                let why = format!(
                    "no answer from {} within {} s",
                    env.address,
                    POLL_TIMEOUT.as_secs()
                );
                store.record_unreachable(&env.id, &why).await?;
                return Err(PollError::Unreachable(why));
            }
        };
        let outcome = match store.record_poll(&env.id, &seen).await {
            Ok(outcome) => outcome,
            // Removed while it was being asked.
            Err(runway_store::StoreError::NotFound(_)) => {
                return Err(PollError::Unknown(env.id));
            }
            Err(e) => return Err(e.into()),
        };
        // The environment's copy of the console's keys, if this process
        // has not pushed the current set there yet (`trust`).
        self.push_keys_if_stale(&env).await;
        for version in &outcome.new_versions {
            tracing::info!(environment = %env.name, %version, "recorded a new version");
        }
        for version in &outcome.digest_mismatches {
            tracing::warn!(
                environment = %env.name,
                %version,
                "the environment runs other bytes under a version number the console knows \
                 with another digest; not recorded as that version"
            );
        }
        Ok(())
    }
}

/// Asks the environment at `address` for its state.
async fn ask(address: &str, credential: String) -> Result<Poll, String> {
    let client = Client::new(address, Some(credential)).map_err(|e| e.to_string())?;
    let (info, apps) =
        tokio::try_join!(client.environment(), client.apps()).map_err(|e| match e.status() {
            Some(401) | Some(403) => format!(
                "the environment refuses the console's credential ({e}); it was revoked \
                 there: register the environment again"
            ),
            _ => e.to_string(),
        })?;
    Ok(Poll {
        runway_version: info.runway_version,
        environment_name: info.name,
        generation: info.generation,
        frontends: info
            .frontends
            .into_iter()
            .map(|fe| FrontendSnapshot {
                name: fe.name,
                address: fe.address,
                state: fe.state,
                generation: fe.generation,
                enabled: fe.enabled,
            })
            .collect(),
        apps: apps
            .into_iter()
            .map(|app| ObservedApp {
                status: app.status,
                name: app.name,
                description: app.description,
                version: app.running_version,
                digest: app.running_digest,
                deployed_at_ms: app.deployed_at_ms,
            })
            .collect(),
    })
}
