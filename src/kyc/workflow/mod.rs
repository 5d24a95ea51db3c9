//! The KYC review workflow as pure functions: states, the events that move them, the replay
//! that rebuilds a verification from its events, and the decisions taken on each input.
//!
//! Nothing here does I/O. The VerificationActor (`crate::actors::verification`) feeds inputs
//! in, persists the events these functions return (with their side rows) in one transaction,
//! and replays them after a restart. A final state never moves back: every decision function
//! refuses to act on a state it does not expect, and [`Verification::apply`] ignores nothing —
//! it is only ever given events these functions produced.
//!
//! Versions (Temporal's `patched()`): each verification keeps the version it started under.
//! - v1: documents → checks → auto decision or manual review → decision / cancel / expiry.
//! - v2: as v1, and when a reviewer corrects the KTP's NIK or name while an NPWP is attached,
//!   the NPWP is re-checked against the corrected values (event `npwp_rechecked`).
//! - v3: as v2, under the two-person rule ([`FourEyes`]): a review decision that needs it is
//!   only proposed (`review_proposed`, state `awaiting_second_review`); a different reviewer
//!   confirms it (it then applies) or rejects it (back to `pending_manual_review`, the
//!   corrections discarded; the audit trail keeps both).
//!
//! Whatever the version, nobody decides, confirms, corrects or cancels a case they own.
//!
//! The decision functions live in [`decide`], claims in [`claims`], the replay in
//! [`replay`]; this module holds the states and the events.

use serde::{Deserialize, Serialize};

mod claims;
mod decide;
mod replay;
#[cfg(test)]
mod tests;

pub use claims::*;
pub use decide::*;
pub use replay::ReplayError;
use replay::{cancellable, delivery_may_move};

/// The version new verifications start under unless configured otherwise.
pub const CURRENT_VERSION: u32 = 3;

/// The first version under the two-person rule.
pub const FOUR_EYES_VERSION: u32 = 3;

/// Fields whose correction changes who the case is about.
pub const IDENTITY_FIELDS: [&str; 4] = ["nik", "name", "birth_date", "npwp"];

/// When a review decision needs a second reviewer's confirmation (`workflow.four_eyes`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FourEyes {
    /// A decision that corrects an identity field ([`IDENTITY_FIELDS`]).
    IdentityCorrections,
    /// Every review decision.
    Always,
    Off,
}

impl FourEyes {
    /// Whether a decision with these corrected field names needs a second reviewer.
    pub fn requires<'a>(&self, corrected: impl IntoIterator<Item = &'a String>) -> bool {
        match self {
            Self::Always => true,
            Self::Off => false,
            Self::IdentityCorrections => corrected
                .into_iter()
                .any(|k| IDENTITY_FIELDS.contains(&k.as_str())),
        }
    }
}

/// A first reviewer's decision waiting for a second reviewer (v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub signal_id: String,
    pub reviewer: String,
    pub decision: ReviewDecision,
    pub reason: String,
    /// Names of the fields corrected (values sealed below).
    pub corrected: Vec<String>,
    pub sealed_corrections: Option<String>,
}

/// A second reviewer's verdict on a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirm,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
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

impl State {
    pub const ALL: [State; 10] = [
        State::AwaitingDocuments,
        State::Checking,
        State::AutoApproved,
        State::AutoRejected,
        State::PendingManualReview,
        State::AwaitingSecondReview,
        State::ManuallyApproved,
        State::ManuallyRejected,
        State::Cancelled,
        State::Expired,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AwaitingDocuments => "awaiting_documents",
            Self::Checking => "checking",
            Self::AutoApproved => "auto_approved",
            Self::AutoRejected => "auto_rejected",
            Self::PendingManualReview => "pending_manual_review",
            Self::AwaitingSecondReview => "awaiting_second_review",
            Self::ManuallyApproved => "manually_approved",
            Self::ManuallyRejected => "manually_rejected",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Self::AwaitingDocuments
                | Self::Checking
                | Self::PendingManualReview
                | Self::AwaitingSecondReview
        )
    }

    /// Waiting for a person: a reviewer, or a second reviewer.
    pub fn awaits_review(&self) -> bool {
        matches!(self, Self::PendingManualReview | Self::AwaitingSecondReview)
    }

    /// What a final state means for the applicant: `approved`, `rejected`, `cancelled` or
    /// `expired` (`None` while undecided).
    pub fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::AutoApproved | Self::ManuallyApproved => Some("approved"),
            Self::AutoRejected | Self::ManuallyRejected => Some("rejected"),
            Self::Cancelled => Some("cancelled"),
            Self::Expired => Some("expired"),
            Self::AwaitingDocuments
            | Self::Checking
            | Self::PendingManualReview
            | Self::AwaitingSecondReview => None,
        }
    }
}

/// Delivery of the final decision to BULI2 (moved by the outbox's results and BULI2's
/// callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    NotSent,
    Sent,
    Acknowledged,
    DeadLettered,
}

impl Delivery {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotSent => "not_sent",
            Self::Sent => "sent",
            Self::Acknowledged => "acknowledged",
            Self::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotSent,
            Self::Sent,
            Self::Acknowledged,
            Self::DeadLettered,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

/// Everything that ever happens to a verification. Stored as `kind` + JSON detail; never
/// holds personal data in clear (corrected values are sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Started {
        owner: String,
        ktp_document_id: String,
        npwp_document_id: Option<String>,
        workflow_version: u32,
    },
    /// Every document reached `extracted` or `failed`; checks begin.
    DocumentsReady {
        ktp_status: String,
        npwp_status: Option<String>,
    },
    Checked {
        score: u32,
        reasons: Vec<String>,
        outcome: State,
        review_id: Option<String>,
        sla_timer_id: Option<String>,
        sla_due_at: Option<i64>,
    },
    ReviewDecided {
        signal_id: String,
        decision: ReviewDecision,
        reason: String,
        /// Names of the fields the reviewer corrected (values sealed below).
        corrected: Vec<String>,
        sealed_corrections: Option<String>,
    },
    /// v2: the NPWP checked again against the reviewer's corrected KTP values.
    NpwpRechecked {
        issues: Vec<String>,
    },
    /// v3: a review decision that needs a second reviewer before it applies.
    ReviewProposed {
        signal_id: String,
        decision: ReviewDecision,
        reason: String,
        /// Names of the fields the reviewer corrected (values sealed below).
        corrected: Vec<String>,
        sealed_corrections: Option<String>,
        /// Who proposed it (the second reviewer must be someone else).
        reviewer: String,
    },
    /// v3: a second reviewer confirmed the proposal (it applies) or rejected it.
    SecondReviewed {
        signal_id: String,
        verdict: Verdict,
        reason: String,
        reviewer: String,
    },
    Cancelled {
        signal_id: String,
        reason: String,
    },
    /// A reviewer took the case until `expires_at` (see [`claims`]).
    Claimed {
        signal_id: String,
        reviewer: String,
        expires_at: i64,
    },
    /// The claim held by `reviewer` was given back (by them, or by an admin).
    Released {
        signal_id: String,
        reviewer: String,
    },
    Expired {
        timer_id: String,
    },
    DeliveryChanged {
        delivery: Delivery,
    },
    /// BULI2 called back about the delivered decision.
    Buli2Answered {
        event_id: String,
        outcome: Buli2Outcome,
        loan_reference: Option<String>,
    },
}

/// BULI2's own outcome for a delivered decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buli2Outcome {
    Accepted,
    Rejected,
}

impl Buli2Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::DocumentsReady { .. } => "documents_ready",
            Self::Checked { .. } => "checked",
            Self::ReviewDecided { .. } => "review_decided",
            Self::NpwpRechecked { .. } => "npwp_rechecked",
            Self::ReviewProposed { .. } => "review_proposed",
            Self::SecondReviewed { .. } => "second_reviewed",
            Self::Cancelled { .. } => "cancelled",
            Self::Claimed { .. } => "claimed",
            Self::Released { .. } => "released",
            Self::Expired { .. } => "expired",
            Self::DeliveryChanged { .. } => "delivery_changed",
            Self::Buli2Answered { .. } => "buli2_answered",
        }
    }
}

/// A verification as its events make it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub id: String,
    pub owner: String,
    pub ktp_document_id: String,
    pub npwp_document_id: Option<String>,
    pub workflow_version: u32,
    pub state: State,
    pub score: Option<u32>,
    pub reasons: Vec<String>,
    pub review_id: Option<String>,
    pub sla_timer_id: Option<String>,
    pub sla_due_at: Option<i64>,
    pub delivery: Delivery,
    pub corrected: Vec<String>,
    pub sealed_corrections: Option<String>,
    pub review_reason: Option<String>,
    pub buli2_outcome: Option<Buli2Outcome>,
    pub loan_reference: Option<String>,
    /// v3: the first reviewer's decision while it awaits a second reviewer.
    pub proposal: Option<Proposal>,
    /// The last claim taken in the current state (it may have expired since).
    pub claim: Option<Claim>,
    /// Number of events applied (the row's version).
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub decided_at: Option<i64>,
}
