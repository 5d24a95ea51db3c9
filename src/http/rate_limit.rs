//! Rate limits keyed by user or client address. Each limit is a setting under `limits.*`; an
//! exceeded limit answers 429 `rate_limited` with `Retry-After`.
//!
//! Without Redis the limits live in this process (governor's GCRA). With `FILOT_REDIS_URL` the
//! same limits (same GCRA: a burst of N, then one request every 60/N seconds) are kept in Redis
//! and shared by every node, keyed by a hash of the user or address (no personal data in
//! Redis). If Redis does not answer, each node falls back to its own in-process limits rather
//! than refusing or waving through everything.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{Request, web::RemoteAddr};

use sha2::{Digest, Sha256};

use super::errors::ApiError;
use crate::{config::Limits, store::redis::Redis};

pub struct RateLimits {
    /// Whose `X-Forwarded-For` is believed when naming a client's address.
    pub trusted: TrustedProxies,
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
            trusted: TrustedProxies::parse(&limits.trusted_proxies),
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

/// The reverse proxies whose `X-Forwarded-For` is believed (`limits.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses the configured CIDRs or addresses (validated at start; bad entries are skipped).
    pub fn parse(entries: &[String]) -> Self {
        Self(
            entries
                .iter()
                .filter_map(|e| {
                    e.parse::<ipnet::IpNet>()
                        .ok()
                        .or_else(|| e.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
                })
                .collect(),
        )
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&canonical(ip)))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// The client's address. The socket peer, unless the peer is a trusted proxy: then the
/// right-most `X-Forwarded-For` hop that is not a trusted proxy (hops to its left were written
/// by the client and prove nothing). An entry that is not an address ends the walk there.
pub fn client_addr(req: &Request, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = match req.remote_addr() {
        RemoteAddr(poem::Addr::SocketAddr(addr)) => canonical(addr.ip()),
        _ => return None,
    };
    if trusted.0.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match hop(entry) {
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => return Some(ip),
            None => break,
        }
    }
    Some(client)
}

/// The key a client address is limited under: an IPv4 address, or an IPv6 address's /64
/// (one subscriber usually holds a whole /64, so single addresses would be free to rotate).
pub fn client_ip(req: &Request, trusted: &TrustedProxies) -> String {
    match client_addr(req, trusted) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => req.remote_addr().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> Request {
        let mut builder = poem::http::Request::builder();
        for f in forwarded {
            builder = builder.header("x-forwarded-for", *f);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let parts = poem::RequestParts::from((
            parts,
            poem::web::LocalAddr::default(),
            RemoteAddr(poem::Addr::SocketAddr(peer.parse().unwrap())),
            poem::http::uri::Scheme::HTTP,
        ));
        Request::from_parts(parts, poem::Body::empty())
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]);
        let none = TrustedProxies::default();
        // No trusted proxies: the header is ignored.
        assert_eq!(
            client_ip(&request("203.0.113.5:4000", &["1.1.1.1"]), &none),
            "203.0.113.5"
        );
        // An untrusted peer cannot speak for anyone else.
        assert_eq!(
            client_ip(&request("203.0.113.5:4000", &["1.1.1.1"]), &trusted),
            "203.0.113.5"
        );
        // Spoofed left-most entries are skipped: the right-most untrusted hop counts.
        let req = request("10.1.2.3:4000", &["6.6.6.6, 198.51.100.9, 10.9.9.9"]);
        assert_eq!(client_ip(&req, &trusted), "198.51.100.9");
        let req = request(
            "10.1.2.3:4000",
            &["6.6.6.6", "198.51.100.9:5555, 192.0.2.7"],
        );
        assert_eq!(client_ip(&req, &trusted), "198.51.100.9");
        // Garbage ends the walk at the last trusted hop.
        let req = request("10.1.2.3:4000", &["198.51.100.9, nonsense, 10.0.0.2"]);
        assert_eq!(client_ip(&req, &trusted), "10.0.0.2");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let none = TrustedProxies::default();
        let a = client_ip(&request("[2001:db8:1:2:aaaa::1]:4000", &[]), &none);
        let b = client_ip(&request("[2001:db8:1:2:bbbb::9]:4000", &[]), &none);
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        let mapped = client_ip(&request("[::ffff:203.0.113.5]:4000", &[]), &none);
        assert_eq!(mapped, "203.0.113.5");
    }
}
