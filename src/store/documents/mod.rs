//! Document rows, their append-only event log, and upload idempotency keys.
//!
//! Every write bumps `documents.version` and appends the event with `seq = version` in the same
//! transaction, guarded by the version the writer read (optimistic check): even a writer that
//! bypassed the document's actor could not leave a gap or overwrite a newer state. The
//! changes a document goes through are `change`, the writes `write`, and what OCR read on it
//! (sealed) `reading`; this file holds the rows' shapes and the reads.

pub mod cache;
mod change;
mod reading;
mod write;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row, any::AnyRow};

pub use change::DocumentChange;
pub use reading::{OcrSource, Placement, ReadLine, Reading, SealedReading};
pub use write::{apply, insert};

use super::{Db, Page, StoreError};
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
    /// Blind index of the file's bytes ([`crate::store::blind`]); `None` once erased.
    pub file_index: Option<String>,
    pub blob_key: Option<String>,
    /// What OCR read (sealed), once extracted; `None` before and after erasure.
    pub fields: Option<SealedReading>,
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
    /// Blind index of the file's bytes.
    pub file_index: String,
    pub blob_key: String,
    /// Milliseconds since the epoch; also what the upload's answer says.
    pub created_at: i64,
    /// The upload request's correlation id (logged by every later stage).
    pub correlation_id: Option<String>,
    /// Bytes of stored files the owner may hold (`None`: no quota).
    pub storage_quota: Option<u64>,
    /// The reading of the same file uploaded before, when the cache has it: the document is
    /// created `extracted`.
    pub reused: Option<Reused>,
}

/// A cached reading given to a new document.
#[derive(Debug, Clone)]
pub struct Reused {
    /// Sealed for the new document.
    pub fields: SealedReading,
    pub issues: Vec<String>,
    /// The document it was read for.
    pub from: DocumentId,
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

const COLUMNS: &str = "id, owner, doc_type, status, content_type, size_bytes, file_index, blob_key, \
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
        file_index: row.try_get("file_index")?,
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
) -> Result<Page<DocumentRecord>, StoreError> {
    let fetch = i64::from(limit) + 1;
    let rows = match cursor {
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM documents WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
            )))
            .bind(owner)
            .bind(fetch)
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
            .bind(fetch)
            .fetch_all(db.pool())
            .await?
        }
    };
    let rows = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Page::from_overfetch(rows, limit, |r: &DocumentRecord| {
        (r.created_at, r.id.to_string())
    }))
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
