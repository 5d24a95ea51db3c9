//! The transactional outbox: rows written with a decision (see `verifications::append`),
//! delivered by the OutboxActor. A row is `pending` until delivered (`sent`) or given up on
//! (`dead`); `next_attempt_at` makes its schedule durable, `rounds` counts failed delivery
//! rounds, `attempts` HTTP calls. Rows are never deleted: they are the delivery record.

use sqlx::{AssertSqlSafe, Row, any::AnyRow};

use super::{Db, Page, Position, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Dead,
}

impl OutboxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Dead]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// What a row delivers, and so which lane delivers it: BULI2's decisions never wait behind
/// webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A final decision for BULI2.
    Buli2Decision,
    /// A state change for one of the owner's status webhooks.
    Webhook,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Buli2Decision => "buli2_decision",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Buli2Decision, Self::Webhook]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: String,
    pub verification_id: String,
    pub kind: Kind,
    /// The webhook id for `webhook` rows.
    pub target: Option<String>,
    /// Sealed JSON (AES-256-GCM with the row id as associated data).
    pub payload: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub rounds: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The correlation id of the request that started the verification.
    pub correlation_id: Option<String>,
}

/// A delivery round's final result for a row: `sent` or `dead`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxResult {
    pub id: String,
    pub state: OutboxState,
    /// HTTP calls made in the round.
    pub attempts: i64,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, verification_id, kind, target, payload, state, attempts, rounds, \
                       next_attempt_at, last_error, created_at, updated_at, correlation_id";

fn from_row(row: &AnyRow) -> Result<OutboxRow, StoreError> {
    let state: String = row.try_get("state")?;
    let kind: String = row.try_get("kind")?;
    Ok(OutboxRow {
        id: row.try_get("id")?,
        verification_id: row.try_get("verification_id")?,
        kind: Kind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox kind `{kind}`")))?,
        target: row.try_get("target")?,
        payload: row.try_get("payload")?,
        state: OutboxState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox state `{state}`")))?,
        attempts: row.try_get("attempts")?,
        rounds: row.try_get("rounds")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        correlation_id: row.try_get("correlation_id")?,
    })
}

/// Pending rows of one `kind` whose time has come, oldest schedule first.
pub async fn due(db: &Db, now: i64, limit: u32, kind: Kind) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND kind = $3 \
         AND next_attempt_at <= $1 ORDER BY next_attempt_at, created_at, id LIMIT $2"
    )))
    .bind(now)
    .bind(i64::from(limit))
    .bind(kind.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// One page of rows in `state`, oldest first, after the keyset `cursor`.
pub async fn list(
    db: &Db,
    state: OutboxState,
    cursor: Option<Position>,
    limit: u32,
) -> Result<Page<OutboxRow>, StoreError> {
    let rows = super::page_by_state(db, "outbox", COLUMNS, state.as_str(), cursor, limit).await?;
    let rows = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Page::from_overfetch(rows, limit, |r: &OutboxRow| {
        (r.created_at, r.id.clone())
    }))
}

/// A failed round: count it and schedule the next one (the row stays `pending`).
pub async fn reschedule(
    db: &Db,
    id: &str,
    attempts: i64,
    next_attempt_at: i64,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + $1, rounds = rounds + 1, next_attempt_at = $2, \
         last_error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending'",
    )
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a round's final result inside the caller's transaction.
pub(crate) async fn record_result(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    result: &OutboxResult,
    now: i64,
) -> Result<(), StoreError> {
    let rounds = if result.state == OutboxState::Dead {
        "rounds + 1"
    } else {
        "rounds"
    };
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE outbox SET state = $1, attempts = attempts + $2, rounds = {rounds}, \
         last_error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending'"
    )))
    .bind(result.state.as_str())
    .bind(result.attempts)
    .bind(&result.error)
    .bind(now)
    .bind(&result.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a round's final result on its own (rows with no verification event to go with).
pub async fn finish(db: &Db, result: &OutboxResult, now: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    record_result(&mut tx, result, now).await?;
    tx.commit().await?;
    Ok(())
}

/// An admin's retry of a dead letter: back to `pending`, due now, with fresh rounds. False
/// when the row is not dead.
pub async fn requeue(db: &Db, id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET state = 'pending', rounds = 0, next_attempt_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'dead'",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
