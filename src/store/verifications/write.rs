//! The writes of a verification: its creation (with the per-owner quota checks), the one
//! append path for its events and their side rows, and spent timers.

use sqlx::{AssertSqlSafe, Row};

use super::{Extras, fence};
use crate::{
    kyc::workflow::{Event, Verification},
    store::{Db, Quota, StoreError},
};

async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    seq: i64,
    event: &Event,
    principal: &str,
    at: i64,
) -> Result<(), StoreError> {
    let detail = serde_json::to_string(event).expect("events serialize");
    sqlx::query(
        "INSERT INTO verification_events (verification_id, seq, kind, actor, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(seq)
    .bind(event.kind())
    .bind(principal)
    .bind(detail)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// States a verification is in progress in (not final).
const ACTIVE: &str =
    "('awaiting_documents', 'checking', 'pending_manual_review', 'awaiting_second_review')";

/// Creates the verification from its `started` event, unless one of its documents is already
/// in a verification in progress (`Quota::CardInActiveVerification`) or its owner already has
/// `max_active` in progress (`Quota::ActiveVerifications`). The checks and the insert are one
/// atomic step per owner.
pub async fn insert(
    db: &Db,
    v: &Verification,
    started: &Event,
    correlation_id: Option<&str>,
    max_active: u32,
) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    crate::store::lock_owner(&mut tx, &v.owner).await?;
    let docs = [
        Some(v.ktp_document_id.as_str()),
        v.npwp_document_id.as_deref(),
    ];
    for doc in docs.into_iter().flatten() {
        let busy = sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM verifications WHERE owner = $1 AND state IN {ACTIVE} \
             AND (ktp_document_id = $2 OR npwp_document_id = $2) ORDER BY created_at LIMIT 1"
        )))
        .bind(&v.owner)
        .bind(doc)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = busy {
            return Err(StoreError::Quota(Quota::CardInActiveVerification(
                row.try_get("id")?,
            )));
        }
    }
    let active = sqlx::query(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM verifications WHERE owner = $1 AND state IN {ACTIVE}"
    )))
    .bind(&v.owner)
    .fetch_one(&mut *tx)
    .await?
    .try_get::<i64, _>(0)?;
    if active >= i64::from(max_active) {
        return Err(StoreError::Quota(Quota::ActiveVerifications(max_active)));
    }
    sqlx::query(
        "INSERT INTO verifications (id, owner, ktp_document_id, npwp_document_id, state, workflow_version, \
         score, reasons_json, review_id, delivery_state, corrections, version, created_at, updated_at, decided_at, \
         correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, $7, NULL, 1, $8, $8, NULL, $9)",
    )
    .bind(&v.id)
    .bind(&v.owner)
    .bind(&v.ktp_document_id)
    .bind(&v.npwp_document_id)
    .bind(v.state.as_str())
    .bind(i64::from(v.workflow_version))
    .bind(v.delivery.as_str())
    .bind(v.created_at)
    .bind(correlation_id)
    .execute(&mut *tx)
    .await?;
    insert_event(&mut tx, &v.id, 1, started, &v.owner, v.created_at).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes `after` (which is `before` with `events` applied) and everything in `extras`, in one
/// transaction. `Conflict` when the stored version is no longer `before.seq`.
pub async fn append(
    db: &Db,
    before: &Verification,
    after: &Verification,
    events: &[(Event, String)],
    extras: &Extras,
    token: i64,
) -> Result<(), StoreError> {
    let at = after.updated_at;
    let mut tx = db.begin_write().await?;
    let reasons = serde_json::to_string(&after.reasons).expect("strings serialize");
    let updated = sqlx::query(
        "UPDATE verifications SET state = $1, score = $2, reasons_json = $3, review_id = $4, \
         delivery_state = $5, corrections = $6, version = $7, updated_at = $8, decided_at = $9, \
         buli2_outcome = $10, loan_reference = $11, fence = $14, proposal = $15, \
         claimed_by = $16, claim_expires_at = $17, sla_due_at = $18 \
         WHERE id = $12 AND version = $13 AND fence <= $14",
    )
    .bind(after.state.as_str())
    .bind(after.score.map(i64::from))
    .bind(reasons)
    .bind(&after.review_id)
    .bind(after.delivery.as_str())
    .bind(&after.sealed_corrections)
    .bind(after.seq)
    .bind(at)
    .bind(after.decided_at)
    .bind(after.buli2_outcome.map(|o| o.as_str()))
    .bind(&after.loan_reference)
    .bind(&after.id)
    .bind(before.seq)
    .bind(token)
    .bind(
        after
            .proposal
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("proposals serialize")),
    )
    .bind(after.claim.as_ref().map(|c| c.reviewer.clone()))
    .bind(after.claim.as_ref().map(|c| c.expires_at))
    .bind(after.sla_due_at.filter(|_| after.state.awaits_review()))
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        if fence(db, &after.id).await? > token {
            return Err(StoreError::Fenced(format!(
                "verification written with a newer lease than {token}"
            )));
        }
        return Err(StoreError::Conflict(format!(
            "verification changed since version {}",
            before.seq
        )));
    }
    for (i, (event, principal)) in events.iter().enumerate() {
        insert_event(
            &mut tx,
            &after.id,
            before.seq + 1 + i as i64,
            event,
            principal,
            at,
        )
        .await?;
    }
    if let Some(s) = &extras.signal {
        sqlx::query(
            "INSERT INTO verification_signals (verification_id, signal_id, kind, request_hash, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&after.id)
        .bind(&s.signal_id)
        .bind(&s.kind)
        .bind(&s.request_hash)
        .bind(&s.response)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    if let Some((timer, due_at)) = &extras.arm_timer {
        sqlx::query(
            "INSERT INTO workflow_timers (id, verification_id, kind, due_at, fired_at) \
             VALUES ($1, $2, 'review_sla', $3, NULL)",
        )
        .bind(timer)
        .bind(&after.id)
        .bind(*due_at)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(timer) = &extras.spend_timer {
        spend(&mut tx, timer, at).await?;
    }
    for o in &extras.outbox {
        sqlx::query(
            "INSERT INTO outbox (id, verification_id, kind, payload, state, attempts, rounds, \
             next_attempt_at, last_error, created_at, updated_at, target, correlation_id) \
             VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5, NULL, $5, $5, $6, \
             (SELECT correlation_id FROM verifications WHERE id = $2))",
        )
        .bind(&o.id)
        .bind(&after.id)
        .bind(o.kind.as_str())
        .bind(&o.payload)
        .bind(at)
        .bind(&o.target)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(result) = &extras.outbox_result {
        crate::store::outbox::record_result(&mut tx, result, at).await?;
    }
    crate::store::identity::insert(&mut tx, &after.id, &after.owner, &extras.identity, at).await?;
    crate::store::comparisons::remember_truth(&mut tx, &after.id, &extras.ground_truth, at).await?;
    if let Some((event_id, outcome)) = &extras.callback {
        sqlx::query(
            "INSERT INTO buli2_callbacks (event_id, verification_id, outcome, received_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(event_id)
        .bind(&after.id)
        .bind(outcome)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn spend(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    timer: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE workflow_timers SET fired_at = $1 WHERE id = $2 AND fired_at IS NULL")
        .bind(at)
        .bind(timer)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks a timer spent on its own (it fired for a case that had already moved on).
pub async fn spend_timer(db: &Db, timer: &str, at: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    spend(&mut tx, timer, at).await?;
    tx.commit().await?;
    Ok(())
}
