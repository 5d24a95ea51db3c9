//! Rate limits keyed by user or client address. Each limit is a setting under `limits.*`; an
//! exceeded limit answers 429 `rate_limited` with `Retry-After`.
//!
//! Without Redis the limits live in this process (governor's GCRA). With `FILOT_REDIS_URL` the
//! same limits (same GCRA: a burst of N, then one request every 60/N seconds) are kept in Redis
//! and shared by every node, keyed by a hash of the user or address (no personal data in
//! Redis). If Redis does not answer, each node falls back to its own in-process limits rather
//! than refusing or waving through everything.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{Request, web::RemoteAddr};

use sha2::{Digest, Sha256};

use super::errors::ApiError;
use crate::{config::Limits, store::redis::Redis};

pub struct RateLimits {
    redis: Option<Redis>,
    per_minute: [u32; 4],
    uploads_per_user: DefaultKeyedRateLimiter<String>,
    uploads_per_ip: DefaultKeyedRateLimiter<String>,
    requests_per_user: DefaultKeyedRateLimiter<String>,
    auth_failures_per_ip: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1) is non-zero"))
}

/// GCRA in Redis: KEYS[1] the bucket; ARGV[1] emission interval (µs), ARGV[2] burst
/// tolerance (µs). Returns 0 when allowed, else the microseconds until it would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
";

#[derive(Clone, Copy)]
enum Bucket {
    UploadsPerUser = 0,
    UploadsPerIp = 1,
    RequestsPerUser = 2,
    AuthFailuresPerIp = 3,
}

impl RateLimits {
    pub fn new(limits: &Limits, redis: Option<Redis>) -> Self {
        Self {
            redis,
            per_minute: [
                limits.uploads_per_user_per_minute,
                limits.uploads_per_ip_per_minute,
                limits.requests_per_user_per_minute,
                limits.auth_failures_per_ip_per_minute,
            ],
            uploads_per_user: RateLimiter::keyed(per_minute(limits.uploads_per_user_per_minute)),
            uploads_per_ip: RateLimiter::keyed(per_minute(limits.uploads_per_ip_per_minute)),
            requests_per_user: RateLimiter::keyed(per_minute(limits.requests_per_user_per_minute)),
            auth_failures_per_ip: RateLimiter::keyed(per_minute(
                limits.auth_failures_per_ip_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, bucket: Bucket) -> &DefaultKeyedRateLimiter<String> {
        match bucket {
            Bucket::UploadsPerUser => &self.uploads_per_user,
            Bucket::UploadsPerIp => &self.uploads_per_ip,
            Bucket::RequestsPerUser => &self.requests_per_user,
            Bucket::AuthFailuresPerIp => &self.auth_failures_per_ip,
        }
    }

    async fn check(&self, bucket: Bucket, key: &str) -> Result<(), ApiError> {
        let limited = |wait: Duration| ApiError::RateLimited {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        };
        if let Some(redis) = &self.redis {
            let n = u64::from(self.per_minute[bucket as usize].max(1));
            let interval = 60_000_000 / n;
            let args = [interval.to_string(), (interval * (n - 1)).to_string()];
            let digest = hex::encode(&Sha256::digest(key.as_bytes())[..12]);
            let redis_key = format!("filot:rl:{}:{digest}", bucket as usize);
            match redis.eval::<i64>(GCRA, &[&redis_key], &args).await {
                Ok(0) => return Ok(()),
                Ok(wait_us) => return Err(limited(Duration::from_micros(wait_us.max(1) as u64))),
                // Redis fails fast for a while after an error (see `store::redis`); the
                // outage itself is reported by readiness and the lease users, not per request.
                Err(e) => {
                    tracing::debug!(error = %e, "shared rate limits unavailable; using this node's")
                }
            }
        }
        self.limiter(bucket)
            .check_key(&key.to_string())
            .map_err(|not_until| limited(not_until.wait_time_from(self.clock.now())))
    }

    pub async fn upload(&self, user: &str, ip: &str) -> Result<(), ApiError> {
        self.check(Bucket::UploadsPerIp, ip).await?;
        self.check(Bucket::UploadsPerUser, user).await
    }

    pub async fn request(&self, user: &str) -> Result<(), ApiError> {
        self.check(Bucket::RequestsPerUser, user).await
    }

    /// Counts a failed authentication; past the limit the address gets 429 instead of 401.
    pub async fn auth_failure(&self, ip: &str) -> Result<(), ApiError> {
        self.check(Bucket::AuthFailuresPerIp, ip).await
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
