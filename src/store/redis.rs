//! The shared Redis (bb8 pool), when `FILOT_REDIS_URL` is set: leases with fencing tokens
//! ([`super::leases`]) and rate limits shared by every node (`crate::http::rate_limit`).
//!
//! Every call is bounded by the pool's connection timeout and the connection's response
//! timeout, so a Redis that went away costs a caller about a second, never a hang. Callers
//! treat an error as "Redis unavailable": uploads still go to the database, processing waits.

use std::time::Duration;

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
}

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
        Ok(Self { pool })
    }

    /// Runs a Lua script (EVAL) with `keys` and `args`.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &str,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| RedisError(e.to_string()))?;
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
            .map_err(|e| RedisError(describe(&e)))
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| RedisError(e.to_string()))?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut *conn)
            .await
            .map_err(|e| RedisError(describe(&e)))
    }

    /// PING: is Redis answering?
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| RedisError(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e| RedisError(describe(&e)))?;
        Ok(())
    }
}

/// A Redis error without the URL (which may carry a password).
fn describe(e: &redis::RedisError) -> String {
    format!("{:?}: {}", e.kind(), e.detail().unwrap_or("no detail"))
}
