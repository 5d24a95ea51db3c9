//! Claims: a reviewer takes a case for a while (a lease with an expiry) so that two
//! reviewers never work one case. While a claim holds, nobody else decides, second-reviews or
//! cancels the case (`claimed_by_other`); the claimant may renew it, release it, or let it
//! expire; an admin may release anyone's. A claim ends by itself when the case leaves the
//! state it was claimed in (decided, proposed for a second review, cancelled, expired), so the
//! second reviewer claims the case afresh. Claims and releases are events: the audit trail
//! shows who held the case when.

use serde::{Deserialize, Serialize};

use super::{Event, Refused, Verification};

/// Who holds the case, until when (service clock, ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub reviewer: String,
    pub expires_at: i64,
}

impl Verification {
    /// The claim in force at `now`, if any.
    pub fn claim_at(&self, now: i64) -> Option<&Claim> {
        self.claim.as_ref().filter(|c| c.expires_at > now)
    }
}

/// Refuses `reviewer` acting on a case someone else holds at `now`.
pub fn check_claim(v: &Verification, reviewer: &str, now: i64) -> Result<(), Refused> {
    match v.claim_at(now) {
        Some(c) if c.reviewer != reviewer => Err(Refused::ClaimedByOther {
            expires_at: c.expires_at,
        }),
        _ => Ok(()),
    }
}

/// `reviewer` claims (or renews their claim on) a case waiting for a person, for `ttl_ms`.
pub fn on_claim(
    v: &Verification,
    signal_id: &str,
    reviewer: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Vec<Event>, Refused> {
    if v.owner == reviewer {
        return Err(Refused::SelfReview);
    }
    if !v.state.awaits_review() {
        return Err(Refused::State(v.state));
    }
    // The first reviewer has had their say; the second review is someone else's.
    if v.proposal.as_ref().is_some_and(|p| p.reviewer == reviewer) {
        return Err(Refused::FourEyes);
    }
    check_claim(v, reviewer, now)?;
    Ok(vec![Event::Claimed {
        signal_id: signal_id.into(),
        reviewer: reviewer.into(),
        expires_at: now + ttl_ms,
    }])
}

/// Gives a claimed case back: by its claimant, or by an admin whoever holds it.
pub fn on_release(
    v: &Verification,
    signal_id: &str,
    by: &str,
    admin: bool,
    now: i64,
) -> Result<Vec<Event>, Refused> {
    let Some(claim) = v.claim_at(now) else {
        return Err(Refused::NotClaimed);
    };
    if claim.reviewer != by && !admin {
        return Err(Refused::ClaimedByOther {
            expires_at: claim.expires_at,
        });
    }
    Ok(vec![Event::Released {
        signal_id: signal_id.into(),
        reviewer: claim.reviewer.clone(),
    }])
}

/// Whether a claim event could have followed the case's current state.
pub(super) fn fits(v: &Verification, event: &Event) -> bool {
    match event {
        Event::Claimed { .. } => v.state.awaits_review(),
        Event::Released { .. } => v.claim.is_some(),
        _ => false,
    }
}

/// What a claim event does to the case (the caller checked it [`fits`]).
pub(super) fn apply(v: &mut Verification, event: &Event) {
    match event {
        Event::Claimed {
            reviewer,
            expires_at,
            ..
        } => {
            v.claim = Some(Claim {
                reviewer: reviewer.clone(),
                expires_at: *expires_at,
            })
        }
        Event::Released { .. } => v.claim = None,
        _ => {}
    }
}
