//! The writes of a document: an accepted upload (with its idempotency answer and the owner's
//! storage quota) and every later change, each with its event, in one transaction.

use super::{
    DocumentChange, DocumentRecord, DocumentStatus, IdempotencyRecord, NewDocument, cache, get,
};
use crate::{
    kyc::DocumentId,
    store::{Db, Quota, StoreError, comparisons, count, lock_owner, now_millis},
};

async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &DocumentId,
    seq: i64,
    kind: &str,
    principal: &str,
    detail: Option<serde_json::Value>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO document_events (document_id, seq, kind, actor, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(kind)
    .bind(principal)
    .bind(detail.map(|d| d.to_string()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts an accepted upload (`uploaded` then `queued`; or, when it repeats a file whose
/// reading is cached, `uploaded` then `extracted` from that reading), and its idempotency
/// answer, in one transaction. A concurrent request with the same idempotency key makes this fail with a
/// unique violation and leaves nothing behind.
pub async fn insert(
    db: &Db,
    new: &NewDocument,
    idempotency: Option<(&IdempotencyRecord, i64)>,
) -> Result<DocumentRecord, StoreError> {
    let now = new.created_at;
    let mut tx = db.begin_write().await?;
    if let Some(quota) = new.storage_quota {
        lock_owner(&mut tx, &new.owner).await?;
        let stored = count(
            &mut tx,
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM documents \
             WHERE owner = $1 AND status <> 'erased'",
            &new.owner,
        )
        .await?;
        if stored.saturating_add(new.size_bytes) > i64::try_from(quota).unwrap_or(i64::MAX) {
            return Err(StoreError::Quota(Quota::Storage(quota)));
        }
    }
    sqlx::query(
        "INSERT INTO documents (id, owner, doc_type, status, content_type, size_bytes, file_index, blob_key, \
         fields_json, issues_json, failure_reason, version, created_at, updated_at, erased_at, \
         correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11, $12, NULL, 2, $9, $9, NULL, $10)",
    )
    .bind(new.id.to_string())
    .bind(&new.owner)
    .bind(new.doc_type.as_str())
    .bind(match new.reused {
        Some(_) => DocumentStatus::Extracted.as_str(),
        None => DocumentStatus::Queued.as_str(),
    })
    .bind(&new.content_type)
    .bind(new.size_bytes)
    .bind(&new.file_index)
    .bind(&new.blob_key)
    .bind(now)
    .bind(&new.correlation_id)
    .bind(new.reused.as_ref().map(|r| {
        serde_json::to_string(&r.fields).expect("a sealed reading serializes")
    }))
    .bind(
        new.reused
            .as_ref()
            .filter(|r| !r.issues.is_empty())
            .map(|r| serde_json::to_string(&r.issues).expect("strings serialize")),
    )
    .execute(&mut *tx)
    .await?;
    insert_event(&mut tx, &new.id, 1, "uploaded", &new.owner, None, now).await?;
    match &new.reused {
        None => insert_event(&mut tx, &new.id, 2, "queued", &new.owner, None, now).await?,
        Some(reused) => {
            let detail =
                serde_json::json!({ "source": "cache", "reading_of": reused.from.to_string() });
            insert_event(
                &mut tx,
                &new.id,
                2,
                "extracted",
                "ocr:cache",
                Some(detail),
                now,
            )
            .await?
        }
    }
    if let Some((idem, expired_before)) = idempotency {
        // An expired answer for the same key no longer counts: make room for the new one.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE owner = $1 AND idem_key = $2 AND created_at < $3",
        )
        .bind(&idem.owner)
        .bind(&idem.key)
        .bind(expired_before)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, idem_key, request_hash, document_id, status_code, \
             response_body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&idem.owner)
        .bind(&idem.key)
        .bind(&idem.request_hash)
        .bind(&idem.document_id)
        .bind(idem.status_code)
        .bind(&idem.response_body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    #[cfg(feature = "test-hooks")]
    if db
        .faults
        .fail_next_insert
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        return Err(StoreError::Unavailable(
            "injected fault before commit".into(),
        ));
    }
    tx.commit().await?;
    get(db, &new.id).await?.ok_or(StoreError::NotFound)
}

/// Writes `change` on top of `before` (which must be the latest stored version) and appends its
/// event. Returns the new record; `Conflict` when someone else wrote first, `Fenced` when the
/// change carries an older lease token than the row's (a claim needs a newer one).
pub async fn apply(
    db: &Db,
    before: &DocumentRecord,
    change: &DocumentChange,
    principal: &str,
) -> Result<DocumentRecord, StoreError> {
    let after = change.apply(before, now_millis());
    let mut tx = db.begin_write().await?;
    let fields = after
        .fields
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("a sealed reading serializes"));
    let issues = (!after.issues.is_empty())
        .then(|| serde_json::to_string(&after.issues).expect("strings serialize"));
    let updated = sqlx::query(
        "UPDATE documents SET status = $1, content_type = $2, size_bytes = $3, file_index = $4, blob_key = $5, \
         fields_json = $6, issues_json = $7, failure_reason = $8, version = $9, updated_at = $10, erased_at = $11, \
         ocr_attempts = $12, ocr_deadline = $13, ocr_node = $14, fence = $15 \
         WHERE id = $16 AND version = $17 AND fence <= $18",
    )
    .bind(after.status.as_str())
    .bind(&after.content_type)
    .bind(after.size_bytes)
    .bind(&after.file_index)
    .bind(&after.blob_key)
    .bind(fields)
    .bind(issues)
    .bind(&after.failure_reason)
    .bind(after.version)
    .bind(after.updated_at)
    .bind(after.erased_at)
    .bind(after.ocr_attempts)
    .bind(after.ocr_deadline)
    .bind(&after.ocr_node)
    .bind(after.fence)
    .bind(after.id.to_string())
    .bind(before.version)
    // A claim must beat the row's token; the claimant's later writes must still hold it.
    .bind(match change {
        DocumentChange::Processing(claim) => claim.token - 1,
        other => other.token().unwrap_or(i64::MAX),
    })
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        let current = get(db, &before.id).await?.ok_or(StoreError::NotFound)?;
        if current.version == before.version {
            return Err(StoreError::Fenced(format!(
                "lease token older than the document's ({})",
                current.fence
            )));
        }
        return Err(StoreError::Conflict(format!(
            "document changed since version {}",
            before.version
        )));
    }
    insert_event(
        &mut tx,
        &after.id,
        after.version,
        change.kind(),
        principal,
        change.detail(&after),
        after.updated_at,
    )
    .await?;
    match change {
        DocumentChange::Extracted {
            cache_key,
            challenge,
            fields,
            ..
        } => {
            if let Some(key) = cache_key {
                cache::remember(&mut tx, key, &after.id, after.updated_at).await?;
            }
            if *challenge {
                let champion_ms = fields.ocr_ms.unwrap_or(0);
                let at = after.updated_at;
                comparisons::enqueue(&mut tx, &after.id, after.doc_type, champion_ms, at).await?;
            }
        }
        DocumentChange::Erased => cache::forget(&mut tx, &after.id).await?,
        _ => {}
    }
    tx.commit().await?;
    Ok(after)
}
