//! The one error shape of the API: `{"error": code, "message": text, "correlation_id": id}`.
//!
//! Handlers return [`ApiError`]; [`normalize`] turns everything else that leaves the service
//! with a 4xx/5xx status (poem's own rejections, poem-openapi parse errors, caught panics) into
//! the same shape. A 5xx body never carries a cause: causes go to the log. `mapping` holds
//! every other layer's error → status mapping, `normalize` the outermost middleware.

mod mapping;
mod normalize;

use poem::{
    IntoResponse, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{ToJSON, Type},
};

pub use normalize::{current_correlation_id, normalize, panic_response};

use crate::telemetry::mask::mask_pii;

/// Body of every error response.
#[derive(Debug, Clone, Object, serde::Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `file_too_large`.
    pub error: String,
    /// Human-readable explanation; never contains personal data.
    pub message: String,
    /// The request's correlation id (also in the `X-Correlation-Id` header).
    pub correlation_id: String,
    /// With `verification_state_conflict` only: the verification's current state.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub state: Option<String>,
    /// With `verification_active` only: the verification the card is already in.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub verification_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Forbidden for a reason of its own, with its own code (e.g. `self_review_forbidden`).
    #[error("{message}")]
    Denied {
        code: &'static str,
        message: &'static str,
    },
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A signal that does not fit the verification's state; nothing changed.
    #[error("the verification is {state}; this signal does not apply to it")]
    StateConflict { state: &'static str },
    /// The card is already in a verification that is not final.
    #[error("the card is already in verification {id}, which is not final yet")]
    VerificationActive { id: String },
    #[error("the document has been erased")]
    Gone,
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// Too much at once on this node: retry after the given seconds.
    #[error("{message}")]
    Overloaded {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// The client sent its request too slowly.
    #[error("the request body did not arrive within {}", crate::config::duration::format(*.0))]
    BodyTimeout(std::time::Duration),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code: "validation_failed",
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. }
            | Self::StateConflict { .. }
            | Self::VerificationActive { .. } => StatusCode::CONFLICT,
            Self::Gone => StatusCode::GONE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::Denied { code, .. } => code,
            Self::NotFound => "not_found",
            Self::Conflict { code, .. } => code,
            Self::StateConflict { .. } => "verification_state_conflict",
            Self::VerificationActive { .. } => "verification_active",
            Self::Gone => "document_erased",
            Self::PayloadTooLarge { code, .. } => code,
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unprocessable { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { code, .. } => code,
            Self::Overloaded { code, .. } => code,
            Self::BodyTimeout(_) => "request_timeout",
            Self::Internal => "internal",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unprocessable {
                field: Some(field),
                message,
                ..
            } => format!("{field}: {message}"),
            other => other.to_string(),
        }
    }
}

/// Marks a response whose body already has the error shape.
#[derive(Clone, Copy)]
struct Shaped;

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    shaped_response(
        status,
        ErrorBody {
            error: code.to_string(),
            message: mask_pii(message).into_owned(),
            correlation_id: current_correlation_id(),
            state: None,
            verification_id: None,
        },
    )
}

fn shaped_response(status: StatusCode, body: ErrorBody) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_json_string());
    resp.extensions_mut().insert(Shaped);
    resp
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        let body = |state: Option<String>, verification_id: Option<String>| ErrorBody {
            error: self.code().into(),
            message: mask_pii(&self.message()).into_owned(),
            correlation_id: current_correlation_id(),
            state,
            verification_id,
        };
        let mut resp = match self {
            Self::StateConflict { state } => {
                shaped_response(self.status(), body(Some(state.to_string()), None))
            }
            Self::VerificationActive { id } => {
                shaped_response(self.status(), body(None, Some(id.clone())))
            }
            _ => error_response(self.status(), self.code(), &self.message()),
        };
        if let Self::RateLimited { retry_after_secs }
        | Self::Overloaded {
            retry_after_secs, ..
        } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let entry = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorBody::schema_ref(),
            }],
            headers: if status == 429 || status == 503 {
                vec![MetaHeader {
                    name: "Retry-After".into(),
                    description: Some("Seconds to wait before retrying".into()),
                    required: status == 429,
                    deprecated: false,
                    schema: u64::schema_ref(),
                }]
            } else {
                vec![]
            },
        };
        MetaResponses {
            responses: vec![
                entry(
                    401,
                    "Missing, expired or invalid bearer token (`unauthorized`)",
                ),
                entry(
                    403,
                    "Authenticated, but may not do this: the role (`forbidden`), one's own case (`self_review_forbidden`), or a second review by the first reviewer (`four_eyes_required`)",
                ),
                entry(404, "No such resource visible to the caller (`not_found`)"),
                entry(
                    408,
                    "The request body arrived too slowly (`request_timeout`)",
                ),
                entry(
                    409,
                    "Conflicts with the current state (`idempotency_key_reused`, `signal_id_reused`, `verification_state_conflict` with the current `state`, `verification_active` with the card's `verification_id`, `too_many_active_verifications`, `too_many_webhooks`, `storage_quota_exceeded`)",
                ),
                entry(410, "The document was erased (`document_erased`)"),
                entry(413, "Too large (`file_too_large`, `request_too_large`)"),
                entry(
                    415,
                    "Content is not JPEG, PNG or PDF (`unsupported_media_type`)",
                ),
                entry(
                    422,
                    "Invalid input; the message names the field (`validation_failed`, `image_too_large`, `invalid_image`, `webhook_url_forbidden`, …)",
                ),
                entry(429, "Rate limit hit (`rate_limited`); see Retry-After"),
                entry(
                    500,
                    "Unexpected failure (`internal`); details are in the server log",
                ),
                entry(
                    503,
                    "A dependency is down or the node is busy (`unavailable`, `document_unavailable`, `verification_busy`, `too_many_uploads` with Retry-After); retry later",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}
