//! Abuse limits: one verification in progress per card and a cap per user, webhook caps that
//! hold under concurrency, upload limits enforced before a body is read, a cap on uploads in
//! flight, and an optional storage quota.

use std::time::Duration;

use filot::http::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, fixture, spawn_app_with};

const KTP: &[(&str, &str)] = &[
    ("nik", "3275024612894728"),
    ("name", "KARTIKA SUSANTO"),
    ("birth_date", "1989-12-06"),
];

/// A KTP of alice's that OCR has not read yet (its verification stays in progress).
async fn unread_ktp(app: &TestApp, alice: &str) -> String {
    app.upload_id(alice, "KTP", "ktp_003.jpg").await
}

#[tokio::test]
async fn a_card_in_a_verification_in_progress_cannot_start_another() {
    let app = spawn_app_with(|s| s.limits.max_active_verifications_per_user = 2).await;
    let alice = app.token("alice", Role::User);
    let ktp = unread_ktp(&app, &alice).await;
    let first = app.start_verification(&alice, &ktp, None).await;
    let resp = app
        .post_json(
            &alice,
            "/v1/verifications",
            &json!({ "ktp_document_id": ktp }),
        )
        .await;
    let body = assert_error(resp, 409, "verification_active").await;
    assert_eq!(body["verification_id"], first.as_str());

    // A second card may; a third verification in progress may not.
    let other = unread_ktp(&app, &alice).await;
    app.start_verification(&alice, &other, None).await;
    let third = unread_ktp(&app, &alice).await;
    let resp = app
        .post_json(
            &alice,
            "/v1/verifications",
            &json!({ "ktp_document_id": third }),
        )
        .await;
    assert_error(resp, 409, "too_many_active_verifications").await;

    // Once the first one is decided, its card may start again and the cap has room.
    app.extract(&ktp, KTP, &[]).await;
    app.wait_for(&alice, &format!("/v1/verifications/{first}"), 20, |v| {
        v["state"] == "auto_approved"
    })
    .await;
    app.start_verification(&alice, &third, None).await;
}

#[tokio::test]
async fn the_webhook_cap_holds_under_concurrent_registrations() {
    let app = spawn_app_with(|s| {
        s.outbox.webhook_allow_private = true;
        s.outbox.max_webhooks_per_user = 3;
    })
    .await;
    let alice = app.token("alice", Role::User);
    let bodies: Vec<Value> = (0..24)
        .map(|i| json!({ "url": format!("http://127.0.0.1:9/hook/{i}") }))
        .collect();
    let attempts = bodies
        .iter()
        .map(|body| app.post_json(&alice, "/v1/webhooks", body));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let listed: Vec<Value> = app.get(&alice, "/v1/webhooks").await.json().await.unwrap();
    assert_eq!(listed.len(), 3);
}

/// A multipart upload whose body starts and then stalls (the sender keeps it open).
fn stalled_upload(
    app: &TestApp,
    token: &str,
) -> (
    reqwest::RequestBuilder,
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = tokio_stream_from(rx);
    let req = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(reqwest::Body::wrap_stream(stream));
    (req, tx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn the_upload_rate_limit_answers_before_the_body_is_read() {
    let app = spawn_app_with(|s| s.limits.uploads_per_user_per_minute = 1).await;
    let alice = app.token("alice", Role::User);
    let first = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert_eq!(first.status(), 202);
    // The second upload's body never finishes; the limit answers anyway.
    let (req, tx) = stalled_upload(&app, &alice);
    tx.send(Ok(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nKTP\r\n".to_vec(),
    ))
    .await
    .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let retry = resp.headers().get("retry-after").cloned();
    assert_error(resp, 429, "rate_limited").await;
    assert!(retry.is_some());
    drop(tx);
}

#[tokio::test]
async fn uploads_in_flight_are_capped_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.limits.max_concurrent_uploads = 1;
        s.limits.upload_busy_retry_after = Duration::from_secs(3);
    })
    .await;
    let alice = app.token("alice", Role::User);
    let (req, tx) = stalled_upload(&app, &alice);
    tx.send(Ok(b"--XyZ\r\n".to_vec())).await.unwrap();
    let held = tokio::spawn(req.send());
    // Wait until the stalled upload holds the one slot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.state.upload_slots.available_permits() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first upload never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_error(resp, 503, "too_many_uploads").await;
    // Other routes answer meanwhile, and the slot comes back when the upload ends.
    assert_eq!(app.get(&alice, "/v1/documents").await.status(), 200);
    drop(tx);
    let _ = held.await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.state.upload_slots.available_permits() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn an_optional_storage_quota_per_user() {
    let card = fixture("ktp_003.jpg");
    let quota = card.len() as u64 + 10;
    let app = spawn_app_with(|s| s.limits.storage_quota_bytes_per_user = quota).await;
    let alice = app.token("alice", Role::User);
    let bob = app.token("bob", Role::User);
    let first = app.upload_id(&alice, "KTP", "ktp_003.jpg").await;
    let resp = app.upload(&alice, "KTP", card.clone(), "k.jpg", None).await;
    assert_error(resp, 409, "storage_quota_exceeded").await;
    // Per user: bob has room.
    assert_eq!(
        app.upload(&bob, "KTP", card.clone(), "k.jpg", None)
            .await
            .status(),
        202
    );
    // Erasing frees it.
    assert_eq!(
        app.delete(&alice, &format!("/v1/documents/{first}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.upload(&alice, "KTP", card, "k.jpg", None)
            .await
            .status(),
        202
    );
    let listed: Value = app.get(&alice, "/v1/documents").await.json().await.unwrap();
    let stored = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] != "erased")
        .count();
    assert_eq!(
        stored, 1,
        "the refused upload left nothing behind: {listed}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop() {
    let app = spawn_app_with(|s| {
        s.limits.uploads_per_ip_per_minute = 1;
        // The tests connect from loopback: it plays the reverse proxy.
        s.limits.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let alice = app.token("alice", Role::User);
    let upload = |forwarded: &'static str| {
        let form = reqwest::multipart::Form::new().text("type", "KTP").part(
            "file",
            reqwest::multipart::Part::bytes(fixture("ktp_003.jpg")).file_name("k.jpg"),
        );
        app.client
            .post(app.url("/v1/documents"))
            .bearer_auth(&alice)
            .header("X-Forwarded-For", forwarded)
            .multipart(form)
            .send()
    };
    assert_eq!(upload("6.6.6.6, 198.51.100.9").await.unwrap().status(), 202);
    // A different spoofed left-most hop does not make a new client.
    let resp = upload("7.7.7.7, 198.51.100.9").await.unwrap();
    assert_error(resp, 429, "rate_limited").await;
    // Another client behind the same proxy has its own limit.
    assert_eq!(upload("198.51.100.10").await.unwrap().status(), 202);
    // IPv6 clients are one client per /64.
    assert_eq!(upload("2001:db8:1:2::1").await.unwrap().status(), 202);
    let resp = upload("2001:db8:1:2:ffff::9").await.unwrap();
    assert_error(resp, 429, "rate_limited").await;
}
