//! The replay: a verification rebuilt from its events, each checked to fit the state it
//! follows (a final state never moves back).

use super::{
    Delivery, Event, FOUR_EYES_VERSION, Proposal, ReviewDecision, State, Verdict, Verification,
    claims,
};

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
            proposal: None,
            claim: None,
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
        let before = self.state;
        match event {
            Event::Started { .. } => return Err(misfit()),
            Event::Claimed { .. } | Event::Released { .. } => {
                if !claims::fits(self, event) {
                    return Err(misfit());
                }
                claims::apply(self, event);
            }
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
            Event::ReviewProposed {
                signal_id,
                decision,
                reason,
                corrected,
                sealed_corrections,
                reviewer,
            } => {
                if self.state != State::PendingManualReview
                    || self.workflow_version < FOUR_EYES_VERSION
                {
                    return Err(misfit());
                }
                self.state = State::AwaitingSecondReview;
                self.proposal = Some(Proposal {
                    signal_id: signal_id.clone(),
                    reviewer: reviewer.clone(),
                    decision: *decision,
                    reason: reason.clone(),
                    corrected: corrected.clone(),
                    sealed_corrections: sealed_corrections.clone(),
                });
            }
            Event::SecondReviewed { verdict, .. } => {
                let Some(proposal) = self
                    .proposal
                    .take()
                    .filter(|_| self.state == State::AwaitingSecondReview)
                else {
                    return Err(misfit());
                };
                match verdict {
                    Verdict::Confirm => {
                        self.state = match proposal.decision {
                            ReviewDecision::Approve => State::ManuallyApproved,
                            ReviewDecision::Reject => State::ManuallyRejected,
                        };
                        self.corrected = proposal.corrected;
                        self.sealed_corrections = proposal.sealed_corrections;
                        self.review_reason = Some(proposal.reason);
                        self.decided_at = Some(at);
                    }
                    // The corrections are discarded; both events stay in the audit trail.
                    Verdict::Reject => self.state = State::PendingManualReview,
                }
            }
            Event::Cancelled { reason, .. } => {
                if !cancellable(self.state) {
                    return Err(misfit());
                }
                self.state = State::Cancelled;
                self.proposal = None;
                self.review_reason = Some(reason.clone());
                self.decided_at = Some(at);
            }
            Event::Expired { .. } => {
                if !self.state.awaits_review() {
                    return Err(misfit());
                }
                self.state = State::Expired;
                self.proposal = None;
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
        // A claim holds in the state it was taken in, no further.
        if self.state != before {
            self.claim = None;
        }
        self.seq += 1;
        self.updated_at = at;
        Ok(())
    }
}

/// Delivery only moves forward: not_sent → sent → acknowledged; a dead letter can be retried
/// into `sent`; nothing leaves `acknowledged`.
pub(super) fn delivery_may_move(from: Delivery, to: Delivery) -> bool {
    use Delivery::*;
    matches!(
        (from, to),
        (NotSent, Sent) | (NotSent, DeadLettered) | (DeadLettered, Sent) | (Sent, Acknowledged)
    )
}

pub(super) fn cancellable(state: State) -> bool {
    !state.is_final()
}
