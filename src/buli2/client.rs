//! The outbound BULI2 client: one delivery round = up to `attempts` signed POSTs with
//! exponential back-off and jitter between them (backon), each bounded by `timeout`, each
//! gated by the circuit breaker. The answer is classified for the outbox: delivered, rejected
//! for good (a 4xx other than 408/429: retrying the same payload is pointless), or retry later.

use std::{sync::Mutex, time::Duration};

use backon::{ExponentialBuilder, Retryable};

/// Webhook deliveries are signed like BULI2's, under FiLot's own header names.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "X-Filot-Timestamp";
pub const WEBHOOK_SIGNATURE_HEADER: &str = "X-Filot-Signature";

use super::{
    breaker::{Breaker, BreakerState},
    signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers},
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

    /// One delivery round of `body` to BULI2's `path` (e.g. `/kyc/decisions`), behind the
    /// circuit breaker.
    pub async fn deliver(&self, path: &str, idempotency_key: &str, body: &[u8]) -> RoundOutcome {
        let url = format!("{}{path}", self.base);
        let headers = (TIMESTAMP_HEADER, SIGNATURE_HEADER);
        self.round(&url, idempotency_key, body, &self.secret, headers, true)
            .await
    }

    /// One delivery round to a client's webhook, signed with that webhook's own secret. The
    /// breaker guards BULI2 only: one client's dead endpoint must not stop the others.
    pub async fn deliver_webhook(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
        secret: &[u8],
    ) -> RoundOutcome {
        let headers = (WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER);
        self.round(url, idempotency_key, body, secret, headers, false)
            .await
    }

    async fn round(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
        secret: &[u8],
        headers: (&str, &str),
        gated: bool,
    ) -> RoundOutcome {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let breaker = || self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = || async {
            if gated && !breaker().allow() {
                return Err(AttemptError::BreakerOpen);
            }
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let result = self.post(url, idempotency_key, body, secret, headers).await;
            if gated {
                match &result {
                    Ok(()) | Err(AttemptError::Permanent(_)) => breaker().record_success(),
                    Err(_) => breaker().record_failure(),
                }
            }
            result
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff_min)
            .with_max_delay(self.settings.backoff_max)
            .with_max_times(self.settings.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let result = attempt
            .retry(backoff)
            .when(|e| matches!(e, AttemptError::Retryable(_)))
            .await;
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

    async fn post(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
        secret: &[u8],
        (ts_header, sig_header): (&str, &str),
    ) -> Result<(), AttemptError> {
        let [(th, tv), (sh, sv)] = signed_headers((ts_header, sig_header), secret, body);
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", idempotency_key)
            .header(th, tv)
            .header(sh, sv)
            .body(body.to_vec())
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
        } else {
            Err(AttemptError::Retryable(format!("HTTP {}", status.as_u16())))
        }
    }
}

/// A transport error without the URL (which may carry credentials).
fn describe(e: &reqwest::Error) -> String {
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
