//! The outermost middleware: one correlation id and log span per request, and every error
//! that leaves the service (poem's own rejections, poem-openapi parse errors, caught panics)
//! in the one shape.

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};

use super::{ApiError, Shaped, error_response};
use crate::telemetry::correlation::CorrelationId;

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
    routes: std::sync::Arc<crate::http::routes::RouteTable>,
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
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.as_response_with_headers();
    }
    if err.is::<AuthorizationError>() {
        return ApiError::Unauthorized("missing or malformed bearer token").into_response();
    }
    // Path parameters are ids (`http::ids`): one that does not parse names nothing.
    if err.is::<ParsePathError>() {
        return ApiError::NotFound.into_response();
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
