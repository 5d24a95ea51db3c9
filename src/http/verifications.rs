//! The KYC review workflow over HTTP: start a verification, query it and its audit trail,
//! the reviewers' queue, and the two signals (`review-decision`, `cancel-review`). Queries
//! read the database; every change goes through the verification's actor, which answers only
//! after the change is committed.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::{
    ApiResponse, Enum, Object,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use sha2::{Digest, Sha256};

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role, Subject},
    documents::reveal,
    errors::ApiError,
    paging::{self, millis},
};
use crate::{
    actors::verification::{
        Signal, SignalKind, SignalReceipt, VerificationError, VerificationId, VerificationMsg,
    },
    kyc::{
        DocumentId, DocumentType,
        card::KTP_FIELDS,
        workflow::{Event, ReviewDecision, State},
    },
    store::{
        documents::{self, DocumentStatus},
        verifications::{self, VerificationRow},
    },
};

pub struct VerificationsApi {
    pub state: Arc<AppState>,
}

/// Start a KYC verification from your own documents.
#[derive(Debug, Object)]
#[oai(example)]
pub struct StartVerification {
    /// Id of your uploaded KTP.
    pub ktp_document_id: String,
    /// Id of your uploaded NPWP, if any.
    #[oai(skip_serializing_if_is_none)]
    pub npwp_document_id: Option<String>,
}

impl Example for StartVerification {
    fn example() -> Self {
        Self {
            ktp_document_id: "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
            npwp_document_id: Some("0193a1b2-8d5e-7f90-ab1c-2d3e4f5a6b7c".into()),
        }
    }
}

#[derive(Debug, Object)]
pub struct VerificationStarted {
    pub id: String,
    /// `awaiting_documents` until every document is `extracted` or `failed`.
    pub state: String,
}

#[derive(Debug, Object)]
pub struct VerificationDocuments {
    pub ktp_document_id: String,
    #[oai(skip_serializing_if_is_none)]
    pub npwp_document_id: Option<String>,
}

/// A verification's state (the workflow query).
#[derive(Debug, Object)]
pub struct VerificationView {
    pub id: String,
    /// `awaiting_documents`, `checking`, `auto_approved`, `auto_rejected`,
    /// `pending_manual_review`, `manually_approved`, `manually_rejected`, `cancelled`, `expired`.
    pub state: String,
    /// The workflow version this verification runs under (kept across upgrades).
    pub workflow_version: u32,
    /// 0–100, once checked.
    #[oai(skip_serializing_if_is_none)]
    pub score: Option<u32>,
    /// Stable codes of what lowered the score or sent the case to review.
    pub reasons: Vec<String>,
    pub documents: VerificationDocuments,
    /// Set while (and after) the case waits for a reviewer.
    #[oai(skip_serializing_if_is_none)]
    pub review_id: Option<String>,
    /// Delivery of the final decision to BULI2: `not_sent`, `sent`, `acknowledged`,
    /// `dead_lettered`.
    pub delivery_state: String,
    /// Names of the fields a reviewer corrected.
    pub corrected: Vec<String>,
    /// The corrected values (reviewers and admins only; the OCR values stay on the documents).
    #[oai(skip_serializing_if_is_none)]
    pub corrected_fields: Option<BTreeMap<String, String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub decided_at: Option<DateTime<Utc>>,
}

/// One entry of the audit trail.
#[derive(Debug, Object)]
pub struct VerificationEventView {
    pub seq: i64,
    /// `started`, `documents_ready`, `checked`, `review_decided`, `npwp_rechecked`,
    /// `cancelled`, `expired`, `delivery_changed`.
    pub kind: String,
    /// Who caused it: the owner, a reviewer, or `system:workflow`.
    pub actor: String,
    /// What happened (no personal data: corrected values are not shown here).
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A document as a reviewer sees it in the queue (fields unmasked).
#[derive(Debug, Object)]
pub struct ReviewDocument {
    pub id: String,
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<serde_json::Value>,
    #[oai(skip_serializing_if_is_none)]
    pub confidence: Option<serde_json::Value>,
    pub issues: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    pub failure_reason: Option<String>,
}

#[derive(Debug, Object)]
pub struct ReviewItem {
    pub verification: VerificationView,
    #[oai(skip_serializing_if_is_none)]
    pub ktp: Option<ReviewDocument>,
    #[oai(skip_serializing_if_is_none)]
    pub npwp: Option<ReviewDocument>,
}

#[derive(Debug, Object)]
pub struct ReviewPage {
    pub items: Vec<ReviewItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// A reviewer's decision on a case in `pending_manual_review`.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct ReviewDecisionRequest {
    /// Chosen by the client; sending the same signal again (or concurrently) applies it once
    /// and answers the same result.
    pub signal_id: String,
    pub decision: Decision,
    /// Why (kept in the audit trail).
    pub reason: String,
    /// Field values the reviewer read differently from the OCR (`nik`, `name`, `birth_date`,
    /// …, `npwp`). Stored beside the OCR values; both are kept.
    #[oai(skip_serializing_if_is_none)]
    pub corrected_fields: Option<BTreeMap<String, String>>,
}

impl Example for ReviewDecisionRequest {
    fn example() -> Self {
        Self {
            signal_id: "7f3c2a10-review-1".into(),
            decision: Decision::Approve,
            reason: "gender on the card matches the photo; NIK read correctly".into(),
            corrected_fields: Some([("name".to_string(), "KARTIKA SUSANTO".to_string())].into()),
        }
    }
}

/// Cancel a verification that is not decided yet.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct CancelReviewRequest {
    pub signal_id: String,
    pub reason: String,
}

impl Example for CancelReviewRequest {
    fn example() -> Self {
        Self {
            signal_id: "7f3c2a10-cancel-1".into(),
            reason: "duplicate application".into(),
        }
    }
}

/// The result of a signal; a replay of the same signal answers exactly this again.
#[derive(Debug, Object)]
pub struct SignalAnswer {
    pub verification_id: String,
    pub signal_id: String,
    /// `review-decision` or `cancel-review`.
    pub signal: String,
    /// The verification's state after the signal.
    pub state: String,
    /// Number of events in the verification's audit trail after the signal.
    pub version: i64,
    pub applied_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum StartResponse {
    /// Started; the workflow waits for the documents, checks and decides asynchronously.
    #[oai(status = 202)]
    Accepted(Json<VerificationStarted>),
}

impl From<VerificationError> for ApiError {
    fn from(e: VerificationError) -> Self {
        match e {
            VerificationError::NotFound => ApiError::NotFound,
            VerificationError::State(state) => ApiError::StateConflict {
                state: state.as_str(),
            },
            VerificationError::SignalReused => ApiError::Conflict {
                code: "signal_id_reused",
                message: "this signal_id was already used with a different request".into(),
            },
            VerificationError::Quarantined
            | VerificationError::ActorFailed
            | VerificationError::Timeout => {
                tracing::error!(error = %e, "verification actor did not complete the request");
                ApiError::Unavailable {
                    code: "verification_unavailable",
                    message: "the verification could not be processed right now; retry later"
                        .into(),
                }
            }
            VerificationError::ShuttingDown => ApiError::Unavailable {
                code: "unavailable",
                message: "the service is shutting down".into(),
            },
            VerificationError::Busy(m) => {
                tracing::warn!(reason = %m, "verification busy");
                ApiError::Unavailable {
                    code: "verification_busy",
                    message: "the verification is being processed elsewhere or leases are unavailable; retry shortly".into(),
                }
            }
            VerificationError::Corrupt(m) => {
                tracing::error!(error = %m, "verification data inconsistent");
                ApiError::Internal
            }
            VerificationError::Store(s) => s.into(),
        }
    }
}

/// Fields a reviewer may correct, and how each must look.
fn check_correction(key: &str, value: &str) -> Result<(), String> {
    let digits =
        |n: &[usize]| value.bytes().all(|b| b.is_ascii_digit()) && n.contains(&value.len());
    match key {
        "nik" if !digits(&[16]) => Err("must be 16 digits".into()),
        "npwp" if !digits(&[15, 16]) => Err("must be 15 or 16 digits".into()),
        "birth_date" if NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() => {
            Err("must be a date YYYY-MM-DD".into())
        }
        "nik" | "npwp" | "birth_date" => Ok(()),
        k if KTP_FIELDS.contains(&k) || k == "npwp_name" => {
            if value.trim().is_empty() || value.chars().count() > 200 {
                Err("must be 1–200 characters".into())
            } else {
                Ok(())
            }
        }
        _ => Err("is not a field a reviewer can correct".into()),
    }
}

fn check_signal_id(id: &str) -> Result<(), ApiError> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "signal_id",
            "must be 1–128 visible ASCII characters",
        ))
    }
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() || reason.chars().count() > 1000 {
        Err(ApiError::invalid("reason", "must be 1–1000 characters"))
    } else {
        Ok(())
    }
}

fn request_hash(kind: &str, body: &impl serde::Serialize) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(body).expect("request serializes"));
    hex::encode(h.finalize())
}

fn answer(r: SignalReceipt) -> SignalAnswer {
    SignalAnswer {
        verification_id: r.verification_id,
        signal_id: r.signal_id,
        signal: r.signal,
        state: r.state.as_str().into(),
        version: r.version,
        applied_at: millis(r.applied_at),
    }
}

impl VerificationsApi {
    fn view(&self, subject: &Subject, row: &VerificationRow) -> VerificationView {
        let corrections: Option<BTreeMap<String, String>> =
            row.corrections.as_ref().and_then(|sealed| {
                let opened = self.state.blobs.open_text(&row.id, sealed).ok()?;
                serde_json::from_str(&opened).ok()
            });
        let full = matches!(subject.role, Role::Reviewer | Role::Admin);
        VerificationView {
            id: row.id.clone(),
            state: row.state.as_str().into(),
            workflow_version: row.workflow_version,
            score: row.score,
            reasons: row.reasons.clone(),
            documents: VerificationDocuments {
                ktp_document_id: row.ktp_document_id.clone(),
                npwp_document_id: row.npwp_document_id.clone(),
            },
            review_id: row.review_id.clone(),
            delivery_state: row.delivery.as_str().into(),
            corrected: corrections
                .as_ref()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default(),
            corrected_fields: corrections.filter(|_| full),
            created_at: millis(row.created_at),
            updated_at: millis(row.updated_at),
            decided_at: row.decided_at.map(millis),
        }
    }

    /// The row if the caller may see it; 404 otherwise (no enumeration of others' ids).
    async fn visible(
        &self,
        subject: &Subject,
        id: &str,
    ) -> Result<(VerificationId, VerificationRow), ApiError> {
        let vid: VerificationId = id.parse().map_err(|_| ApiError::NotFound)?;
        let row = verifications::get(&self.state.db, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !subject.can_read(&row.owner) {
            return Err(ApiError::NotFound);
        }
        Ok((vid, row))
    }

    /// One of the caller's documents, of the expected type and not erased.
    async fn own_document(
        &self,
        subject: &Subject,
        field: &str,
        id: &str,
        expected: DocumentType,
    ) -> Result<DocumentId, ApiError> {
        let unprocessable = |code: &'static str, message: String| ApiError::Unprocessable {
            code,
            field: Some(field.to_string()),
            message,
        };
        let not_found = || unprocessable("document_not_found", "no such document of yours".into());
        let doc_id: DocumentId = id.parse().map_err(|_| not_found())?;
        let record = documents::get(&self.state.db, &doc_id)
            .await?
            .ok_or_else(not_found)?;
        if record.owner != subject.id {
            return Err(not_found());
        }
        if record.doc_type != expected {
            return Err(unprocessable(
                "document_type_mismatch",
                format!("must be a {} document", expected.as_str()),
            ));
        }
        if record.status == DocumentStatus::Erased {
            return Err(unprocessable(
                "document_erased",
                "the document was erased".into(),
            ));
        }
        Ok(doc_id)
    }

    async fn review_document(
        &self,
        subject: &Subject,
        id: &str,
    ) -> Result<Option<ReviewDocument>, ApiError> {
        let Ok(doc_id) = id.parse::<DocumentId>() else {
            return Ok(None);
        };
        let Some(record) = documents::get(&self.state.db, &doc_id).await? else {
            return Ok(None);
        };
        let (fields, confidence) = reveal(&self.state, subject, &record);
        Ok(Some(ReviewDocument {
            id: record.id.to_string(),
            status: record.status.as_str().into(),
            fields,
            confidence,
            issues: record.issues,
            failure_reason: record.failure_reason,
        }))
    }

    async fn signal(
        &self,
        subject: Subject,
        id: &str,
        signal: Signal,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let (vid, _) = self.visible(&subject, id).await?;
        let receipt = self
            .state
            .verifications
            .call(vid, |reply| VerificationMsg::Signal {
                signal: Box::new(signal),
                reply,
            })
            .await?;
        Ok(Json(answer(receipt)))
    }
}

#[poem_openapi::OpenApi(tag = "ApiTags::Verifications")]
impl VerificationsApi {
    /// Start a KYC verification
    ///
    /// From your KTP (and optionally your NPWP) documents. The workflow waits until they are
    /// `extracted` (or `failed`), checks every field and the two cards against each other,
    /// scores the case and decides: `auto_approved`, `auto_rejected`, or
    /// `pending_manual_review` for a person. Poll `GET /v1/verifications/{id}`.
    #[oai(
        path = "/v1/verifications",
        method = "post",
        operation_id = "startVerification"
    )]
    async fn start(
        &self,
        auth: BearerAuth,
        body: Json<StartVerification>,
    ) -> Result<StartResponse, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::User])?;
        let ktp = self
            .own_document(
                &subject,
                "ktp_document_id",
                &body.ktp_document_id,
                DocumentType::Ktp,
            )
            .await?;
        let npwp = match &body.npwp_document_id {
            Some(id) => Some(
                self.own_document(&subject, "npwp_document_id", id, DocumentType::Npwp)
                    .await?,
            ),
            None => None,
        };
        let id = VerificationId::new();
        let started = Event::Started {
            owner: subject.id.clone(),
            ktp_document_id: ktp.to_string(),
            npwp_document_id: npwp.map(|n| n.to_string()),
            workflow_version: self.state.settings.workflow.version,
        };
        let v = self
            .state
            .verifications
            .call(id, |reply| VerificationMsg::Create {
                started: Box::new(started),
                reply,
            })
            .await?;
        // The documents may be ready already; the workflow driver would notice within a poll.
        self.state
            .verifications
            .nudge(id, VerificationMsg::DocumentsSettled);
        tracing::info!(verification_id = %id, workflow_version = v.workflow_version, "verification started");
        Ok(StartResponse::Accepted(Json(VerificationStarted {
            id: v.id,
            state: v.state.as_str().into(),
        })))
    }

    /// Get a verification
    ///
    /// The workflow's state, score, reasons, documents, review id and BULI2 delivery state.
    /// Owners see their own; reviewers and admins see any (with corrected values).
    #[oai(
        path = "/v1/verifications/:id",
        method = "get",
        operation_id = "getVerification"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> Result<Json<VerificationView>, ApiError> {
        let (_, row) = self.visible(&auth.0, &id.0).await?;
        Ok(Json(self.view(&auth.0, &row)))
    }

    /// A verification's audit trail
    ///
    /// Every event in order (gap-free `seq`), who caused it and what it decided. Reviewers
    /// and admins.
    #[oai(
        path = "/v1/verifications/:id/events",
        method = "get",
        operation_id = "getVerificationEvents"
    )]
    async fn events(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> Result<Json<Vec<VerificationEventView>>, ApiError> {
        auth.0.require(&[Role::Reviewer, Role::Admin])?;
        let (_, row) = self.visible(&auth.0, &id.0).await?;
        let log = verifications::events(&self.state.db, &row.id).await?;
        Ok(Json(
            log.into_iter()
                .map(|e| {
                    let mut detail = serde_json::to_value(&e.event).expect("events serialize");
                    if let Some(map) = detail.as_object_mut() {
                        map.remove("kind");
                        map.remove("sealed_corrections");
                    }
                    VerificationEventView {
                        seq: e.seq,
                        kind: e.event.kind().into(),
                        actor: e.actor,
                        detail,
                        created_at: millis(e.created_at),
                    }
                })
                .collect(),
        ))
    }

    /// The reviewers' queue
    ///
    /// Verifications in `state` (default `pending_manual_review`), oldest first, with their
    /// documents' extracted fields (unmasked) and the reasons that sent them to review.
    #[oai(path = "/v1/reviews", method = "get", operation_id = "listReviews")]
    async fn reviews(
        &self,
        auth: BearerAuth,
        /// Which state to list (default `pending_manual_review`).
        state: Query<Option<String>>,
        /// Page size (1 to `limits.max_page_size`, default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ReviewPage>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer, Role::Admin])?;
        let wanted = match state.0.as_deref() {
            None => State::PendingManualReview,
            Some(s) => State::parse(s)
                .ok_or_else(|| ApiError::invalid("state", "is not a verification state"))?,
        };
        let limit = paging::limit(limit.0, self.state.settings.limits.max_page_size)?;
        let cursor = paging::decode(cursor.0.as_deref())?;
        let rows = verifications::list_by_state(&self.state.db, wanted, cursor, limit + 1).await?;
        let more = rows.len() > limit as usize;
        let mut items = Vec::new();
        for row in rows.iter().take(limit as usize) {
            let ktp = self.review_document(&subject, &row.ktp_document_id).await?;
            let npwp = match &row.npwp_document_id {
                Some(id) => self.review_document(&subject, id).await?,
                None => None,
            };
            items.push(ReviewItem {
                verification: self.view(&subject, row),
                ktp,
                npwp,
            });
        }
        let next_cursor = if more {
            rows.get(limit as usize - 1)
                .map(|r| paging::encode(r.created_at, &r.id))
        } else {
            None
        };
        Ok(Json(ReviewPage { items, next_cursor }))
    }

    /// Signal: a reviewer's decision
    ///
    /// Approve or reject a case in `pending_manual_review`, with a reason and optionally
    /// corrected field values. Idempotent by `signal_id`: the same signal sent twice (or from
    /// two clients at once) applies once and both get the same answer, sent only after the
    /// decision is committed. A case in any other state answers 409
    /// `verification_state_conflict` with its current `state`; nothing changes.
    #[oai(
        path = "/v1/verifications/:id/signals/review-decision",
        method = "post",
        operation_id = "signalReviewDecision"
    )]
    async fn review_decision(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<ReviewDecisionRequest>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer])?;
        let body = body.0;
        check_signal_id(&body.signal_id)?;
        check_reason(&body.reason)?;
        let corrected = body.corrected_fields.clone().unwrap_or_default();
        for (key, value) in &corrected {
            check_correction(key, value)
                .map_err(|m| ApiError::invalid(&format!("corrected_fields.{key}"), m))?;
        }
        let signal = Signal {
            signal_id: body.signal_id.clone(),
            actor: subject.id.clone(),
            request_hash: request_hash("review-decision", &body),
            kind: SignalKind::ReviewDecision {
                decision: match body.decision {
                    Decision::Approve => ReviewDecision::Approve,
                    Decision::Reject => ReviewDecision::Reject,
                },
                reason: body.reason.clone(),
                corrected,
            },
        };
        self.signal(subject, &id.0, signal).await
    }

    /// Signal: cancel a verification
    ///
    /// Cancels a case that is not decided yet (`awaiting_documents` or
    /// `pending_manual_review`). Idempotent by `signal_id`; a decided case answers 409
    /// `verification_state_conflict`. Reviewers and admins.
    #[oai(
        path = "/v1/verifications/:id/signals/cancel-review",
        method = "post",
        operation_id = "signalCancelReview"
    )]
    async fn cancel_review(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<CancelReviewRequest>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer, Role::Admin])?;
        let body = body.0;
        check_signal_id(&body.signal_id)?;
        check_reason(&body.reason)?;
        let signal = Signal {
            signal_id: body.signal_id.clone(),
            actor: subject.id.clone(),
            request_hash: request_hash("cancel-review", &body),
            kind: SignalKind::Cancel {
                reason: body.reason.clone(),
            },
        };
        self.signal(subject, &id.0, signal).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_are_checked_per_field() {
        assert!(check_correction("nik", "3275024612894728").is_ok());
        assert!(check_correction("nik", "32750246128947").is_err());
        assert!(check_correction("npwp", "012345678901234").is_ok());
        assert!(check_correction("birth_date", "1989-12-06").is_ok());
        assert!(check_correction("birth_date", "06-12-1989").is_err());
        assert!(check_correction("name", "KARTIKA SUSANTO").is_ok());
        assert!(check_correction("name", "  ").is_err());
        assert!(check_correction("password", "x").is_err());
    }
}
