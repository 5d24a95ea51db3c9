//! Document intake and reading: `/v1/documents…`. Handlers unpack the request, check the
//! caller's role, and call one domain operation; the document's actor does every write.

use std::sync::Arc;

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role, Subject},
    errors::ApiError,
    files::{FileForm, FileResponse},
    ids::PathId,
    paging::{self, millis},
    upload::{DocumentTypeName, DocumentUpload, MediaKind, inspect},
};
use crate::{
    actors::intake::{self, Accepted, Upload},
    kyc::{DocumentId, DocumentType},
    store::documents::{self, DocumentChange, DocumentRecord},
};
use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object,
    param::{Header, Path, Query},
    payload::Json,
};

pub struct DocumentsApi {
    pub state: Arc<AppState>,
}

/// Answer to an accepted upload.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct UploadAccepted {
    pub id: String,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub doc_type: DocumentTypeName,
    /// `queued`: OCR runs asynchronously; poll `GET /v1/documents/{id}`. `extracted` when the
    /// same owner uploaded the same file as the same card before and its reading was reused
    /// (`ocr.cache_readings`).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A document as its reader may see it.
#[derive(Debug, Object)]
pub struct DocumentView {
    pub id: String,
    #[oai(rename = "type")]
    pub doc_type: DocumentTypeName,
    /// `uploaded`, `queued`, `processing`, `extracted`, `failed` or `erased`. A node with no
    /// OCR devices configured (`ocr.devices = []`) leaves uploads `queued`.
    pub status: String,
    /// Sniffed media type of the stored file (`null` once erased).
    #[oai(skip_serializing_if_is_none)]
    pub content_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub size_bytes: Option<i64>,
    /// Extracted card fields, named as in the specimens (`nik`, `name`, `birth_date`, …);
    /// none before OCR. NIK and NPWP are masked for the owner, full for reviewers and admins.
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<serde_json::Value>,
    /// Reviewers and admins: OCR confidence per field, 0 to 1.
    #[oai(skip_serializing_if_is_none)]
    pub confidence: Option<serde_json::Value>,
    /// How long OCR took for this document, in milliseconds.
    #[oai(skip_serializing_if_is_none)]
    pub ocr_ms: Option<u64>,
    /// Once extracted: `model` (OCR read this file) or `cache` (the owner uploaded the same
    /// file before, read by the same model files and parameters: that reading was reused).
    #[oai(skip_serializing_if_is_none)]
    pub ocr_source: Option<String>,
    /// How far the card was turned in the photo, clockwise in degrees (0, 90, 180 or 270);
    /// OCR read it turned back.
    #[oai(skip_serializing_if_is_none)]
    pub orientation: Option<u16>,
    /// The card's corners in the photo's pixels, `[x, y]` each: top-left, top-right,
    /// bottom-right and bottom-left of the upright card. Absent when the card filled the
    /// photo or did not stand out from its background (the whole photo was read).
    #[oai(skip_serializing_if_is_none)]
    pub card_quad: Option<Vec<Vec<f32>>>,
    /// Reviewers and admins: stable codes of the problems the checks found on the card. Not
    /// shown to the owner, for the same reason a verification's score is not: nobody may tune
    /// a forged card against the checks.
    #[oai(skip_serializing_if_is_none)]
    pub issues: Option<Vec<String>>,
    /// Why a `failed` document could not be read, as a stable code. When no key field could be
    /// read from the photo, the code says what to ask the person for: `no_card_found`,
    /// `card_too_small`, `too_dark`, `glare_over_field` or `too_blurry` (take the photo
    /// again). Otherwise `ocr_unreadable` (not an image FiLot can read), `ocr_crashed`,
    /// `sealing_failed`, or, after the last attempt, `ocr_timeout`, `ocr_interrupted` or
    /// `ocr_error`.
    #[oai(skip_serializing_if_is_none)]
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct DocumentPage {
    pub items: Vec<DocumentView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum UploadResponse {
    /// Accepted and stored; processing is asynchronous.
    #[oai(status = 202)]
    Accepted(Json<UploadAccepted>),
}

fn type_name(t: DocumentType) -> DocumentTypeName {
    match t {
        DocumentType::Ktp => DocumentTypeName::Ktp,
        DocumentType::Npwp => DocumentTypeName::Npwp,
    }
}

/// Masks an identity number for its owner's eyes: first and last four digits only.
fn mask_number(value: &str) -> String {
    let n = value.chars().count();
    if n <= 8 {
        return "•".repeat(n);
    }
    let head: String = value.chars().take(4).collect();
    let tail: String = value.chars().skip(n - 4).collect();
    format!("{head}{}{tail}", "•".repeat(n - 8))
}

/// The extracted fields and their confidences, unsealed; NIK and NPWP masked unless the
/// reader is a reviewer or an admin.
pub(crate) fn reveal(
    state: &AppState,
    subject: &Subject,
    record: &DocumentRecord,
) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let Some(sealed) = &record.fields else {
        return (None, None);
    };
    let Some(mut reading) = sealed.open(&state.blobs, &record.id) else {
        tracing::error!(document_id = %record.id, "extracted fields cannot be unsealed");
        return (None, None);
    };
    let full = matches!(subject.role, Role::Reviewer | Role::Admin);
    if !full {
        for key in ["nik", "npwp"] {
            if let Some(v) = reading.fields.get_mut(key) {
                *v = mask_number(v);
            }
        }
    }
    (
        serde_json::to_value(&reading.fields).ok(),
        serde_json::to_value(&reading.confidence).ok(),
    )
}

fn view(state: &AppState, subject: &Subject, record: &DocumentRecord) -> DocumentView {
    let (fields, confidence) = reveal(state, subject, record);
    let full = matches!(subject.role, Role::Reviewer | Role::Admin);
    let placement = record.fields.as_ref().and_then(|f| f.placement);
    DocumentView {
        id: record.id.to_string(),
        doc_type: type_name(record.doc_type),
        status: record.status.as_str().to_string(),
        content_type: record.content_type.clone(),
        size_bytes: record.size_bytes,
        fields,
        confidence: confidence.filter(|_| full),
        ocr_ms: record.fields.as_ref().and_then(|f| f.ocr_ms),
        ocr_source: record
            .fields
            .as_ref()
            .map(|f| f.source.as_str().to_string()),
        orientation: placement.map(|p| p.orientation),
        card_quad: placement
            .and_then(|p| p.card_quad)
            .map(|q| q.iter().map(|c| c.to_vec()).collect()),
        issues: full.then(|| record.issues.clone()),
        failure_reason: record.failure_reason.clone(),
        created_at: millis(record.created_at),
        updated_at: millis(record.updated_at),
        erased_at: record.erased_at.map(millis),
    }
}

impl DocumentsApi {
    /// The record if the caller may see it; 404 otherwise (no enumeration of others' ids).
    async fn visible(&self, subject: &Subject, id: DocumentId) -> Result<DocumentRecord, ApiError> {
        let record = documents::get(&self.state.db, &id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !subject.can_read(&record.owner) {
            return Err(ApiError::NotFound);
        }
        Ok(record)
    }
}

/// A declared file name's extension, when it is 1–5 ASCII letters or digits; else `none`.
fn declared_extension(name: Option<&str>) -> &str {
    name.and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext)
        .filter(|e| (1..=5).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("none")
}

/// An `Idempotency-Key` header's value, checked: 1–255 visible ASCII characters.
pub(super) fn idempotency_key_of(header: Option<String>) -> Result<Option<String>, ApiError> {
    match header {
        Some(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1–255 visible ASCII characters",
        )),
        None => Ok(None),
    }
}

/// What intake takes from an upload of `owner`'s that passed its checks, under this node's
/// limits and reading cache (no `Idempotency-Key`).
pub(super) fn upload_of(
    state: &AppState,
    owner: &str,
    doc_type: DocumentType,
    bytes: bytes::Bytes,
    kind: MediaKind,
) -> Upload {
    let limits = &state.settings.limits;
    Upload {
        owner: owner.to_string(),
        doc_type,
        bytes,
        kind,
        idempotency_key: None,
        idempotency_ttl: limits.idempotency_ttl,
        correlation_id: super::errors::current_correlation_id(),
        storage_quota: Some(limits.storage_quota_bytes_per_user).filter(|q| *q > 0),
        reading_engine: state.reading_engine.clone(),
    }
}

#[poem_openapi::OpenApi(tag = "ApiTags::Documents")]
impl DocumentsApi {
    /// Upload a KTP or NPWP card
    ///
    /// Multipart form with `type` (KTP or NPWP) and `file` (JPEG, PNG or PDF, recognised from
    /// its content; at most 2 MB by default). Answers 202 with the new document, `queued`;
    /// the OCR workers then take it through `processing` to `extracted` (or `failed`).
    /// Send an `Idempotency-Key` to make retries safe: the same key with the same body answers
    /// the same document; with a different body, 409.
    #[oai(
        path = "/v1/documents",
        method = "post",
        operation_id = "uploadDocument"
    )]
    async fn upload(
        &self,
        auth: BearerAuth,
        /// Makes retries safe (1–255 visible ASCII characters).
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        upload: DocumentUpload,
    ) -> Result<UploadResponse, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::User])?;
        let state = &self.state;
        let key = idempotency_key_of(idempotency_key.0)?;
        let kind: MediaKind = match inspect(&upload.bytes, &state.settings.limits) {
            Ok(kind) => kind,
            Err(e) => {
                // The declared name is the client's text (it may be a person's name): only its
                // extension, when it is a plain one, reaches the log.
                let extension = declared_extension(upload.declared_name.as_deref());
                tracing::warn!(
                    code = e.code(),
                    declared_extension = extension,
                    "upload refused"
                );
                return Err(e);
            }
        };
        let intake = Upload {
            idempotency_key: key,
            ..upload_of(state, &subject.id, upload.doc_type, upload.bytes, kind)
        };
        let doc_type = type_name(upload.doc_type);
        let answer = |id: DocumentId, created_at: i64, status: &str| UploadAccepted {
            id: id.to_string(),
            doc_type,
            status: status.into(),
            created_at: millis(created_at),
        };
        let remembered = |id, at, status: &str| {
            serde_json::to_string(&answer(id, at, status)).expect("serializable")
        };
        match intake::accept(
            &state.documents,
            &state.blobs,
            &state.db,
            intake,
            remembered,
        )
        .await?
        {
            Accepted::New {
                id,
                created_at,
                status,
            } => {
                if status == documents::DocumentStatus::Queued {
                    state.wake_ocr();
                }
                Ok(UploadResponse::Accepted(Json(answer(
                    id,
                    created_at,
                    status.as_str(),
                ))))
            }
            Accepted::Replayed(record) => {
                let body: UploadAccepted =
                    serde_json::from_str(&record.response_body).map_err(|_| ApiError::Internal)?;
                Ok(UploadResponse::Accepted(Json(body)))
            }
        }
    }

    /// List your documents
    ///
    /// The caller's own documents, newest first, paginated with an opaque cursor.
    #[oai(path = "/v1/documents", method = "get", operation_id = "listDocuments")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// Page size (1 to `limits.max_page_size`, default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<DocumentPage>, ApiError> {
        let limit = paging::limit(limit.0, self.state.settings.limits.max_page_size)?;
        let cursor = match paging::decode(cursor.0.as_deref())? {
            Some((t, id)) => Some((
                t,
                id.parse::<DocumentId>()
                    .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API issued"))?,
            )),
            None => None,
        };
        let page = documents::list_by_owner(&self.state.db, &auth.0.id, cursor, limit).await?;
        Ok(Json(DocumentPage {
            items: page
                .items
                .iter()
                .map(|r| view(&self.state, &auth.0, r))
                .collect(),
            next_cursor: paging::next(page.next),
        }))
    }

    /// Get a document
    ///
    /// Status and extracted fields (NIK and NPWP masked for the owner); reviewers and admins
    /// also see the confidences and the issues the checks found. Owners see their own
    /// documents; reviewers and admins see any. Someone else's document answers 404; an erased one 410
    /// `document_erased` (its tombstone stays in the list and its audit trail).
    #[oai(
        path = "/v1/documents/:id",
        method = "get",
        operation_id = "getDocument"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<PathId<DocumentId>>,
    ) -> Result<Json<DocumentView>, ApiError> {
        let record = self.visible(&auth.0, id.0.0).await?;
        if record.status == documents::DocumentStatus::Erased {
            return Err(ApiError::Gone);
        }
        Ok(Json(view(&self.state, &auth.0, &record)))
    }

    /// Download the original file
    ///
    /// Every download is recorded in the document's audit trail. Erased documents answer 410.
    /// `form=page` sends the card's picture instead: a scanned PDF's page image (the pixels
    /// the reading's quads refer to), or a photo as uploaded.
    #[oai(
        path = "/v1/documents/:id/file",
        method = "get",
        operation_id = "getDocumentFile"
    )]
    async fn file(
        &self,
        auth: BearerAuth,
        id: Path<PathId<DocumentId>>,
        form: Query<Option<FileForm>>,
    ) -> Result<FileResponse, ApiError> {
        let subject = auth.0;
        let record = self.visible(&subject, id.0.0).await?;
        let record = self
            .state
            .documents
            .apply(record.id, DocumentChange::FileRead, &subject.id)
            .await?;
        let key = record.blob_key.clone().ok_or(ApiError::Gone)?;
        let blobs = self.state.blobs.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&key))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|e| {
                tracing::error!(document_id = %record.id, error = %e, "stored file unreadable");
                ApiError::Internal
            })?;
        let kind = record
            .content_type
            .as_deref()
            .and_then(MediaKind::from_mime)
            .ok_or(ApiError::Internal)?;
        FileResponse::new(record.id, bytes, kind, form.0.unwrap_or_default())
    }

    /// Erase a document
    ///
    /// Deletes the file and every personal field; a tombstone (id, type, times, `erased`)
    /// and the audit trail remain. Owners and admins only. Erasing twice is not an error.
    #[oai(
        path = "/v1/documents/:id",
        method = "delete",
        operation_id = "eraseDocument"
    )]
    async fn erase(
        &self,
        auth: BearerAuth,
        id: Path<PathId<DocumentId>>,
    ) -> Result<Json<DocumentView>, ApiError> {
        let subject = auth.0;
        let record = self.visible(&subject, id.0.0).await?;
        let allowed = subject.role == Role::Admin
            || (subject.role == Role::User && subject.id == record.owner);
        if !allowed {
            return Err(ApiError::Forbidden(
                "only the owner or an admin may erase a document",
            ));
        }
        let record = self
            .state
            .documents
            .apply(record.id, DocumentChange::Erased, &subject.id)
            .await?;
        tracing::info!(document_id = %record.id, "document erased");
        Ok(Json(view(&self.state, &subject, &record)))
    }
}
