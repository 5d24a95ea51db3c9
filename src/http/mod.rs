//! # HTTP API
//!
//! poem-openapi endpoints, authentication, rate limits and the error mapping; Swagger UI at
//! `/docs`, the OpenAPI 3 spec at `/openapi.json`. Handlers only unpack requests, check roles
//! and call one domain operation: no SQL and no business rules live here.

pub mod admin;
pub mod auth;
pub mod batch_upload;
pub mod batches;
pub mod buli2;
pub mod console;
pub mod documents;
pub mod errors;
pub mod files;
pub mod health;
pub mod ids;
pub mod paging;
pub mod rate_limit;
pub mod readings;
pub mod routes;
pub mod server;
pub mod spec;
pub mod text;
pub mod upload;
pub mod verifications;
pub mod webhooks;

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    http::{Method, header},
    middleware::CatchPanic,
};
use poem_openapi::{OpenApiService, Tags};

use crate::{
    actors::{Documents, Verifications},
    config::Settings,
    store::{Db, blobs::BlobStore},
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
    pub ocr_pool: crate::actors::PoolSlot,
    /// The cluster as this node sees it, when it is in one.
    pub cluster: Option<crate::cluster::Roster>,
    /// The node's pollers and the rounds each has finished.
    pub pollers: crate::resilience::Pollers,
    /// Uploads that may be received at once (`limits.max_concurrent_uploads`).
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// The reading engine's fingerprint when readings are cached (`ocr.cache_readings`).
    pub reading_engine: Option<String>,
    /// The configured challenger model's fingerprint: the comparisons an admin reads.
    pub challenger_engine: String,
}

impl AppState {
    /// New work is queued: this node's idle OCR workers take it now rather than at the
    /// pool's next tick.
    pub fn wake_ocr(&self) {
        if let Some(pool) = self.ocr_pool.read().ok().and_then(|p| p.clone()) {
            let _ = pool.cast(crate::actors::ocr::OcrPoolMsg::Poll);
        }
    }
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

/// Every group of operations the API serves.
type Apis = (
    documents::DocumentsApi,
    verifications::VerificationsApi,
    webhooks::WebhooksApi,
    admin::AdminApi,
    health::HealthApi,
    readings::ReadingsApi,
    batches::BatchesApi,
);

pub fn openapi(state: &Arc<AppState>) -> OpenApiService<Apis, ()> {
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
            readings::ReadingsApi {
                state: state.clone(),
            },
            batches::BatchesApi {
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

/// The OpenAPI document as served (see [`spec`]).
pub fn spec_json(state: &Arc<AppState>) -> serde_json::Value {
    let raw = serde_json::from_str(&openapi(state).spec()).unwrap_or_default();
    spec::complete(raw, state.settings.limits.max_page_size)
}

/// Swagger UI's page is one file with inline scripts and styles; everything else it may load or
/// call is this origin's.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The whole HTTP application: API, docs, and the middleware every request passes.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = openapi(&state);
    let raw_spec = api.spec();
    let spec_value = spec_json(&state);
    let spec_text = spec_value.to_string();
    // Swagger UI shows the completed document too (it is embedded in the page).
    let docs_html = api.swagger_ui_html().replacen(&raw_spec, &spec_text, 1);
    let mut table = routes::RouteTable::from_spec(&spec_value);
    table
        .add("/openapi.json", Method::GET)
        .add_prefix("/docs", Method::GET)
        .add("/internal/buli2/callbacks", Method::POST)
        .add("/console", Method::GET)
        .add_prefix("/console/", Method::GET);
    let metrics_here = state.settings.metrics.listen.is_empty();
    if metrics_here {
        table.add("/metrics", Method::GET);
    }
    let table = Arc::new(table);
    let route = Route::new()
        .nest("/", api)
        .at(
            "/docs",
            poem::get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("text/html; charset=utf-8")
                    .header(header::CONTENT_SECURITY_POLICY, DOCS_CSP)
                    .body(docs_html.clone())
            })),
        )
        .at("/internal/buli2/callbacks", poem::post(buli2::callback))
        .at(
            "/openapi.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(spec_text.clone())
            })),
        );
    let route = console::routes(route);
    let route = if metrics_here {
        route.at("/metrics", poem::get(metrics_text))
    } else {
        route
    };
    // Test builds only: a handler that panics, to prove panics leave as the one error shape.
    #[cfg(feature = "test-hooks")]
    let route = route.at(
        "/__test/panic",
        poem::endpoint::make_sync(|_| -> &'static str { panic!("injected handler panic") }),
    );
    let gate_state = state.clone();
    let allow = table.clone();
    route
        .around(move |next, req| guard_body(next, req, gate_state.clone()))
        .with(CatchPanic::new().with_handler(errors::panic_response))
        .data(state.settings.clone())
        .data(state)
        .around(move |next, req| errors::normalize(next, req, allow.clone()))
        .around(move |next, req| record_request(next, req, table.clone()))
}

/// The application serving only `/metrics` (for `metrics.listen`).
pub fn metrics_app(state: Arc<AppState>) -> impl poem::Endpoint {
    let mut table = routes::RouteTable::default();
    table.add("/metrics", Method::GET);
    let table = Arc::new(table);
    Route::new()
        .at("/metrics", poem::get(metrics_text))
        .data(state.settings.clone())
        .around(move |next, req| errors::normalize(next, req, table.clone()))
}

/// What an OCR-only node serves over HTTP: `/health/live`, `/health/ready` (its OCR server
/// runs and how many cluster peers are up) and `/metrics`; nothing else.
pub fn ocr_node_app(
    settings: Arc<Settings>,
    roster: crate::cluster::Roster,
    server: ractor::ActorRef<crate::cluster::wire::OcrServerMsg>,
) -> impl poem::Endpoint {
    let mut table = routes::RouteTable::default();
    table
        .add("/metrics", Method::GET)
        .add("/health/live", Method::GET)
        .add("/health/ready", Method::GET);
    let table = Arc::new(table);
    let ready = move |_: Request| {
        let (up, down) = roster.counts();
        let running = server.get_status() == ractor::ActorStatus::Running;
        let body = serde_json::json!({
            "status": if running { "ready" } else { "not_ready" },
            "checks": [
                if running { "ocr: ok".to_string() } else { "ocr: stopped".to_string() },
                format!("cluster: {} up, {down} down", up - 1),
            ],
        });
        let status = if running {
            poem::http::StatusCode::OK
        } else {
            poem::http::StatusCode::SERVICE_UNAVAILABLE
        };
        Response::builder()
            .status(status)
            .content_type("application/json")
            .body(body.to_string())
    };
    Route::new()
        .at("/metrics", poem::get(metrics_text))
        .at(
            "/health/live",
            poem::get(poem::endpoint::make_sync(|_| {
                Response::builder()
                    .content_type("application/json")
                    .body(r#"{"status":"ok","checks":[]}"#)
            })),
        )
        .at("/health/ready", poem::get(poem::endpoint::make_sync(ready)))
        .data(settings)
        .around(move |next, req| errors::normalize(next, req, table.clone()))
}

/// Prometheus text exposition (operators; no personal data, bounded labels). With
/// `metrics.token` set, only for `Authorization: Bearer <token>`.
#[poem::handler]
fn metrics_text(req: &Request) -> poem::Result<Response> {
    let settings = req
        .data::<Arc<Settings>>()
        .ok_or(errors::ApiError::Internal)?;
    if let Some(token) = &settings.metrics.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let matches: bool = aws_lc_rs::constant_time::verify_slices_are_equal(
            given.as_bytes(),
            token.expose().as_bytes(),
        )
        .is_ok();
        if !matches {
            return Err(
                errors::ApiError::Unauthorized("metrics need the metrics bearer token").into(),
            );
        }
    }
    Ok(Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::render()))
}

/// Counts every request and its latency by method, route template and status: labels from
/// fixed sets only (see [`routes`]), whatever methods and paths clients invent.
async fn record_request<E: Endpoint>(
    next: E,
    req: Request,
    table: Arc<routes::RouteTable>,
) -> poem::Result<Response> {
    use crate::telemetry::metrics::names;
    let started = std::time::Instant::now();
    let method = routes::method_label(req.method());
    let route = table.label(req.uri().path()).to_string();
    let resp = next.call(req).await?.into_response();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", resp.status().as_u16().to_string()),
    ];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_LATENCY_MS, &labels)
        .record(started.elapsed().as_secs_f64() * 1e3);
    Ok(resp)
}

/// Bounds every request body before a handler sees it.
///
/// - The upload route streams its own body (its parser enforces the file and request limits
///   and `limits.upload_timeout`); here it is only admitted: the uploader's rate limits
///   are checked before a byte of the body is read (429), and at most
///   `limits.max_concurrent_uploads` uploads are received at once (503 `too_many_uploads`
///   with `Retry-After`).
/// - A batch upload's body is read here in full, at most `limits.max_batch_bytes` (413)
///   within `limits.upload_timeout` (408), holding an upload slot like a single upload.
/// - Every other body is read here in full, at most `limits.max_json_bytes` (413) within
///   `http.body_read_timeout` (408), so no handler waits on a slow client.
async fn guard_body<E: Endpoint>(
    next: E,
    mut req: Request,
    state: Arc<AppState>,
) -> poem::Result<Response> {
    if is_upload(&req) {
        return admit_upload(next, req, &state).await;
    }
    // A batch is read here in full, within its own bounds, holding an upload slot; its
    // parts are counted against the rate limits one by one by its handler.
    let batch = req.method() == Method::POST && req.uri().path() == "/v1/batches";
    let _slot = batch.then(|| upload_slot(&state)).transpose()?;
    let limits = &state.settings.limits;
    let limit = if batch {
        limits.max_batch_bytes
    } else {
        limits.max_json_bytes
    };
    let too_large = || errors::ApiError::PayloadTooLarge {
        code: "request_too_large",
        message: format!("request body is larger than {limit} bytes"),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large().into());
    }
    let within = if batch {
        limits.upload_timeout
    } else {
        state.settings.http.body_read_timeout
    };
    let body = req.take_body();
    let read = tokio::time::timeout(within, body.into_bytes_limit(limit as usize)).await;
    match read {
        Err(_) => return Err(errors::ApiError::BodyTimeout(within).into()),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Err(too_large().into()),
        Ok(Err(_)) => {
            return Err(errors::ApiError::Unprocessable {
                code: "malformed_body",
                field: Some("body".into()),
                message: "the request body could not be read in full".into(),
            }
            .into());
        }
        Ok(Ok(bytes)) => req.set_body(bytes),
    }
    Ok(next.call(req).await?.into_response())
}

async fn admit_upload<E: Endpoint>(
    next: E,
    req: Request,
    state: &AppState,
) -> poem::Result<Response> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // An invalid token is the endpoint's to refuse (401, counted per address).
    if let Some(subject) = bearer.and_then(|t| state.auth.verify(t)) {
        let ip = rate_limit::client_ip(&req, &state.limits.trusted);
        state.limits.upload(&subject.id, &ip).await?;
    }
    let _slot = upload_slot(state)?;
    Ok(next.call(req).await?.into_response())
}

/// One of the `limits.max_concurrent_uploads` slots, or 503 `too_many_uploads`.
fn upload_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, errors::ApiError> {
    state.upload_slots.clone().try_acquire_owned().map_err(|_| {
        let l = &state.settings.limits;
        errors::ApiError::Overloaded {
            code: "too_many_uploads",
            message: format!(
                "{} uploads are being received already; retry shortly",
                l.max_concurrent_uploads
            ),
            retry_after_secs: l.upload_busy_retry_after.as_secs(),
        }
    })
}

/// The upload route refuses oversized bodies itself, after draining a bounded remainder so
/// the client reads a 413 instead of a reset connection.
fn is_upload(req: &Request) -> bool {
    req.method() == Method::POST && req.uri().path() == "/v1/documents"
}
