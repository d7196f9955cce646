use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error as the API reports it: a status, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code such as `not_found`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<chime_core::Error> for ApiError {
    fn from(e: chime_core::Error) -> ApiError {
        use chime_core::Error as E;
        let message = e.to_string();
        match e {
            E::JobNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            E::JobExists(_) | E::RunExists { .. } | E::VersionConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            E::UnknownTask(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_task", message),
            E::Invalid(_) => ApiError::invalid(message),
            E::ShutDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shut_down", message),
            E::Store { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is larger than {} bytes", crate::MAX_BODY),
            )
        } else {
            ApiError::malformed(r.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::malformed(r.body_text())
    }
}
