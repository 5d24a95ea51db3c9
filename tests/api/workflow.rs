//! The review workflow's guarantees, on documents settled through the real document actor
//! (the OCR result is given, so each rule is tested deterministically; `workflow_ocr.rs` runs
//! the same paths on real cards through the real model).

use std::time::Duration;

use filot::{http::auth::Role, kyc::workflow::FourEyes, store::verifications};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app_with, spawn_in, test_settings};

const KTP: &[(&str, &str)] = &[
    ("nik", "3275024612894728"),
    ("name", "KARTIKA SUSANTO"),
    ("birth_date", "1989-12-06"),
];
const NPWP: &[(&str, &str)] = &[
    ("npwp", "3275024612894728"),
    ("nik", "3275024612894728"),
    ("name", "KARTIKA SUSANTO"),
];

async fn upload(app: &TestApp, token: &str, doc_type: &str) -> String {
    app.upload_id(token, doc_type, "ktp_003.jpg").await
}

/// A verification of alice's KTP (read with `issues`) and, optionally, her NPWP.
async fn case(app: &TestApp, alice: &str, issues: &[&str], npwp: bool) -> String {
    let ktp = upload(app, alice, "KTP").await;
    app.extract(&ktp, KTP, issues).await;
    let mut body = json!({ "ktp_document_id": ktp });
    if npwp {
        let n = upload(app, alice, "NPWP").await;
        app.extract(&n, NPWP, &[]).await;
        body["npwp_document_id"] = json!(n);
    }
    let resp = app.post_json(alice, "/v1/verifications", &body).await;
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["state"], "awaiting_documents");
    started["id"].as_str().unwrap().to_string()
}

/// The verification once checked, as a reviewer sees it (score, reasons and all).
async fn settled(app: &TestApp, id: &str) -> Value {
    let reviewer = app.token("settled-reader", Role::Reviewer);
    app.wait_for(&reviewer, &format!("/v1/verifications/{id}"), 20, |v| {
        !["awaiting_documents", "checking"].contains(&v["state"].as_str().unwrap_or(""))
    })
    .await
}

async fn events(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let resp = app
        .get(token, &format!("/v1/verifications/{id}/events"))
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// Every verification's log is 1..=n with n the row's version.
async fn assert_gap_free(app: &TestApp, id: &str) {
    let log = verifications::events(&app.state.db, id).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=log.len() as i64).collect::<Vec<_>>());
    let row = verifications::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.version, log.len() as i64);
}

async fn outbox(app: &TestApp, id: &str) -> usize {
    verifications::outbox_of(&app.state.db, id)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn decisions_follow_the_score_and_the_blocking_issues() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);

    let approved = case(&app, &alice, &[], true).await;
    let review = case(&app, &alice, &["nik_gender_mismatch"], false).await;
    let rejected = case(&app, &alice, &["holder_under_17"], false).await;

    let v = settled(&app, &approved).await;
    assert_eq!(v["state"], "auto_approved", "{v}");
    assert_eq!(v["score"], 100);
    assert!(v["decided_at"].is_string());
    assert_eq!(v["delivery_state"], "not_sent");

    let v = settled(&app, &review).await;
    assert_eq!(v["state"], "pending_manual_review", "{v}");
    assert_eq!(v["reasons"], json!(["nik_gender_mismatch"]));
    assert!(v["review_id"].is_string());
    assert!(v["decided_at"].is_null());

    let v = settled(&app, &rejected).await;
    assert_eq!(v["state"], "auto_rejected", "{v}");
    assert_eq!(v["reasons"], json!(["holder_under_17"]));

    // A failed document is a reason for review, not a crash.
    let ktp = upload(&app, &alice, "KTP").await;
    app.fail(&ktp, "ocr_unreadable").await;
    let failed = app.start_verification(&alice, &ktp, None).await;
    let v = settled(&app, &failed).await;
    assert_eq!(v["state"], "pending_manual_review", "{v}");
    assert_eq!(v["reasons"], json!(["ktp_unreadable_ocr_unreadable"]));

    // Decisions (and only decisions) wrote their outbox row, in the same transaction.
    assert_eq!(outbox(&app, &approved).await, 1);
    assert_eq!(outbox(&app, &rejected).await, 1);
    assert_eq!(outbox(&app, &review).await, 0);
    for id in [&approved, &review, &rejected, &failed] {
        assert_gap_free(&app, id).await;
    }
    let log = events(&app, &rita, &approved).await;
    assert_eq!(kinds(&log), ["started", "documents_ready", "checked"]);
    assert_eq!(log[0]["actor"], "alice");
    assert_eq!(log[2]["actor"], "system:workflow");
    assert_eq!(log[2]["detail"]["outcome"], "auto_approved");
}

#[tokio::test]
async fn starting_needs_your_own_documents_of_the_right_type() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    let bob = app.token("bob", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let ktp = upload(&app, &alice, "KTP").await;
    let npwp = upload(&app, &alice, "NPWP").await;

    let refused = [
        (
            &bob,
            json!({ "ktp_document_id": ktp }),
            422,
            "document_not_found",
        ),
        (
            &alice,
            json!({ "ktp_document_id": npwp }),
            422,
            "document_type_mismatch",
        ),
        (
            &alice,
            json!({ "ktp_document_id": ktp, "npwp_document_id": ktp }),
            422,
            "document_type_mismatch",
        ),
        (
            &alice,
            json!({ "ktp_document_id": "nope" }),
            422,
            "document_not_found",
        ),
        (&rita, json!({ "ktp_document_id": ktp }), 403, "forbidden"),
    ];
    for (token, body, status, code) in refused {
        let r = app.post_json(token, "/v1/verifications", &body).await;
        assert_error(r, status, code).await;
    }

    let id = case(&app, &alice, &[], false).await;
    assert_error(
        app.get(&bob, &format!("/v1/verifications/{id}")).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&alice, &format!("/v1/verifications/{id}/events"))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_error(app.get(&alice, "/v1/reviews").await, 403, "forbidden").await;
    assert_error(
        app.get(
            &rita,
            "/v1/verifications/00000000-0000-7000-8000-000000000000",
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_signal_applies_once_and_every_sender_gets_the_same_answer() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let id = case(&app, &alice, &["nik_gender_mismatch"], false).await;
    assert_eq!(settled(&app, &id).await["state"], "pending_manual_review");

    let decision = json!({ "signal_id": "s-1", "decision": "approve", "reason": "photo checked" });
    // Eight clients send the same signal at once.
    let sends = (0..8).map(|_| app.signal(&rita, &id, "review-decision", decision.clone()));
    let mut answers: Vec<Value> = Vec::new();
    for r in futures_util::future::join_all(sends).await {
        assert_eq!(r.status(), 200);
        answers.push(r.json().await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0]["state"], "manually_approved");
    let after_first = events(&app, &rita, &id).await.len();
    // And once more, later: same answer, nothing new in the log.
    let again: Value = app
        .signal(&rita, &id, "review-decision", decision.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, answers[0]);
    assert_eq!(events(&app, &rita, &id).await.len(), after_first);
    assert_eq!(
        kinds(&events(&app, &rita, &id).await),
        ["started", "documents_ready", "checked", "review_decided"]
    );

    // The same id with another request is refused.
    let other = json!({ "signal_id": "s-1", "decision": "reject", "reason": "photo checked" });
    assert_error(
        app.signal(&rita, &id, "review-decision", other).await,
        409,
        "signal_id_reused",
    )
    .await;
    // Signals that don't fit the state: 409 with the current state; nothing changes.
    let late = json!({ "signal_id": "s-2", "decision": "reject", "reason": "second opinion" });
    let body = assert_error(
        app.signal(&rita, &id, "review-decision", late).await,
        409,
        "verification_state_conflict",
    )
    .await;
    assert_eq!(body["state"], "manually_approved");
    let cancel = json!({ "signal_id": "s-3", "reason": "too late" });
    let body = assert_error(
        app.signal(&rita, &id, "cancel-review", cancel).await,
        409,
        "verification_state_conflict",
    )
    .await;
    assert_eq!(body["state"], "manually_approved");
    assert_eq!(events(&app, &rita, &id).await.len(), after_first);
    assert_eq!(outbox(&app, &id).await, 1, "one decision, one outbox row");

    // Deciding an auto-approved case is refused too; only reviewers decide.
    let auto = case(&app, &alice, &[], false).await;
    assert_eq!(settled(&app, &auto).await["state"], "auto_approved");
    let d = json!({ "signal_id": "s-4", "decision": "reject", "reason": "x" });
    let body = assert_error(
        app.signal(&rita, &auto, "review-decision", d.clone()).await,
        409,
        "verification_state_conflict",
    )
    .await;
    assert_eq!(body["state"], "auto_approved");
    assert_error(
        app.signal(&alice, &auto, "review-decision", d).await,
        403,
        "forbidden",
    )
    .await;
    let bad = json!({ "signal_id": "", "decision": "approve", "reason": "x" });
    assert_error(
        app.signal(&rita, &id, "review-decision", bad).await,
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn corrections_are_kept_beside_the_ocr_values_and_audited() {
    // One reviewer's corrections apply at once here; `four_eyes.rs` covers the two-person rule.
    let app = spawn_app_with(|s| s.workflow.four_eyes = FourEyes::Off).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let id = case(&app, &alice, &["nik_birth_date_mismatch"], false).await;
    settled(&app, &id).await;

    let bad = json!({ "signal_id": "c-0", "decision": "approve", "reason": "x",
                      "corrected_fields": { "nik": "12" } });
    assert_error(
        app.signal(&rita, &id, "review-decision", bad).await,
        422,
        "validation_failed",
    )
    .await;

    let body = json!({ "signal_id": "c-1", "decision": "approve", "reason": "NIK misread",
                       "corrected_fields": { "nik": "3275024612894729", "birth_date": "1989-12-07" } });
    let r = app.signal(&rita, &id, "review-decision", body).await;
    assert_eq!(r.status(), 200);

    let seen: Value = app
        .get(&rita, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["corrected"], json!(["birth_date", "nik"]));
    assert_eq!(seen["corrected_fields"]["nik"], "3275024612894729");
    let own: Value = app
        .get(&alice, &format!("/v1/verifications/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["state"], "manually_approved");
    assert!(
        own.get("corrected").is_none() && own.get("corrected_fields").is_none(),
        "owners see the outcome, not the review: {own}"
    );

    // The OCR values stay on the document.
    let ktp = seen["documents"]["ktp_document_id"].as_str().unwrap();
    let doc: Value = app
        .get(&rita, &format!("/v1/documents/{ktp}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["fields"]["nik"], "3275024612894728");

    // Who changed what is in the audit trail, without the values.
    let log = events(&app, &rita, &id).await;
    let decided = log.iter().find(|e| e["kind"] == "review_decided").unwrap();
    assert_eq!(decided["actor"], "rita");
    assert_eq!(decided["detail"]["corrected"], json!(["birth_date", "nik"]));
    let text = serde_json::to_string(&log).unwrap();
    assert!(
        !text.contains("3275024612894729") && !text.contains("sealed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_storm_of_signals_and_nudges_leaves_one_decision_and_a_gap_free_log() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let id = case(&app, &alice, &["nik_gender_mismatch"], false).await;
    settled(&app, &id).await;
    let vid = id.parse().unwrap();

    let sends = (0..40).map(|i| {
        let (kind, body) = match i % 3 {
            0 => (
                "cancel-review",
                json!({ "signal_id": format!("x-{i}"), "reason": "storm" }),
            ),
            1 => (
                "review-decision",
                json!({ "signal_id": format!("x-{i}"), "decision": "approve", "reason": "storm" }),
            ),
            _ => (
                "review-decision",
                json!({ "signal_id": format!("x-{i}"), "decision": "reject", "reason": "storm" }),
            ),
        };
        let app = &app;
        let rita = &rita;
        let id = &id;
        async move {
            app.state.verifications.nudge(
                vid,
                filot::actors::verification::VerificationMsg::DocumentsSettled,
            );
            app.signal(rita, id, kind, body).await.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_gap_free(&app, &id).await;
    assert_eq!(events(&app, &rita, &id).await.len(), 4);
    assert_eq!(outbox(&app, &id).await, 1);
}

#[tokio::test]
async fn cancel_and_review_expiry_hold_across_a_restart() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let cancelled = case(&app, &alice, &["nik_gender_mismatch"], false).await;
    let expiring = case(&app, &alice, &["nik_gender_mismatch"], false).await;
    settled(&app, &cancelled).await;
    settled(&app, &expiring).await;
    let r = app
        .signal(
            &rita,
            &cancelled,
            "cancel-review",
            json!({ "signal_id": "k", "reason": "customer withdrew" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");

    // Restart the service on the same data; then a week passes.
    let dir = app.stop().await;
    let settings = test_settings(dir.path());
    let app = spawn_in(dir, settings).await;
    let rita = app.token("rita", Role::Reviewer);
    app.two_rounds_of(|p| &p.workflow).await;
    let v: Value = app
        .get(&rita, &format!("/v1/verifications/{expiring}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "pending_manual_review", "not before the SLA");
    app.state
        .clock
        .advance(Duration::from_secs(168 * 3600 + 60));
    let v = app
        .wait_for(&rita, &format!("/v1/verifications/{expiring}"), 20, |v| {
            v["state"] == "expired"
        })
        .await;
    assert!(v["decided_at"].is_string());
    let log = events(&app, &rita, &expiring).await;
    assert_eq!(kinds(&log).last(), Some(&"expired"));
    assert_eq!(log.last().unwrap()["actor"], "system:workflow");

    // The cancelled case's timer was spent with the cancel: it stays cancelled.
    app.two_rounds_of(|p| &p.workflow).await;
    let v: Value = app
        .get(&rita, &format!("/v1/verifications/{cancelled}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "cancelled");
    assert_eq!(outbox(&app, &cancelled).await, 1);
    assert_eq!(outbox(&app, &expiring).await, 1);
    assert_gap_free(&app, &cancelled).await;
    assert_gap_free(&app, &expiring).await;

    // The queue shows what is left, oldest first, with unmasked fields.
    let waiting = case(
        &app,
        &app.token("alice", Role::User),
        &["nik_gender_mismatch"],
        false,
    )
    .await;
    let page = app
        .wait_for(&rita, "/v1/reviews?state=pending_manual_review", 20, |p| {
            p["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(page["items"][0]["verification"]["id"], waiting.as_str());
    assert_eq!(page["items"][0]["ktp"]["fields"]["nik"], "3275024612894728");
    assert_eq!(
        page["items"][0]["verification"]["reasons"],
        json!(["nik_gender_mismatch"])
    );

    // Pages of the queue follow each other, oldest first, with nothing skipped or repeated.
    let mut all = vec![waiting];
    for user in ["bob", "carol"] {
        let token = app.token(user, Role::User);
        all.push(case(&app, &token, &["nik_gender_mismatch"], false).await);
    }
    let first = app
        .wait_for(&rita, "/v1/reviews?limit=2", 20, |p| {
            p["next_cursor"].is_string()
        })
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&rita, &format!("/v1/reviews?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(rest["next_cursor"].is_null(), "{rest}");
    let listed: Vec<&str> = [&first, &rest]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap())
        .map(|i| i["verification"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, all, "oldest first, each once");
}

#[tokio::test]
async fn v1_instances_finish_on_the_v1_path_after_an_upgrade() {
    let app = spawn_app_with(|s| s.workflow.version = 1).await;
    let alice = app.token("alice", Role::User);
    let old = case(&app, &alice, &["nik_gender_mismatch"], true).await;
    settled(&app, &old).await;

    // "Upgrade": the same data, now running workflow version 3 for new instances.
    let dir = app.stop().await;
    let settings = test_settings(dir.path());
    assert_eq!(settings.workflow.version, 3);
    let app = spawn_in(dir, settings).await;
    let alice = app.token("alice", Role::User);
    let rita = app.token("rita", Role::Reviewer);
    let new = case(&app, &alice, &["nik_gender_mismatch"], true).await;
    settled(&app, &new).await;

    let sam = app.token("sam", Role::Reviewer);
    for (id, version) in [(&old, 1), (&new, 3)] {
        let body = json!({ "signal_id": format!("fix-{id}"), "decision": "approve", "reason": "NIK misread",
                           "corrected_fields": { "nik": "3275024612894729" } });
        assert_eq!(
            app.signal(&rita, id, "review-decision", body)
                .await
                .status(),
            200
        );
        if version == 3 {
            // v3: the identity correction waits for a second reviewer.
            let body = json!({ "signal_id": format!("ok-{id}"), "decision": "confirm", "reason": "checked" });
            let r = app.signal(&sam, id, "second-review", body).await;
            assert_eq!(
                r.json::<Value>().await.unwrap()["state"],
                "manually_approved"
            );
        }
        let v: Value = app
            .get(&rita, &format!("/v1/verifications/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["workflow_version"], version);
        let log = kinds(&events(&app, &rita, id).await).join(",");
        if version == 1 {
            assert_eq!(log, "started,documents_ready,checked,review_decided");
        } else {
            assert_eq!(
                log,
                "started,documents_ready,checked,review_proposed,second_reviewed,npwp_rechecked"
            );
            assert!(
                v["reasons"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("recheck_npwp_nik_mismatch")),
                "{v}"
            );
        }
    }
}

#[tokio::test]
async fn swagger_documents_the_workflow_endpoints_with_schemas_and_examples() {
    let app = spawn_app_with(|_| {}).await;
    let spec = app.spec().await;
    for path in [
        "/v1/verifications",
        "/v1/verifications/{id}",
        "/v1/verifications/{id}/events",
        "/v1/reviews",
        "/v1/verifications/{id}/signals/review-decision",
        "/v1/verifications/{id}/signals/cancel-review",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
    let schemas = &spec["components"]["schemas"];
    for name in [
        "ReviewDecisionRequest",
        "CancelReviewRequest",
        "StartVerification",
    ] {
        assert!(
            schemas[name]["example"].is_object(),
            "{name} has no example"
        );
    }
    assert!(schemas["SignalAnswer"]["properties"]["state"].is_object());
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
}
