//! # Store
//!
//! sqlx repositories over one [`Db`] handle that speaks SQLite (the embedded default) or
//! Postgres (production), chosen by URL at start. Queries are written once in the common SQL
//! both accept (`$n` parameters, BIGINT millisecond timestamps, TEXT ids). Also the encrypted
//! blob store. This layer knows nothing of HTTP or actors.

pub mod batches;
pub mod blind;
pub mod blobs;
pub mod comparisons;
pub mod documents;
pub mod identity;
pub mod leases;
pub mod outbox;
pub mod redis;
pub mod reviews;
pub mod verifications;
pub mod webhooks;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool,
    any::{AnyConnectOptions, AnyPoolOptions},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The write carried a lease token older than the row's: its writer lost the lease.
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("blob store: {0}")]
    Blob(#[from] blobs::BlobError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A per-owner limit refused the write; nothing was written.
    #[error("{0}")]
    Quota(Quota),
}

/// The per-owner limits checked atomically with the write they guard (see [`lock_owner`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Quota {
    /// The document is already in this verification, which is not final yet.
    #[error("the card is already in verification {0}, which is not final yet")]
    CardInActiveVerification(String),
    #[error("at most {0} verifications may be in progress at once")]
    ActiveVerifications(u32),
    #[error("at most {0} active webhooks per user")]
    Webhooks(u32),
    #[error("the upload would take your stored files past {0} bytes")]
    Storage(u64),
}

/// Serialises the rest of `tx` with every other transaction that locks the same owner, so a
/// quota's count-then-insert cannot race: the upsert takes the owner row's lock until commit
/// on Postgres, and SQLite's `BEGIN IMMEDIATE` already serialises writers.
pub(crate) async fn lock_owner(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO owner_locks (owner, touched) VALUES ($1, 0) \
         ON CONFLICT (owner) DO UPDATE SET touched = owner_locks.touched + 1",
    )
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `SELECT COUNT(*)`-style queries as a plain number.
pub(crate) async fn count(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &'static str,
    owner: &str,
) -> Result<i64, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(sql).bind(owner).fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

impl StoreError {
    /// Connection-level failures (database down, pool exhausted) as opposed to bad queries.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
            ),
            _ => false,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle shared by every repository.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Failure points a test can arm (only compiled with `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub faults: std::sync::Arc<crate::testing::StoreFaults>,
}

impl Db {
    /// Connects (creating a SQLite file when needed) without running migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; busy_timeout makes writers queue
                        // instead of failing; foreign keys are off by default in SQLite.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .execute(conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(describe_connect_error(&e)))?;
        Ok(Self {
            pool,
            backend,
            #[cfg(feature = "test-hooks")]
            faults: Default::default(),
        })
    }

    /// Applies the migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so
    /// that two writers queue on `busy_timeout` instead of failing on a lock upgrade.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Readiness probe: one round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A keyset position in a list: the row's `created_at` and id.
pub type Position = (i64, String);

/// One page of a list, and the position of its last item when more follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Position>,
}

impl<T> Page<T> {
    /// From up to `limit + 1` rows, fetched so that the extra one only says more follow.
    pub(crate) fn from_overfetch(
        mut rows: Vec<T>,
        limit: u32,
        position: impl Fn(&T) -> Position,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(position)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

/// Up to `limit + 1` of `table`'s rows whose `state` column is `state`, oldest first, after the
/// keyset `cursor` (for [`Page::from_overfetch`]). Shared by the queues that list by state.
pub(crate) async fn page_by_state(
    db: &Db,
    table: &str,
    columns: &str,
    state: &str,
    cursor: Option<Position>,
    limit: u32,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let (after_t, after_id) = cursor.unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM {table} WHERE state = $1 \
         AND (created_at > $2 OR (created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT $4"
    )))
    .bind(state)
    .bind(after_t)
    .bind(after_id)
    .bind(i64::from(limit) + 1)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows)
}

/// A connection error without the URL (which may carry a password).
fn describe_connect_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("cannot reach the database: {}", io.kind()),
        sqlx::Error::PoolTimedOut => "timed out connecting to the database".into(),
        sqlx::Error::Database(db) => format!("database refused the connection: {}", db.message()),
        sqlx::Error::Configuration(_) => "invalid database URL".into(),
        other => format!(
            "cannot connect to the database: {}",
            crate::telemetry::mask::mask_pii(&other.to_string())
        ),
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
