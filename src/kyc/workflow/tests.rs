//! The review workflow's rules, tested on its pure functions (no actors, no database):
//! automatic decisions, the review path, timers, delivery, replay, each workflow version and
//! the two-person rule.

use std::collections::BTreeMap;

use super::*;
use crate::kyc::card::CardReading;

pub(super) fn policy() -> Policy {
    Policy {
        approve_at: 85,
        reject_below: 35,
        blocking: vec!["holder_under_17".into(), "nik_unknown_province".into()],
        four_eyes: FourEyes::IdentityCorrections,
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

pub(super) fn ktp(issues: &[&str]) -> DocOutcome {
    card(
        &[
            ("nik", "3275024612894728"),
            ("name", "KARTIKA SUSANTO"),
            ("birth_date", "1989-12-06"),
        ],
        issues,
    )
}

pub(super) fn npwp(name: &str) -> DocOutcome {
    card(
        &[
            ("npwp", "3275024612894728"),
            ("nik", "3275024612894728"),
            ("name", name),
        ],
        &[],
    )
}

pub(super) fn started(version: u32) -> Verification {
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

pub(super) fn input(
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
fn a_number_used_by_another_account_is_never_approved_without_a_person() {
    let flag = vec!["nik_used_by_other_account".to_string()];
    // Even with a generous threshold a clean card that is flagged goes to a person.
    let lenient = Policy {
        approve_at: 60,
        ..policy()
    };
    let a = assess_flagged(&ktp(&[]), None, &flag, &lenient);
    assert_eq!((a.score, a.outcome), (70, State::PendingManualReview));
    assert_eq!(a.reasons, flag);
    // Configured as blocking, it rejects.
    let strict = Policy {
        blocking: flag.clone(),
        ..policy()
    };
    let a = assess_flagged(&ktp(&[]), None, &flag, &strict);
    assert_eq!(a.outcome, State::AutoRejected);
    // No flag, no change.
    assert_eq!(
        assess_flagged(&ktp(&[]), None, &[], &lenient),
        assess(&ktp(&[]), None, &lenient)
    );
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

pub(super) fn replay_all(v: &mut Verification, events: &[Event], at: i64) {
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
        "rita",
        &policy(),
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
            "rita",
            &policy(),
            &ktp(&[]),
            None
        ),
        Err(Refused::State(State::ManuallyApproved))
    );
    assert_eq!(
        on_cancel(&v, "s3", "x", "rita"),
        Err(Refused::State(State::ManuallyApproved))
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
            "rita",
            &policy(),
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
    let ev = on_cancel(&v, "s", "duplicate case", "rita").unwrap();
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

/// A v`version` case waiting for a reviewer.
pub(super) fn in_review(version: u32) -> Verification {
    let mut v = started(version);
    let n = npwp("KARTIKA SUSANTO");
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
    assert_eq!(v.state, State::PendingManualReview);
    v
}

#[test]
fn nobody_reviews_their_own_case() {
    let v = in_review(2);
    let decide = |by: &str| {
        on_review_decision(
            &v,
            input("s", ReviewDecision::Approve, BTreeMap::new()),
            by,
            &policy(),
            &ktp(&[]),
            None,
        )
    };
    assert_eq!(decide("alice"), Err(Refused::SelfReview));
    assert!(decide("rita").is_ok());
    assert_eq!(on_cancel(&v, "c", "x", "alice"), Err(Refused::SelfReview));
}

#[test]
fn v3_identity_corrections_wait_for_a_second_reviewer() {
    let corrected: BTreeMap<String, String> =
        [("nik".to_string(), "3275024612894729".to_string())].into();
    let (k, n) = (ktp(&[]), npwp("KARTIKA SUSANTO"));
    let mut v = in_review(3);
    let ev = on_review_decision(
        &v,
        input("s1", ReviewDecision::Approve, corrected.clone()),
        "rita",
        &policy(),
        &k,
        Some(&n),
    )
    .unwrap();
    assert!(matches!(ev.as_slice(), [Event::ReviewProposed { .. }]));
    replay_all(&mut v, &ev, 5);
    assert_eq!(v.state, State::AwaitingSecondReview);
    assert!(!v.state.is_final());
    assert_eq!(v.proposal.as_ref().unwrap().reviewer, "rita");
    assert!(
        v.corrected.is_empty(),
        "nothing applies before the second review"
    );

    // The first reviewer cannot confirm their own proposal, nor the owner.
    let docs = (&k, Some(&n));
    let second = |v: &Verification, by: &str, verdict| {
        on_second_review(v, "s2", verdict, "checked", by, &corrected, docs)
    };
    assert_eq!(second(&v, "rita", Verdict::Confirm), Err(Refused::FourEyes));
    assert_eq!(
        second(&v, "alice", Verdict::Confirm),
        Err(Refused::SelfReview)
    );
    // Another decision while one waits is out of place.
    assert_eq!(
        on_review_decision(
            &v,
            input("s3", ReviewDecision::Reject, BTreeMap::new()),
            "sam",
            &policy(),
            &k,
            Some(&n)
        ),
        Err(Refused::State(State::AwaitingSecondReview))
    );

    // Rejected: back to review, corrections discarded.
    let mut rejected = v.clone();
    let ev = second(&rejected, "sam", Verdict::Reject).unwrap();
    replay_all(&mut rejected, &ev, 6);
    assert_eq!(rejected.state, State::PendingManualReview);
    assert!(rejected.proposal.is_none() && rejected.corrected.is_empty());

    // Confirmed: the first decision applies, with its corrections and the v2 re-check.
    let ev = second(&v, "sam", Verdict::Confirm).unwrap();
    assert!(ev.iter().any(|e| matches!(e, Event::NpwpRechecked { .. })));
    replay_all(&mut v, &ev, 7);
    assert_eq!(v.state, State::ManuallyApproved);
    assert_eq!(v.corrected, vec!["nik".to_string()]);
    assert_eq!(v.decided_at, Some(7));
    assert_eq!(
        second(&v, "tom", Verdict::Confirm),
        Err(Refused::State(State::ManuallyApproved))
    );
}

#[test]
fn four_eyes_modes_and_versions() {
    let name_only: BTreeMap<String, String> =
        [("gender".to_string(), "PEREMPUAN".to_string())].into();
    let identity: BTreeMap<String, String> =
        [("birth_date".to_string(), "1989-12-07".to_string())].into();
    let proposes = |version: u32, mode: FourEyes, corrected: &BTreeMap<String, String>| {
        let v = in_review(version);
        let policy = Policy {
            four_eyes: mode,
            ..policy()
        };
        let ev = on_review_decision(
            &v,
            input("s", ReviewDecision::Approve, corrected.clone()),
            "rita",
            &policy,
            &ktp(&[]),
            None,
        )
        .unwrap();
        matches!(ev[0], Event::ReviewProposed { .. })
    };
    assert!(proposes(3, FourEyes::IdentityCorrections, &identity));
    assert!(!proposes(3, FourEyes::IdentityCorrections, &name_only));
    assert!(!proposes(
        3,
        FourEyes::IdentityCorrections,
        &BTreeMap::new()
    ));
    assert!(proposes(3, FourEyes::Always, &BTreeMap::new()));
    assert!(!proposes(3, FourEyes::Off, &identity));
    // Cases started on v2 finish on v2, whatever the rule says now.
    assert!(!proposes(2, FourEyes::Always, &identity));
}

#[test]
fn a_case_awaiting_its_second_review_expires_and_can_be_cancelled() {
    let mut v = in_review(3);
    let ev = on_review_decision(
        &v,
        input("s", ReviewDecision::Reject, BTreeMap::new()),
        "rita",
        &Policy {
            four_eyes: FourEyes::Always,
            ..policy()
        },
        &ktp(&[]),
        None,
    )
    .unwrap();
    replay_all(&mut v, &ev, 1);
    assert_eq!(v.state, State::AwaitingSecondReview);
    assert!(on_cancel(&v, "c", "duplicate", "sam").is_ok());
    let expired = on_timer(&v, "tmr").expect("the SLA covers the second review");
    replay_all(&mut v, &expired, 200);
    assert_eq!(v.state, State::Expired);
    assert_eq!(v.state.outcome(), Some("expired"));
}
