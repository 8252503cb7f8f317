//! `runway-console`: the infrastructure console (the LifeTime of Runway),
//! `runway console serve`.
//!
//! The console registers environments, groups them in pipelines, follows the
//! applications and versions each runs (a health poller per environment),
//! and moves versions between environments with deployment plans. It has its
//! own catalog ([`runway_store::ConsoleStore`]) and talks to environments
//! only through their API ([`runway_client::Client`]), with a `console`-scope
//! token it minted on each at registration (sealed at rest).
//!
//! Modules: [`server`] (process: listener, admin token, key, pollers),
//! [`auth`] (bearer tokens and sessions), [`accounts`] (service accounts),
//! [`users`] (IT users, passwords, login, sessions), [`access`] (levels,
//! roles, teams: the one effective-level function), [`roles`] (custom
//! roles, teams, a user's role, and the catalog side of access: a
//! principal's grants), [`audit`] (the audit log),
//! [`environments`] (environments and pipelines), [`poller`] (health polls),
//! [`apps`] (applications × environments, versions), [`trust`] (signing
//! keys, tokens for environments), [`error`] (JSON errors),
//! [`openapi`] (the API's OpenAPI document), [`web`] (the pages: the
//! console in a browser, on the same service functions as the API).
//! Deployment plans and the LifeTime Deployment API v2 surface live in their
//! own modules (`plans`, `lifetime`).

pub mod access;
pub mod accounts;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod environments;
pub mod error;
pub mod lifetime;
mod metrics;
pub mod openapi;
pub mod plans;
pub mod poller;
pub mod roles;
pub mod server;
pub mod trust;
pub mod users;
pub mod web;
pub mod web_sso;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use runway_store::ConsoleStore;

pub use server::{ConsoleConfig, ConsoleServer};

/// The console's state, shared by every handler and task. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    store: ConsoleStore,
    poll_interval: Duration,
    identity: users::IdentityConfig,
    /// One poller task per registered environment (by key).
    pollers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// The signing key in memory and what was pushed where (`trust`).
    trust: trust::TrustState,
    /// The key of the pages' CSRF tokens: derived from the console key at
    /// start ([`Console::use_csrf_secret`]), else random.
    csrf: std::sync::OnceLock<runway_web::csrf::CsrfKey>,
}

impl Console {
    pub fn new(store: ConsoleStore, poll_interval: Duration) -> Console {
        Console::with_identity(store, poll_interval, users::IdentityConfig::default())
    }

    /// A console with these session lifetimes and login delay.
    pub fn with_identity(
        store: ConsoleStore,
        poll_interval: Duration,
        identity: users::IdentityConfig,
    ) -> Console {
        Console {
            inner: Arc::new(Inner {
                store,
                poll_interval,
                identity,
                pollers: Mutex::new(HashMap::new()),
                trust: trust::TrustState::default(),
                csrf: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn store(&self) -> &ConsoleStore {
        &self.inner.store
    }

    /// Session lifetimes and the login delay.
    pub fn identity(&self) -> users::IdentityConfig {
        self.inner.identity
    }

    /// How often each environment is polled.
    pub fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// Derives the pages' CSRF key from a secret the console keeps at rest
    /// (its key file), so forms stay valid across a restart. Only the first
    /// call counts.
    pub fn use_csrf_secret(&self, secret: &[u8]) {
        let _ = self
            .inner
            .csrf
            .set(runway_web::csrf::CsrfKey::derive(secret));
    }

    /// The pages' CSRF key.
    pub fn csrf_key(&self) -> &runway_web::csrf::CsrfKey {
        self.inner
            .csrf
            .get_or_init(runway_web::csrf::CsrfKey::random)
    }

    fn pollers(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::JoinHandle<()>>> {
        self.inner.pollers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every poller (at shutdown).
    pub fn stop_pollers(&self) {
        for (_, task) in self.pollers().drain() {
            task.abort();
        }
    }
}

/// Every route of the console's API, behind the JSON error layer.
pub fn router(console: Console) -> Router {
    Router::new()
        .merge(accounts::routes())
        .merge(users::routes())
        .merge(roles::routes())
        .merge(audit::routes())
        .merge(environments::routes())
        .merge(apps::routes())
        .merge(plans::routes())
        .merge(lifetime::routes())
        .merge(trust::routes())
        .route(
            "/_runway/console/v1/openapi.json",
            axum::routing::get(openapi::serve),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            error::MAX_JSON_BODY_BYTES,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            audit::layer,
        ))
        .layer(axum::middleware::from_fn(error::api_layer))
        .merge(web::routes(console.clone()))
        .with_state(console)
}

async fn not_found(uri: http::Uri) -> error::ApiError {
    error::ApiError::not_found(format!(
        "no console route {}: the console's API is under {}",
        uri.path(),
        runway_api::console::CONSOLE_API_V1
    ))
}

/// Name rules of environments, pipelines and service accounts: 1–63
/// characters, lowercase ASCII letters, digits and `-`, starting with a
/// letter. Returns the refusal, naming `what` and the value.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} is not valid: use 1–63 lowercase letters, digits and '-', \
             starting with a letter (e.g. dev, test, prod)"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::check_name("environment", "prod-eu1").is_ok());
        for bad in ["", "Prod", "1dev", "dev_1", "dév", &"a".repeat(64)] {
            assert!(super::check_name("environment", bad).is_err(), "{bad}");
        }
    }
}
