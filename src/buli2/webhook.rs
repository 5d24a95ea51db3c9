//! The status-webhook client: clients' own endpoints, signed like BULI2's deliveries under
//! FiLot's header names. It shares nothing with BULI2's client but the round logic: its own
//! HTTP client (short timeout, no redirects, no proxy, a resolver that only returns public
//! addresses) and one circuit breaker per endpoint, so a slow or dead endpoint costs only
//! its own deliveries.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    breaker::{Breaker, BreakerState},
    client::{ClientSettings, Request, RoundOutcome, round},
    egress::{self, GlobalOnlyResolver},
};
use crate::telemetry::correlation::CorrelationId;

pub const WEBHOOK_TIMESTAMP_HEADER: &str = "X-Filot-Timestamp";
pub const WEBHOOK_SIGNATURE_HEADER: &str = "X-Filot-Signature";

/// Breakers kept for endpoints that are currently healthy are dropped past this many.
const MAX_IDLE_BREAKERS: usize = 1024;

pub struct WebhookClient {
    http: reqwest::Client,
    settings: ClientSettings,
    allow_private: bool,
    breakers: Mutex<HashMap<String, Arc<Mutex<Breaker>>>>,
}

impl WebhookClient {
    /// `allow_private` lets deliveries reach loopback and private networks (tests, private
    /// deployments); otherwise only public addresses are ever connected to.
    pub fn new(settings: ClientSettings, allow_private: bool) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GlobalOnlyResolver { allow_private }))
            .build()?;
        Ok(Self {
            http,
            settings,
            allow_private,
            breakers: Mutex::new(HashMap::new()),
        })
    }

    fn breaker(&self, endpoint: &str) -> Arc<Mutex<Breaker>> {
        let mut all = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() > MAX_IDLE_BREAKERS {
            all.retain(|_, b| {
                b.lock().unwrap_or_else(|e| e.into_inner()).state() != BreakerState::Closed
            });
        }
        all.entry(endpoint.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Breaker::new(
                    self.settings.breaker_failures,
                    self.settings.breaker_cooldown,
                )))
            })
            .clone()
    }

    /// One delivery round to the webhook `endpoint` (its id) at `url`, signed with its secret.
    /// A URL whose literal address is not public is refused without a request (the resolver
    /// guards names; literals never reach it).
    pub async fn deliver(
        &self,
        endpoint: &str,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
        secret: &[u8],
        correlation: Option<&CorrelationId>,
    ) -> RoundOutcome {
        let allowed =
            reqwest::Url::parse(url).is_ok_and(|u| egress::literal_allowed(&u, self.allow_private));
        if !allowed {
            return RoundOutcome::Failed {
                attempts: 0,
                reason: "the URL points at a non-public address".into(),
            };
        }
        let req = Request {
            url,
            idempotency_key,
            body,
            secret,
            headers: (WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER),
            correlation,
        };
        let breaker = self.breaker(endpoint);
        round(&self.http, &req, Some(&breaker), &self.settings).await
    }
}
