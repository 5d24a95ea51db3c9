//! The shared Redis (bb8 pool), when `FILOT_REDIS_URL` is set: leases with fencing tokens
//! ([`super::leases`]) and rate limits shared by every node (`crate::http::rate_limit`).
//!
//! Every call is bounded by the pool's connection timeout and the connection's response
//! timeout, so a Redis that went away costs a caller about a second, never a hang; after a
//! failure, calls fail at once for the next two seconds (a small breaker) instead of each
//! waiting out the timeout. Callers treat an error as "Redis unavailable": uploads still go to
//! the database, processing waits.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use bb8_redis::{
    RedisConnectionManager, bb8,
    redis::{self, FromRedisValue},
};

#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisError(String);

/// A pool of multiplexed connections to one Redis. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    pool: bb8::Pool<RedisConnectionManager>,
    /// After a failure, calls fail at once until then (ms since the epoch).
    down_until: Arc<AtomicI64>,
}

/// How long calls fail fast after Redis failed.
const FAIL_FAST_MS: i64 = 2_000;

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

impl Redis {
    /// A pool for `url`. Connects lazily: a Redis that is down at start is not fatal (the
    /// service starts, says so in `/health/ready`, and begins processing when it answers).
    pub fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<Self, RedisError> {
        let manager = RedisConnectionManager::new(url).map_err(|e| RedisError(describe(&e)))?;
        let pool = bb8::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .retry_connection(false)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            down_until: Default::default(),
        })
    }

    /// A connection, unless Redis failed within the last two seconds.
    async fn conn(&self) -> Result<bb8::PooledConnection<'_, RedisConnectionManager>, RedisError> {
        if crate::store::now_millis() < self.down_until.load(Ordering::Relaxed) {
            return Err(RedisError("failed moments ago; not retried yet".into()));
        }
        self.pool
            .get()
            .await
            .map_err(|e| self.failed(e.to_string()))
    }

    /// Records a failure (starting the fail-fast window) and returns it.
    fn failed(&self, why: String) -> RedisError {
        let until = crate::store::now_millis() + FAIL_FAST_MS;
        self.down_until.store(until, Ordering::Relaxed);
        RedisError(why)
    }

    /// Runs a Lua script (EVAL) with `keys` and `args`.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &str,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len());
        for k in keys {
            cmd.arg(*k);
        }
        for a in args {
            cmd.arg(a);
        }
        cmd.query_async(&mut *conn)
            .await
            .map_err(|e| self.failed(describe(&e)))
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisError> {
        let mut conn = self.conn().await?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut *conn)
            .await
            .map_err(|e| self.failed(describe(&e)))
    }

    /// PING: is Redis answering? Always asks (readiness probes), and a success ends the
    /// fail-fast window.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e| self.failed(describe(&e)))?;
        self.down_until.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// A Redis error without the URL (which may carry a password).
fn describe(e: &redis::RedisError) -> String {
    format!("{:?}: {}", e.kind(), e.detail().unwrap_or("no detail"))
}
