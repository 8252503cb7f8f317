//! Deployment zones: the endpoints (`/zones…`, `PUT /apps/{app}/zone`) and
//! what a deployment needs of them (`ZonePlan`: which zone each app runs
//! in, which zones' tables a change touches, each zone's table).
//!
//! A front-end belongs to one zone (its `--zone`; in-process front-ends are
//! in `global`) and loads only the apps of that zone. A deployment stages and
//! commits only on the front-ends of the zones whose table it changes (the
//! old and new zone of every app it touches); the generation stays one per
//! environment, and each zone remembers the generation its table last
//! changed at, which its front-ends must serve to be ready.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::fleet::RoutingTable;
use runway_api::v1::{AppZoneChange, CreateZone, Deployment, DeploymentOperation, OperationKind};
use runway_api::v1::{UpdateZone, ZoneView};
use runway_store::{GLOBAL_ZONE, ZoneChanges, ZoneRecord};
use utoipa::OpenApi;

use crate::Controller;
use crate::controller_error::{ControllerError, ControllerResult};
use crate::deployer::{Change, Job, OnStageFailure, app_not_found};
use crate::error::ApiResult;
use crate::identity::{Admin, Caller, Deploy, Read};

#[derive(OpenApi)]
#[openapi(paths(
    list_zones,
    create_zone,
    show_zone,
    update_zone,
    remove_zone,
    set_app_zone
))]
pub(crate) struct ZonesDoc;

pub(crate) fn routes() -> Router<Controller> {
    Router::new()
        .route("/zones", get(list_zones).post(create_zone))
        .route(
            "/zones/{zone}",
            get(show_zone).put(update_zone).delete(remove_zone),
        )
        .route("/apps/{app}/zone", put(set_app_zone))
        .merge(crate::hostname::routes())
}

/// Which zone every app runs in once a change is applied, and which zones'
/// tables the change touches.
pub(crate) struct ZonePlan {
    /// app → zone (apps without an entry are in `global`).
    of: BTreeMap<String, String>,
    /// The zones whose routing table the change touches.
    pub(crate) touched: BTreeSet<String>,
    /// Apps the change moves to another zone.
    moves: BTreeMap<String, String>,
    /// Settings the change writes.
    settings: BTreeMap<String, Option<String>>,
}

impl ZonePlan {
    pub(crate) fn zone_of(&self, app: &str) -> &str {
        self.of.get(app).map_or(GLOBAL_ZONE, String::as_str)
    }

    /// `table` narrowed to the apps of zone `zone` (same generation).
    pub(crate) fn table_for(&self, table: &RoutingTable, zone: &str) -> RoutingTable {
        RoutingTable {
            generation: table.generation,
            environment: table.environment.clone(),
            base_url: table.base_url.clone(),
            apps: table
                .apps
                .iter()
                .filter(|a| self.zone_of(&a.app) == zone)
                .cloned()
                .collect(),
            failed: table
                .failed
                .iter()
                .filter(|(app, _)| self.zone_of(app) == zone)
                .map(|(app, why)| (app.clone(), why.clone()))
                .collect(),
        }
    }

    /// What the recording transaction writes.
    pub(crate) fn changes(&self) -> ZoneChanges {
        ZoneChanges {
            moves: self
                .moves
                .iter()
                .map(|(app, zone)| (app.clone(), zone.clone()))
                .collect(),
            touched: Some(self.touched.iter().cloned().collect()),
            settings: self
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl Controller {
    /// The zones of `change`: every app's zone after it, and the zones whose
    /// table it changes (the old and the new zone of each app it touches).
    pub(crate) async fn zone_plan(&self, change: &Change) -> ControllerResult<ZonePlan> {
        let current = self.store().app_zones().await?;
        let mut of = current.clone();
        for (app, zone) in &change.zones {
            of.insert(app.clone(), zone.clone());
        }
        let zone_in = |map: &BTreeMap<String, String>, app: &str| {
            map.get(app)
                .cloned()
                .unwrap_or_else(|| GLOBAL_ZONE.to_string())
        };
        let mut touched = BTreeSet::new();
        let apps = change
            .running
            .keys()
            .chain(change.values.keys())
            .chain(change.zones.keys());
        for app in apps {
            touched.insert(zone_in(&current, app));
            touched.insert(zone_in(&of, app));
        }
        Ok(ZonePlan {
            of,
            touched,
            moves: change.zones.clone(),
            settings: change.settings.clone(),
        })
    }

    /// Refuses a change that would run an app in a zone without front-ends,
    /// naming the zone, the app and the fix.
    pub(crate) async fn refuse_zones_without_frontends(
        &self,
        plan: &ZonePlan,
        change: &Change,
    ) -> ControllerResult<()> {
        let deployed = change
            .running
            .iter()
            .filter(|(_, version)| version.is_some())
            .map(|(app, _)| app)
            .chain(change.values.keys())
            .chain(change.zones.keys());
        let counts = self.frontends_per_zone().await?;
        for app in deployed {
            let zone = plan.zone_of(app);
            if counts.get(zone).copied().unwrap_or(0) == 0 {
                return Err(zone_without_frontends(zone, app));
            }
        }
        Ok(())
    }

    /// The number of front-ends of each zone (registered ones, whatever
    /// their state, and the in-process ones in `global`).
    async fn frontends_per_zone(&self) -> ControllerResult<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        if !self.inner.fleet.local.is_empty() {
            counts.insert(GLOBAL_ZONE.to_string(), self.inner.fleet.local.len());
        }
        if self.inner.fleet.farm.is_some() {
            for record in self.store().frontends().await? {
                *counts.entry(record.zone).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// Every zone with its front-ends and running apps.
    pub async fn zone_views(&self) -> ControllerResult<Vec<ZoneView>> {
        let zones = self.store().zones().await?;
        let frontends = if self.inner.fleet.farm.is_some() {
            self.store().frontends().await?
        } else {
            Vec::new()
        };
        let app_zones = self.store().app_zones().await?;
        let running: Vec<String> = self
            .store()
            .apps()
            .await?
            .into_iter()
            .filter(|a| a.running_version.is_some())
            .map(|a| a.name)
            .collect();
        Ok(zones
            .into_iter()
            .map(|zone| {
                let mut names: Vec<String> = frontends
                    .iter()
                    .filter(|f| f.zone == zone.name)
                    .map(|f| f.name.clone())
                    .collect();
                if zone.name == GLOBAL_ZONE {
                    names.extend(self.inner.fleet.local.iter().map(|l| l.name().to_string()));
                }
                let apps = running
                    .iter()
                    .filter(|app| {
                        app_zones.get(*app).map_or(GLOBAL_ZONE, String::as_str) == zone.name
                    })
                    .cloned()
                    .collect();
                zone_view(zone, names, apps)
            })
            .collect())
    }

    async fn zone_view_of(&self, name: &str) -> ControllerResult<ZoneView> {
        self.zone_views()
            .await?
            .into_iter()
            .find(|z| z.name == name)
            .ok_or_else(|| zone_not_found(name))
    }

    /// `runway zone create NAME --address URL [--https-internal]`.
    pub async fn create_zone(&self, request: &CreateZone) -> ControllerResult<ZoneView> {
        if !runway_server::valid_name(&request.name) {
            return Err(ControllerError::invalid(
                "invalid_zone",
                format!("zone name {:?}: {}", request.name, runway_server::NAME_RULE),
            ));
        }
        self.refuse_standalone_zone(&request.name)?;
        let address = check_zone_address(&request.name, &request.address, request.https_internal)?;
        self.store()
            .create_zone(&request.name, &address, request.https_internal)
            .await?;
        self.inner.fleet.changed();
        tracing::info!(zone = %request.name, %address, "zone created");
        self.zone_view_of(&request.name).await
    }

    /// `runway zone set NAME --address URL [--https-internal]`.
    pub async fn update_zone(
        &self,
        name: &str,
        request: &UpdateZone,
    ) -> ControllerResult<ZoneView> {
        let address = check_zone_address(name, &request.address, request.https_internal)?;
        if !self
            .store()
            .set_zone(name, &address, request.https_internal)
            .await?
        {
            return Err(zone_not_found(name));
        }
        self.inner.fleet.changed();
        self.zone_view_of(name).await
    }

    /// An environment whose front-end runs in-process (`runway up`) has one
    /// front-end, in `global`: another zone could never have front-ends.
    fn refuse_standalone_zone(&self, name: &str) -> ControllerResult<()> {
        if self.inner.fleet.farm.is_none() {
            return Err(ControllerError::conflict_with(
                "not_a_farm",
                format!(
                    "zone {name} cannot be created: this environment runs its one front-end \
                     in-process (`runway up`), in zone global, and only zone global exists \
                     here; zones need a farm (`runway controller serve` with front-ends \
                     started by `runway frontend serve --zone {name}`)"
                ),
            ));
        }
        Ok(())
    }

    /// `runway app zone APP ZONE`: a running app is deployed to the zone's
    /// front-ends and removed from its old zone's, in one deployment (kind
    /// `config`: same version, same values); an app that runs nothing is
    /// only assigned. `None` when nothing changed (already there).
    pub async fn set_app_zone(
        &self,
        app: &str,
        zone: &str,
    ) -> ControllerResult<Option<Deployment>> {
        let lock = self.inner.deploy_lock.lock().await;
        let record = self
            .store()
            .app(app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        if self.store().zone(zone).await?.is_none() {
            return Err(zone_not_found(zone));
        }
        if self.store().app_zone(app).await? == zone {
            return Ok(None);
        }
        match record.running_version {
            Some(version) => {
                let job = Job {
                    operations: vec![DeploymentOperation {
                        app: app.to_string(),
                        kind: OperationKind::Config,
                        version: Some(version),
                        digest: record.running_digest.clone(),
                    }],
                    change: Change {
                        zones: BTreeMap::from([(app.to_string(), zone.to_string())]),
                        ..Change::default()
                    },
                    properties: Vec::new(),
                    on_failure: OnStageFailure::Fail,
                };
                let deployment = self.run_deployment(&lock, job).await?;
                tracing::info!(%app, %zone, "app moved to another zone");
                Ok(Some(deployment))
            }
            None => {
                self.refuse_while_prepared().await?;
                self.store().set_app_zone(app, zone).await?;
                tracing::info!(%app, %zone, "app assigned to a zone (it runs nothing)");
                Ok(None)
            }
        }
    }
}

fn zone_view(zone: ZoneRecord, frontends: Vec<String>, apps: Vec<String>) -> ZoneView {
    ZoneView {
        name: zone.name,
        address: zone.address,
        https_internal: zone.https_internal,
        generation: zone.generation,
        frontends,
        apps,
    }
}

/// A zone's address: an `http(s)://host[:port]` URL with no credentials,
/// path, query or fragment (app-to-app calls append `/{app}/…`).
fn check_zone_address(zone: &str, address: &str, https_internal: bool) -> ControllerResult<String> {
    let invalid = |why: &str| {
        ControllerError::invalid(
            "invalid_zone_address",
            format!(
                "zone {zone}: address {address:?} {why}; give the zone's balancer or its single \
                 server as http(s)://host[:port], e.g. --address https://{zone}-lb.internal:9443"
            ),
        )
    };
    let url = url::Url::parse(address).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("is not an http or https URL"));
    }
    if https_internal && url.scheme() != "https" {
        return Err(invalid(
            "is not https://, and the zone uses HTTPS for internal communication",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("holds credentials"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("has a path, query or fragment"));
    }
    Ok(address.trim_end_matches('/').to_string())
}

pub(crate) fn zone_not_found(zone: &str) -> ControllerError {
    ControllerError::not_found_with(
        "zone_not_found",
        format!(
            "no zone named {zone} in this environment; `runway zone list` shows them, \
             `runway zone create {zone} --address URL` creates it"
        ),
    )
}

fn zone_without_frontends(zone: &str, app: &str) -> ControllerError {
    ControllerError::conflict_with(
        "zone_without_frontends",
        format!(
            "zone {zone} has no front-ends, so app {app} cannot be deployed to it and nothing \
             was changed: start one with `runway frontend serve … --zone {zone}`, or move the \
             app with `runway app zone {app} ZONE`"
        ),
    )
    .with_detail("zone", serde_json::json!(zone))
}

#[utoipa::path(get, path = "/_runway/api/v1/zones", responses((status = 200, body = Vec<ZoneView>)))]
async fn list_zones(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<Vec<ZoneView>>> {
    Ok(Json(c.zone_views().await?))
}

#[utoipa::path(
    post, path = "/_runway/api/v1/zones", request_body = CreateZone,
    responses(
        (status = 201, body = ZoneView), (status = 400, body = runway_api::ErrorBody),
        (status = 409, body = runway_api::ErrorBody),
    )
)]
async fn create_zone(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(request): Json<CreateZone>,
) -> ApiResult<(StatusCode, Json<ZoneView>)> {
    Ok((StatusCode::CREATED, Json(c.create_zone(&request).await?)))
}

#[utoipa::path(
    get, path = "/_runway/api/v1/zones/{zone}",
    responses((status = 200, body = ZoneView), (status = 404, body = runway_api::ErrorBody))
)]
async fn show_zone(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(zone): Path<String>,
) -> ApiResult<Json<ZoneView>> {
    Ok(Json(c.zone_view_of(&zone).await?))
}

#[utoipa::path(
    put, path = "/_runway/api/v1/zones/{zone}", request_body = UpdateZone,
    responses(
        (status = 200, body = ZoneView), (status = 400, body = runway_api::ErrorBody),
        (status = 404, body = runway_api::ErrorBody),
    )
)]
async fn update_zone(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(zone): Path<String>,
    Json(request): Json<UpdateZone>,
) -> ApiResult<Json<ZoneView>> {
    Ok(Json(c.update_zone(&zone, &request).await?))
}

#[utoipa::path(
    delete, path = "/_runway/api/v1/zones/{zone}",
    responses(
        (status = 204), (status = 404, body = runway_api::ErrorBody),
        (status = 409, body = runway_api::ErrorBody, description = "global, or in use by front-ends or apps"),
    )
)]
async fn remove_zone(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Path(zone): Path<String>,
) -> ApiResult<StatusCode> {
    c.store()
        .remove_zone(&zone)
        .await
        .map_err(ControllerError::from)?;
    c.inner.fleet.changed();
    tracing::info!(%zone, "zone removed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/_runway/api/v1/apps/{app}/zone", request_body = AppZoneChange,
    responses(
        (status = 200, body = Deployment, description = "the running app was deployed to the zone"),
        (status = 204, description = "assigned (the app runs nothing), or already there"),
        (status = 404, body = runway_api::ErrorBody),
        (status = 409, body = runway_api::ErrorBody, description = "the zone has no front-ends, or a deployment is in progress"),
    )
)]
async fn set_app_zone(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(app): Path<String>,
    Json(request): Json<AppZoneChange>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    Ok(match c.set_app_zone(&app, &request.zone).await? {
        Some(deployment) => Json(deployment).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
