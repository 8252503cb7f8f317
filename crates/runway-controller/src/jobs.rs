//! The background-job endpoints of the environment API: `GET /jobs`,
//! `GET /jobs/{id}`, `POST /jobs/{id}/retry`, `POST /jobs/{id}/cancel`. Apps
//! enqueue jobs (`runway:jobs/queue`) and front-ends with the timers flag
//! deliver them (`runway_frontend` scheduler); the controller shows them and
//! records an operator's retry or cancel in the platform catalog.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use runway_api::v1::{JobList, JobQuery, JobView};
use runway_store::JobRecord;
use utoipa::OpenApi;

use crate::Controller;
use crate::error::ApiResult;
use crate::identity::{Caller, Deploy, Read};

#[derive(OpenApi)]
#[openapi(paths(list_jobs, show_job, retry_job, cancel_job))]
pub(crate) struct JobsDoc;

pub(crate) fn routes() -> Router<Controller> {
    Router::new()
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(show_job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
}

/// Jobs listed when the query does not say.
const DEFAULT_LIMIT: u32 = 100;
/// Most jobs one list returns.
const MAX_LIMIT: u32 = 1000;

fn view(r: JobRecord) -> JobView {
    JobView {
        id: r.id,
        app: r.app,
        path: r.path,
        state: r.state,
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        idempotency_key: r.idempotency_key,
        payload_bytes: r.payload_bytes,
        created_at_ms: r.created_at_ms,
        run_at_ms: r.run_at_ms,
        frontend: r.holder,
        finished_at_ms: r.finished_at_ms,
        last_status: r.last_status,
        last_error: r.last_error,
    }
}

#[utoipa::path(get, path = "/_runway/api/v1/jobs", params(JobQuery), responses((status = 200, body = JobList)))]
pub(crate) async fn list_jobs(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let jobs = c.store().jobs(q.app.as_deref(), q.state, limit).await?;
    // Waiting jobs of apps with no running version stay queued: say so.
    let running: Vec<String> = c
        .store()
        .apps()
        .await?
        .into_iter()
        .filter(|a| a.running_version.is_some())
        .map(|a| a.name)
        .collect();
    let undeployed_apps = c
        .store()
        .apps_with_waiting_jobs()
        .await?
        .into_iter()
        .filter(|app| !running.contains(app))
        .filter(|app| q.app.as_deref().is_none_or(|a| a == app.as_str()))
        .collect();
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(view).collect(),
        undeployed_apps,
    }))
}

#[utoipa::path(get, path = "/_runway/api/v1/jobs/{id}", responses((status = 200, body = JobView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_job(
    State(c): State<Controller>,
    _caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(view(c.store().job(&id).await?)))
}

#[utoipa::path(post, path = "/_runway/api/v1/jobs/{id}/retry", responses((status = 200, body = JobView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn retry_job(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(view(c.store().retry_job(&id).await?)))
}

#[utoipa::path(post, path = "/_runway/api/v1/jobs/{id}/cancel", responses((status = 200, body = JobView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn cancel_job(
    State(c): State<Controller>,
    _caller: Caller<Deploy>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(view(c.store().cancel_job(&id).await?)))
}
