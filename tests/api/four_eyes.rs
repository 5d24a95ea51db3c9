//! Four eyes: nobody reviews their own case, a decision that corrects who the case is about
//! needs a second reviewer, and owners see their case's state, never how it was scored.

use std::time::Duration;

use filot::{http::auth::Role, kyc::workflow::FourEyes};
use serde_json::{Value, json};

use crate::helpers::{assert_error, in_review, spawn_app_with};

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

#[tokio::test]
async fn a_claimed_case_is_decided_only_by_its_claimant_until_released_or_expired() {
    let app = spawn_app_with(|s| s.workflow.four_eyes = FourEyes::Off).await;
    let id = in_review(&app, "alice").await;
    let (rita, sam) = (
        app.token("rita", Role::Reviewer),
        app.token("sam", Role::Reviewer),
    );
    let (ops, alice) = (
        app.token("ops", Role::Admin),
        app.token("alice", Role::User),
    );
    let view = |token: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.get(&token, &format!("/v1/verifications/{id}"))
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let claim = |s: &str| json!({ "signal_id": s });

    // Nothing to release yet; then Rita takes the case.
    let resp = app.signal(&rita, &id, "release", claim("r0")).await;
    assert_error(resp, 409, "not_claimed").await;
    let resp = app.signal(&rita, &id, "claim", claim("c1")).await;
    assert_eq!(resp.status(), 200);
    let v = view(sam.clone()).await;
    assert_eq!(v["claimed_by"], "rita");
    assert!(v["claim_expires_at"].is_string(), "{v}");
    let owner_view = view(alice.clone()).await;
    assert!(owner_view.get("claimed_by").is_none(), "{owner_view}");

    // Sam can neither decide, cancel, claim nor release it while Rita holds it.
    for (signal, body) in [
        ("review-decision", decision("s1", json!({}))),
        (
            "cancel-review",
            json!({ "signal_id": "x1", "reason": "dup" }),
        ),
        ("claim", claim("c2")),
        ("release", claim("r1")),
    ] {
        let resp = app.signal(&sam, &id, signal, body).await;
        assert_error(resp, 409, "claimed_by_other").await;
    }
    // The same claim signal again answers as before (idempotent by signal id).
    let resp = app.signal(&rita, &id, "claim", claim("c1")).await;
    assert_eq!(resp.status(), 200);

    // An admin releases it; Sam claims it, lets the claim run out, and Rita decides.
    let resp = app.signal(&ops, &id, "release", claim("r2")).await;
    assert_eq!(resp.status(), 200);
    assert!(view(sam.clone()).await.get("claimed_by").is_none());
    let resp = app.signal(&sam, &id, "claim", claim("c3")).await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .signal(&rita, &id, "review-decision", decision("s2", json!({})))
        .await;
    assert_error(resp, 409, "claimed_by_other").await;
    app.state.clock.advance(Duration::from_secs(31 * 60));
    let resp = app
        .signal(&rita, &id, "review-decision", decision("s3", json!({})))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(view(rita.clone()).await["state"], "manually_approved");

    // The audit trail says who held the case when.
    let events: Value = app
        .get(&rita, &format!("/v1/verifications/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let trail: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(k, _)| ["claimed", "released", "review_decided"].contains(&k.as_str()))
        .collect();
    let trail: Vec<(&str, &str)> = trail
        .iter()
        .map(|(k, a)| (k.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("claimed", "rita"),
            ("released", "ops"),
            ("claimed", "sam"),
            ("review_decided", "rita")
        ]
    );
}
