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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::card::{CardReading, cross_check};

/// The version new verifications start under unless configured otherwise.
pub const CURRENT_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    AwaitingDocuments,
    Checking,
    AutoApproved,
    AutoRejected,
    PendingManualReview,
    ManuallyApproved,
    ManuallyRejected,
    Cancelled,
    Expired,
}

impl State {
    pub const ALL: [State; 9] = [
        State::AwaitingDocuments,
        State::Checking,
        State::AutoApproved,
        State::AutoRejected,
        State::PendingManualReview,
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
            Self::AwaitingDocuments | Self::Checking | Self::PendingManualReview
        )
    }
}

/// Delivery of the final decision to BULI2 (moved by the outbox, issue 5).
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
    Cancelled {
        signal_id: String,
        reason: String,
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
            Self::Cancelled { .. } => "cancelled",
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
    /// Number of events applied (the row's version).
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub decided_at: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplayError {
    #[error("the event log does not start with `started`")]
    NotStarted,
    #[error("event {seq} (`{kind}`) does not fit state `{state}`")]
    Misfit {
        seq: i64,
        kind: &'static str,
        state: &'static str,
    },
}

impl Verification {
    /// The verification a `Started` event creates.
    pub fn start(id: &str, started: &Event, at: i64) -> Option<Self> {
        let Event::Started {
            owner,
            ktp_document_id,
            npwp_document_id,
            workflow_version,
        } = started
        else {
            return None;
        };
        Some(Self {
            id: id.to_string(),
            owner: owner.clone(),
            ktp_document_id: ktp_document_id.clone(),
            npwp_document_id: npwp_document_id.clone(),
            workflow_version: *workflow_version,
            state: State::AwaitingDocuments,
            score: None,
            reasons: Vec::new(),
            review_id: None,
            sla_timer_id: None,
            sla_due_at: None,
            delivery: Delivery::NotSent,
            corrected: Vec::new(),
            sealed_corrections: None,
            review_reason: None,
            buli2_outcome: None,
            loan_reference: None,
            seq: 1,
            created_at: at,
            updated_at: at,
            decided_at: None,
        })
    }

    /// Rebuilds a verification from its whole event log (`(event, created_at)` in seq order).
    pub fn replay(id: &str, events: &[(Event, i64)]) -> Result<Self, ReplayError> {
        let ((first, at), rest) = events.split_first().ok_or(ReplayError::NotStarted)?;
        let mut v = Self::start(id, first, *at).ok_or(ReplayError::NotStarted)?;
        for (event, at) in rest {
            v.apply(event, *at)?;
        }
        Ok(v)
    }

    /// Applies one event; refuses an event that could not have followed the current state.
    pub fn apply(&mut self, event: &Event, at: i64) -> Result<(), ReplayError> {
        let misfit = || ReplayError::Misfit {
            seq: self.seq + 1,
            kind: event.kind(),
            state: self.state.as_str(),
        };
        match event {
            Event::Started { .. } => return Err(misfit()),
            Event::DocumentsReady { .. } => {
                if self.state != State::AwaitingDocuments {
                    return Err(misfit());
                }
                self.state = State::Checking;
            }
            Event::Checked {
                score,
                reasons,
                outcome,
                review_id,
                sla_timer_id,
                sla_due_at,
            } => {
                if self.state != State::Checking {
                    return Err(misfit());
                }
                self.state = *outcome;
                self.score = Some(*score);
                self.reasons = reasons.clone();
                self.review_id = review_id.clone();
                self.sla_timer_id = sla_timer_id.clone();
                self.sla_due_at = *sla_due_at;
                if outcome.is_final() {
                    self.decided_at = Some(at);
                }
            }
            Event::ReviewDecided {
                decision,
                reason,
                corrected,
                sealed_corrections,
                ..
            } => {
                if self.state != State::PendingManualReview {
                    return Err(misfit());
                }
                self.state = match decision {
                    ReviewDecision::Approve => State::ManuallyApproved,
                    ReviewDecision::Reject => State::ManuallyRejected,
                };
                self.corrected = corrected.clone();
                self.sealed_corrections = sealed_corrections.clone();
                self.review_reason = Some(reason.clone());
                self.decided_at = Some(at);
            }
            Event::NpwpRechecked { issues } => {
                if self.workflow_version < 2 || !self.state.is_final() {
                    return Err(misfit());
                }
                for issue in issues {
                    let reason = format!("recheck_{issue}");
                    if !self.reasons.contains(&reason) {
                        self.reasons.push(reason);
                    }
                }
            }
            Event::Cancelled { reason, .. } => {
                if !cancellable(self.state) {
                    return Err(misfit());
                }
                self.state = State::Cancelled;
                self.review_reason = Some(reason.clone());
                self.decided_at = Some(at);
            }
            Event::Expired { .. } => {
                if self.state != State::PendingManualReview {
                    return Err(misfit());
                }
                self.state = State::Expired;
                self.decided_at = Some(at);
            }
            Event::DeliveryChanged { delivery } => {
                if !self.state.is_final() || !delivery_may_move(self.delivery, *delivery) {
                    return Err(misfit());
                }
                self.delivery = *delivery;
            }
            Event::Buli2Answered {
                outcome,
                loan_reference,
                ..
            } => {
                if !self.state.is_final() {
                    return Err(misfit());
                }
                self.delivery = Delivery::Acknowledged;
                self.buli2_outcome = Some(*outcome);
                if loan_reference.is_some() {
                    self.loan_reference = loan_reference.clone();
                }
            }
        }
        self.seq += 1;
        self.updated_at = at;
        Ok(())
    }
}

/// Delivery only moves forward: not_sent → sent → acknowledged; a dead letter can be retried
/// into `sent`; nothing leaves `acknowledged`.
fn delivery_may_move(from: Delivery, to: Delivery) -> bool {
    use Delivery::*;
    matches!(
        (from, to),
        (NotSent, Sent) | (NotSent, DeadLettered) | (DeadLettered, Sent) | (Sent, Acknowledged)
    )
}

/// The outbox reports a delivery result; `None` when it would not move the delivery state
/// forward (e.g. BULI2's callback overtook our own bookkeeping).
pub fn on_delivery(v: &Verification, to: Delivery) -> Option<Event> {
    (v.state.is_final() && delivery_may_move(v.delivery, to))
        .then_some(Event::DeliveryChanged { delivery: to })
}

/// BULI2's signed callback about the decision. Refused while the case is undecided (BULI2
/// cannot have received a decision yet).
pub fn on_buli2_callback(
    v: &Verification,
    event_id: &str,
    outcome: Buli2Outcome,
    loan_reference: Option<String>,
) -> Result<Vec<Event>, Refused> {
    if !v.state.is_final() {
        return Err(Refused(v.state));
    }
    Ok(vec![Event::Buli2Answered {
        event_id: event_id.into(),
        outcome,
        loan_reference,
    }])
}

fn cancellable(state: State) -> bool {
    matches!(
        state,
        State::AwaitingDocuments | State::Checking | State::PendingManualReview
    )
}

/// The thresholds and blocking issues that turn a score into a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub approve_at: u32,
    pub reject_below: u32,
    pub blocking: Vec<String>,
}

/// One document as the checks see it.
#[derive(Debug, Clone, PartialEq)]
pub enum DocOutcome {
    /// Still `uploaded`, `queued` or `processing`.
    Pending,
    Extracted(CardReading),
    /// OCR failed (or the document was erased): `reason` is a stable code.
    Failed {
        reason: String,
    },
}

impl DocOutcome {
    pub fn status(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Extracted(_) => "extracted",
            Self::Failed { .. } => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub score: u32,
    pub reasons: Vec<String>,
    pub outcome: State,
}

/// Fields every KTP must yield, and the minimum OCR confidence trusted without a person.
const KEY_KTP_FIELDS: [&str; 3] = ["nik", "name", "birth_date"];
const MIN_CONFIDENCE: f32 = 0.80;

/// Scores a case: 100, less a penalty per reason. A blocking reason rejects whatever the
/// score; otherwise the policy's thresholds decide between approve, review and reject.
///
/// Penalties: unreadable KTP 60, unreadable NPWP 40, each issue on a card or between cards 30,
/// a key KTP field missing 25, a key field read with confidence under 0.8: 10.
pub fn assess(ktp: &DocOutcome, npwp: Option<&DocOutcome>, policy: &Policy) -> Assessment {
    let mut reasons: Vec<(String, u32)> = Vec::new();
    let mut add = |reason: String, penalty: u32| {
        if !reasons.iter().any(|(r, _)| *r == reason) {
            reasons.push((reason, penalty));
        }
    };
    match ktp {
        DocOutcome::Extracted(card) => {
            for issue in &card.issues {
                add(issue.clone(), 30);
            }
            for field in KEY_KTP_FIELDS {
                match card.confidence.get(field) {
                    None => add(format!("ktp_missing_{field}"), 25),
                    Some(c) if *c < MIN_CONFIDENCE => add(format!("low_confidence_{field}"), 10),
                    Some(_) => {}
                }
            }
        }
        DocOutcome::Failed { reason } => add(format!("ktp_unreadable_{reason}"), 60),
        DocOutcome::Pending => add("ktp_pending".into(), 100),
    }
    match npwp {
        None => {}
        Some(DocOutcome::Extracted(card)) => {
            for issue in &card.issues {
                add(issue.clone(), 30);
            }
            if let DocOutcome::Extracted(k) = ktp {
                for issue in cross_check(k, card) {
                    add(issue.to_string(), 30);
                }
            }
            match card.confidence.get("npwp") {
                None => add("npwp_missing_npwp".into(), 25),
                Some(c) if *c < MIN_CONFIDENCE => add("low_confidence_npwp".into(), 10),
                Some(_) => {}
            }
        }
        Some(DocOutcome::Failed { reason }) => add(format!("npwp_unreadable_{reason}"), 40),
        Some(DocOutcome::Pending) => add("npwp_pending".into(), 100),
    }
    let penalty: u32 = reasons.iter().map(|(_, p)| p).sum();
    let score = 100u32.saturating_sub(penalty);
    let blocked = reasons.iter().any(|(r, _)| policy.blocking.contains(r));
    let outcome = if blocked || score < policy.reject_below {
        State::AutoRejected
    } else if score >= policy.approve_at {
        State::AutoApproved
    } else {
        State::PendingManualReview
    };
    Assessment {
        score,
        reasons: reasons.into_iter().map(|(r, _)| r).collect(),
        outcome,
    }
}

/// Why an input was not applied: it does not fit the current state (the caller answers 409
/// with that state; nothing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub State);

/// Documents settled: the checks and the decision, as events. `None` while a document is
/// still pending or when the workflow is past this step.
pub fn on_documents(
    v: &Verification,
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
    policy: &Policy,
    ids: impl FnOnce() -> (String, String),
    now: i64,
    sla_ms: i64,
) -> Option<Vec<Event>> {
    if v.state != State::AwaitingDocuments
        || *ktp == DocOutcome::Pending
        || npwp == Some(&DocOutcome::Pending)
    {
        return None;
    }
    let a = assess(ktp, npwp, policy);
    let (review_id, sla_timer_id, sla_due_at) = if a.outcome == State::PendingManualReview {
        let (review, timer) = ids();
        (Some(review), Some(timer), Some(now + sla_ms))
    } else {
        (None, None, None)
    };
    Some(vec![
        Event::DocumentsReady {
            ktp_status: ktp.status().into(),
            npwp_status: npwp.map(|n| n.status().into()),
        },
        Event::Checked {
            score: a.score,
            reasons: a.reasons,
            outcome: a.outcome,
            review_id,
            sla_timer_id,
            sla_due_at,
        },
    ])
}

/// A reviewer's decision signal, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewInput {
    pub signal_id: String,
    pub decision: ReviewDecision,
    pub reason: String,
    /// Field name → the reviewer's value.
    pub corrected: BTreeMap<String, String>,
    /// The same corrections, sealed for the event log.
    pub sealed_corrections: Option<String>,
}

/// A reviewer's decision. Under v2, correcting the KTP's NIK or name re-checks an attached
/// NPWP against the corrected values.
pub fn on_review_decision(
    v: &Verification,
    input: ReviewInput,
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
) -> Result<Vec<Event>, Refused> {
    if v.state != State::PendingManualReview {
        return Err(Refused(v.state));
    }
    let identity_corrected =
        input.corrected.contains_key("nik") || input.corrected.contains_key("name");
    let mut fixed = match ktp {
        DocOutcome::Extracted(k) => Some(k.clone()),
        _ => None,
    };
    if let Some(card) = fixed.as_mut() {
        for key in ["nik", "name"] {
            if let Some(value) = input.corrected.get(key) {
                card.fields.insert(key.into(), value.clone());
            }
        }
    }
    let mut events = vec![Event::ReviewDecided {
        signal_id: input.signal_id,
        decision: input.decision,
        reason: input.reason,
        corrected: input.corrected.keys().cloned().collect(),
        sealed_corrections: input.sealed_corrections,
    }];
    // The `patched()` branch: only instances started under v2 take the extra step.
    if v.workflow_version >= 2
        && identity_corrected
        && let (Some(k), Some(DocOutcome::Extracted(n))) = (&fixed, npwp)
    {
        let issues = cross_check(k, n).into_iter().map(str::to_string).collect();
        events.push(Event::NpwpRechecked { issues });
    }
    Ok(events)
}

pub fn on_cancel(v: &Verification, signal_id: &str, reason: &str) -> Result<Vec<Event>, Refused> {
    if !cancellable(v.state) {
        return Err(Refused(v.state));
    }
    Ok(vec![Event::Cancelled {
        signal_id: signal_id.into(),
        reason: reason.into(),
    }])
}

/// The review SLA timer fired. Only a case still waiting for its reviewer (under the same
/// timer) expires; anything else has moved on and the timer is simply spent.
pub fn on_timer(v: &Verification, timer_id: &str) -> Option<Vec<Event>> {
    (v.state == State::PendingManualReview && v.sla_timer_id.as_deref() == Some(timer_id)).then(
        || {
            vec![Event::Expired {
                timer_id: timer_id.into(),
            }]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            approve_at: 85,
            reject_below: 35,
            blocking: vec!["holder_under_17".into(), "nik_unknown_province".into()],
        }
    }

    fn card(fields: &[(&str, &str)], issues: &[&str]) -> DocOutcome {
        let mut c = CardReading::default();
        for (k, v) in fields {
            c.fields.insert(k.to_string(), v.to_string());
            c.confidence.insert(k.to_string(), 0.97);
        }
        c.issues = issues.iter().map(|s| s.to_string()).collect();
        DocOutcome::Extracted(c)
    }

    fn ktp(issues: &[&str]) -> DocOutcome {
        card(
            &[
                ("nik", "3275024612894728"),
                ("name", "KARTIKA SUSANTO"),
                ("birth_date", "1989-12-06"),
            ],
            issues,
        )
    }

    fn npwp(name: &str) -> DocOutcome {
        card(
            &[
                ("npwp", "3275024612894728"),
                ("nik", "3275024612894728"),
                ("name", name),
            ],
            &[],
        )
    }

    fn started(version: u32) -> Verification {
        let e = Event::Started {
            owner: "alice".into(),
            ktp_document_id: "k".into(),
            npwp_document_id: Some("n".into()),
            workflow_version: version,
        };
        Verification::start("v1", &e, 0).unwrap()
    }

    fn ids() -> (String, String) {
        ("rev".into(), "tmr".into())
    }

    fn input(
        signal_id: &str,
        decision: ReviewDecision,
        corrected: BTreeMap<String, String>,
    ) -> ReviewInput {
        ReviewInput {
            signal_id: signal_id.into(),
            decision,
            reason: "checked".into(),
            corrected,
            sealed_corrections: None,
        }
    }

    #[test]
    fn clean_pair_is_approved_issues_go_to_review_blocking_rejects() {
        let a = assess(&ktp(&[]), Some(&npwp("KARTIKA SUSANTO")), &policy());
        assert_eq!((a.score, a.outcome), (100, State::AutoApproved));

        let a = assess(&ktp(&["nik_gender_mismatch"]), None, &policy());
        assert_eq!(a.outcome, State::PendingManualReview);
        assert_eq!(a.reasons, vec!["nik_gender_mismatch"]);

        let a = assess(&ktp(&["holder_under_17"]), None, &policy());
        assert_eq!(
            a.outcome,
            State::AutoRejected,
            "blocking whatever the score"
        );

        let a = assess(&ktp(&[]), Some(&npwp("BUDI HARTONO")), &policy());
        assert!(a.reasons.contains(&"npwp_name_mismatch".to_string()));
        assert_eq!(a.outcome, State::PendingManualReview);

        let failed = DocOutcome::Failed {
            reason: "ocr_unreadable".into(),
        };
        let a = assess(&failed, None, &policy());
        assert_eq!(a.reasons, vec!["ktp_unreadable_ocr_unreadable"]);
        assert_eq!(
            a.outcome,
            State::PendingManualReview,
            "a failed document is a reason for review, not a crash"
        );

        let a = assess(
            &ktp(&["nik_gender_mismatch", "nik_birth_date_mismatch", "x"]),
            None,
            &policy(),
        );
        assert_eq!((a.score, a.outcome), (10, State::AutoRejected));
    }

    #[test]
    fn pending_documents_wait() {
        let v = started(2);
        assert!(on_documents(&v, &DocOutcome::Pending, None, &policy(), ids, 0, 1).is_none());
        assert!(
            on_documents(
                &v,
                &ktp(&[]),
                Some(&DocOutcome::Pending),
                &policy(),
                ids,
                0,
                1
            )
            .is_none()
        );
    }

    fn replay_all(v: &mut Verification, events: &[Event], at: i64) {
        for e in events {
            v.apply(e, at).unwrap();
        }
    }

    #[test]
    fn review_path_and_final_states_never_move_back() {
        let mut v = started(2);
        let events = on_documents(
            &v,
            &ktp(&["nik_gender_mismatch"]),
            None,
            &policy(),
            ids,
            10,
            100,
        )
        .unwrap();
        replay_all(&mut v, &events, 10);
        assert_eq!(v.state, State::PendingManualReview);
        assert_eq!(v.sla_due_at, Some(110));
        assert_eq!(v.review_id.as_deref(), Some("rev"));

        let ev = on_review_decision(
            &v,
            input("s1", ReviewDecision::Approve, BTreeMap::new()),
            &ktp(&[]),
            None,
        )
        .unwrap();
        replay_all(&mut v, &ev, 20);
        assert_eq!(v.state, State::ManuallyApproved);
        assert_eq!(v.seq, 4);

        // Late, duplicated or out-of-order inputs are refused with the current state.
        assert_eq!(
            on_review_decision(
                &v,
                input("s2", ReviewDecision::Reject, BTreeMap::new()),
                &ktp(&[]),
                None
            ),
            Err(Refused(State::ManuallyApproved))
        );
        assert_eq!(
            on_cancel(&v, "s3", "x"),
            Err(Refused(State::ManuallyApproved))
        );
        assert!(on_timer(&v, "tmr").is_none());
        assert!(on_documents(&v, &ktp(&[]), None, &policy(), ids, 0, 1).is_none());
        // And replay refuses a log that would move a final state back.
        let mut w = v.clone();
        assert!(
            w.apply(
                &Event::Expired {
                    timer_id: "tmr".into()
                },
                30
            )
            .is_err()
        );
    }

    #[test]
    fn expiry_only_for_the_case_own_timer() {
        let mut v = started(1);
        let events = on_documents(
            &v,
            &ktp(&["nik_gender_mismatch"]),
            None,
            &policy(),
            ids,
            0,
            100,
        )
        .unwrap();
        replay_all(&mut v, &events, 0);
        assert!(on_timer(&v, "other").is_none());
        let ev = on_timer(&v, "tmr").unwrap();
        replay_all(&mut v, &ev, 200);
        assert_eq!(v.state, State::Expired);
        assert_eq!(v.decided_at, Some(200));
    }

    #[test]
    fn v2_rechecks_the_npwp_after_a_corrected_nik_and_v1_does_not() {
        let corrected: BTreeMap<String, String> =
            [("nik".to_string(), "3275024612894729".to_string())].into();
        let (k, n) = (ktp(&[]), npwp("KARTIKA SUSANTO"));
        for (version, expect_recheck) in [(1, false), (2, true)] {
            let mut v = started(version);
            let events = on_documents(
                &v,
                &ktp(&["nik_gender_mismatch"]),
                Some(&n),
                &policy(),
                ids,
                0,
                100,
            )
            .unwrap();
            replay_all(&mut v, &events, 0);
            let ev = on_review_decision(
                &v,
                input("s", ReviewDecision::Approve, corrected.clone()),
                &k,
                Some(&n),
            )
            .unwrap();
            let rechecked = ev.iter().any(|e| matches!(e, Event::NpwpRechecked { .. }));
            assert_eq!(rechecked, expect_recheck, "version {version}");
            replay_all(&mut v, &ev, 1);
            if expect_recheck {
                assert!(v.reasons.contains(&"recheck_npwp_nik_mismatch".to_string()));
            }
        }
    }

    #[test]
    fn delivery_only_moves_forward() {
        let mut v = started(2);
        assert!(
            on_delivery(&v, Delivery::Sent).is_none(),
            "nothing to deliver yet"
        );
        assert!(on_buli2_callback(&v, "e", Buli2Outcome::Accepted, None).is_err());
        let events = on_documents(&v, &ktp(&[]), None, &policy(), ids, 0, 100).unwrap();
        replay_all(&mut v, &events, 0);
        let ev = on_buli2_callback(&v, "e1", Buli2Outcome::Accepted, Some("LN-1".into())).unwrap();
        replay_all(&mut v, &ev, 1);
        assert_eq!(
            v.delivery,
            Delivery::Acknowledged,
            "a fast callback acknowledges"
        );
        assert!(
            on_delivery(&v, Delivery::Sent).is_none(),
            "and is not undone by a late `sent`"
        );
        assert_eq!(v.loan_reference.as_deref(), Some("LN-1"));

        let mut w = started(2);
        replay_all(&mut w, &events, 0);
        let dead = on_delivery(&w, Delivery::DeadLettered).unwrap();
        replay_all(&mut w, &[dead], 2);
        let sent = on_delivery(&w, Delivery::Sent).expect("a retried dead letter can succeed");
        replay_all(&mut w, &[sent], 3);
        assert!(on_delivery(&w, Delivery::DeadLettered).is_none());
    }

    #[test]
    fn replay_rebuilds_the_same_verification() {
        let mut v = started(2);
        let start = Event::Started {
            owner: "alice".into(),
            ktp_document_id: "k".into(),
            npwp_document_id: Some("n".into()),
            workflow_version: 2,
        };
        let mut log = vec![(start, 0)];
        let events = on_documents(
            &v,
            &ktp(&["nik_gender_mismatch"]),
            None,
            &policy(),
            ids,
            5,
            100,
        )
        .unwrap();
        for e in &events {
            v.apply(e, 5).unwrap();
            log.push((e.clone(), 5));
        }
        let ev = on_cancel(&v, "s", "duplicate case").unwrap();
        for e in &ev {
            v.apply(e, 9).unwrap();
            log.push((e.clone(), 9));
        }
        assert_eq!(Verification::replay("v1", &log).unwrap(), v);
        // An event serialises to its kind and back.
        let json = serde_json::to_value(&log[2].0).unwrap();
        assert_eq!(json["kind"], "checked");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), log[2].0);
    }
}
