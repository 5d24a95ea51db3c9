//! The KYC review workflow over HTTP: start a verification, query it and its audit trail,
//! the reviewers' queue, and the signals (`review-decision`, `second-review`,
//! `cancel-review`, `claim`, `release`). Queries read the database; every change goes through the verification's
//! actor, which answers only after the change is committed. The shapes on the wire, and who
//! sees what, are in `views`.

mod checks;
mod encodes;
mod signals;
mod views;

use std::sync::Arc;

use poem_openapi::{
    param::{Path, Query},
    payload::Json,
};

use checks::{
    HashedDecision, answer, check_correction, check_reason, check_signal_id, request_hash,
};
pub use signals::*;
pub use views::*;

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role, Subject},
    documents::reveal,
    errors::ApiError,
    ids::PathId,
    paging::{self, millis},
};
use crate::{
    actors::verification::{Signal, SignalKind, VerificationId, VerificationMsg},
    kyc::{
        DocumentId, DocumentType,
        workflow::{Event, ReviewDecision, State, Verdict},
    },
    store::{
        documents::{self, DocumentRecord, DocumentStatus},
        reviews,
        verifications::{self, VerificationRow},
    },
    telemetry::correlation::{self, CorrelationId},
};

pub struct VerificationsApi {
    pub state: Arc<AppState>,
}

impl VerificationsApi {
    /// The row if the caller may see it; 404 otherwise (no enumeration of others' ids).
    async fn visible(
        &self,
        subject: &Subject,
        id: VerificationId,
    ) -> Result<VerificationRow, ApiError> {
        let row = verifications::get(&self.state.db, &id.to_string())
            .await?
            .ok_or(ApiError::NotFound)?;
        if !subject.can_read(&row.owner) {
            return Err(ApiError::NotFound);
        }
        Ok(row)
    }

    /// One of the caller's documents, of the expected type and not erased.
    async fn own_document(
        &self,
        subject: &Subject,
        field: &str,
        id: &str,
        expected: DocumentType,
    ) -> Result<DocumentRecord, ApiError> {
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
        Ok(record)
    }

    /// Checks a signal's id and reason, and hands it to the verification's actor.
    async fn signal(
        &self,
        subject: Subject,
        id: VerificationId,
        (signal_id, reason): (&str, Option<&str>),
        request_hash: String,
        kind: SignalKind,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        check_signal_id(signal_id)?;
        if let Some(reason) = reason {
            check_reason(reason)?;
        }
        self.visible(&subject, id).await?;
        let signal = Signal {
            signal_id: signal_id.to_string(),
            principal: subject.id.clone(),
            request_hash,
            kind,
        };
        let receipt = self
            .state
            .verifications
            .call(id, |reply| VerificationMsg::Signal {
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
        req: &poem::Request,
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
        // The verification carries the id the client sent with this request, or else the one
        // its KTP was uploaded with: one id from the upload to BULI2's delivery.
        let sent = req
            .headers()
            .get(correlation::HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(CorrelationId::parse);
        let correlation_id = sent
            .map(|c| c.as_str().to_string())
            .or_else(|| ktp.correlation_id.clone())
            .unwrap_or_else(super::errors::current_correlation_id);
        let id = VerificationId::new();
        let started = Event::Started {
            owner: subject.id.clone(),
            ktp_document_id: ktp.id.to_string(),
            npwp_document_id: npwp.map(|n| n.id.to_string()),
            workflow_version: self.state.settings.workflow.version,
        };
        let v = self
            .state
            .verifications
            .call(id, |reply| VerificationMsg::Create {
                started: Box::new(started),
                correlation_id: Some(correlation_id),
                reply,
            })
            .await?;
        // The documents may be ready already; the workflow driver would notice within a poll.
        self.state
            .verifications
            .nudge(id, VerificationMsg::DocumentsSettled);
        Ok(StartResponse::Accepted(Json(VerificationStarted {
            id: v.id,
            state: v.state.as_str().into(),
        })))
    }

    /// Get a verification
    ///
    /// Owners see their own verification's state and, once decided, its outcome. Reviewers
    /// and admins see any, with how it was checked and reviewed (`review`: score, reasons,
    /// review id, BULI2 delivery state, corrections, a proposal awaiting its second review,
    /// other accounts' verifications with the same NIK or NPWP).
    #[oai(
        path = "/v1/verifications/:id",
        method = "get",
        operation_id = "getVerification"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
    ) -> Result<Json<VerificationView>, ApiError> {
        let row = self.visible(&auth.0, id.0.0).await?;
        let mut answer = view(&self.state, &auth.0, &row);
        if matches!(auth.0.role, Role::Reviewer | Role::Admin) {
            let found = crate::store::identity::collisions_of(&self.state.db, &row.id).await?;
            answer.identity_collisions = Some(
                found
                    .into_iter()
                    .map(|c| IdentityCollision {
                        kind: c.kind.as_str().into(),
                        verification_id: c.verification_id,
                    })
                    .collect(),
            );
        }
        Ok(Json(answer))
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
        id: Path<PathId<VerificationId>>,
    ) -> Result<Json<Vec<VerificationEventView>>, ApiError> {
        auth.0.require(&[Role::Reviewer, Role::Admin])?;
        let row = self.visible(&auth.0, id.0.0).await?;
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
                        actor: e.principal,
                        detail,
                        created_at: millis(e.created_at),
                    }
                })
                .collect(),
        ))
    }

    /// The reviewers' queue
    ///
    /// Verifications in `state` (default `pending_manual_review`; `awaiting_second_review`
    /// for decisions waiting for a second reviewer), oldest first, with their documents'
    /// extracted fields (unmasked), the reasons that sent them to review and any proposal.
    #[oai(path = "/v1/reviews", method = "get", operation_id = "listReviews")]
    async fn reviews(
        &self,
        auth: BearerAuth,
        /// Which state to list (default `pending_manual_review`).
        state: Query<Option<QueueState>>,
        /// Page size (1 to `limits.max_page_size`, default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ReviewPage>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer, Role::Admin])?;
        let wanted: State = state.0.map_or(State::PendingManualReview, State::from);
        let limit = paging::limit(limit.0, self.state.settings.limits.max_page_size)?;
        let cursor = paging::decode(cursor.0.as_deref())?;
        let page = reviews::queue(&self.state.db, wanted, cursor, limit).await?;
        let document = |record: &DocumentRecord| {
            let (fields, confidence) = reveal(&self.state, &subject, record);
            ReviewDocument {
                id: record.id.to_string(),
                status: record.status.as_str().into(),
                nik_encodes: encodes::of(fields.as_ref())
                    .filter(|_| record.doc_type == DocumentType::Ktp),
                fields,
                confidence,
                issues: record.issues.clone(),
                failure_reason: record.failure_reason.clone(),
            }
        };
        Ok(Json(ReviewPage {
            items: page
                .items
                .iter()
                .map(|case| ReviewItem {
                    verification: view(&self.state, &subject, &case.verification),
                    ktp: case.ktp.as_ref().map(document),
                    npwp: case.npwp.as_ref().map(document),
                })
                .collect(),
            next_cursor: paging::next(page.next),
        }))
    }

    /// Signal: a reviewer's decision
    ///
    /// Approve or reject a case in `pending_manual_review`, with a reason and optionally
    /// corrected field values. Idempotent by `signal_id`: the same signal sent twice (or from
    /// two clients at once) applies once and both get the same answer, sent only after the
    /// decision is committed. A case in any other state answers 409
    /// `verification_state_conflict` with its current `state`; nothing changes. Nobody
    /// decides a case they own (403 `self_review_forbidden`). Under the two-person rule
    /// (`workflow.four_eyes`, cases started on workflow v3) a decision that corrects an
    /// identity field (`nik`, `name`, `birth_date`, `npwp`) — or, with `always`, any decision —
    /// only moves the case to `awaiting_second_review` until another reviewer's
    /// `second-review`.
    #[oai(
        path = "/v1/verifications/:id/signals/review-decision",
        method = "post",
        operation_id = "signalReviewDecision"
    )]
    async fn review_decision(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
        body: Json<ReviewDecisionRequest>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer])?;
        let body = body.0;
        let corrected = body
            .corrected_fields
            .clone()
            .map(Corrections::into_map)
            .unwrap_or_default();
        for (key, value) in &corrected {
            check_correction(key, value)
                .map_err(|m| ApiError::invalid(&format!("corrected_fields.{key}"), m))?;
        }
        // Hashed in the layout signals were always hashed in, so a replay after an upgrade
        // still answers as before.
        let hashed = HashedDecision {
            signal_id: &body.signal_id,
            decision: body.decision,
            reason: &body.reason,
            corrected_fields: body.corrected_fields.is_some().then_some(&corrected),
        };
        let hash = request_hash("review-decision", &hashed);
        let kind = SignalKind::ReviewDecision {
            decision: match body.decision {
                Decision::Approve => ReviewDecision::Approve,
                Decision::Reject => ReviewDecision::Reject,
            },
            reason: body.reason.to_string(),
            corrected,
        };
        let texts = (body.signal_id.as_str(), Some(body.reason.as_str()));
        self.signal(subject, id.0.0, texts, hash, kind).await
    }

    /// Signal: the second review of a proposed decision
    ///
    /// For a case in `awaiting_second_review`, by a reviewer other than the one who proposed
    /// the decision (403 `four_eyes_required`) and not the case's owner (403
    /// `self_review_forbidden`). `confirm` applies the proposed decision with its corrections;
    /// `reject` returns the case to `pending_manual_review` with the corrections discarded
    /// (the audit trail keeps both). Idempotent by `signal_id`; any other state answers 409
    /// `verification_state_conflict`.
    #[oai(
        path = "/v1/verifications/:id/signals/second-review",
        method = "post",
        operation_id = "signalSecondReview"
    )]
    async fn second_review(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
        body: Json<SecondReviewRequest>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer])?;
        let body = body.0;
        let hash = request_hash("second-review", &body);
        let kind = SignalKind::SecondReview {
            verdict: match body.decision {
                SecondDecision::Confirm => Verdict::Confirm,
                SecondDecision::Reject => Verdict::Reject,
            },
            reason: body.reason.to_string(),
        };
        let texts = (body.signal_id.as_str(), Some(body.reason.as_str()));
        self.signal(subject, id.0.0, texts, hash, kind).await
    }

    /// Signal: cancel a verification
    ///
    /// Cancels a case that is not decided yet (`awaiting_documents`, `pending_manual_review`
    /// or `awaiting_second_review`). Idempotent by `signal_id`; a decided case answers 409
    /// `verification_state_conflict`. Reviewers and admins, never on their own case.
    #[oai(
        path = "/v1/verifications/:id/signals/cancel-review",
        method = "post",
        operation_id = "signalCancelReview"
    )]
    async fn cancel_review(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
        body: Json<CancelReviewRequest>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer, Role::Admin])?;
        let body = body.0;
        let hash = request_hash("cancel-review", &body);
        let kind = SignalKind::Cancel {
            reason: body.reason.to_string(),
            admin: subject.role == Role::Admin,
        };
        let texts = (body.signal_id.as_str(), Some(body.reason.as_str()));
        self.signal(subject, id.0.0, texts, hash, kind).await
    }

    /// Signal: claim a case
    ///
    /// A reviewer takes a case waiting for a person (`pending_manual_review`, or
    /// `awaiting_second_review` for anyone but the proposer) for `workflow.claim_ttl`
    /// (default 30 min); claiming it again renews the claim. While the claim holds, another
    /// reviewer's decision, second review or cancel answers 409 `claimed_by_other`, and the
    /// view shows `claimed_by` and `claim_expires_at`. The claim ends when the case moves on.
    /// Idempotent by `signal_id`; the claim is in the audit trail.
    #[oai(
        path = "/v1/verifications/:id/signals/claim",
        method = "post",
        operation_id = "signalClaim"
    )]
    async fn claim(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
        body: Json<ClaimSignal>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer])?;
        let body = body.0;
        let hash = request_hash("claim", &body);
        let texts = (body.signal_id.as_str(), None);
        self.signal(subject, id.0.0, texts, hash, SignalKind::Claim)
            .await
    }

    /// Signal: release a claim
    ///
    /// The claimant gives the case back, or an admin releases anyone's claim. 409
    /// `not_claimed` when nobody holds the case; 409 `claimed_by_other` when a reviewer
    /// releases someone else's. Idempotent by `signal_id`; the release is in the audit trail.
    #[oai(
        path = "/v1/verifications/:id/signals/release",
        method = "post",
        operation_id = "signalRelease"
    )]
    async fn release(
        &self,
        auth: BearerAuth,
        id: Path<PathId<VerificationId>>,
        body: Json<ClaimSignal>,
    ) -> Result<Json<SignalAnswer>, ApiError> {
        let subject = auth.0;
        subject.require(&[Role::Reviewer, Role::Admin])?;
        let body = body.0;
        let hash = request_hash("release", &body);
        let kind = SignalKind::Release {
            admin: subject.role == Role::Admin,
        };
        let texts = (body.signal_id.as_str(), None);
        self.signal(subject, id.0.0, texts, hash, kind).await
    }
}
