//! Four eyes: nobody reviews their own case, a decision that corrects who the case is about
//! needs a second reviewer, and owners see their case's state, never how it was scored.

use std::time::Duration;

use filot::{http::auth::Role, kyc::workflow::FourEyes};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app_with};

const KTP: &[(&str, &str)] = &[
    ("nik", "3275024612894728"),
    ("name", "KARTIKA SUSANTO"),
    ("birth_date", "1989-12-06"),
];

/// A case of `owner`'s (a user, or a reviewer who also applied) waiting for a reviewer.
async fn in_review(app: &TestApp, owner: &str) -> String {
    let uploader = app.token(owner, Role::User);
    let ktp = app.upload_id(&uploader, "KTP", "ktp_003.jpg").await;
    app.extract(&ktp, KTP, &["nik_gender_mismatch"]).await;
    let id = app.start_verification(&uploader, &ktp, None).await;
    app.wait_for(&uploader, &format!("/v1/verifications/{id}"), 20, |v| {
        v["state"] == "pending_manual_review"
    })
    .await;
    id
}

fn decision(signal_id: &str, corrected: Value) -> Value {
    json!({
        "signal_id": signal_id,
        "decision": "approve",
        "reason": "read the card myself",
        "corrected_fields": corrected,
    })
}

#[tokio::test]
async fn nobody_decides_confirms_or_cancels_their_own_case() {
    let app = spawn_app_with(|_| {}).await;
    // Rita is a reviewer, and also applied for a loan under the same subject.
    let id = in_review(&app, "rita").await;
    let rita = app.token("rita", Role::Reviewer);
    let resp = app
        .signal(&rita, &id, "review-decision", decision("s1", json!({})))
        .await;
    assert_error(resp, 403, "self_review_forbidden").await;
    let resp = app
        .signal(
            &rita,
            &id,
            "cancel-review",
            json!({ "signal_id": "c1", "reason": "mine" }),
        )
        .await;
    assert_error(resp, 403, "self_review_forbidden").await;
    // Someone else may.
    let sam = app.token("sam", Role::Reviewer);
    let resp = app
        .signal(&sam, &id, "review-decision", decision("s2", json!({})))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["state"],
        "manually_approved"
    );
}

#[tokio::test]
async fn an_identity_correction_waits_for_a_second_reviewer() {
    let app = spawn_app_with(|s| s.workflow.four_eyes = FourEyes::IdentityCorrections).await;
    let id = in_review(&app, "alice").await;
    let rita = app.token("rita", Role::Reviewer);
    let sam = app.token("sam", Role::Reviewer);
    let corrected = json!({ "nik": "3275024612894729" });

    let resp = app
        .signal(&rita, &id, "review-decision", decision("s1", corrected))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["state"],
        "awaiting_second_review"
    );
    let v: Value = app
        .get(&sam, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["proposal"]["reviewer"], "rita");
    assert_eq!(v["proposal"]["corrected_fields"]["nik"], "3275024612894729");
    assert!(v["decided_at"].is_null(), "nothing is decided yet");
    // The queue shows it to second reviewers.
    let page: Value = app
        .get(&sam, "/v1/reviews?state=awaiting_second_review")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["verification"]["id"], id.as_str());

    // The first reviewer cannot confirm their own proposal.
    let second = |signal_id: &str, verdict: &str| json!({ "signal_id": signal_id, "decision": verdict, "reason": "compared with the card" });
    let resp = app
        .signal(&rita, &id, "second-review", second("r1", "confirm"))
        .await;
    assert_error(resp, 403, "four_eyes_required").await;
    // Another reviewer rejects it: back to review, corrections discarded, both audited.
    let resp = app
        .signal(&sam, &id, "second-review", second("r2", "reject"))
        .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["state"],
        "pending_manual_review"
    );
    let v: Value = app
        .get(&sam, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["corrected"], json!([]));
    assert!(v["proposal"].is_null());

    // Proposed again, confirmed by someone else: the first decision applies.
    let again = decision("s3", json!({ "name": "KARTIKA SUSANTI" }));
    let resp = app.signal(&rita, &id, "review-decision", again).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["state"],
        "awaiting_second_review"
    );
    let resp = app
        .signal(&sam, &id, "second-review", second("r3", "confirm"))
        .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["state"], "manually_approved");
    assert_eq!(answer["signal"], "second-review");
    // The same signal again answers the same.
    let resp = app
        .signal(&sam, &id, "second-review", second("r3", "confirm"))
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap(), answer);
    let v: Value = app
        .get(&sam, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["corrected_fields"], json!({ "name": "KARTIKA SUSANTI" }));
    let log: Vec<Value> = app
        .get(&sam, &format!("/v1/verifications/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let trail: Vec<(&str, &str)> = log[3..]
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [
            ("review_proposed", "rita"),
            ("second_reviewed", "sam"),
            ("review_proposed", "rita"),
            ("second_reviewed", "sam"),
        ]
    );
    assert!(
        !log.iter()
            .any(|e| e["detail"].to_string().contains("KARTIKA SUSANTI"))
    );
}

#[tokio::test]
async fn the_two_person_rule_follows_the_setting_and_the_case_version() {
    let cases = [
        // `always`: even a decision without corrections waits.
        (3, FourEyes::Always, json!({}), "awaiting_second_review"),
        // Cases started on v2 finish on v2: no second review, whatever the rule.
        (
            2,
            FourEyes::Always,
            json!({ "nik": "3275024612894729" }),
            "manually_approved",
        ),
        // `off`: an identity correction applies at once.
        (
            3,
            FourEyes::Off,
            json!({ "birth_date": "1989-12-07" }),
            "manually_approved",
        ),
    ];
    for (version, rule, corrected, want) in cases {
        let app = spawn_app_with(|s| {
            s.workflow.version = version;
            s.workflow.four_eyes = rule;
        })
        .await;
        let id = in_review(&app, "alice").await;
        let rita = app.token("rita", Role::Reviewer);
        let resp = app
            .signal(&rita, &id, "review-decision", decision("s", corrected))
            .await;
        let state = resp.json::<Value>().await.unwrap()["state"].clone();
        assert_eq!(state, want, "v{version} under {rule:?}");
    }
}

#[tokio::test]
async fn the_review_sla_covers_a_case_awaiting_its_second_review() {
    let app = spawn_app_with(|_| {}).await;
    let id = in_review(&app, "alice").await;
    let rita = app.token("rita", Role::Reviewer);
    let corrected = json!({ "nik": "3275024612894729" });
    let resp = app
        .signal(&rita, &id, "review-decision", decision("s", corrected))
        .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["state"],
        "awaiting_second_review"
    );
    app.state
        .clock
        .advance(Duration::from_secs(168 * 3600 + 60));
    app.wait_for(&rita, &format!("/v1/verifications/{id}"), 20, |v| {
        v["state"] == "expired"
    })
    .await;
}

#[tokio::test]
async fn owners_see_the_state_and_outcome_never_the_score() {
    let app = spawn_app_with(|_| {}).await;
    let id = in_review(&app, "alice").await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let path = format!("/v1/verifications/{id}");
    let mine: Value = app.get(&alice, &path).await.json().await.unwrap();
    assert_eq!(mine["state"], "pending_manual_review");
    for hidden in [
        "score",
        "reasons",
        "review_id",
        "corrected",
        "delivery_state",
        "proposal",
    ] {
        assert!(
            mine.get(hidden).is_none(),
            "{hidden} shown to the owner: {mine}"
        );
    }
    assert!(mine.get("outcome").is_none(), "not decided yet");
    let full: Value = app.get(&rita, &path).await.json().await.unwrap();
    assert_eq!(full["reasons"], json!(["nik_gender_mismatch"]));
    assert!(full["score"].is_number());

    let resp = app
        .signal(&rita, &id, "review-decision", decision("s", json!({})))
        .await;
    assert_eq!(resp.status(), 200);
    let mine: Value = app.get(&alice, &path).await.json().await.unwrap();
    assert_eq!(mine["state"], "manually_approved");
    assert_eq!(mine["outcome"], "approved");
    assert!(mine.get("score").is_none() && mine.get("reasons").is_none());
}
