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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{
        ReviewDecision, State,
        tests::{in_review, input, ktp, npwp, policy, replay_all},
    };
    use super::*;
    use crate::kyc::workflow::on_review_decision;

    #[test]
    fn a_claim_keeps_other_reviewers_off_until_it_expires_is_released_or_the_case_moves_on() {
        let (k, n) = (ktp(&[]), npwp("KARTIKA SUSANTO"));
        let mut v = in_review(3);
        assert_eq!(
            on_claim(&v, "c0", "alice", 10, 100),
            Err(Refused::SelfReview)
        );
        assert_eq!(
            on_release(&v, "r0", "rita", false, 10),
            Err(Refused::NotClaimed)
        );
        let ev = on_claim(&v, "c1", "rita", 10, 100).unwrap();
        replay_all(&mut v, &ev, 10);
        assert_eq!(v.claim_at(50).unwrap().reviewer, "rita");
        assert_eq!(v.state, State::PendingManualReview, "a claim moves nothing");

        // Another reviewer can neither claim, decide nor release it while it holds…
        let held = Err(Refused::ClaimedByOther { expires_at: 110 });
        assert_eq!(on_claim(&v, "c2", "sam", 50, 100), held);
        assert_eq!(
            check_claim(&v, "sam", 50),
            Err(Refused::ClaimedByOther { expires_at: 110 })
        );
        assert_eq!(on_release(&v, "r1", "sam", false, 50), held);
        assert_eq!(check_claim(&v, "rita", 50), Ok(()));
        // …but may once it has expired, and an admin may release it at any time.
        assert_eq!(check_claim(&v, "sam", 110), Ok(()));
        assert!(on_claim(&v, "c3", "sam", 111, 100).is_ok());
        let ev = on_release(&v, "r2", "ops", true, 50).unwrap();
        let mut released = v.clone();
        replay_all(&mut released, &ev, 50);
        assert!(released.claim.is_none());
        assert_eq!(check_claim(&released, "sam", 51), Ok(()));

        // The claimant renews; a proposal ends the claim, and the proposer cannot take the
        // second review.
        let ev = on_claim(&v, "c4", "rita", 60, 100).unwrap();
        replay_all(&mut v, &ev, 60);
        assert_eq!(v.claim_at(150).unwrap().expires_at, 160);
        let corrected: BTreeMap<String, String> =
            [("name".to_string(), "KARTIKA S".to_string())].into();
        let ev = on_review_decision(
            &v,
            input("s1", ReviewDecision::Approve, corrected),
            "rita",
            &policy(),
            &k,
            Some(&n),
        )
        .unwrap();
        replay_all(&mut v, &ev, 70);
        assert_eq!(v.state, State::AwaitingSecondReview);
        assert!(v.claim.is_none(), "the claim ended with the state");
        assert_eq!(on_claim(&v, "c5", "rita", 80, 100), Err(Refused::FourEyes));
        let ev = on_claim(&v, "c6", "sam", 80, 100).unwrap();
        replay_all(&mut v, &ev, 80);
        assert_eq!(
            check_claim(&v, "tom", 90),
            Err(Refused::ClaimedByOther { expires_at: 180 })
        );

        // Replay rebuilds the claim from the events.
        let mut events = vec![Event::Claimed {
            signal_id: "c1".into(),
            reviewer: "rita".into(),
            expires_at: 110,
        }];
        let mut again = in_review(3);
        replay_all(&mut again, &events, 10);
        assert_eq!(
            again.claim_at(20).map(|c| c.reviewer.as_str()),
            Some("rita")
        );
        events.clear();
        // A release event on a case nobody holds does not fit.
        let mut fresh = in_review(3);
        assert!(
            fresh
                .apply(
                    &Event::Released {
                        signal_id: "x".into(),
                        reviewer: "rita".into()
                    },
                    1
                )
                .is_err()
        );
    }
}
