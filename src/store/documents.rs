//! Document rows, their append-only event log, and upload idempotency keys.
//!
//! Every write bumps `documents.version` and appends the event with `seq = version` in the same
//! transaction, guarded by the version the writer read (optimistic check): even a writer that
//! bypassed the document's actor could not leave a gap or overwrite a newer state.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row, any::AnyRow};

use super::{Db, StoreError, now_millis};
use crate::kyc::{DocumentId, DocumentType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Uploaded,
    Queued,
    Processing,
    Extracted,
    Failed,
    Erased,
}

impl DocumentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Extracted => "extracted",
            Self::Failed => "failed",
            Self::Erased => "erased",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "uploaded" => Self::Uploaded,
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "extracted" => Self::Extracted,
            "failed" => Self::Failed,
            "erased" => Self::Erased,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown document status `{other}`"
                )));
            }
        })
    }
}

/// A document as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    pub id: DocumentId,
    pub owner: String,
    pub doc_type: DocumentType,
    pub status: DocumentStatus,
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub blob_key: Option<String>,
    pub fields: Option<serde_json::Value>,
    pub issues: Vec<String>,
    pub failure_reason: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub erased_at: Option<i64>,
    /// OCR runs started so far.
    pub ocr_attempts: i64,
    /// While `processing`: when the run must be over (ms since the epoch)…
    pub ocr_deadline: Option<i64>,
    /// …and the node running it.
    pub ocr_node: Option<String>,
    /// Fencing token of the lease the last OCR claimant held (0: never claimed).
    pub fence: i64,
    /// The upload request's correlation id.
    pub correlation_id: Option<String>,
}

/// An OCR worker's claim on a queued document: who runs it, with which lease, until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub node: String,
    pub token: i64,
    pub deadline: i64,
}

/// What an accepted upload stores.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub owner: String,
    pub doc_type: DocumentType,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    /// Milliseconds since the epoch; also what the upload's answer says.
    pub created_at: i64,
    /// The upload request's correlation id (logged by every later stage).
    pub correlation_id: Option<String>,
    /// Bytes of stored files the owner may hold (`None`: no quota).
    pub storage_quota: Option<u64>,
}

/// The answer remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub owner: String,
    pub key: String,
    pub request_hash: String,
    pub document_id: String,
    pub status_code: i64,
    pub response_body: String,
}

/// One entry of a document's audit trail. Never holds personal data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentEvent {
    pub seq: i64,
    pub kind: String,
    /// Who caused it: a subject, or a part of the system (`ocr`, `system:reaper`); stored
    /// (and shown) as `actor`.
    #[serde(rename = "actor")]
    pub principal: String,
    pub detail: Option<serde_json::Value>,
    pub created_at: i64,
}

/// A change to an existing document. Each becomes one event.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentChange {
    /// Someone downloaded the original file (audited: it is a copy of an identity card).
    FileRead,
    /// Personal data and the file are wiped; the row stays as a tombstone.
    Erased,
    /// An OCR worker took the queued document (a new attempt).
    Processing(Claim),
    /// OCR finished: the (sealed) fields and the issues found. `token`: the claim's.
    Extracted {
        fields: serde_json::Value,
        issues: Vec<String>,
        token: i64,
    },
    /// OCR could not read the document (or ran out of attempts); `reason` is a stable code.
    Failed { reason: String, token: i64 },
    /// A run was abandoned (past its deadline, or its node died): back to `queued`.
    Requeued { reason: String, token: i64 },
}

impl DocumentChange {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FileRead => "file_read",
            Self::Erased => "erased",
            Self::Processing(_) => "processing",
            Self::Extracted { .. } => "extracted",
            Self::Failed { .. } => "failed",
            Self::Requeued { .. } => "requeued",
        }
    }

    /// The fencing token this change carries (OCR changes only): the row must not hold a
    /// newer one.
    pub fn token(&self) -> Option<i64> {
        match self {
            Self::Processing(claim) => Some(claim.token),
            Self::Extracted { token, .. }
            | Self::Failed { token, .. }
            | Self::Requeued { token, .. } => Some(*token),
            Self::FileRead | Self::Erased => None,
        }
    }

    /// What the audit trail keeps about this change beyond its kind (never personal data).
    fn detail(&self, after: &DocumentRecord) -> Option<serde_json::Value> {
        match self {
            Self::Processing(claim) => Some(serde_json::json!({
                "attempt": after.ocr_attempts, "node": claim.node, "token": claim.token,
            })),
            Self::Requeued { reason, token } | Self::Failed { reason, token } => {
                Some(serde_json::json!({ "reason": reason, "token": token }))
            }
            Self::Extracted { token, .. } => Some(serde_json::json!({ "token": token })),
            Self::FileRead | Self::Erased => None,
        }
    }

    /// The record after this change.
    pub fn apply(&self, before: &DocumentRecord, now: i64) -> DocumentRecord {
        let mut after = before.clone();
        after.version += 1;
        after.updated_at = now;
        match self {
            Self::FileRead => {}
            Self::Processing(claim) => {
                after.status = DocumentStatus::Processing;
                after.ocr_attempts += 1;
                after.ocr_deadline = Some(claim.deadline);
                after.ocr_node = Some(claim.node.clone());
                after.fence = claim.token;
            }
            Self::Extracted { fields, issues, .. } => {
                after.status = DocumentStatus::Extracted;
                after.fields = Some(fields.clone());
                after.issues = issues.clone();
                after.failure_reason = None;
                after.ocr_deadline = None;
            }
            Self::Failed { reason, .. } => {
                after.status = DocumentStatus::Failed;
                after.failure_reason = Some(reason.clone());
                after.ocr_deadline = None;
            }
            Self::Requeued { .. } => {
                after.status = DocumentStatus::Queued;
                after.ocr_deadline = None;
                after.ocr_node = None;
            }
            Self::Erased => {
                after.status = DocumentStatus::Erased;
                after.content_type = None;
                after.size_bytes = None;
                after.sha256 = None;
                after.blob_key = None;
                after.fields = None;
                after.issues = Vec::new();
                after.failure_reason = None;
                after.erased_at = Some(now);
            }
        }
        after
    }
}

const COLUMNS: &str = "id, owner, doc_type, status, content_type, size_bytes, sha256, blob_key, \
                       fields_json, issues_json, failure_reason, version, created_at, updated_at, erased_at, \
                       ocr_attempts, ocr_deadline, ocr_node, fence, correlation_id";

fn from_row(row: &AnyRow) -> Result<DocumentRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let doc_type: String = row.try_get("doc_type")?;
    let status: String = row.try_get("status")?;
    let fields: Option<String> = row.try_get("fields_json")?;
    let issues: Option<String> = row.try_get("issues_json")?;
    Ok(DocumentRecord {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt("document id".into()))?,
        owner: row.try_get("owner")?,
        doc_type: doc_type
            .parse()
            .map_err(|_| StoreError::Corrupt("document type".into()))?,
        status: DocumentStatus::parse(&status)?,
        content_type: row.try_get("content_type")?,
        size_bytes: row.try_get("size_bytes")?,
        sha256: row.try_get("sha256")?,
        blob_key: row.try_get("blob_key")?,
        fields: fields
            .map(|f| serde_json::from_str(&f))
            .transpose()
            .map_err(|_| StoreError::Corrupt("fields_json".into()))?,
        issues: issues
            .map(|i| serde_json::from_str(&i))
            .transpose()
            .map_err(|_| StoreError::Corrupt("issues_json".into()))?
            .unwrap_or_default(),
        failure_reason: row.try_get("failure_reason")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        erased_at: row.try_get("erased_at")?,
        ocr_attempts: row.try_get("ocr_attempts")?,
        ocr_deadline: row.try_get("ocr_deadline")?,
        ocr_node: row.try_get("ocr_node")?,
        correlation_id: row.try_get("correlation_id")?,
        fence: row.try_get("fence")?,
    })
}

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

/// Inserts an accepted upload (`uploaded` then `queued`), and its idempotency answer, in one
/// transaction. A concurrent request with the same idempotency key makes this fail with a
/// unique violation and leaves nothing behind.
pub async fn insert(
    db: &Db,
    new: &NewDocument,
    idempotency: Option<(&IdempotencyRecord, i64)>,
) -> Result<DocumentRecord, StoreError> {
    let now = new.created_at;
    let mut tx = db.begin_write().await?;
    if let Some(quota) = new.storage_quota {
        super::lock_owner(&mut tx, &new.owner).await?;
        let stored = super::count(
            &mut tx,
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM documents \
             WHERE owner = $1 AND status <> 'erased'",
            &new.owner,
        )
        .await?;
        if stored.saturating_add(new.size_bytes) > i64::try_from(quota).unwrap_or(i64::MAX) {
            return Err(StoreError::Quota(super::Quota::Storage(quota)));
        }
    }
    sqlx::query(
        "INSERT INTO documents (id, owner, doc_type, status, content_type, size_bytes, sha256, blob_key, \
         fields_json, issues_json, failure_reason, version, created_at, updated_at, erased_at, \
         correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, 2, $9, $9, NULL, $10)",
    )
    .bind(new.id.to_string())
    .bind(&new.owner)
    .bind(new.doc_type.as_str())
    .bind(DocumentStatus::Queued.as_str())
    .bind(&new.content_type)
    .bind(new.size_bytes)
    .bind(&new.sha256)
    .bind(&new.blob_key)
    .bind(now)
    .bind(&new.correlation_id)
    .execute(&mut *tx)
    .await?;
    insert_event(&mut tx, &new.id, 1, "uploaded", &new.owner, None, now).await?;
    insert_event(&mut tx, &new.id, 2, "queued", &new.owner, None, now).await?;
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

pub async fn get(db: &Db, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM documents WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// One page of the owner's documents, newest first, after the keyset `cursor`.
pub async fn list_by_owner(
    db: &Db,
    owner: &str,
    cursor: Option<(i64, DocumentId)>,
    limit: u32,
) -> Result<Vec<DocumentRecord>, StoreError> {
    let rows = match cursor {
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM documents WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
            )))
            .bind(owner)
            .bind(i64::from(limit))
            .fetch_all(db.pool())
            .await?
        }
        Some((created_at, id)) => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM documents WHERE owner = $1 \
                 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            )))
            .bind(owner)
            .bind(created_at)
            .bind(id.to_string())
            .bind(i64::from(limit))
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
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
    let fields = after.fields.as_ref().map(|f| f.to_string());
    let issues = (!after.issues.is_empty())
        .then(|| serde_json::to_string(&after.issues).expect("strings serialize"));
    let updated = sqlx::query(
        "UPDATE documents SET status = $1, content_type = $2, size_bytes = $3, sha256 = $4, blob_key = $5, \
         fields_json = $6, issues_json = $7, failure_reason = $8, version = $9, updated_at = $10, erased_at = $11, \
         ocr_attempts = $12, ocr_deadline = $13, ocr_node = $14, fence = $15 \
         WHERE id = $16 AND version = $17 AND fence <= $18",
    )
    .bind(after.status.as_str())
    .bind(&after.content_type)
    .bind(after.size_bytes)
    .bind(&after.sha256)
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
    tx.commit().await?;
    Ok(after)
}

pub async fn events(db: &Db, id: &DocumentId) -> Result<Vec<DocumentEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, kind, actor, detail, created_at FROM document_events WHERE document_id = $1 ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let detail: Option<String> = row.try_get("detail")?;
            Ok(DocumentEvent {
                seq: row.try_get("seq")?,
                kind: row.try_get("kind")?,
                principal: row.try_get("actor")?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn find_idempotency(
    db: &Db,
    owner: &str,
    key: &str,
    not_before: i64,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT owner, idem_key, request_hash, document_id, status_code, response_body \
         FROM idempotency_keys WHERE owner = $1 AND idem_key = $2 AND created_at >= $3",
    )
    .bind(owner)
    .bind(key)
    .bind(not_before)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(IdempotencyRecord {
            owner: row.try_get("owner")?,
            key: row.try_get("idem_key")?,
            request_hash: row.try_get("request_hash")?,
            document_id: row.try_get("document_id")?,
            status_code: row.try_get("status_code")?,
            response_body: row.try_get("response_body")?,
        })
    })
    .transpose()
}

/// Forgets idempotency keys older than `before` (a key is honoured for a bounded time).
pub async fn purge_idempotency(db: &Db, before: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Documents waiting for OCR, oldest first, with their current fencing token. (Runs left
/// `processing` by a stopped process come back through the reaper, which requeues them.)
pub async fn awaiting_ocr(db: &Db, limit: u32) -> Result<Vec<(DocumentId, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, fence FROM documents WHERE status = 'queued' ORDER BY created_at, id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((id_of(r)?, r.try_get("fence")?)))
        .collect()
}

fn id_of(row: &AnyRow) -> Result<DocumentId, StoreError> {
    let id: String = row.try_get("id")?;
    id.parse()
        .map_err(|_| StoreError::Corrupt("document id".into()))
}

/// A run in progress as the reaper sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub id: DocumentId,
    pub node: Option<String>,
    pub deadline: Option<i64>,
    pub attempts: i64,
    pub fence: i64,
}

/// Every document `processing` now (the reaper's view; bounded by the number of workers in
/// the cluster, plus whatever dead nodes left behind).
pub async fn running(db: &Db, limit: u32) -> Result<Vec<Running>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, ocr_node, ocr_deadline, ocr_attempts, fence FROM documents \
         WHERE status = 'processing' ORDER BY ocr_deadline, id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Running {
                id: id_of(r)?,
                node: r.try_get("ocr_node")?,
                deadline: r.try_get("ocr_deadline")?,
                attempts: r.try_get("ocr_attempts")?,
                fence: r.try_get("fence")?,
            })
        })
        .collect()
}

/// The extracted fields and confidences of a document (`{"fields": {…}, "confidence": {…}}`),
/// unsealed; `None` before extraction or when the sealed text cannot be opened.
pub fn open_fields(
    blobs: &super::blobs::BlobStore,
    record: &DocumentRecord,
) -> Option<serde_json::Value> {
    let sealed = record.fields.as_ref()?.get("sealed")?.as_str()?;
    let text = blobs.open_text(&record.id.to_string(), sealed).ok()?;
    serde_json::from_str(&text).ok()
}

/// How many documents wait for OCR (queued or left processing).
pub async fn count_awaiting_ocr(db: &Db) -> Result<i64, StoreError> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM documents WHERE status IN ('queued', 'processing')")
            .fetch_one(db.pool())
            .await?;
    Ok(row.try_get("n")?)
}

/// Ids of documents whose rows exist (used by tests and recovery to find orphans).
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM documents")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}
