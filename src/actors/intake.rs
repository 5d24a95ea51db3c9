//! Accepting an upload as one operation: the file is stored (encrypted), then the document
//! row, its first events and its idempotency answer are created through the document's actor
//! in one transaction. Either all of it lands or nothing stays behind: a failed create removes
//! the file again. An `Idempotency-Key` seen before answers what it answered then (the same
//! request) or is refused (another request); two requests racing with one key get the
//! winner's answer. The answer to remember is the caller's to shape (`answer`), so this knows
//! nothing of HTTP. A file the owner uploaded before as the same card, whose reading the
//! cache keeps for the same engine, is created `extracted` from that reading.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{DocumentError, Documents};
use crate::{
    kyc::{DocumentId, DocumentType},
    media::MediaKind,
    store::{
        Db, StoreError,
        blind::Domain,
        blobs::{BlobError, BlobStore},
        documents::{self, DocumentStatus, IdempotencyRecord, NewDocument, Reused, SealedReading},
        now_millis,
    },
    telemetry::metrics::names,
};

/// An upload that passed the intake's checks (size, content, image limits).
#[derive(Debug)]
pub struct Upload {
    pub owner: String,
    pub doc_type: DocumentType,
    pub bytes: Bytes,
    pub kind: MediaKind,
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is honoured.
    pub idempotency_ttl: Duration,
    pub correlation_id: String,
    /// Bytes of stored files the owner may hold, when there is a quota.
    pub storage_quota: Option<u64>,
    /// The reading engine's fingerprint when readings are cached
    /// ([`crate::gpu::OcrParams::engine_fingerprint`]); `None`: every upload is read.
    pub reading_engine: Option<String>,
}

/// The reading cache's key for the file whose blind index is `file_index`, uploaded by
/// `owner` as `doc_type`, read by `engine`.
pub fn reading_key(
    blobs: &BlobStore,
    file_index: &str,
    owner: &str,
    doc_type: DocumentType,
    engine: &str,
) -> String {
    blobs.blind.of(
        Domain::Reading,
        &[
            file_index.as_bytes(),
            owner.as_bytes(),
            doc_type.as_str().as_bytes(),
            engine.as_bytes(),
        ],
    )
}

/// The reading kept for `cache_key`, sealed anew for document `id`: only an extracted,
/// unerased document of the same owner and type answers.
async fn cached_reading(
    db: &Db,
    blobs: &BlobStore,
    cache_key: &str,
    id: &DocumentId,
    upload: &Upload,
) -> Result<Option<Reused>, StoreError> {
    let Some(from) = documents::cache::find(db, cache_key).await? else {
        return Ok(None);
    };
    let Some(source) = documents::get(db, &from).await? else {
        return Ok(None);
    };
    if source.status != DocumentStatus::Extracted
        || source.owner != upload.owner
        || source.doc_type != upload.doc_type
    {
        return Ok(None);
    }
    let Some(sealed) = &source.fields else {
        return Ok(None);
    };
    let Some(reading) = sealed.open(blobs, &from) else {
        return Ok(None);
    };
    Ok(SealedReading::reused(blobs, id, &reading, sealed.placement)
        .ok()
        .map(|fields| Reused {
            fields,
            issues: source.issues,
            from,
        }))
}

/// How an upload was taken.
#[derive(Debug)]
pub enum Accepted {
    /// A new document, `queued` (or `extracted` at once from the reading cache).
    New {
        id: DocumentId,
        created_at: i64,
        status: DocumentStatus,
    },
    /// The same request came with this key before: its remembered answer.
    Replayed(IdempotencyRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The key was used with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    #[error("the file could not be stored: {0}")]
    Storage(BlobError),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request's identity for its idempotency key: the card type and the exact bytes.
fn request_hash(doc_type: DocumentType, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(doc_type.as_str().as_bytes());
    h.update([0u8]);
    h.update(bytes);
    hex::encode(h.finalize())
}

/// Takes `upload`; `answer(id, created_at, status)` is the response to remember for its key.
pub async fn accept(
    documents: &Documents,
    blobs: &Arc<BlobStore>,
    db: &Db,
    upload: Upload,
    answer: impl FnOnce(DocumentId, i64, &str) -> String,
) -> Result<Accepted, IntakeError> {
    let hash = request_hash(upload.doc_type, &upload.bytes);
    let not_before = now_millis() - upload.idempotency_ttl.as_millis() as i64;
    let remembered = |existing: IdempotencyRecord| {
        if existing.request_hash == hash {
            Ok(Accepted::Replayed(existing))
        } else {
            Err(IntakeError::KeyReused)
        }
    };
    if let Some(key) = &upload.idempotency_key
        && let Some(existing) =
            documents::find_idempotency(db, &upload.owner, key, not_before).await?
    {
        return remembered(existing);
    }

    let id = DocumentId::new();
    let blob_key = id.to_string();
    let (store, data, put_key) = (blobs.clone(), upload.bytes.clone(), blob_key.clone());
    tokio::task::spawn_blocking(move || store.put(&put_key, &data))
        .await
        .map_err(|e| IntakeError::Storage(BlobError::Io(std::io::Error::other(e))))?
        .map_err(IntakeError::Storage)?;

    let file_index = blobs.blind.of(Domain::File, &[&upload.bytes]);
    let reused = match &upload.reading_engine {
        Some(engine) => {
            let key = reading_key(blobs, &file_index, &upload.owner, upload.doc_type, engine);
            cached_reading(db, blobs, &key, &id, &upload).await?
        }
        None => None,
    };
    let created_at = now_millis();
    let status = match reused {
        Some(_) => DocumentStatus::Extracted,
        None => DocumentStatus::Queued,
    };
    let idempotency = upload.idempotency_key.as_ref().map(|key| {
        let record = IdempotencyRecord {
            owner: upload.owner.clone(),
            key: key.clone(),
            request_hash: hash.clone(),
            document_id: id.to_string(),
            status_code: 202,
            response_body: answer(id, created_at, status.as_str()),
        };
        (record, not_before)
    });
    let new = NewDocument {
        id,
        owner: upload.owner.clone(),
        doc_type: upload.doc_type,
        content_type: upload.kind.mime().to_string(),
        size_bytes: upload.bytes.len() as i64,
        file_index,
        blob_key: blob_key.clone(),
        created_at,
        correlation_id: Some(upload.correlation_id.clone()),
        storage_quota: upload.storage_quota,
        reused,
    };
    match documents.create(new, idempotency).await {
        Ok(record) => {
            let source = record.fields.as_ref().map(|f| f.source.as_str());
            if source.is_some() {
                metrics::counter!(names::OCR_CACHE_HIT_COUNT).increment(1);
            }
            tracing::info!(document_id = %record.id, doc_type = %record.doc_type, ocr_source = source, "document accepted");
            Ok(Accepted::New {
                id,
                created_at,
                status,
            })
        }
        Err(e) => {
            // Nothing was committed: remove the file so no orphan remains.
            let store = blobs.clone();
            let _ = tokio::task::spawn_blocking(move || store.delete(&blob_key)).await;
            if let (Some(key), DocumentError::Store(s)) = (&upload.idempotency_key, &e)
                && s.is_unique_violation()
                && let Some(existing) =
                    documents::find_idempotency(db, &upload.owner, key, not_before).await?
            {
                // A concurrent request with the same key won the race: answer as it did.
                return remembered(existing);
            }
            Err(e.into())
        }
    }
}
