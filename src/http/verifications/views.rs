//! The workflow's answers on the wire and the views of a verification: who sees which part
//! of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Enum, Object, payload::Json, types::Example};

use super::super::{
    AppState,
    auth::{Role, Subject},
    paging::millis,
    text::Text,
};
use crate::{
    kyc::workflow::{ReviewDecision, State},
    store::verifications::VerificationRow,
};

/// Start a KYC verification from your own documents.
#[derive(Debug, Object)]
#[oai(example)]
pub struct StartVerification {
    /// Id of your uploaded KTP.
    pub ktp_document_id: Text,
    /// Id of your uploaded NPWP, if any.
    #[oai(skip_serializing_if_is_none)]
    pub npwp_document_id: Option<Text>,
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

/// A verification's state (the workflow query). Its owner sees the state and, once decided,
/// the outcome; how the case was scored and reviewed (every field marked "reviewers and
/// admins") is never shown to the owner, so nobody can tune a forged card against the checks.
#[derive(Debug, Object)]
pub struct VerificationView {
    pub id: String,
    /// `awaiting_documents`, `checking`, `auto_approved`, `auto_rejected`,
    /// `pending_manual_review`, `awaiting_second_review`, `manually_approved`,
    /// `manually_rejected`, `cancelled`, `expired`.
    pub state: String,
    /// Once decided: `approved`, `rejected`, `cancelled` or `expired`.
    #[oai(skip_serializing_if_is_none)]
    pub outcome: Option<String>,
    pub documents: VerificationDocuments,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub decided_at: Option<DateTime<Utc>>,
    /// Reviewers and admins: the workflow version this verification runs under.
    #[oai(skip_serializing_if_is_none)]
    pub workflow_version: Option<u32>,
    /// Reviewers and admins: 0–100, once checked.
    #[oai(skip_serializing_if_is_none)]
    pub score: Option<u32>,
    /// Reviewers and admins: stable codes of what lowered the score or sent the case to
    /// review.
    #[oai(skip_serializing_if_is_none)]
    pub reasons: Option<Vec<String>>,
    /// Reviewers and admins: set while (and after) the case waits for a reviewer.
    #[oai(skip_serializing_if_is_none)]
    pub review_id: Option<String>,
    /// Reviewers and admins: delivery of the final decision to BULI2 (`not_sent`, `sent`,
    /// `acknowledged`, `dead_lettered`).
    #[oai(skip_serializing_if_is_none)]
    pub delivery_state: Option<String>,
    /// Reviewers and admins: names of the fields a reviewer corrected.
    #[oai(skip_serializing_if_is_none)]
    pub corrected: Option<Vec<String>>,
    /// Reviewers and admins: the corrected values (the OCR values stay on the documents).
    #[oai(skip_serializing_if_is_none)]
    pub corrected_fields: Option<BTreeMap<String, String>>,
    /// Reviewers and admins, while `awaiting_second_review`: the first reviewer's decision.
    #[oai(skip_serializing_if_is_none)]
    pub proposal: Option<ProposalView>,
    /// Reviewers and admins, while a reviewer holds the case: who.
    #[oai(skip_serializing_if_is_none)]
    pub claimed_by: Option<String>,
    /// Reviewers and admins, while a reviewer holds the case: until when.
    #[oai(skip_serializing_if_is_none)]
    pub claim_expires_at: Option<DateTime<Utc>>,
    /// Reviewers and admins, while the case waits for a person: when the review SLA runs
    /// out (the case then expires).
    #[oai(skip_serializing_if_is_none)]
    pub sla_due_at: Option<DateTime<Utc>>,
    /// Reviewers and admins, on `GET /v1/verifications/{id}`: other accounts' verifications
    /// (not cancelled) whose documents carry the same NIK or NPWP, earlier or later. Found by
    /// blind index; never shown to the owner.
    #[oai(skip_serializing_if_is_none)]
    pub identity_collisions: Option<Vec<IdentityCollision>>,
}

/// Another account's verification with the same number.
#[derive(Debug, Object)]
pub struct IdentityCollision {
    /// `nik` or `npwp`.
    pub kind: String,
    pub verification_id: String,
}

/// A first reviewer's decision waiting for a second reviewer.
#[derive(Debug, Object)]
pub struct ProposalView {
    /// Who proposed it (the second reviewer must be someone else).
    pub reviewer: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: String,
    /// The values the first reviewer corrected.
    pub corrected_fields: BTreeMap<String, String>,
}

/// One entry of the audit trail.
#[derive(Debug, Object)]
pub struct VerificationEventView {
    pub seq: i64,
    /// `started`, `documents_ready`, `checked`, `review_proposed`, `second_reviewed`,
    /// `review_decided`, `npwp_rechecked`, `claimed`, `released`, `cancelled`, `expired`,
    /// `delivery_changed`, `buli2_answered`.
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
    /// A KTP's NIK read digit by digit (reviewers compare it with the printed values).
    #[oai(skip_serializing_if_is_none)]
    pub nik_encodes: Option<super::encodes::NikEncodes>,
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

/// Which verifications the reviewers' queue lists.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum QueueState {
    AwaitingDocuments,
    Checking,
    AutoApproved,
    AutoRejected,
    PendingManualReview,
    AwaitingSecondReview,
    ManuallyApproved,
    ManuallyRejected,
    Cancelled,
    Expired,
}

impl From<QueueState> for State {
    fn from(q: QueueState) -> Self {
        match q {
            QueueState::AwaitingDocuments => State::AwaitingDocuments,
            QueueState::Checking => State::Checking,
            QueueState::AutoApproved => State::AutoApproved,
            QueueState::AutoRejected => State::AutoRejected,
            QueueState::PendingManualReview => State::PendingManualReview,
            QueueState::AwaitingSecondReview => State::AwaitingSecondReview,
            QueueState::ManuallyApproved => State::ManuallyApproved,
            QueueState::ManuallyRejected => State::ManuallyRejected,
            QueueState::Cancelled => State::Cancelled,
            QueueState::Expired => State::Expired,
        }
    }
}

/// The result of a signal; a replay of the same signal answers exactly this again.
#[derive(Debug, Object)]
pub struct SignalAnswer {
    pub verification_id: String,
    pub signal_id: String,
    /// `review-decision`, `second-review` or `cancel-review`.
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

/// Opens sealed corrections (`None` when there are none or they cannot be opened).
fn open_corrections(
    state: &AppState,
    id: &str,
    sealed: Option<&String>,
) -> Option<BTreeMap<String, String>> {
    let opened = state.blobs.open_text(id, sealed?).ok()?;
    serde_json::from_str(&opened).ok()
}

/// The view of `row` for `subject`: owners get the state and outcome only.
pub fn view(state: &AppState, subject: &Subject, row: &VerificationRow) -> VerificationView {
    let full = matches!(subject.role, Role::Reviewer | Role::Admin);
    let corrections = full
        .then(|| open_corrections(state, &row.id, row.corrections.as_ref()))
        .flatten();
    let reviewers = |v| full.then_some(v);
    let now = state.clock.now_millis();
    let claim = row
        .claim
        .as_ref()
        .filter(|c| full && c.expires_at > now && row.state.awaits_review());
    VerificationView {
        identity_collisions: None,
        claimed_by: claim.map(|c| c.reviewer.clone()),
        sla_due_at: row.sla_due_at.filter(|_| full).map(millis),
        claim_expires_at: claim.map(|c| millis(c.expires_at)),
        id: row.id.clone(),
        state: row.state.as_str().into(),
        outcome: row.state.outcome().map(str::to_string),
        documents: VerificationDocuments {
            ktp_document_id: row.ktp_document_id.clone(),
            npwp_document_id: row.npwp_document_id.clone(),
        },
        created_at: millis(row.created_at),
        updated_at: millis(row.updated_at),
        decided_at: row.decided_at.map(millis),
        workflow_version: full.then_some(row.workflow_version),
        score: row.score.filter(|_| full),
        reasons: reviewers(row.reasons.clone()),
        review_id: row.review_id.clone().filter(|_| full),
        delivery_state: full.then(|| row.delivery.as_str().into()),
        corrected: full.then(|| {
            corrections
                .as_ref()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default()
        }),
        corrected_fields: corrections,
        proposal: row
            .proposal
            .as_ref()
            .filter(|_| full)
            .map(|p| ProposalView {
                reviewer: p.reviewer.clone(),
                decision: match p.decision {
                    ReviewDecision::Approve => "approve".into(),
                    ReviewDecision::Reject => "reject".into(),
                },
                reason: p.reason.clone(),
                corrected_fields: open_corrections(state, &row.id, p.sealed_corrections.as_ref())
                    .unwrap_or_default(),
            }),
    }
}
