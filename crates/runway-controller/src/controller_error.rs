//! The error of the controller's domain code (deployer, fleet, identity,
//! lease …). It says what went wrong in the controller's terms — the caller's
//! input is invalid, something does not exist, a conflict with the
//! environment's state, a rollout that failed — and knows nothing of HTTP:
//! the handlers turn it into an [`ApiError`](crate::error::ApiError) (status
//! and JSON body) in one place, `error::ApiError::from`.

use runway_store::StoreError;

/// A refusal the caller can act on: a stable machine-readable code, a
/// message that names what is wrong and how to fix it, and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    /// A JSON object, or `null` when there are none.
    pub details: serde_json::Value,
}

/// What a controller operation failed with.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The caller's input is wrong (a package, a name, a value).
    #[error("{}", .0.message)]
    Invalid(Refusal),
    /// The caller did not say who it is, or not with a valid credential.
    #[error("{}", .0.message)]
    Unauthenticated(Refusal),
    /// The caller's credential does not allow this.
    #[error("{}", .0.message)]
    Forbidden(Refusal),
    /// What the caller named does not exist.
    #[error("{}", .0.message)]
    NotFound(Refusal),
    /// The request contradicts the environment's state (an immutable
    /// version, a running version, a missing property value …).
    #[error("{}", .0.message)]
    Conflict(Refusal),
    /// The package's component cannot run on this platform.
    #[error("{}", .0.message)]
    Unrunnable(Refusal),
    /// The front-ends could not stage or commit; nothing was switched.
    #[error("{}", .0.message)]
    Rollout(Refusal),
    /// Not now (a deployment in progress): ask again later.
    #[error("{}", .0.message)]
    Busy(Refusal),
    /// Stored data is damaged; the message says how to repair it.
    #[error("{}", .0.message)]
    Damaged(Refusal),
    /// A failure on the controller's side. The cause is for the log only:
    /// callers never see it.
    #[error("internal error in the controller ({0})")]
    Internal(String),
}

/// The result of a controller operation.
pub type ControllerResult<T> = Result<T, ControllerError>;

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        details: serde_json::Value::Null,
    }
}

impl ControllerError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Invalid(refusal(code, message))
    }

    pub fn unauthenticated(message: impl Into<String>) -> ControllerError {
        ControllerError::Unauthenticated(refusal("unauthorized", message))
    }

    pub fn forbidden(message: impl Into<String>) -> ControllerError {
        ControllerError::Forbidden(refusal("forbidden", message))
    }

    pub fn not_found(message: impl Into<String>) -> ControllerError {
        ControllerError::NotFound(refusal("not_found", message))
    }

    /// Not found, with its own code (`deployment_not_found` …).
    pub fn not_found_with(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::NotFound(refusal(code, message))
    }

    pub fn conflict(message: impl Into<String>) -> ControllerError {
        ControllerError::Conflict(refusal("conflict", message))
    }

    /// A conflict with its own code.
    pub fn conflict_with(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Conflict(refusal(code, message))
    }

    pub fn unrunnable(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Unrunnable(refusal(code, message))
    }

    pub fn rollout(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Rollout(refusal(code, message))
    }

    pub fn busy(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Busy(refusal(code, message))
    }

    pub fn damaged(code: &'static str, message: impl Into<String>) -> ControllerError {
        ControllerError::Damaged(refusal(code, message))
    }

    pub fn internal(cause: impl std::fmt::Display) -> ControllerError {
        ControllerError::Internal(cause.to_string())
    }

    fn refusal_mut(&mut self) -> Option<&mut Refusal> {
        match self {
            ControllerError::Invalid(r)
            | ControllerError::Unauthenticated(r)
            | ControllerError::Forbidden(r)
            | ControllerError::NotFound(r)
            | ControllerError::Conflict(r)
            | ControllerError::Unrunnable(r)
            | ControllerError::Rollout(r)
            | ControllerError::Busy(r)
            | ControllerError::Damaged(r) => Some(r),
            ControllerError::Internal(_) => None,
        }
    }

    fn refusal(&self) -> Option<&Refusal> {
        match self {
            ControllerError::Invalid(r)
            | ControllerError::Unauthenticated(r)
            | ControllerError::Forbidden(r)
            | ControllerError::NotFound(r)
            | ControllerError::Conflict(r)
            | ControllerError::Unrunnable(r)
            | ControllerError::Rollout(r)
            | ControllerError::Busy(r)
            | ControllerError::Damaged(r) => Some(r),
            ControllerError::Internal(_) => None,
        }
    }

    /// Replaces the details (an internal error has none).
    pub fn with_details(mut self, details: serde_json::Value) -> ControllerError {
        if let Some(r) = self.refusal_mut() {
            r.details = details;
        }
        self
    }

    /// Adds one key to the details object, keeping what is there (an
    /// internal error has none).
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> ControllerError {
        if let Some(r) = self.refusal_mut() {
            if !r.details.is_object() {
                r.details = serde_json::json!({});
            }
            r.details[key] = value;
        }
        self
    }

    /// What a caller may be shown: the refusal's message, never an internal
    /// cause (database text, host paths).
    pub fn public_message(&self) -> &str {
        match self.refusal() {
            Some(r) => &r.message,
            None => "internal error in the controller",
        }
    }

    /// The refusal's details (`null` for an internal error).
    pub fn details(&self) -> &serde_json::Value {
        static NONE: serde_json::Value = serde_json::Value::Null;
        self.refusal().map_or(&NONE, |r| &r.details)
    }
}

impl From<StoreError> for ControllerError {
    fn from(e: StoreError) -> ControllerError {
        match e {
            // Refusals of the caller's input: the message names the field.
            StoreError::Invalid(m) => ControllerError::invalid("invalid_request", m),
            StoreError::Conflict(m) | StoreError::QuotaExceeded(m) => ControllerError::conflict(m),
            StoreError::NotFound(m) => ControllerError::not_found(m),
            other => ControllerError::internal(format!("{other:#}")),
        }
    }
}
