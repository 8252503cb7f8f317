//! The console API's one error type: every error answer is the JSON body
//! `{code, message, details}`, the framework's own rejections included
//! ([`api_layer`]). Client errors carry a precise message; internal errors
//! are logged with their cause under the request id, and the client learns
//! only that id.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use runway_api::{ErrorBody, REQUEST_ID_HEADER};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Largest JSON request body the console accepts.
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

/// An error answer of the console API.
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

    /// Adds one key to the details object.
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

    /// A failure on the console's side: logged, the client gets the request id.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error in the console".into(),
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

impl From<runway_store::StoreError> for ApiError {
    fn from(e: runway_store::StoreError) -> ApiError {
        use runway_store::StoreError;
        match e {
            StoreError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            StoreError::Conflict(m) => ApiError::conflict(m),
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
            let id = current_request_id();
            tracing::error!(code = self.code, request_id = %id, "{message}: {cause}");
            message = format!("internal error, see the console's log with request id {id}");
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

/// The current request's id (a fresh one outside [`api_layer`]).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| runway_server::request_id(&http::HeaderMap::new()))
}

/// The outermost layer of every console route: a request id (echoed in
/// `x-request-id`), and any error answer that is not the JSON body yet (an
/// axum rejection) rewritten as one.
pub async fn api_layer(request: Request, next: Next) -> Response {
    let id = runway_server::request_id(request.headers());
    let mut response = REQUEST_ID
        .scope(id.clone(), async move {
            let response = next.run(request).await;
            as_error_body(response).await
        })
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

async fn as_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text: String = text.chars().take(1024).collect();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    let (code, hint) = match status {
        StatusCode::NOT_FOUND => (
            "not_found",
            "the console's routes are under /_runway/console/v1",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "send a smaller body"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
        ),
        s if s.is_server_error() => {
            return ApiError {
                status: s,
                ..ApiError::internal(format!("{s} without an error body: {text}"))
            }
            .into_response();
        }
        _ => (
            "invalid_request",
            "check the request's JSON shape and query",
        ),
    };
    ApiError::new(status, code, format!("{text}; {hint}")).into_response()
}
