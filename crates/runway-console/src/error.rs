//! The console API's error answers: the shared [`ApiError`] of
//! `runway-server` (one JSON body `{code, message, details}` for every API,
//! the framework's rejections included, internal causes logged under the
//! request id).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
pub use runway_server::api_error::{
    ApiError, ApiResult, ApiSurface, MAX_JSON_BODY_BYTES, current_request_id,
};

/// The console API, as its error answers name it.
pub const SURFACE: ApiSurface = ApiSurface {
    role: "console",
    openapi: "/_runway/console/v1/openapi.json",
};

/// The console API's outermost layer (see [`runway_server::api_error::api_layer`]).
pub async fn api_layer(request: Request, next: Next) -> Response {
    runway_server::api_error::api_layer(SURFACE, request, next).await
}
