//! What a handler answers: a [`Reply`] (JSON, redirect, bytes or nothing) or a Taskcluster-style
//! [`ApiError`], an HTTP status plus a JSON body `{code, message, requestInfo}`.
//!
//! Every handler returns `Result<Reply, ApiError>`; `server.rs` renders both. The error codes are
//! the ones Taskcluster services use, so a client sees the same shape as from a real deployment.

use serde_json::{Value, json};

/// A successful answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with a status (200 unless said otherwise).
    Json(u16, Value),
    /// A `303 See Other` to the URL, with a JSON body (the client reads the body, never follows).
    Redirect(String, Value),
    /// `204 No Content`.
    Empty,
    /// Raw bytes, as served from a blob.
    Bytes {
        /// The data.
        data: Vec<u8>,
        /// `Content-Type` header.
        content_type: String,
        /// `Content-Encoding` header, if any.
        content_encoding: Option<String>,
    },
}

impl Reply {
    /// A 200 JSON reply.
    pub fn ok(v: Value) -> Self {
        Reply::Json(200, v)
    }
}

/// An API error, rendered as `{"code": ..., "message": ...}` with the given status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Taskcluster error code, such as `AuthenticationFailed` or `RequestConflict`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: the Hawk signature, certificate or client is not acceptable.
    pub fn auth_failed(message: impl Into<String>) -> Self {
        Self::new(401, "AuthenticationFailed", message)
    }

    /// 403: the caller lacks scopes; the message names every missing scope.
    pub fn insufficient_scopes(missing: &[String]) -> Self {
        let list = missing
            .iter()
            .map(|s| format!("  - {s}"))
            .collect::<Vec<_>>()
            .join("\n");
        Self::new(
            403,
            "InsufficientScopes",
            format!("Client lacks the following scopes required for this request:\n{list}"),
        )
    }

    /// 400: the request body or parameters are invalid.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(400, "InputError", message)
    }

    /// 400: the request body does not match the endpoint's schema.
    pub fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(400, "InputValidationError", message)
    }

    /// 404: the task, run, artifact or object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFound", message)
    }

    /// 503: the deployment is away (an outage).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 409: the request conflicts with the current state (resolved run, different artifact...).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "RequestConflict", message)
    }

    /// The JSON body for this error, including a `requestInfo` like the real services send.
    pub fn body(&self, method: &str, path: &str) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "requestInfo": {"method": method, "path": path, "time": crate::state::now_json()},
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
