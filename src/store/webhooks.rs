//! Registered status webhooks. A webhook's secret is sealed at rest; the client saw it once,
//! when it registered.

use sqlx::{Row, any::AnyRow};

use super::{Db, Quota, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub owner: String,
    pub url: String,
    /// Sealed HMAC secret (AES-256-GCM, the webhook id as associated data).
    pub secret: String,
    pub active: bool,
    pub created_at: i64,
}

fn from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let active: i64 = row.try_get("active")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        active: active != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Registers `w` unless its owner already has `max` active webhooks (`Quota::Webhooks`); the
/// count and the insert are one atomic step per owner.
pub async fn insert(db: &Db, w: &Webhook, max: u32) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    super::lock_owner(&mut tx, &w.owner).await?;
    let active = super::count(
        &mut tx,
        "SELECT COUNT(*) FROM webhooks WHERE owner = $1 AND active = 1",
        &w.owner,
    )
    .await?;
    if active >= i64::from(max) {
        return Err(StoreError::Quota(Quota::Webhooks(max)));
    }
    sqlx::query(
        "INSERT INTO webhooks (id, owner, url, secret, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&w.id)
    .bind(&w.owner)
    .bind(&w.url)
    .bind(&w.secret)
    .bind(i64::from(w.active))
    .bind(w.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Webhook>, StoreError> {
    let row = sqlx::query(
        "SELECT id, owner, url, secret, active, created_at FROM webhooks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The owner's active webhooks, oldest first.
pub async fn active_for(db: &Db, owner: &str) -> Result<Vec<Webhook>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, owner, url, secret, active, created_at FROM webhooks \
         WHERE owner = $1 AND active = 1 ORDER BY created_at, id",
    )
    .bind(owner)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Stops deliveries to a webhook (rows already queued are still delivered).
pub async fn deactivate(db: &Db, id: &str, owner: &str) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE webhooks SET active = 0 WHERE id = $1 AND owner = $2 AND active = 1")
            .bind(id)
            .bind(owner)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() == 1)
}
