//! The timer endpoints of the environment API: `GET /timers`, `POST
//! /timers/{app}/{timer}/run`, `PUT /timers/{app}/{timer}/schedule`,
//! `GET|PUT /timer-settings`. The controller only records wishes in the
//! platform catalog (overrides, "run now", the time zone); the front-ends
//! with the timers flag run timers (`runway_frontend` scheduler).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use runway_api::v1::{
    TimerQuery, TimerRunRequested, TimerRunView, TimerRunningView, TimerScheduleChange,
    TimerSettingsView, TimerStatus,
};
use runway_manifest::{DEFAULT_TIME_ZONE, Schedule, Timer, Tz, parse_time_zone};
use runway_store::{TIME_ZONE_SETTING, TimerState};
use utoipa::OpenApi;

use crate::Controller;
use crate::controller_error::ControllerError;
use crate::deployer::app_not_found;
use crate::error::ApiResult;
use crate::identity::{Admin, Caller, Deploy, Read};

#[derive(OpenApi)]
#[openapi(paths(
    list_timers,
    run_timer,
    schedule_timer,
    get_timer_settings,
    put_timer_settings
))]
pub(crate) struct TimersDoc;

pub(crate) fn routes() -> Router<Controller> {
    Router::new()
        .route("/timers", get(list_timers))
        .route("/timers/{app}/{timer}/run", post(run_timer))
        .route("/timers/{app}/{timer}/schedule", put(schedule_timer))
        .route(
            "/timer-settings",
            get(get_timer_settings).put(put_timer_settings),
        )
}

impl Controller {
    /// The environment's time zone for timer schedules.
    pub async fn timer_time_zone(&self) -> Result<String, ControllerError> {
        Ok(self
            .store()
            .setting(TIME_ZONE_SETTING)
            .await?
            .unwrap_or_else(|| DEFAULT_TIME_ZONE.to_string()))
    }

    /// The timers of running apps (of `app` only, if given).
    pub async fn timers(&self, app: Option<&str>) -> Result<Vec<TimerStatus>, ControllerError> {
        let zone = self.timer_time_zone().await?;
        let tz = parse_time_zone(&zone).unwrap_or(Tz::UTC);
        let mut records = self.store().apps().await?;
        if let Some(app) = app {
            records.retain(|r| r.name == app);
            if records.is_empty() {
                return Err(app_not_found(app));
            }
        }
        let states = self.store().timer_states(app).await?;
        let now = runway_store::now_ms();
        let mut out = Vec::new();
        for record in records {
            let Some(version) = record.running_version.as_deref() else {
                continue;
            };
            let (manifest, _) = self
                .manifest_for_config(&record.name, Some(version))
                .await?;
            for timer in &manifest.timers {
                let state = states
                    .iter()
                    .find(|s| s.app == record.name && s.timer == timer.name);
                out.push(status(&record.name, timer, state, &zone, tz, now));
            }
        }
        Ok(out)
    }

    /// The manifest of the running version of `app` and its timer `timer`.
    async fn running_timer(&self, app: &str, timer: &str) -> Result<Timer, ControllerError> {
        let record = self
            .store()
            .app(app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        let Some(version) = record.running_version.as_deref() else {
            return Err(ControllerError::not_found_with(
                "app_not_running",
                format!(
                    "app '{app}' is not deployed here; deploy it first (`runway app deploy {app} VERSION`)"
                ),
            ));
        };
        let (manifest, _) = self.manifest_for_config(app, Some(version)).await?;
        manifest
            .timers
            .iter()
            .find(|t| t.name == timer)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = manifest.timers.iter().map(|t| t.name.as_str()).collect();
                ControllerError::not_found_with(
                    "timer_not_found",
                    format!(
                        "app '{app}' {version} has no timer named '{timer}'; its timers: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            })
    }
}

fn status(
    app: &str,
    timer: &Timer,
    state: Option<&TimerState>,
    zone: &str,
    tz: Tz,
    now: i64,
) -> TimerStatus {
    let over = state.and_then(|s| s.schedule_override.clone());
    let disabled = state.is_some_and(|s| s.disabled);
    let schedule = over.clone().unwrap_or_else(|| timer.schedule.clone());
    // The catalog's next due time once a front-end computed it for this
    // schedule; else what it will compute.
    let basis = format!("{schedule}|{tz}");
    let next_run_at_ms = if disabled {
        None
    } else {
        match state {
            Some(s) if s.next_due_basis.as_deref() == Some(basis.as_str()) => s.next_due_at_ms,
            _ => Schedule::parse(&schedule)
                .ok()
                .and_then(|s| s.next_after(now, tz)),
        }
    };
    TimerStatus {
        app: app.to_string(),
        timer: timer.name.clone(),
        path: timer.path.clone(),
        manifest_schedule: timer.schedule.clone(),
        overridden: over.is_some(),
        schedule,
        disabled,
        time_zone: zone.to_string(),
        timeout_secs: timer.timeout_secs.unwrap_or(0),
        next_run_at_ms,
        run_now_pending: state.is_some_and(|s| s.run_now_at_ms.is_some()),
        running: state
            .and_then(|s| s.running.as_ref())
            .map(|r| TimerRunningView {
                frontend: r.frontend.clone(),
                due_at_ms: r.due_at_ms,
                started_at_ms: r.started_at_ms,
            }),
        last_run: state.and_then(|s| s.last.as_ref()).map(|l| TimerRunView {
            due_at_ms: l.due_at_ms,
            started_at_ms: l.started_at_ms,
            duration_ms: l.duration_ms,
            status: l.status,
            outcome: l.outcome.clone(),
            error: l.error.clone(),
            frontend: l.frontend.clone(),
        }),
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/timers", params(TimerQuery), responses((status = 200, body = Vec<TimerStatus>), (status = 404, body = runway_api::ErrorBody)))]
pub(crate) async fn list_timers(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(q): Query<TimerQuery>,
) -> ApiResult<Json<Vec<TimerStatus>>> {
    let mut timers = c.timers(q.app.as_deref()).await?;
    let limits = c.config().limits;
    for t in &mut timers {
        if t.timeout_secs == 0 {
            t.timeout_secs = limits.timeout_ms.div_ceil(1000);
        }
    }
    Ok(Json(timers))
}

#[utoipa::path(post, path = "/_runway/api/v1/timers/{app}/{timer}/run", responses((status = 202, body = TimerRunRequested), (status = 404, body = runway_api::ErrorBody)))]
pub(crate) async fn run_timer(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path((app, timer)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<TimerRunRequested>)> {
    c.running_timer(&app, &timer).await?;
    let requested_at_ms = c.store().request_timer_run(&app, &timer).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TimerRunRequested {
            app,
            timer,
            requested_at_ms,
        }),
    ))
}

#[utoipa::path(put, path = "/_runway/api/v1/timers/{app}/{timer}/schedule", request_body = TimerScheduleChange, responses((status = 200, body = TimerStatus), (status = 400, body = runway_api::ErrorBody), (status = 404, body = runway_api::ErrorBody)))]
async fn schedule_timer(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path((app, timer)): Path<(String, String)>,
    Json(change): Json<TimerScheduleChange>,
) -> ApiResult<Json<TimerStatus>> {
    c.running_timer(&app, &timer).await?;
    let schedule = change.schedule.as_deref().map(str::trim);
    if let Some(s) = schedule {
        Schedule::parse(s).map_err(|e| {
            ControllerError::invalid("invalid_schedule", format!("schedule {s:?}: {e}"))
        })?;
    }
    c.store()
        .set_timer_schedule(&app, &timer, schedule, change.disabled)
        .await?;
    let status = c
        .timers(Some(&app))
        .await?
        .into_iter()
        .find(|t| t.timer == timer)
        .ok_or_else(|| ControllerError::internal("the timer vanished while it was changed"))?;
    Ok(Json(status))
}

#[utoipa::path(get, path = "/_runway/api/v1/timer-settings", responses((status = 200, body = TimerSettingsView)))]
async fn get_timer_settings(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<TimerSettingsView>> {
    Ok(Json(TimerSettingsView {
        time_zone: c.timer_time_zone().await?,
    }))
}

#[utoipa::path(put, path = "/_runway/api/v1/timer-settings", request_body = TimerSettingsView, responses((status = 200, body = TimerSettingsView), (status = 400, body = runway_api::ErrorBody)))]
async fn put_timer_settings(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Json(settings): Json<TimerSettingsView>,
) -> ApiResult<Json<TimerSettingsView>> {
    let zone = settings.time_zone.trim();
    let tz = parse_time_zone(zone)
        .map_err(|e| ControllerError::invalid("invalid_time_zone", format!("time_zone: {e}")))?;
    c.store().set_setting(TIME_ZONE_SETTING, tz.name()).await?;
    Ok(Json(TimerSettingsView {
        time_zone: tz.name().to_string(),
    }))
}
