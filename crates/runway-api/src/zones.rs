//! Wire shapes of deployment zones (`/_runway/api/v1/zones…`, `PUT
//! /apps/{app}/zone`) and of the environment's hostname
//! (`/_runway/api/v1/hostname`), re-exported from [`crate::v1`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The zone every environment has; front-ends and apps without one belong to it.
pub const GLOBAL_ZONE: &str = "global";

/// Serde default of every `zone` field: [`GLOBAL_ZONE`].
pub fn global_zone() -> String {
    GLOBAL_ZONE.to_string()
}

/// `GET /_runway/api/v1/zones[/{zone}]`: a deployment zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZoneView {
    pub name: String,
    /// The zone's balancer or single server (`http(s)://host:port`), where
    /// app-to-app calls from other zones go; `null` for `global` until set.
    pub address: Option<String>,
    /// Calls into this zone from other zones use HTTPS.
    pub https_internal: bool,
    /// The committed generation at which this zone's routing table last changed.
    pub generation: i64,
    /// The registered front-ends of the zone (in-process ones are in `global`).
    pub frontends: Vec<String>,
    /// The apps deployed to the zone (those with a running version).
    pub apps: Vec<String>,
}

/// `POST /_runway/api/v1/zones`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateZone {
    pub name: String,
    /// `http(s)://host[:port]`: the zone's balancer or its single server.
    pub address: String,
    #[serde(default)]
    pub https_internal: bool,
}

/// `PUT /_runway/api/v1/zones/{zone}`: a zone's address and HTTPS flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateZone {
    pub address: String,
    #[serde(default)]
    pub https_internal: bool,
}

/// `PUT /_runway/api/v1/apps/{app}/zone`: deploy the app to another zone
/// (a deployment; the answer is a `Deployment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppZoneChange {
    pub zone: String,
}

/// `GET|PUT /_runway/api/v1/hostname`: the environment's hostname setting,
/// used for every absolute URL the platform produces (`runway.base_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostnameView {
    /// `www.example.com` (or `host:port`); `null` = the listen address.
    pub hostname: Option<String>,
    /// `https` or `http`.
    pub scheme: String,
    /// The environment's base URL as apps see it (`runway.base_url`).
    pub base_url: String,
}

/// `PUT /_runway/api/v1/hostname` body. `hostname: null` goes back to the
/// listen address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostnameChange {
    pub hostname: Option<String>,
    /// `https` (default) or `http`.
    #[serde(default)]
    pub scheme: Option<String>,
}
