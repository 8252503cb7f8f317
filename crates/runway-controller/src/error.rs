//! The environment API's error answers: the shared [`ApiError`] of
//! `runway-server` (one JSON body `{code, message, details}` for every API,
//! the framework's rejections included) and the one place domain code's
//! [`ControllerError`] becomes an HTTP status.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
pub use runway_server::api_error::{
    ApiError, ApiResult, ApiSurface, MAX_JSON_BODY_BYTES, current_request_id,
};

use crate::controller_error::ControllerError;

/// The environment API, as its error answers name it.
pub const SURFACE: ApiSurface = ApiSurface {
    role: "controller",
    openapi: "/_runway/api/openapi.json",
};

/// The environment API's outermost layer (see [`runway_server::api_error::api_layer`]).
pub async fn api_layer(request: Request, next: Next) -> Response {
    runway_server::api_error::api_layer(SURFACE, request, next).await
}

/// The one place a controller error becomes an HTTP status and body.
impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> ApiError {
        let (status, refusal) = match e {
            ControllerError::Invalid(r) => (StatusCode::BAD_REQUEST, r),
            ControllerError::Unauthenticated(r) => (StatusCode::UNAUTHORIZED, r),
            ControllerError::Forbidden(r) => (StatusCode::FORBIDDEN, r),
            ControllerError::NotFound(r) => (StatusCode::NOT_FOUND, r),
            ControllerError::Conflict(r) => (StatusCode::CONFLICT, r),
            ControllerError::Unrunnable(r) => (StatusCode::UNPROCESSABLE_ENTITY, r),
            ControllerError::Rollout(r) => (StatusCode::BAD_GATEWAY, r),
            ControllerError::Busy(r) => (StatusCode::SERVICE_UNAVAILABLE, r),
            // Shown as is: the message says how to repair the stored data.
            ControllerError::Damaged(r) => (StatusCode::INTERNAL_SERVER_ERROR, r),
            ControllerError::Internal(cause) => return ApiError::internal(cause),
        };
        ApiError::new(status, refusal.code, refusal.message).with_details(refusal.details)
    }
}
