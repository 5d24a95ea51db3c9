//! Batch uploads: `POST /v1/batches` takes any number of KTP and NPWP parts at once and
//! `GET /v1/batches/{id}` follows them. Each accepted part becomes an ordinary document
//! through the same intake as a single upload (same checks, quota, reading cache, OCR
//! queue); a refused part is listed with its code and never sinks the others. The answer is
//! kept sealed (it names the client's parts), to be read back and to answer a retry with the
//! same `Idempotency-Key`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object,
    param::{Header, Path},
    payload::Json,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role},
    batch_upload::{BatchPart, BatchUpload},
    documents::{idempotency_key_of, upload_of},
    errors::ApiError,
    ids::PathId,
    paging::millis,
    rate_limit,
    upload::{DocumentTypeName, inspect},
};
use crate::{
    actors::intake::{self, Accepted},
    kyc::{BatchId, DocumentType},
    store::{
        batches::{self, BatchRecord},
        documents::{self, DocumentStatus},
        now_millis,
    },
};

pub struct BatchesApi {
    pub state: Arc<AppState>,
}

/// A part of a batch that became a document.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct BatchDocument {
    pub id: String,
    /// The part's file name as sent (or its field name and position).
    pub name: String,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub doc_type: DocumentTypeName,
    /// When accepted: `queued`, or `extracted` from the reading cache. In a batch's view:
    /// the document's status now.
    pub status: String,
}

/// A part of a batch that was refused, with a stable code: `unknown_part`,
/// `file_too_large`, `empty_file`, `too_many_parts`, `unsupported_media_type`,
/// `invalid_image`, `image_too_large`, `rate_limited`, `storage_quota_exceeded`, ….
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct RefusedPart {
    pub name: String,
    pub error: String,
}

/// What a batch upload answers.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct BatchAccepted {
    pub batch_id: String,
    pub documents: Vec<BatchDocument>,
    pub rejected: Vec<RefusedPart>,
}

#[derive(ApiResponse)]
pub enum BatchResponse {
    /// Accepted; the documents are read asynchronously (follow them with the batch's view).
    #[oai(status = 202)]
    Accepted(Json<BatchAccepted>),
}

/// How many of a batch's documents are where.
#[derive(Debug, Default, Object)]
pub struct BatchCounts {
    pub queued: u32,
    pub processing: u32,
    pub extracted: u32,
    pub failed: u32,
    /// Erased since (by their owner).
    pub erased: u32,
}

/// A batch and its documents now.
#[derive(Debug, Object)]
pub struct BatchView {
    pub batch_id: String,
    pub created_at: DateTime<Utc>,
    pub counts: BatchCounts,
    pub documents: Vec<BatchDocument>,
    pub rejected: Vec<RefusedPart>,
}

/// A batch request's identity for its idempotency key: every part, in order.
fn request_hash(batch: &BatchUpload) -> String {
    let mut h = Sha256::new();
    for part in &batch.parts {
        match part {
            BatchPart::Card {
                name,
                doc_type,
                bytes,
            } => {
                h.update(doc_type.as_str());
                h.update((name.len() as u64).to_be_bytes());
                h.update(name);
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
            BatchPart::Refused { name, error } => {
                h.update(b"refused");
                h.update((name.len() as u64).to_be_bytes());
                h.update(name);
                h.update(error);
            }
        }
    }
    hex::encode(h.finalize())
}

fn type_name(t: DocumentType) -> DocumentTypeName {
    match t {
        DocumentType::Ktp => DocumentTypeName::Ktp,
        DocumentType::Npwp => DocumentTypeName::Npwp,
    }
}

impl BatchesApi {
    fn open(&self, record: &BatchRecord) -> Result<BatchAccepted, ApiError> {
        let plain = self
            .state
            .blobs
            .open_text(&record.id, &record.answer)
            .map_err(|_| {
                tracing::error!(batch_id = %record.id, "a batch's answer cannot be unsealed");
                ApiError::Internal
            })?;
        serde_json::from_str(&plain).map_err(|_| ApiError::Internal)
    }

    /// Takes one card part: the uploader's rate limits, its content, then intake.
    async fn take(
        &self,
        owner: &str,
        ip: &str,
        name: String,
        doc_type: DocumentType,
        bytes: bytes::Bytes,
    ) -> Result<BatchDocument, RefusedPart> {
        let state = &self.state;
        let refused = |e: ApiError| RefusedPart {
            name: name.clone(),
            error: e.code().to_string(),
        };
        state.limits.upload(owner, ip).await.map_err(refused)?;
        let kind = inspect(&bytes, &state.settings.limits).map_err(refused)?;
        let upload = upload_of(state, owner, doc_type, bytes, kind);
        let accepted = intake::accept(
            &state.documents,
            &state.blobs,
            &state.db,
            upload,
            |_, _, _| String::new(),
        )
        .await
        .map_err(|e| refused(e.into()))?;
        match accepted {
            Accepted::New { id, status, .. } => Ok(BatchDocument {
                id: id.to_string(),
                name: name.clone(),
                doc_type: type_name(doc_type),
                status: status.as_str().into(),
            }),
            Accepted::Replayed(_) => Err(refused(ApiError::Internal)),
        }
    }
}

#[poem_openapi::OpenApi(tag = "ApiTags::Documents")]
impl BatchesApi {
    /// Upload many cards at once
    ///
    /// Multipart with any number of parts named `ktp` or `npwp` (at most
    /// `limits.max_batch_parts`, 50 by default; each at most `limits.max_file_bytes`; the
    /// whole body at most `limits.max_batch_bytes`). Answers 202 with the documents made
    /// (`queued`, or `extracted` from the reading cache) and the parts refused, each with
    /// its error code; a refused part does not sink the others. Every part counts as one
    /// upload against the rate limits. An `Idempotency-Key` makes retries safe: the same key
    /// with the same parts answers the same batch; with other parts, 409.
    #[oai(path = "/v1/batches", method = "post", operation_id = "uploadBatch")]
    async fn upload(
        &self,
        req: &poem::Request,
        auth: BearerAuth,
        /// Makes retries safe (1–255 visible ASCII characters).
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        batch: BatchUpload,
    ) -> Result<BatchResponse, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::User])?;
        let state = &self.state;
        let key = idempotency_key_of(idempotency_key.0)?;
        let hash = request_hash(&batch);
        let not_before = now_millis() - state.settings.limits.idempotency_ttl.as_millis() as i64;
        let replay = |record: BatchRecord| -> Result<BatchResponse, ApiError> {
            if record.request_hash.as_deref() != Some(hash.as_str()) {
                return Err(ApiError::Conflict {
                    code: "idempotency_key_reused",
                    message: "this Idempotency-Key was used with a different request".into(),
                });
            }
            Ok(BatchResponse::Accepted(Json(self.open(&record)?)))
        };
        if let Some(k) = &key
            && let Some(record) =
                batches::find_idempotent(&state.db, &subject.id, k, not_before).await?
        {
            return replay(record);
        }

        let ip = rate_limit::client_ip(req, &state.limits.trusted);
        let batch_id = BatchId::new().to_string();
        let mut answer = BatchAccepted {
            batch_id: batch_id.clone(),
            documents: Vec::new(),
            rejected: Vec::new(),
        };
        for part in batch.parts {
            match part {
                BatchPart::Card {
                    name,
                    doc_type,
                    bytes,
                } => match self.take(&subject.id, &ip, name, doc_type, bytes).await {
                    Ok(document) => answer.documents.push(document),
                    Err(refused) => answer.rejected.push(refused),
                },
                BatchPart::Refused { name, error } => answer.rejected.push(RefusedPart {
                    name,
                    error: error.into(),
                }),
            }
        }
        let plain = serde_json::to_string(&answer).expect("an answer serializes");
        let record = BatchRecord {
            id: batch_id.clone(),
            owner: subject.id.clone(),
            answer: state.blobs.seal_text(&batch_id, &plain).map_err(|e| {
                tracing::error!(error = %e, "a batch's answer cannot be sealed");
                ApiError::Internal
            })?,
            idem_key: key.clone(),
            request_hash: Some(hash.clone()),
            created_at: now_millis(),
        };
        if let Err(e) = batches::insert(&state.db, &record, not_before).await {
            // The same key raced in from another request and won: answer as it did.
            if e.is_unique_violation()
                && let Some(k) = &key
                && let Some(winner) =
                    batches::find_idempotent(&state.db, &subject.id, k, not_before).await?
            {
                return replay(winner);
            }
            return Err(e.into());
        }
        tracing::info!(
            batch_id = %batch_id,
            accepted = answer.documents.len(),
            refused = answer.rejected.len(),
            "batch accepted"
        );
        if answer.documents.iter().any(|d| d.status == "queued") {
            state.wake_ocr();
        }
        Ok(BatchResponse::Accepted(Json(answer)))
    }

    /// Follow a batch
    ///
    /// Its documents with their status now, counted by status, and the parts refused. The
    /// batch's owner and admins.
    #[oai(path = "/v1/batches/:id", method = "get", operation_id = "getBatch")]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<PathId<BatchId>>,
    ) -> Result<Json<BatchView>, ApiError> {
        let subject = auth.0;
        let record = batches::get(&self.state.db, &id.0.0.to_string())
            .await?
            .filter(|r| r.owner == subject.id || subject.role == Role::Admin)
            .ok_or(ApiError::NotFound)?;
        let answer = self.open(&record)?;
        let mut counts = BatchCounts::default();
        let mut documents = Vec::with_capacity(answer.documents.len());
        for mut document in answer.documents {
            let id = document.id.parse().map_err(|_| ApiError::Internal)?;
            let status = documents::get(&self.state.db, &id)
                .await?
                .map(|d| d.status)
                .unwrap_or(DocumentStatus::Erased);
            match status {
                DocumentStatus::Uploaded | DocumentStatus::Queued => counts.queued += 1,
                DocumentStatus::Processing => counts.processing += 1,
                DocumentStatus::Extracted => counts.extracted += 1,
                DocumentStatus::Failed => counts.failed += 1,
                DocumentStatus::Erased => counts.erased += 1,
            }
            document.status = status.as_str().into();
            documents.push(document);
        }
        Ok(Json(BatchView {
            batch_id: answer.batch_id,
            created_at: millis(record.created_at),
            counts,
            documents,
            rejected: answer.rejected,
        }))
    }
}
