//! The one error shape of the API: `{"error": code, "message": text, "correlation_id": id}`.
//!
//! Handlers return [`ApiError`]; [`normalize`] turns everything else that leaves the service
//! with a 4xx/5xx status (poem's own rejections, poem-openapi parse errors, caught panics) into
//! the same shape. A 5xx body never carries a cause: causes go to the log.

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{ToJSON, Type},
};

use crate::{
    actors::{DocumentError, verification::VerificationError},
    store::{Quota, StoreError},
    telemetry::{correlation::CorrelationId, mask::mask_pii},
};

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
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
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

// The other layers' errors, each mapped by an exhaustive match: a new variant anywhere fails
// to compile here until it has a status.

impl From<Quota> for ApiError {
    fn from(q: Quota) -> Self {
        let message = q.to_string();
        match q {
            Quota::CardInActiveVerification(id) => ApiError::VerificationActive { id },
            Quota::ActiveVerifications(_) => ApiError::Conflict {
                code: "too_many_active_verifications",
                message: format!("{message}; wait for one to finish or cancel it"),
            },
            Quota::Webhooks(_) => ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!("{message}; delete one first"),
            },
            Quota::Storage(_) => ApiError::Conflict {
                code: "storage_quota_exceeded",
                message: format!("{message}; erase documents you no longer need"),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable {
                code: "unavailable",
                message: "the database is unavailable; retry later".into(),
            }
        } else if let StoreError::Quota(q) = e {
            q.into()
        } else if matches!(e, StoreError::Conflict(_) | StoreError::Fenced(_)) {
            ApiError::Conflict {
                code: "concurrent_update",
                message: "the resource changed meanwhile; read it again and retry".into(),
            }
        } else {
            tracing::error!(error = %e, "store error");
            ApiError::Internal
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::NotFound => ApiError::NotFound,
            DocumentError::Erased => ApiError::Gone,
            DocumentError::Quarantined | DocumentError::ActorFailed | DocumentError::Timeout => {
                tracing::error!(error = %e, "document actor did not complete the request");
                ApiError::Unavailable {
                    code: "document_unavailable",
                    message: "the document could not be processed right now; retry later".into(),
                }
            }
            DocumentError::Final(state) | DocumentError::NotQueued(state) => ApiError::Conflict {
                code: "document_final",
                message: format!("the document is already {state}"),
            },
            DocumentError::ClaimLost => ApiError::Conflict {
                code: "concurrent_update",
                message: "the document changed meanwhile; read it again".into(),
            },
            DocumentError::ShuttingDown => ApiError::Unavailable {
                code: "unavailable",
                message: "the service is shutting down".into(),
            },
            DocumentError::Store(s) => s.into(),
        }
    }
}

impl From<VerificationError> for ApiError {
    fn from(e: VerificationError) -> Self {
        match e {
            VerificationError::NotFound => ApiError::NotFound,
            VerificationError::State(state) => ApiError::StateConflict {
                state: state.as_str(),
            },
            VerificationError::SelfReview => ApiError::Denied {
                code: "self_review_forbidden",
                message: "a reviewer never decides, confirms, corrects or cancels a case they own",
            },
            VerificationError::FourEyesRequired => ApiError::Denied {
                code: "four_eyes_required",
                message: "the second review must come from a reviewer other than the first",
            },
            VerificationError::SignalReused => ApiError::Conflict {
                code: "signal_id_reused",
                message: "this signal_id was already used with a different request".into(),
            },
            VerificationError::Quarantined
            | VerificationError::ActorFailed
            | VerificationError::Timeout => {
                tracing::error!(error = %e, "verification actor did not complete the request");
                ApiError::Unavailable {
                    code: "verification_unavailable",
                    message: "the verification could not be processed right now; retry later"
                        .into(),
                }
            }
            VerificationError::ShuttingDown => ApiError::Unavailable {
                code: "unavailable",
                message: "the service is shutting down".into(),
            },
            VerificationError::Busy(m) => {
                tracing::warn!(reason = %m, "verification busy");
                ApiError::Unavailable {
                    code: "verification_busy",
                    message: "the verification is being processed elsewhere or leases are unavailable; retry shortly".into(),
                }
            }
            VerificationError::Corrupt(m) => {
                tracing::error!(error = %m, "verification data inconsistent");
                ApiError::Internal
            }
            VerificationError::Store(s) => s.into(),
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

tokio::task_local! {
    static CORRELATION: CorrelationId;
}

/// The correlation id of the request being served (a fresh one outside any request).
pub fn current_correlation_id() -> String {
    CORRELATION
        .try_with(|id| id.as_str().to_string())
        .unwrap_or_else(|_| CorrelationId::generate().as_str().to_string())
}

/// Outermost middleware: assigns the correlation id, opens the request's log span, turns every
/// error into the one shape (a 405 also says in `Allow` what the path takes), and logs one
/// line per request.
pub async fn normalize<E: Endpoint>(
    next: E,
    req: Request,
    routes: std::sync::Arc<super::routes::RouteTable>,
) -> poem::Result<Response> {
    let id = CorrelationId::from_header(
        req.headers()
            .get(crate::telemetry::correlation::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let allow = routes.allow(&path);
    let span = tracing::info_span!("request", correlation_id = %id, method = %method, path = %path);
    let started = std::time::Instant::now();
    let work = async move {
        let resp = match next.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => shape_poem_error(err),
        };
        let mut resp =
            if resp.status().as_u16() >= 400 && resp.extensions().get::<Shaped>().is_none() {
                reshape(resp).await
            } else {
                resp
            };
        if let Ok(v) = HeaderValue::from_str(&current_correlation_id()) {
            resp.headers_mut()
                .insert(crate::telemetry::correlation::HEADER, v);
        }
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok())
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        resp
    };
    use tracing::Instrument;
    let resp = CORRELATION.scope(id, work.instrument(span.clone())).await;
    let status = resp.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    Ok(resp)
}

/// Maps an error from poem or poem-openapi to the shape, keeping its status where meaningful.
fn shape_poem_error(err: poem::Error) -> Response {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParseRequestPayloadError,
    };
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.as_response_with_headers();
    }
    if err.is::<AuthorizationError>() {
        return ApiError::Unauthorized("missing or malformed bearer token").into_response();
    }
    if err.is::<ParseParamError>() || err.is::<ParseRequestPayloadError>() {
        let message = err.to_string();
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &message,
        );
    }
    if err.is::<ContentTypeError>() {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &err.to_string(),
        );
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
        return error_response(status, code_for(status), "internal error");
    }
    let message = err.to_string();
    error_response(status, code_for(status), &message)
}

impl ApiError {
    fn as_response_with_headers(&self) -> Response {
        poem::error::ResponseError::as_response(self)
    }
}

/// A response with an error status but not our shape (e.g. a caught panic).
async fn reshape(resp: Response) -> Response {
    let status = resp.status();
    if status.is_server_error() {
        return error_response(status, code_for(status), "internal error");
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let message = if text.trim().is_empty() || text.len() > 512 {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    error_response(status, code_for(status), &message)
}

fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "request_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// The panic handler for poem's `CatchPanic`: logs and answers a bare 500 (shaped above).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .finish()
}
