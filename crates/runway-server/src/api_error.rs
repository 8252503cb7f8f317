//! The one error answer of every Runway JSON API (an environment's, the
//! console's): the body `{code, message, details}`, the framework's own
//! rejections included (bad query strings, 413, 415, 422, unknown paths,
//! 405), rewritten by [`api_layer`].
//!
//! Client errors (4xx) carry a precise message and a stable code; internal
//! errors (5xx) are logged with their cause chain under the request's id and
//! the client only learns that id: never a host path, a backtrace or database
//! text.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use runway_api::{ErrorBody, REQUEST_ID_HEADER};

/// Largest JSON request body of an API (`DefaultBodyLimit`); package uploads
/// have their own limit.
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

/// Longest framework rejection text passed on (they are short; this is a bound).
const MAX_REJECTION_TEXT: usize = 1024;

/// Which API answers: named in the hints of rewritten rejections and in the
/// message of an internal error.
#[derive(Debug, Clone, Copy)]
pub struct ApiSurface {
    /// The server role whose log holds an internal error's cause
    /// (`controller`, `console`).
    pub role: &'static str,
    /// Where the API's OpenAPI document is served.
    pub openapi: &'static str,
}

tokio::task_local! {
    /// The request being handled (set by [`api_layer`]): its id and API.
    static REQUEST: (String, ApiSurface);
}

/// The current API request's id, or a fresh one outside [`api_layer`].
pub fn current_request_id() -> String {
    REQUEST
        .try_with(|(id, _)| id.clone())
        .unwrap_or_else(|_| crate::request_id(&http::HeaderMap::new()))
}

/// An API's outermost layer: gives the request an id (echoed in
/// `x-request-id`), refuses a URL with a NUL byte (`%00`: no catalog field can
/// hold one on every backend) before any handler runs, and turns any error
/// response that is not already the JSON error body into one. Each API wraps
/// it in a `fn(Request, Next)` naming its [`ApiSurface`].
pub async fn api_layer(surface: ApiSurface, request: Request, next: Next) -> Response {
    let id = crate::request_id(request.headers());
    let mut response = REQUEST
        .scope((id.clone(), surface), async move {
            if let Some(part) = nul_in_uri(request.uri()) {
                return ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "the URL's {part} contains a NUL byte (%00); remove it (names, versions and query values are text without NUL)"
                    ),
                )
                .with_detail("field", serde_json::json!(part))
                .into_response();
            }
            let response = next.run(request).await;
            as_error_body(surface, response).await
        })
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// `path` or `query` if that part of `uri` percent-decodes to a NUL byte.
fn nul_in_uri(uri: &http::Uri) -> Option<&'static str> {
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if has_nul(uri.path()) {
        return Some("path");
    }
    if uri.query().is_some_and(has_nul) {
        return Some("query");
    }
    None
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrites a non-JSON error response (an axum rejection: plain text) as the
/// JSON error body, keeping its status and saying how to fix the request.
async fn as_error_body(surface: ApiSurface, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let openapi = surface.openapi;
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text: String = text.chars().take(MAX_REJECTION_TEXT).collect();
    let error = match status {
        StatusCode::BAD_REQUEST => ApiError::bad_request(
            "invalid_request",
            format!(
                "{}; check the request against {openapi}",
                or(&text, "the request is malformed")
            ),
        ),
        StatusCode::NOT_FOUND => ApiError::not_found(format!(
            "{}; the endpoints are listed in {openapi}",
            or(&text, "not found")
        )),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            format!(
                "this method is not allowed here; the endpoints and their methods are listed in {openapi}"
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "payload_too_large",
            format!(
                "the request body is larger than this endpoint accepts ({MAX_JSON_BODY_BYTES} bytes for JSON); send a smaller body"
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            format!(
                "{}; send the body with Content-Type: application/json",
                or(&text, "unsupported content type")
            ),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::new(
            status,
            "invalid_request",
            format!(
                "{}; the request body's shape is in {openapi}",
                or(&text, "the request body does not have the expected shape")
            ),
        ),
        s if s.is_server_error() => ApiError {
            status: s,
            ..ApiError::internal(format!("{s} without an error body: {text}"))
        },
        s => ApiError::new(
            s,
            "invalid_request",
            format!(
                "{}: {}",
                s.canonical_reason().unwrap_or("request refused"),
                or(&text, "no details")
            ),
        ),
    };
    let mut response = error.into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}

/// An error answer of a Runway API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
    cause: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            cause: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = details;
        self
    }

    /// Adds one key to the details object (keeping what is there).
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> ApiError {
        if !self.details.is_object() {
            self.details = serde_json::json!({});
        }
        self.details[key] = value;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A failure on our side: the client learns only the request id, the
    /// cause goes to the server's log under that id.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".into(),
            details: serde_json::Value::Null,
            cause: Some(cause.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{} ({cause})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A catalog's refusal keeps its message; any other store failure is internal.
impl From<runway_store::StoreError> for ApiError {
    fn from(e: runway_store::StoreError) -> ApiError {
        use runway_store::StoreError;
        match e {
            StoreError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            StoreError::Conflict(m) | StoreError::QuotaExceeded(m) => ApiError::conflict(m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            other => ApiError::internal(format!("{other:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut message = self.message;
        let mut details = self.details;
        if let Some(cause) = &self.cause {
            let (id, role) = REQUEST
                .try_with(|(id, surface)| (id.clone(), surface.role))
                .unwrap_or_else(|_| (current_request_id(), "server"));
            tracing::error!(code = self.code, request_id = %id, "{message}: {cause}");
            // The client gets the id to quote, never the cause.
            message = format!("internal error, see the {role}'s log with request id {id}");
            if !details.is_object() {
                details = serde_json::json!({});
            }
            details["request_id"] = serde_json::json!(id);
        }
        let body = ErrorBody {
            code: self.code.to_string(),
            message,
            details,
        };
        (self.status, Json(body)).into_response()
    }
}
