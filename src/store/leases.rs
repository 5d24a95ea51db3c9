//! Leases with fencing tokens: who may process a document, a verification or an outbox row
//! right now.
//!
//! With Redis (`FILOT_REDIS_URL`) a lease is `SET key holder NX PX ttl`, shared by every node,
//! and its token comes from an `INCR` counter. Without Redis the leases live in this process
//! (one node: the embedded default), with tokens that only grow (microseconds, never below the
//! last one handed out).
//!
//! The token is written with every database change the holder makes (`documents.fence`,
//! `verifications.fence`) and a write carrying an older token than the row's is refused: a
//! node that paused past its lease (GC, swap, a partition) and woke up cannot overwrite work a
//! newer holder did. A lease is renewed while its work runs and simply expires when its holder
//! dies. Acquiring takes the row's current token as a floor, so even a Redis that lost its
//! counter (restarted without persistence) never hands out a token the database would refuse.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use super::redis::Redis;

/// What a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseKind {
    Document,
    Verification,
    Outbox,
    /// A document the challenger model reads (one node at a time).
    Comparison,
}

impl LeaseKind {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Verification => "verification",
            Self::Outbox => "outbox",
            Self::Comparison => "comparison",
        }
    }

    fn key(&self, id: &str) -> String {
        format!("filot:lease:{}:{id}", self.as_str())
    }

    fn counter(&self) -> String {
        format!("filot:fence:{}", self.as_str())
    }
}

/// A held lease. `token` is the fencing token its writes carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: String,
    holder: String,
    pub token: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Redis did not answer: processing waits until it does.
    #[error("lease service unavailable: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Local {
    held: HashMap<String, (String, Instant)>,
    last_token: i64,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<Mutex<Local>>),
    Redis(Redis),
}

/// The node's way to leases. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    node: Arc<str>,
    ttl: Duration,
    backend: Backend,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .field("shared", &self.shared())
            .finish()
    }
}

const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t <= floor then
  t = floor + 1
  redis.call('SET', KEYS[2], t)
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. t, 'NX', 'PX', ARGV[2])
return t
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

fn unavailable(e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Unavailable(e.to_string())
}

impl Leases {
    /// Leases in this process only (a single node).
    pub fn local(node: &str, ttl: Duration) -> Self {
        Self {
            node: node.into(),
            ttl,
            backend: Backend::Local(Default::default()),
        }
    }

    /// Leases in Redis, shared by every node using it.
    pub fn redis(redis: Redis, node: &str, ttl: Duration) -> Self {
        Self {
            node: node.into(),
            ttl,
            backend: Backend::Redis(redis),
        }
    }

    /// This node's name (what a claim records as its runner).
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True when other nodes see these leases (Redis).
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// The lease `token` of this node on `id` would be (for releasing one whose holder task
    /// was killed).
    pub fn of_this_node(&self, kind: LeaseKind, id: &str, token: i64) -> Lease {
        Lease {
            key: kind.key(id),
            holder: format!("{}:{token}", self.node),
            token,
        }
    }

    /// Takes the lease on `id` if nobody holds it. `floor` is the token last written to the
    /// row: the new token is always above it. `None`: someone else holds it.
    pub async fn try_acquire(
        &self,
        kind: LeaseKind,
        id: &str,
        floor: i64,
    ) -> Result<Option<Lease>, LeaseError> {
        let key = kind.key(id);
        match &self.backend {
            Backend::Local(local) => {
                let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if local.held.get(&key).is_some_and(|(_, until)| *until > now) {
                    return Ok(None);
                }
                if local.held.len() >= 10_000 {
                    // Leases whose holder vanished without releasing them: bounded memory.
                    local.held.retain(|_, (_, until)| *until > now);
                }
                let micros = crate::store::now_millis() * 1_000;
                let token = (local.last_token + 1).max(micros).max(floor + 1);
                local.last_token = token;
                let holder = format!("{}:{token}", self.node);
                local
                    .held
                    .insert(key.clone(), (holder.clone(), now + self.ttl));
                Ok(Some(Lease { key, holder, token }))
            }
            Backend::Redis(redis) => {
                let args = [
                    self.node.to_string(),
                    self.ttl.as_millis().to_string(),
                    floor.to_string(),
                ];
                let token: i64 = redis
                    .eval(ACQUIRE, &[&key, &kind.counter()], &args)
                    .await
                    .map_err(unavailable)?;
                if token == 0 {
                    return Ok(None);
                }
                let holder = format!("{}:{token}", self.node);
                Ok(Some(Lease { key, holder, token }))
            }
        }
    }

    /// Like [`Leases::try_acquire`], retrying for up to `wait` while another holder has it.
    pub async fn acquire(
        &self,
        kind: LeaseKind,
        id: &str,
        floor: i64,
        wait: Duration,
    ) -> Result<Option<Lease>, LeaseError> {
        let until = Instant::now() + wait;
        loop {
            if let Some(lease) = self.try_acquire(kind, id, floor).await? {
                return Ok(Some(lease));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Extends a held lease by the TTL. False: it was lost (expired and maybe taken).
    pub async fn renew(&self, lease: &Lease) -> Result<bool, LeaseError> {
        match &self.backend {
            Backend::Local(local) => {
                let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
                match local.held.get_mut(&lease.key) {
                    Some((holder, until)) if *holder == lease.holder => {
                        *until = Instant::now() + self.ttl;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Backend::Redis(redis) => {
                let args = [lease.holder.clone(), self.ttl.as_millis().to_string()];
                let renewed: i64 = redis
                    .eval(RENEW, &[&lease.key], &args)
                    .await
                    .map_err(unavailable)?;
                Ok(renewed == 1)
            }
        }
    }

    /// Gives a lease up (only if still ours). Best effort: a lease that cannot be released
    /// expires after its TTL.
    pub async fn release(&self, lease: &Lease) {
        match &self.backend {
            Backend::Local(local) => {
                let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
                if local
                    .held
                    .get(&lease.key)
                    .is_some_and(|(holder, _)| *holder == lease.holder)
                {
                    local.held.remove(&lease.key);
                }
            }
            Backend::Redis(redis) => {
                let args = [lease.holder.clone()];
                if let Err(e) = redis.eval::<i64>(RELEASE, &[&lease.key], &args).await {
                    tracing::warn!(error = %e, "lease not released; it expires on its own");
                }
            }
        }
    }

    /// Who holds the lease on `id` now (`node:token`), if anyone.
    pub async fn holder(&self, kind: LeaseKind, id: &str) -> Result<Option<String>, LeaseError> {
        let key = kind.key(id);
        match &self.backend {
            Backend::Local(local) => {
                let local = local.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                Ok(local
                    .held
                    .get(&key)
                    .filter(|(_, until)| *until > now)
                    .map(|(holder, _)| holder.clone()))
            }
            Backend::Redis(redis) => redis.get(&key).await.map_err(unavailable),
        }
    }

    /// Whether leases can be taken now (Redis answers).
    pub async fn check(&self) -> Result<(), LeaseError> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::Redis(redis) => redis.ping().await.map_err(unavailable),
        }
    }
}

/// Renews `lease` every third of its TTL while `work` runs; the work's result is returned
/// when it ends. A renewal that fails is logged (the work's writes are fenced either way).
pub async fn while_held<T>(
    leases: &Leases,
    lease: &Lease,
    work: impl std::future::Future<Output = T>,
) -> T {
    let every = (leases.ttl() / 3).max(Duration::from_millis(50));
    let renew = async {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tick.tick().await;
            match leases.renew(lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("lease lost while its work runs; its writes are fenced")
                }
                Err(e) => tracing::warn!(error = %e, "lease not renewed"),
            }
        }
    };
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => out,
        _ = renew => unreachable!("renewal never ends"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn local_leases_exclude_grow_and_expire() {
        let leases = Leases::local("a", Duration::from_millis(200));
        let first = leases
            .try_acquire(LeaseKind::Document, "d1", 0)
            .await
            .unwrap()
            .expect("free");
        assert!(
            leases
                .try_acquire(LeaseKind::Document, "d1", 0)
                .await
                .unwrap()
                .is_none(),
            "held"
        );
        // Another id, another kind: independent.
        assert!(
            leases
                .try_acquire(LeaseKind::Verification, "d1", 0)
                .await
                .unwrap()
                .is_some()
        );
        leases.release(&first).await;
        let floor = i64::MAX / 2;
        let second = leases
            .try_acquire(LeaseKind::Document, "d1", floor)
            .await
            .unwrap()
            .expect("released");
        assert!(second.token > first.token && second.token > floor);
        // Not renewed: expires, and the old holder can no longer renew it.
        tokio::time::advance(Duration::from_millis(199)).await;
        assert!(
            leases
                .try_acquire(LeaseKind::Document, "d1", 0)
                .await
                .unwrap()
                .is_none(),
            "held until its TTL has passed"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let third = leases
            .try_acquire(LeaseKind::Document, "d1", 0)
            .await
            .unwrap()
            .expect("expired");
        assert!(!leases.renew(&second).await.unwrap());
        assert!(third.token > second.token);
        assert_eq!(
            leases.holder(LeaseKind::Document, "d1").await.unwrap(),
            Some(format!("a:{}", third.token))
        );
    }
}
