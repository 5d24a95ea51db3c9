//! # HTTP API
//!
//! poem-openapi endpoints, authentication, rate limits and the error mapping; Swagger UI at
//! `/docs`, the OpenAPI 3 spec at `/openapi.json`. Handlers only unpack requests, check roles
//! and call one domain operation: no SQL and no business rules live here.

pub mod admin;
pub mod auth;
pub mod buli2;
pub mod documents;
pub mod errors;
pub mod health;
pub mod paging;
pub mod rate_limit;
pub mod upload;
pub mod verifications;
pub mod webhooks;

use std::sync::Arc;

use futures_util::StreamExt;
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, http::header,
    middleware::CatchPanic,
};
use poem_openapi::{OpenApiService, Tags};

use crate::{
    config::Settings,
    store::{Db, blobs::BlobStore},
    supervision::{Documents, Verifications},
};

/// Everything a request handler may need, shared by all requests.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub documents: Documents,
    pub verifications: Verifications,
    /// The service clock (workflow timestamps, durable timers).
    pub clock: crate::clock::Clock,
    pub auth: auth::AuthKeys,
    pub limits: Arc<rate_limit::RateLimits>,
    /// Leases (Redis when configured, else in process).
    pub leases: crate::store::leases::Leases,
    /// The shared Redis, when configured (readiness reports it).
    pub redis: Option<crate::store::redis::Redis>,
    /// This node's OCR pool while it runs (readiness reports it).
    pub ocr_pool: crate::supervision::PoolSlot,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Upload identity cards and read their status.
    Documents,
    /// KYC verifications: the review workflow, its queries and its signals.
    Verifications,
    /// Liveness and readiness.
    Health,
    /// Status webhooks for your verifications.
    Webhooks,
    /// Operators: outbox dead letters.
    Admin,
}

pub fn openapi(
    state: &Arc<AppState>,
) -> OpenApiService<
    (
        documents::DocumentsApi,
        verifications::VerificationsApi,
        webhooks::WebhooksApi,
        admin::AdminApi,
        health::HealthApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            documents::DocumentsApi {
                state: state.clone(),
            },
            verifications::VerificationsApi {
                state: state.clone(),
            },
            webhooks::WebhooksApi {
                state: state.clone(),
            },
            admin::AdminApi {
                state: state.clone(),
            },
            health::HealthApi {
                state: state.clone(),
            },
        ),
        "FiLot",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "KYC verification for Indonesian identity documents (KTP, NPWP). Authenticate with a \
         bearer JWT: `filot token --sub alice --role user` prints one for the embedded default. \
         Every error has the shape `{\"error\", \"message\", \"correlation_id\"}`.",
    )
}

/// The whole HTTP application: API, docs, and the middleware every request passes.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = openapi(&state);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let limit = state.settings.limits.max_json_bytes;
    let route = Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/internal/buli2/callbacks", poem::post(buli2::callback))
        .at("/metrics", poem::get(metrics_text))
        .at("/openapi.json", spec);
    // Test builds only: a handler that panics, to prove panics leave as the one error shape.
    #[cfg(feature = "test-hooks")]
    let route = route.at(
        "/__test/panic",
        poem::endpoint::make_sync(|_| -> &'static str { panic!("injected handler panic") }),
    );
    route
        .around(move |next, req| limit_body(next, req, limit))
        .with(CatchPanic::new().with_handler(errors::panic_response))
        .data(state)
        .around(errors::normalize)
        .around(record_request)
}

/// Prometheus text exposition (operators; no personal data, bounded labels).
#[poem::handler]
fn metrics_text() -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::render())
}

/// Counts every request and its latency by method, route template and status.
async fn record_request<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    use crate::telemetry::metrics::{names, route_label};
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let route = route_label(req.uri().path());
    let resp = next.call(req).await?.into_response();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", resp.status().as_u16().to_string()),
    ];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_LATENCY_MS, &labels)
        .record(started.elapsed().as_secs_f64() * 1e3);
    Ok(resp)
}

/// Bounds every request body: a declared `Content-Length` over `limit` is refused at once, and
/// a chunked body is cut off (413) when it streams past `limit`. The upload route applies its
/// own, finer limits on top (see [`upload`]).
async fn limit_body<E: Endpoint>(next: E, mut req: Request, limit: u64) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || errors::ApiError::PayloadTooLarge {
        code: "request_too_large",
        message: format!("request body is larger than {limit} bytes"),
    };
    if is_upload(&req) {
        return Ok(next.call(req).await?.into_response());
    }
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large().into());
    }
    let body = req.take_body();
    let mut seen = 0u64;
    let stream = body.into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(std::io::Error::other("request body too large"));
        }
        Ok(chunk)
    });
    req.set_body(Body::from_bytes_stream(stream));
    Ok(next.call(req).await?.into_response())
}

/// The upload route refuses oversized bodies itself, after draining a bounded remainder so
/// the client reads a 413 instead of a reset connection.
fn is_upload(req: &Request) -> bool {
    req.method() == poem::http::Method::POST && req.uri().path() == "/v1/documents"
}
