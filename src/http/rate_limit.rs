//! In-process rate limits (governor), keyed by user or client address. Each limit is a
//! setting under `limits.*`; an exceeded limit answers 429 `rate_limited` with `Retry-After`.
//! (The Redis-backed variant shared across nodes comes with the cluster work.)

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{Request, web::RemoteAddr};

use super::errors::ApiError;
use crate::config::Limits;

pub struct RateLimits {
    uploads_per_user: DefaultKeyedRateLimiter<String>,
    uploads_per_ip: DefaultKeyedRateLimiter<String>,
    requests_per_user: DefaultKeyedRateLimiter<String>,
    auth_failures_per_ip: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1) is non-zero"))
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        Self {
            uploads_per_user: RateLimiter::keyed(per_minute(limits.uploads_per_user_per_minute)),
            uploads_per_ip: RateLimiter::keyed(per_minute(limits.uploads_per_ip_per_minute)),
            requests_per_user: RateLimiter::keyed(per_minute(limits.requests_per_user_per_minute)),
            auth_failures_per_ip: RateLimiter::keyed(per_minute(
                limits.auth_failures_per_ip_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    fn check(&self, limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), ApiError> {
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    pub fn upload(&self, user: &str, ip: &str) -> Result<(), ApiError> {
        self.check(&self.uploads_per_ip, ip)?;
        self.check(&self.uploads_per_user, user)
    }

    pub fn request(&self, user: &str) -> Result<(), ApiError> {
        self.check(&self.requests_per_user, user)
    }

    /// Counts a failed authentication; past the limit the address gets 429 instead of 401.
    pub fn auth_failure(&self, ip: &str) -> Result<(), ApiError> {
        self.check(&self.auth_failures_per_ip, ip)
    }

    /// Drops state for keys that are back to full capacity (keeps memory bounded).
    pub fn shrink(&self) {
        self.uploads_per_user.retain_recent();
        self.uploads_per_ip.retain_recent();
        self.requests_per_user.retain_recent();
        self.auth_failures_per_ip.retain_recent();
    }

    /// Shrinks every minute until the returned task is aborted.
    pub fn spawn_janitor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let limits = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match limits.upgrade() {
                    Some(l) => l.shrink(),
                    None => return,
                }
            }
        })
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when the
/// deployment says a trusted proxy sets it.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for
        && let Some(first) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
        && let Ok(ip) = first.trim().parse::<std::net::IpAddr>()
    {
        return ip.to_string();
    }
    match req.remote_addr() {
        RemoteAddr(poem::Addr::SocketAddr(addr)) => addr.ip().to_string(),
        other => other.to_string(),
    }
}
