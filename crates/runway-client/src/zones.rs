//! Deployment zones (issue 12 part 1): `/zones…` and `PUT /apps/{app}/zone`.

use reqwest::{Method, StatusCode};
use runway_api::v1::{AppZoneChange, CreateZone, Deployment, UpdateZone, ZoneView};

use crate::{Client, ClientError, decode};

impl Client {
    /// Every zone of the environment (`global` included).
    pub async fn zones(&self) -> Result<Vec<ZoneView>, ClientError> {
        self.get_json(self.api(&["zones"])).await
    }

    /// One zone.
    pub async fn zone(&self, name: &str) -> Result<ZoneView, ClientError> {
        self.get_json(self.api(&["zones", name])).await
    }

    /// Creates a zone.
    pub async fn create_zone(&self, request: &CreateZone) -> Result<ZoneView, ClientError> {
        let url = self.api(&["zones"]);
        let req = self.request(Method::POST, url.clone()).json(request);
        decode(self.send(req, &url).await?, &url).await
    }

    /// Changes a zone's address and HTTPS flag.
    pub async fn update_zone(
        &self,
        name: &str,
        request: &UpdateZone,
    ) -> Result<ZoneView, ClientError> {
        let url = self.api(&["zones", name]);
        let req = self.request(Method::PUT, url.clone()).json(request);
        decode(self.send(req, &url).await?, &url).await
    }

    /// Removes a zone no front-end or app uses.
    pub async fn remove_zone(&self, name: &str) -> Result<(), ClientError> {
        let url = self.api(&["zones", name]);
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    /// Deploys `app` to zone `zone`: the deployment when the app runs (it
    /// moves between front-ends), `None` when it was only assigned (it runs
    /// nothing) or already there.
    pub async fn set_app_zone(
        &self,
        app: &str,
        zone: &str,
    ) -> Result<Option<Deployment>, ClientError> {
        let url = self.api(&["apps", app, "zone"]);
        let req = self.request(Method::PUT, url.clone()).json(&AppZoneChange {
            zone: zone.to_string(),
        });
        let resp = self.send(req, &url).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(resp, &url).await.map(Some)
    }
}

impl Client {
    /// The environment's hostname setting and base URL.
    pub async fn hostname(&self) -> Result<runway_api::v1::HostnameView, ClientError> {
        self.get_json(self.api(&["hostname"])).await
    }

    /// Changes the environment's hostname (running apps are redeployed with
    /// the new base URL).
    pub async fn set_hostname(
        &self,
        change: &runway_api::v1::HostnameChange,
    ) -> Result<runway_api::v1::HostnameView, ClientError> {
        let url = self.api(&["hostname"]);
        let req = self.request(Method::PUT, url.clone()).json(change);
        decode(self.send(req, &url).await?, &url).await
    }
}
