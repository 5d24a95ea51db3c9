//! End to end: real uploads of specimen cards, read by the real OCR model, through the
//! workflow to each outcome — auto approval, auto rejection, and manual review ending in
//! approval, rejection, cancellation and expiry (on a controllable clock, not a real week).

use std::time::Duration;

use filot::{http::auth::Role, store::verifications};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, spawn_app_with};

/// The verification once its documents are read and checked.
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    app.wait_for(token, &format!("/v1/verifications/{id}"), 300, |v| {
        !["awaiting_documents", "checking"].contains(&v["state"].as_str().unwrap_or(""))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specimen_cards_reach_every_outcome() {
    let app = spawn_app_with(|s| s.ocr.devices = vec!["cpu".into()]).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);

    // A clean KTP (scanned PDF) with its matching NPWP; a KTP whose NIK names no province;
    // a KTP whose NIK says female while the card says male.
    let ktp_ok = app.upload_id(&alice, "KTP", "ktp_000.pdf").await;
    let npwp_ok = app.upload_id(&alice, "NPWP", "npwp_000.jpg").await;
    let ktp_bad = app.upload_id(&alice, "KTP", "ktp_007.jpg").await;
    // One card is in one verification at a time: four uploads of the odd card.
    let mut odd = Vec::new();
    for _ in 0..4 {
        odd.push(app.upload_id(&alice, "KTP", "ktp_006.jpg").await);
    }

    let approved = app
        .start_verification(&alice, &ktp_ok, Some(&npwp_ok))
        .await;
    let rejected = app.start_verification(&alice, &ktp_bad, None).await;
    let reviews: Vec<String> = futures_util::future::join_all(
        odd.iter()
            .map(|ktp| app.start_verification(&alice, ktp, None)),
    )
    .await;

    let v = settled(&app, &rita, &approved).await;
    assert_eq!(v["state"], "auto_approved", "{v}");
    let v = settled(&app, &rita, &rejected).await;
    assert_eq!(v["state"], "auto_rejected", "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("nik_unknown_province")),
        "{v}"
    );
    for id in &reviews {
        let v = settled(&app, &rita, id).await;
        assert_eq!(v["state"], "pending_manual_review", "{v}");
        assert!(
            v["reasons"]
                .as_array()
                .unwrap()
                .contains(&json!("nik_gender_mismatch")),
            "{v}"
        );
    }

    // The reviewer's queue shows the cases with the card read in full.
    let page: Value = app.get(&rita, "/v1/reviews").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let want: Value = serde_json::from_slice(&fixture("ktp_006.json")).unwrap();
    assert_eq!(page["items"][0]["ktp"]["fields"]["nik"], want["nik"]);

    let send = |id: &str, kind: &str, body: Value| {
        let url = format!("/v1/verifications/{id}/signals/{kind}");
        let app = &app;
        let rita = &rita;
        async move {
            app.post_json(rita, &url, &body)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let a = send(&reviews[0], "review-decision", json!({ "signal_id": "r0", "decision": "approve", "reason": "gender checked on the photo" })).await;
    assert_eq!(a["state"], "manually_approved", "{a}");
    let a = send(
        &reviews[1],
        "review-decision",
        json!({ "signal_id": "r1", "decision": "reject", "reason": "card looks altered" }),
    )
    .await;
    assert_eq!(a["state"], "manually_rejected", "{a}");
    let a = send(
        &reviews[2],
        "cancel-review",
        json!({ "signal_id": "r2", "reason": "customer withdrew" }),
    )
    .await;
    assert_eq!(a["state"], "cancelled", "{a}");

    app.state.clock.advance(Duration::from_secs(169 * 3600));
    let v = app
        .wait_for(
            &rita,
            &format!("/v1/verifications/{}", reviews[3]),
            30,
            |v| v["state"] == "expired",
        )
        .await;
    assert_eq!(v["state"], "expired");

    // Every final decision left exactly one outbox row for BULI2.
    for id in [
        &approved,
        &rejected,
        &reviews[0],
        &reviews[1],
        &reviews[2],
        &reviews[3],
    ] {
        let rows = verifications::outbox_of(&app.state.db, id).await.unwrap();
        assert_eq!(rows.len(), 1, "{id}");
        assert_eq!(rows[0].2, "pending");
    }
}
