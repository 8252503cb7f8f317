//! The environment's hostname (issue 12 part 3): `GET|PUT /hostname`.
//!
//! One hostname and scheme per environment, used for every absolute URL the
//! platform produces: the routing table's base URL, which apps read as
//! `runway.base_url` through `wasi:config/store`, and the URLs of the API
//! (`app show`). Unset, the base URL is the controller's (its listen or
//! `--base-url` address). Every staged table carries the base URL, so a
//! change reaches the apps by a deployment of every running app (kind
//! `config`: same versions, same values), recorded with the setting in one
//! transaction.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Json, Router, routing::get};
use runway_api::v1::{DeploymentOperation, HostnameChange, HostnameView, OperationKind};
use utoipa::OpenApi;

use crate::Controller;
use crate::controller_error::{ControllerError, ControllerResult};
use crate::deployer::{Change, Job, OnStageFailure};
use crate::error::ApiResult;
use crate::identity::{Admin, Caller, Read};

/// Setting: the environment's hostname (`www.example.com` or `host:port`).
pub(crate) const HOSTNAME_SETTING: &str = "hostname";
/// Setting: the scheme of the hostname's URLs (`https` or `http`).
pub(crate) const HOSTNAME_SCHEME_SETTING: &str = "hostname.scheme";

#[derive(OpenApi)]
#[openapi(paths(get_hostname, put_hostname))]
pub(crate) struct HostnameDoc;

pub(crate) fn routes() -> Router<Controller> {
    Router::new().route("/hostname", get(get_hostname).put(put_hostname))
}

impl Controller {
    async fn setting_with(&self, change: &Change, key: &str) -> ControllerResult<Option<String>> {
        Ok(match change.settings.get(key) {
            Some(value) => value.clone(),
            None => self.store().setting(key).await?,
        })
    }

    /// The environment's base URL with `change` applied: from the hostname
    /// setting, else the controller's own address.
    pub(crate) async fn base_url_with(&self, change: &Change) -> ControllerResult<String> {
        match self.setting_with(change, HOSTNAME_SETTING).await? {
            Some(hostname) => {
                let scheme = self
                    .setting_with(change, HOSTNAME_SCHEME_SETTING)
                    .await?
                    .unwrap_or_else(|| "https".to_string());
                Ok(format!("{scheme}://{hostname}"))
            }
            None => Ok(self.config().base_url.trim_end_matches('/').to_string()),
        }
    }

    /// The environment's base URL now.
    pub async fn base_url(&self) -> ControllerResult<String> {
        self.base_url_with(&Change::default()).await
    }

    /// `GET /hostname`.
    pub async fn hostname(&self) -> ControllerResult<HostnameView> {
        let hostname = self.store().setting(HOSTNAME_SETTING).await?;
        let scheme = match &hostname {
            Some(_) => self
                .store()
                .setting(HOSTNAME_SCHEME_SETTING)
                .await?
                .unwrap_or_else(|| "https".to_string()),
            None => self
                .config()
                .base_url
                .split("://")
                .next()
                .unwrap_or("http")
                .to_string(),
        };
        Ok(HostnameView {
            hostname,
            scheme,
            base_url: self.base_url().await?,
        })
    }

    /// `runway env set hostname HOST [--scheme https|http]`: records the
    /// setting; running apps are redeployed with the new base URL in the
    /// same deployment that records it.
    pub async fn set_hostname(&self, request: &HostnameChange) -> ControllerResult<HostnameView> {
        let (hostname, scheme) = match &request.hostname {
            Some(hostname) => {
                let scheme = request.scheme.as_deref().unwrap_or("https");
                let hostname = check_hostname(hostname, scheme)?;
                (Some(hostname), Some(scheme.to_string()))
            }
            None => (None, None),
        };
        let lock = self.inner.deploy_lock.lock().await;
        let settings = BTreeMap::from([
            (HOSTNAME_SETTING.to_string(), hostname.clone()),
            (HOSTNAME_SCHEME_SETTING.to_string(), scheme.clone()),
        ]);
        let running: Vec<_> = self
            .store()
            .apps()
            .await?
            .into_iter()
            .filter(|a| a.running_version.is_some())
            .collect();
        if running.is_empty() {
            // No table carries it yet: the setting alone.
            self.refuse_while_prepared().await?;
            for (key, value) in &settings {
                match value {
                    Some(value) => self.store().set_setting(key, value).await?,
                    None => self.store().delete_setting(key).await?,
                }
            }
        } else {
            let mut values = BTreeMap::new();
            for app in &running {
                values.insert(app.name.clone(), self.store().properties(&app.name).await?);
            }
            let job = Job {
                operations: running
                    .iter()
                    .map(|a| DeploymentOperation {
                        app: a.name.clone(),
                        kind: OperationKind::Config,
                        version: a.running_version.clone(),
                        digest: a.running_digest.clone(),
                    })
                    .collect(),
                change: Change {
                    values,
                    settings,
                    ..Change::default()
                },
                properties: Vec::new(),
                on_failure: OnStageFailure::Fail,
            };
            self.run_deployment(&lock, job).await?;
        }
        drop(lock);
        tracing::info!(hostname = ?hostname, "hostname changed");
        self.hostname().await
    }
}

/// `www.example.com` or `host:port`: a host name (or IP address) with an
/// optional port, nothing else (no scheme, path, credentials).
fn check_hostname(hostname: &str, scheme: &str) -> ControllerResult<String> {
    if scheme != "https" && scheme != "http" {
        return Err(ControllerError::invalid(
            "invalid_hostname",
            format!(
                "scheme {scheme:?} is not https or http; use --scheme https (the default) or --scheme http"
            ),
        ));
    }
    let invalid = |why: &str| {
        ControllerError::invalid(
            "invalid_hostname",
            format!(
                "hostname {hostname:?} {why}; give the name users reach the environment at, \
                 e.g. www.example.com or www.example.com:8443 (the scheme goes in --scheme)"
            ),
        )
    };
    if hostname.is_empty() || hostname.contains(['/', '@', '?', '#', ' ']) {
        return Err(invalid(
            "is not a host name (it holds a scheme, path, credentials or spaces)",
        ));
    }
    let url = url::Url::parse(&format!("{scheme}://{hostname}/"))
        .map_err(|e| invalid(&format!("is not a host name ({e})")))?;
    let Some(host) = url.host_str() else {
        return Err(invalid("has no host"));
    };
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

#[utoipa::path(get, path = "/_runway/api/v1/hostname", responses((status = 200, body = HostnameView)))]
async fn get_hostname(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<HostnameView>> {
    Ok(Json(c.hostname().await?))
}

#[utoipa::path(
    put, path = "/_runway/api/v1/hostname", request_body = HostnameChange,
    responses(
        (status = 200, body = HostnameView), (status = 400, body = runway_api::ErrorBody),
        (status = 409, body = runway_api::ErrorBody, description = "a deployment is in progress"),
    )
)]
async fn put_hostname(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(request): Json<HostnameChange>,
) -> ApiResult<Json<HostnameView>> {
    Ok(Json(c.set_hostname(&request).await?))
}
