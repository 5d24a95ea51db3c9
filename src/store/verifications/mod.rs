//! Verification rows (a projection for queries), their append-only event log (the truth),
//! applied signals, durable workflow timers and the transactional outbox.
//!
//! [`append`] is the one write path after creation: it checks the row's version (optimistic,
//! so even a writer outside the verification's actor cannot leave a gap or overwrite a newer
//! state), appends the events with consecutive `seq`, and writes the side rows that belong to
//! the same decision — the signal's remembered answer, a timer set or spent, an outbox row —
//! all in one transaction. The writes (creation with its quota checks, `append`, timers) are
//! in `write`; this file holds the rows' shapes and the reads.

mod write;

use sqlx::{AssertSqlSafe, Row, any::AnyRow};

pub use write::{append, insert, spend_timer};

use super::{Db, Page, Position, StoreError};
use crate::kyc::workflow::{Delivery, Event, Proposal, State};

/// A signal already applied, with the answer its sender got.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRecord {
    pub signal_id: String,
    pub kind: String,
    pub request_hash: String,
    pub response: String,
}

/// An outbox row to write with a decision or a state change (delivered by the outbox lanes);
/// it inherits the verification's correlation id.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub id: String,
    pub kind: super::outbox::Kind,
    /// The webhook id for `webhook` rows.
    pub target: Option<String>,
    /// Sealed (AES-256-GCM) JSON: it carries the checked personal fields BULI2 needs.
    pub payload: String,
}

/// Side rows written in the same transaction as the events.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub signal: Option<SignalRecord>,
    /// `(timer id, due_at)`: a review SLA timer to arm.
    pub arm_timer: Option<(String, i64)>,
    /// A timer that has fired or is no longer needed.
    pub spend_timer: Option<String>,
    pub outbox: Vec<NewOutbox>,
    /// An outbox row's delivery result, recorded with the verification's delivery event.
    pub outbox_result: Option<super::outbox::OutboxResult>,
    /// A BULI2 callback's event id and outcome (unique: a replay cannot apply twice).
    pub callback: Option<(String, String)>,
    /// The blind indexes of the numbers the checked documents yielded.
    pub identity: Vec<crate::store::identity::IdentityRow>,
    /// Values reviewers' corrections set on documents sampled for the challenger model.
    pub ground_truth: Vec<crate::store::comparisons::TruthRow>,
}

/// One audit-trail entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    /// Who caused it: a subject, or `system:workflow`, `buli2` (the `actor` column).
    pub principal: String,
    pub event: Event,
    pub created_at: i64,
}

const COLUMNS: &str = "id, owner, ktp_document_id, npwp_document_id, state, workflow_version, score, \
    reasons_json, review_id, delivery_state, corrections, buli2_outcome, loan_reference, version, \
    created_at, updated_at, decided_at, proposal, correlation_id, claimed_by, claim_expires_at, sla_due_at";

/// The projection row, for queries (the actor replays events instead).
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationRow {
    pub id: String,
    pub owner: String,
    pub ktp_document_id: String,
    pub npwp_document_id: Option<String>,
    pub state: State,
    pub workflow_version: u32,
    pub score: Option<u32>,
    pub reasons: Vec<String>,
    pub review_id: Option<String>,
    pub delivery: Delivery,
    pub corrections: Option<String>,
    pub buli2_outcome: Option<String>,
    pub loan_reference: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub decided_at: Option<i64>,
    /// v3: the first reviewer's decision while it waits for a second reviewer.
    pub proposal: Option<Proposal>,
    /// The correlation id of the request that started it.
    pub correlation_id: Option<String>,
    /// The last claim taken in the current state (it may have expired since).
    pub claim: Option<crate::kyc::workflow::Claim>,
    /// While the case waits for a person: when its review SLA runs out.
    pub sla_due_at: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<VerificationRow, StoreError> {
    let state: String = row.try_get("state")?;
    let delivery: String = row.try_get("delivery_state")?;
    let reasons: Option<String> = row.try_get("reasons_json")?;
    let score: Option<i64> = row.try_get("score")?;
    let version: i64 = row.try_get("workflow_version")?;
    let proposal: Option<String> = row.try_get("proposal")?;
    Ok(VerificationRow {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        ktp_document_id: row.try_get("ktp_document_id")?,
        npwp_document_id: row.try_get("npwp_document_id")?,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("verification state `{state}`")))?,
        workflow_version: version as u32,
        score: score.map(|s| s as u32),
        reasons: reasons
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|_| StoreError::Corrupt("reasons_json".into()))?
            .unwrap_or_default(),
        review_id: row.try_get("review_id")?,
        delivery: Delivery::parse(&delivery)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state `{delivery}`")))?,
        corrections: row.try_get("corrections")?,
        buli2_outcome: row.try_get("buli2_outcome")?,
        loan_reference: row.try_get("loan_reference")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        decided_at: row.try_get("decided_at")?,
        proposal: proposal
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|_| StoreError::Corrupt("proposal".into()))?,
        correlation_id: row.try_get("correlation_id")?,
        claim: match (
            row.try_get::<Option<String>, _>("claimed_by")?,
            row.try_get::<Option<i64>, _>("claim_expires_at")?,
        ) {
            (Some(reviewer), Some(expires_at)) => Some(crate::kyc::workflow::Claim {
                reviewer,
                expires_at,
            }),
            _ => None,
        },
        sla_due_at: row.try_get("sla_due_at")?,
    })
}

/// The correlation id stored with a verification (`None` for rows from before it was kept).
pub async fn correlation_id(db: &Db, id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT correlation_id FROM verifications WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => r.try_get("correlation_id")?,
        None => None,
    })
}

/// The lease token of the verification's last writer (0 when none, or no such row).
pub async fn fence(db: &Db, id: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT fence FROM verifications WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => sqlx::Row::try_get(&r, "fence")?,
        None => 0,
    })
}

/// Whether a BULI2 callback event id was already applied.
pub async fn callback_seen(db: &Db, event_id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT verification_id FROM buli2_callbacks WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| r.try_get("verification_id").map_err(Into::into))
        .transpose()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<VerificationRow>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM verifications WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn events(db: &Db, id: &str) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, actor, detail, created_at FROM verification_events \
         WHERE verification_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let detail: String = row.try_get("detail")?;
            let seq: i64 = row.try_get("seq")?;
            Ok(StoredEvent {
                seq,
                principal: row.try_get("actor")?,
                event: serde_json::from_str(&detail)
                    .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn find_signal(
    db: &Db,
    verification_id: &str,
    signal_id: &str,
) -> Result<Option<SignalRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT signal_id, kind, request_hash, response FROM verification_signals \
         WHERE verification_id = $1 AND signal_id = $2",
    )
    .bind(verification_id)
    .bind(signal_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(SignalRecord {
            signal_id: r.try_get("signal_id")?,
            kind: r.try_get("kind")?,
            request_hash: r.try_get("request_hash")?,
            response: r.try_get("response")?,
        })
    })
    .transpose()
}

/// Verifications waiting for documents whose documents have all settled (extracted, failed
/// or erased), oldest first.
pub async fn ready_to_check(db: &Db, limit: u32) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT v.id FROM verifications v \
         JOIN documents k ON k.id = v.ktp_document_id \
         LEFT JOIN documents n ON n.id = v.npwp_document_id \
         WHERE v.state = 'awaiting_documents' \
           AND k.status IN ('extracted', 'failed', 'erased') \
           AND (v.npwp_document_id IS NULL OR n.status IN ('extracted', 'failed', 'erased')) \
         ORDER BY v.created_at, v.id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get("id").map_err(Into::into))
        .collect()
}

/// Timers due at `now` that have not fired: `(timer id, verification id)`.
pub async fn due_timers(
    db: &Db,
    now: i64,
    limit: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, verification_id FROM workflow_timers WHERE fired_at IS NULL AND due_at <= $1 \
         ORDER BY due_at LIMIT $2",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("verification_id")?)))
        .collect()
}

/// One page of verifications in `state`, oldest first, after the keyset `cursor`.
pub async fn list_by_state(
    db: &Db,
    state: State,
    cursor: Option<Position>,
    limit: u32,
) -> Result<Page<VerificationRow>, StoreError> {
    let rows =
        super::page_by_state(db, "verifications", COLUMNS, state.as_str(), cursor, limit).await?;
    let rows = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Page::from_overfetch(rows, limit, |r: &VerificationRow| {
        (r.created_at, r.id.clone())
    }))
}

/// Outbox rows of one verification: `(id, kind, state)`.
pub async fn outbox_of(
    db: &Db,
    verification_id: &str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, kind, state FROM outbox WHERE verification_id = $1 ORDER BY created_at, id",
    )
    .bind(verification_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("kind")?, r.try_get("state")?)))
        .collect()
}
