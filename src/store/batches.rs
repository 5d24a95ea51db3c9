//! Batch uploads as stored: who sent one, the answer it got (sealed by the caller: it names
//! the client's parts), and the `Idempotency-Key` it came with. The documents themselves
//! are ordinary documents, created one by one through intake.

use sqlx::Row;

use super::{Db, StoreError};

/// One accepted batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub owner: String,
    /// The answer given, sealed.
    pub answer: String,
    pub idem_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<BatchRecord, StoreError> {
    Ok(BatchRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        answer: row.try_get("answer")?,
        idem_key: row.try_get("idem_key")?,
        request_hash: row.try_get("request_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "id, owner, answer, idem_key, request_hash, created_at";

pub async fn get(db: &Db, id: &str) -> Result<Option<BatchRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM batches WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The owner's batch sent with `key` since `not_before`, if any.
pub async fn find_idempotent(
    db: &Db,
    owner: &str,
    key: &str,
    not_before: i64,
) -> Result<Option<BatchRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM batches WHERE owner = $1 AND idem_key = $2 AND created_at >= $3"
    )))
    .bind(owner)
    .bind(key)
    .bind(not_before)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Records `batch`; an expired use of its key (before `not_before`) lets go of the key first.
/// A concurrent batch with the same live key makes this fail with a unique violation.
pub async fn insert(db: &Db, batch: &BatchRecord, not_before: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    if let Some(key) = &batch.idem_key {
        sqlx::query(
            "UPDATE batches SET idem_key = NULL WHERE owner = $1 AND idem_key = $2 AND created_at < $3",
        )
        .bind(&batch.owner)
        .bind(key)
        .bind(not_before)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO batches (id, owner, answer, idem_key, request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&batch.id)
    .bind(&batch.owner)
    .bind(&batch.answer)
    .bind(&batch.idem_key)
    .bind(&batch.request_hash)
    .bind(batch.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
