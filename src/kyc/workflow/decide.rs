//! The workflow's decisions: what each input means for a verification in its current state,
//! as the events to append. Pure functions; the VerificationActor persists what they return.

use std::collections::BTreeMap;

use super::{
    Buli2Outcome, Delivery, Event, FOUR_EYES_VERSION, FourEyes, ReviewDecision, State, Verdict,
    Verification, cancellable, delivery_may_move,
};
use crate::kyc::{card::CardReading, npwp_card::cross_check};

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
        return Err(Refused::State(v.state));
    }
    Ok(vec![Event::Buli2Answered {
        event_id: event_id.into(),
        outcome,
        loan_reference,
    }])
}

/// The thresholds and blocking issues that turn a score into a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub approve_at: u32,
    pub reject_below: u32,
    pub blocking: Vec<String>,
    /// The two-person rule for instances started under v3 or later.
    pub four_eyes: FourEyes,
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
    assess_flagged(ktp, npwp, &[], policy)
}

/// As [`assess`], with `flags`: reasons found beyond the documents (a NIK or NPWP another
/// account uses). Each costs 30, and a flagged case is never approved without a person
/// (it may still be rejected: a score under the floor, or a flag listed as blocking).
pub fn assess_flagged(
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
    flags: &[String],
    policy: &Policy,
) -> Assessment {
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
    for flag in flags {
        add(flag.clone(), 30);
    }
    let penalty: u32 = reasons.iter().map(|(_, p)| p).sum();
    let score = 100u32.saturating_sub(penalty);
    let blocked = reasons.iter().any(|(r, _)| policy.blocking.contains(r));
    let outcome = if blocked || score < policy.reject_below {
        State::AutoRejected
    } else if score >= policy.approve_at && flags.is_empty() {
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

/// Why an input was not applied; nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It does not fit the current state (the caller answers 409 with that state).
    State(State),
    /// The person is the case's owner: nobody reviews their own case.
    SelfReview,
    /// The second review must come from someone other than the first reviewer.
    FourEyes,
    /// Another reviewer holds the case until `expires_at`.
    ClaimedByOther { expires_at: i64 },
    /// A release of a case nobody holds.
    NotClaimed,
}

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
    on_documents_flagged(v, ktp, npwp, &[], policy, ids, now, sla_ms)
}

/// As [`on_documents`], with `flags` found beyond the documents ([`assess_flagged`]).
#[allow(clippy::too_many_arguments)]
pub fn on_documents_flagged(
    v: &Verification,
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
    flags: &[String],
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
    let a = assess_flagged(ktp, npwp, flags, policy);
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

/// The KTP as corrected by a reviewer (NIK and name), and the NPWP re-checked against it:
/// the v2 step, taken when an identity field was corrected and an NPWP is attached.
fn recheck(
    v: &Verification,
    corrected: &BTreeMap<String, String>,
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
) -> Option<Event> {
    let identity_corrected = corrected.contains_key("nik") || corrected.contains_key("name");
    // The `patched()` branch: only instances started under v2 or later take the extra step.
    if v.workflow_version < 2 || !identity_corrected {
        return None;
    }
    let (DocOutcome::Extracted(k), Some(DocOutcome::Extracted(n))) = (ktp, npwp) else {
        return None;
    };
    let mut fixed: CardReading = k.clone();
    for key in ["nik", "name"] {
        if let Some(value) = corrected.get(key) {
            fixed.fields.insert(key.into(), value.clone());
        }
    }
    let issues = cross_check(&fixed, n)
        .into_iter()
        .map(str::to_string)
        .collect();
    Some(Event::NpwpRechecked { issues })
}

/// A reviewer's decision by `reviewer`. Never on their own case. Under v3 and the policy's
/// two-person rule it is only proposed and waits for a second reviewer; otherwise it applies,
/// and (v2+) correcting the KTP's NIK or name re-checks an attached NPWP.
pub fn on_review_decision(
    v: &Verification,
    input: ReviewInput,
    reviewer: &str,
    policy: &Policy,
    ktp: &DocOutcome,
    npwp: Option<&DocOutcome>,
) -> Result<Vec<Event>, Refused> {
    if v.owner == reviewer {
        return Err(Refused::SelfReview);
    }
    if v.state != State::PendingManualReview {
        return Err(Refused::State(v.state));
    }
    let corrected_names: Vec<String> = input.corrected.keys().cloned().collect();
    if v.workflow_version >= FOUR_EYES_VERSION && policy.four_eyes.requires(&corrected_names) {
        return Ok(vec![Event::ReviewProposed {
            signal_id: input.signal_id,
            decision: input.decision,
            reason: input.reason,
            corrected: corrected_names,
            sealed_corrections: input.sealed_corrections,
            reviewer: reviewer.to_string(),
        }]);
    }
    let recheck = recheck(v, &input.corrected, ktp, npwp);
    let mut events = vec![Event::ReviewDecided {
        signal_id: input.signal_id,
        decision: input.decision,
        reason: input.reason,
        corrected: corrected_names,
        sealed_corrections: input.sealed_corrections,
    }];
    events.extend(recheck);
    Ok(events)
}

/// A second reviewer's verdict on the pending proposal. `corrections` are the proposal's
/// corrected values (opened by the caller), for the v2 re-check when it is confirmed.
pub fn on_second_review(
    v: &Verification,
    signal_id: &str,
    verdict: Verdict,
    reason: &str,
    reviewer: &str,
    corrections: &BTreeMap<String, String>,
    (ktp, npwp): (&DocOutcome, Option<&DocOutcome>),
) -> Result<Vec<Event>, Refused> {
    if v.owner == reviewer {
        return Err(Refused::SelfReview);
    }
    let Some(proposal) = v
        .proposal
        .as_ref()
        .filter(|_| v.state == State::AwaitingSecondReview)
    else {
        return Err(Refused::State(v.state));
    };
    if proposal.reviewer == reviewer {
        return Err(Refused::FourEyes);
    }
    let mut events = vec![Event::SecondReviewed {
        signal_id: signal_id.into(),
        verdict,
        reason: reason.into(),
        reviewer: reviewer.into(),
    }];
    if verdict == Verdict::Confirm {
        events.extend(recheck(v, corrections, ktp, npwp));
    }
    Ok(events)
}

/// Cancels a case that is not decided yet; never by its owner.
pub fn on_cancel(
    v: &Verification,
    signal_id: &str,
    reason: &str,
    by: &str,
) -> Result<Vec<Event>, Refused> {
    if v.owner == by {
        return Err(Refused::SelfReview);
    }
    if !cancellable(v.state) {
        return Err(Refused::State(v.state));
    }
    Ok(vec![Event::Cancelled {
        signal_id: signal_id.into(),
        reason: reason.into(),
    }])
}

/// The review SLA timer fired. Only a case still waiting for a reviewer, or a second reviewer,
/// (under the same timer) expires; anything else has moved on and the timer is simply spent.
pub fn on_timer(v: &Verification, timer_id: &str) -> Option<Vec<Event>> {
    (v.state.awaits_review() && v.sla_timer_id.as_deref() == Some(timer_id)).then(|| {
        vec![Event::Expired {
            timer_id: timer_id.into(),
        }]
    })
}
