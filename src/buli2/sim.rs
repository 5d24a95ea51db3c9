//! A BULI2 simulator to test against (`filot buli2-sim`): it speaks BULI2's side of the wire
//! format, verifies FiLot's signatures, records each decision under its `Idempotency-Key`
//! (a repeat is acknowledged, not processed twice), calls FiLot back with a signed callback,
//! and can be told to misbehave for a while.
//!
//! Endpoints:
//! - `POST /kyc/decisions` — BULI2's intake.
//! - `POST /sim/faults` `{"mode": "error"|"reject"|"status"|"timeout"|"slow"|"drop"|"none",
//!   "seconds": N?, "requests": N?, "delay_ms": N?, "status": N?}` — misbehave for N seconds
//!   or N requests (`status` answers with the given HTTP status, e.g. 408 or 429).
//! - `GET /sim/deliveries` — what arrived: total requests, and per idempotency key the count,
//!   the decision and the trace headers (`X-Correlation-Id`, `traceparent`) it came with.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use poem::{
    Body, EndpointExt, Request, Response, Route, Server, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Json},
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The shared HMAC secret (FILOT_BULI2_SECRET on FiLot's side).
    pub secret: Vec<u8>,
    /// FiLot's `…/internal/buli2/callbacks`; no callbacks when `None`.
    pub callback_url: Option<String>,
    /// How long to wait before calling back.
    pub callback_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// 503 Service Unavailable.
    Error,
    /// 400 Bad Request (a permanent refusal).
    Reject,
    /// Any status given in the fault request's `status` (e.g. 408, 429).
    Status,
    /// Never answers (the client times out).
    Timeout,
    /// Answers after `delay_ms`, having processed the decision.
    Slow,
    /// Closes the connection without an answer.
    Drop,
    None,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FaultRequest {
    pub mode: FaultMode,
    pub seconds: Option<u64>,
    pub requests: Option<u64>,
    pub delay_ms: Option<u64>,
    pub status: Option<u16>,
}

#[derive(Debug, Clone)]
struct Fault {
    mode: FaultMode,
    status: StatusCode,
    until: Option<Instant>,
    requests_left: Option<u64>,
    delay: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recorded {
    /// How many times this key arrived (processed once; repeats acknowledged).
    pub count: u64,
    pub verification_id: Option<String>,
    pub decision: Option<String>,
    /// The `X-Correlation-Id` and `traceparent` the first arrival carried.
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deliveries {
    /// Every request to `/kyc/decisions`, good or bad, faulted or not.
    pub requests: u64,
    /// Requests refused for a bad signature or timestamp.
    pub bad_signatures: u64,
    pub callbacks_sent: u64,
    pub by_key: BTreeMap<String, Recorded>,
}

struct SimState {
    config: SimConfig,
    callback_url: Mutex<Option<String>>,
    http: reqwest::Client,
    requests: AtomicU64,
    bad_signatures: AtomicU64,
    callbacks_sent: AtomicU64,
    by_key: Mutex<BTreeMap<String, Recorded>>,
    fault: Mutex<Option<Fault>>,
}

impl SimState {
    /// The fault applying to this request, if any (consuming one from a request budget).
    fn current_fault(&self) -> Option<Fault> {
        let mut slot = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        let fault = slot.as_mut()?;
        let expired =
            fault.until.is_some_and(|u| Instant::now() >= u) || fault.requests_left == Some(0);
        if expired || fault.mode == FaultMode::None {
            *slot = None;
            return None;
        }
        if let Some(n) = fault.requests_left.as_mut() {
            *n -= 1;
        }
        Some(fault.clone())
    }
}

/// Between the simulator's attempts to call FiLot back.
const CALLBACK_BACKOFF: crate::resilience::Backoff =
    crate::resilience::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));

/// A running simulator.
pub struct Sim {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Sim {
    /// Where to call FiLot back from now on (FiLot's address may be known only later).
    pub fn set_callback_url(&self, url: Option<String>) {
        *self
            .state
            .callback_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = url;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What has arrived so far (`GET /sim/deliveries`).
    pub async fn deliveries(&self) -> reqwest::Result<Deliveries> {
        reqwest::get(format!("{}/sim/deliveries", self.url()))
            .await?
            .json()
            .await
    }

    pub fn stop(self) {
        self.handle.abort();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Binds `listen` and serves in the background.
pub async fn start(listen: &str, config: SimConfig) -> std::io::Result<Sim> {
    let acceptor = TcpListener::bind(listen.to_string())
        .into_acceptor()
        .await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("no local address"))?;
    let state = Arc::new(SimState {
        callback_url: Mutex::new(config.callback_url.clone()),
        config,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?,
        requests: AtomicU64::new(0),
        bad_signatures: AtomicU64::new(0),
        callbacks_sent: AtomicU64::new(0),
        by_key: Mutex::new(BTreeMap::new()),
        fault: Mutex::new(None),
    });
    let app = Route::new()
        .at("/kyc/decisions", post(decisions))
        .at("/sim/faults", post(set_fault))
        .at("/sim/deliveries", poem::get(deliveries))
        .data(state.clone());
    let handle = tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Ok(Sim {
        addr,
        state,
        handle,
    })
}

#[handler]
async fn set_fault(state: Data<&Arc<SimState>>, body: Json<FaultRequest>) -> StatusCode {
    let f = body.0;
    *state.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(Fault {
        mode: f.mode,
        status: f
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        until: f.seconds.map(|s| Instant::now() + Duration::from_secs(s)),
        requests_left: f.requests,
        delay: Duration::from_millis(f.delay_ms.unwrap_or(2_000)),
    });
    tracing::info!(mode = ?f.mode, seconds = ?f.seconds, requests = ?f.requests, "simulator fault set");
    StatusCode::NO_CONTENT
}

#[handler]
async fn deliveries(state: Data<&Arc<SimState>>) -> Json<Deliveries> {
    Json(Deliveries {
        requests: state.requests.load(Ordering::SeqCst),
        bad_signatures: state.bad_signatures.load(Ordering::SeqCst),
        callbacks_sent: state.callbacks_sent.load(Ordering::SeqCst),
        by_key: state
            .by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    })
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn decisions(req: &Request, body: Body, state: Data<&Arc<SimState>>) -> Response {
    let state = state.0.clone();
    state.requests.fetch_add(1, Ordering::SeqCst);
    let Ok(bytes) = body.into_vec().await else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unreadable body"}),
        );
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = verify(
        &state.config.secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &bytes,
        now,
        300,
    ) {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return answer(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": e.to_string()}),
        );
    }
    let Some(key) = header("Idempotency-Key").map(str::to_string) else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "Idempotency-Key required"}),
        );
    };
    let Ok(decision) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "not JSON"}),
        );
    };
    if let Some(fault) = state.current_fault() {
        match fault.mode {
            FaultMode::Error => {
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"error": "simulated outage"}),
                );
            }
            FaultMode::Reject => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "simulated refusal"}),
                );
            }
            FaultMode::Status => {
                return answer(
                    fault.status,
                    serde_json::json!({"error": "simulated status"}),
                );
            }
            FaultMode::Timeout => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
            }
            FaultMode::Drop => {
                // Unwinding out of the connection task closes it without an answer (and
                // without the panic hook's noise).
                std::panic::resume_unwind(Box::new("simulated dropped connection"));
            }
            FaultMode::Slow => {
                record(&state, &key, &decision, trace(req));
                tokio::time::sleep(fault.delay).await;
                return answer(StatusCode::OK, serde_json::json!({"status": "accepted"}));
            }
            FaultMode::None => {}
        }
    }
    let first = record(&state, &key, &decision, trace(req));
    let status = if first { "accepted" } else { "duplicate" };
    answer(StatusCode::OK, serde_json::json!({ "status": status }))
}

/// The trace headers of a request: `X-Correlation-Id`, `traceparent`.
fn trace(req: &Request) -> (Option<String>, Option<String>) {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    (header("x-correlation-id"), header("traceparent"))
}

/// Records one arrival of `key`; true the first time (and then calls FiLot back).
fn record(
    state: &Arc<SimState>,
    key: &str,
    decision: &serde_json::Value,
    (correlation_id, traceparent): (Option<String>, Option<String>),
) -> bool {
    let first = {
        let mut by_key = state.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_key.entry(key.to_string()).or_insert_with(|| Recorded {
            count: 0,
            verification_id: decision["verification_id"].as_str().map(str::to_string),
            decision: decision["decision"].as_str().map(str::to_string),
            correlation_id,
            traceparent,
        });
        entry.count += 1;
        entry.count == 1
    };
    let callback_url = state
        .callback_url
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if first
        && let (Some(url), Some(vid)) = (
            callback_url,
            decision["verification_id"].as_str().map(str::to_string),
        )
    {
        let state = state.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(state.config.callback_delay).await;
            let body = serde_json::json!({
                "event_id": format!("cb-{key}"),
                "verification_id": vid,
                "outcome": "accepted",
                "loan_reference": format!("LN-{}", &key[key.len().saturating_sub(8)..]),
            })
            .to_string();
            for attempt in 0..5u32 {
                let [(th, tv), (sh, sv)] = signed_headers(
                    (TIMESTAMP_HEADER, SIGNATURE_HEADER),
                    &state.config.secret,
                    body.as_bytes(),
                );
                let sent = state
                    .http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header(th, tv)
                    .header(sh, sv)
                    .body(body.clone())
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    state.callbacks_sent.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(CALLBACK_BACKOFF.after(attempt + 1)).await;
            }
            tracing::warn!("simulator could not deliver a callback");
        });
    }
    first
}
