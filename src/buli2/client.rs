//! Outbound delivery rounds. One round = up to `attempts` signed POSTs with exponential back-off
//! and jitter between them (`resilience::Backoff`), each bounded by `timeout`, each gated by a circuit breaker.
//! The answer is classified for the outbox: delivered, rejected for good (a 4xx other than
//! 408/429: retrying the same payload is pointless), or retry later.
//!
//! [`Buli2Client`] delivers decisions to BULI2 behind one breaker. Webhooks have a client of
//! their own (`super::webhook`) that shares [`round`] but not the HTTP client, the breaker or
//! the timeout, so one client's endpoint can never hold BULI2's decisions back.

use std::{sync::Mutex, time::Duration};

use super::{
    breaker::{Breaker, BreakerState},
    signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers},
};
use crate::{
    resilience::Backoff,
    telemetry::correlation::{self, CorrelationId},
};

#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
}

/// How one delivery round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// 2xx.
    Delivered { attempts: u32 },
    /// A 4xx other than 408/429: dead-letter at once.
    Rejected { attempts: u32, reason: String },
    /// 5xx, 408, 429, timeouts, connection errors: try again in a later round.
    Failed { attempts: u32, reason: String },
    /// The breaker is open: nothing was sent.
    BreakerOpen,
}

#[derive(Debug)]
enum AttemptError {
    Retryable(String),
    Permanent(String),
    BreakerOpen,
}

/// One signed POST's contents, the same on every attempt of a round.
pub struct Request<'a> {
    pub url: &'a str,
    pub idempotency_key: &'a str,
    pub body: &'a [u8],
    pub secret: &'a [u8],
    /// `(timestamp header, signature header)` names.
    pub headers: (&'static str, &'static str),
    /// The originating request's id: sent as `X-Correlation-Id` and a W3C `traceparent`.
    pub correlation: Option<&'a CorrelationId>,
}

fn lock(b: &Mutex<Breaker>) -> std::sync::MutexGuard<'_, Breaker> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one delivery round of `req` through `http`, gated by `breaker` when there is one.
pub(crate) async fn round(
    http: &reqwest::Client,
    req: &Request<'_>,
    breaker: Option<&Mutex<Breaker>>,
    settings: &ClientSettings,
) -> RoundOutcome {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let attempt = || async {
        if let Some(b) = breaker
            && !lock(b).allow()
        {
            return Err(AttemptError::BreakerOpen);
        }
        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = post(http, req).await;
        if let Some(b) = breaker {
            match &result {
                Ok(()) | Err(AttemptError::Permanent(_)) => lock(b).record_success(),
                Err(_) => lock(b).record_failure(),
            }
        }
        result
    };
    let backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    let mut failed = 0;
    let result = loop {
        match attempt().await {
            Err(AttemptError::Retryable(_)) if failed + 1 < settings.attempts => {
                failed += 1;
                tokio::time::sleep(backoff.jittered(failed)).await;
            }
            done => break done,
        }
    };
    let attempts = attempts.into_inner();
    match result {
        Ok(()) => RoundOutcome::Delivered { attempts },
        Err(AttemptError::Permanent(reason)) => RoundOutcome::Rejected { attempts, reason },
        Err(AttemptError::Retryable(reason)) => RoundOutcome::Failed { attempts, reason },
        Err(AttemptError::BreakerOpen) if attempts == 0 => RoundOutcome::BreakerOpen,
        Err(AttemptError::BreakerOpen) => RoundOutcome::Failed {
            attempts,
            reason: "circuit breaker opened during the round".into(),
        },
    }
}

async fn post(http: &reqwest::Client, req: &Request<'_>) -> Result<(), AttemptError> {
    let [(th, tv), (sh, sv)] = signed_headers(req.headers, req.secret, req.body);
    let mut builder = http
        .post(req.url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", req.idempotency_key)
        .header(th, tv)
        .header(sh, sv);
    if let Some(id) = req.correlation {
        builder = builder
            .header(correlation::HEADER, id.as_str())
            .header("traceparent", correlation::traceparent(id));
    }
    let resp = builder
        .body(req.body.to_vec())
        .send()
        .await
        .map_err(|e| AttemptError::Retryable(describe(&e)))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(AttemptError::Permanent(format!(
            "rejected with HTTP {}",
            status.as_u16()
        )))
    } else if status.is_redirection() {
        Err(AttemptError::Retryable(format!(
            "HTTP {} (redirects are not followed)",
            status.as_u16()
        )))
    } else {
        Err(AttemptError::Retryable(format!("HTTP {}", status.as_u16())))
    }
}

/// A transport error without the URL (which may carry credentials).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<super::egress::ForbiddenTarget>() {
            return "the host resolves to no public address".into();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "connection dropped".into()
    } else {
        "request failed".into()
    }
}

/// BULI2's side of the outbox: signed decisions to `{base}{path}`, behind one breaker.
pub struct Buli2Client {
    http: reqwest::Client,
    base: String,
    secret: Vec<u8>,
    settings: ClientSettings,
    breaker: Mutex<Breaker>,
}

impl Buli2Client {
    pub fn new(
        base: &str,
        secret: &[u8],
        settings: ClientSettings,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_vec(),
            breaker: Mutex::new(Breaker::new(
                settings.breaker_failures,
                settings.breaker_cooldown,
            )),
            settings,
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state()
    }

    /// One delivery round of `body` to BULI2's `path` (e.g. `/kyc/decisions`).
    pub async fn deliver(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &[u8],
        correlation: Option<&CorrelationId>,
    ) -> RoundOutcome {
        let url = format!("{}{path}", self.base);
        let req = Request {
            url: &url,
            idempotency_key,
            body,
            secret: &self.secret,
            headers: (TIMESTAMP_HEADER, SIGNATURE_HEADER),
            correlation,
        };
        round(&self.http, &req, Some(&self.breaker), &self.settings).await
    }
}
