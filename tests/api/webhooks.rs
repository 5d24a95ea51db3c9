//! Status webhooks: registered once (secret shown once), told about every state change of the
//! owner's verifications, signed, with stable delivery ids, through the outbox's retries.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use filot::{buli2::signature::verify, http::auth::Role};
use poem::{
    Body, EndpointExt, Request, Route, Server, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::Data,
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app_with};

#[derive(Default)]
struct Inbox {
    /// (Idempotency-Key, timestamp header, signature header, raw body)
    got: Vec<(String, String, String, Vec<u8>)>,
    fail_next: u32,
}

#[handler]
async fn receive(req: &Request, body: Body, inbox: Data<&Arc<Mutex<Inbox>>>) -> StatusCode {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let bytes = body.into_vec().await.unwrap();
    let mut inbox = inbox.lock().unwrap();
    inbox.got.push((
        h("Idempotency-Key"),
        h("X-Filot-Timestamp"),
        h("X-Filot-Signature"),
        bytes,
    ));
    if inbox.fail_next > 0 {
        inbox.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

async fn receiver() -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = Route::new().at("/hook", post(receive)).data(inbox.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}/hook"), inbox)
}

async fn register(app: &TestApp, token: &str, url: &str) -> reqwest::Response {
    app.post_json(token, "/v1/webhooks", &json!({ "url": url }))
        .await
}

#[tokio::test]
async fn every_state_change_is_delivered_signed_with_a_stable_delivery_id() {
    let app = spawn_app_with(|s| {
        s.outbox.webhook_allow_private = true;
        s.outbox.poll_ms = 100;
        s.outbox.backoff_min_ms = 20;
        s.outbox.backoff_max_ms = 50;
    })
    .await;
    let (url, inbox) = receiver().await;
    inbox.lock().unwrap().fail_next = 1;
    let alice = app.token("alice", Role::User);
    let bob = app.token("bob", Role::User);
    let rita = app.token("rita", Role::Reviewer);

    let r = register(&app, &alice, &url).await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let listed: Value = app.get(&alice, "/v1/webhooks").await.json().await.unwrap();
    assert_eq!(listed[0]["id"], hook["id"]);
    assert!(listed[0]["secret"].is_null(), "the secret is shown once");
    assert_eq!(
        app.get(&bob, "/v1/webhooks")
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );

    // A verification that goes to review, then is approved: two state changes.
    let ktp = app.upload_id(&alice, "KTP", "ktp_003.jpg").await;
    app.extract(
        &ktp,
        &[
            ("nik", "3275024612894728"),
            ("name", "KARTIKA SUSANTO"),
            ("birth_date", "1989-12-06"),
        ],
        &["nik_gender_mismatch"],
    )
    .await;
    let vid = app.start_verification(&alice, &ktp, None).await;
    app.wait_for(&alice, &format!("/v1/verifications/{vid}"), 20, |v| {
        v["state"] == "pending_manual_review"
    })
    .await;
    let r = app
        .post_json(
            &rita,
            &format!("/v1/verifications/{vid}/signals/review-decision"),
            &json!({ "signal_id": "w1", "decision": "approve", "reason": "ok" }),
        )
        .await;
    assert_eq!(r.status(), 200);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let got = inbox.lock().unwrap().got.clone();
        let mut ids: Vec<&String> = got.iter().map(|g| &g.0).collect();
        ids.dedup();
        if ids.len() >= 2 && got.len() >= 3 {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} deliveries",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The first attempt got a 503 and was retried under the same delivery id.
    assert_eq!(delivered[0].0, delivered[1].0);
    let mut states = Vec::new();
    for (key, ts, sig, body) in &delivered {
        verify(
            secret.as_bytes(),
            Some(ts),
            Some(sig),
            body,
            chrono::Utc::now().timestamp(),
            300,
        )
        .expect("signed with the webhook's secret");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["delivery_id"].as_str(), Some(key.as_str()));
        assert_eq!(event["verification_id"], vid.as_str());
        assert!(
            !String::from_utf8_lossy(body).contains("3275024612894728"),
            "no personal data"
        );
        states.push((event["previous_state"].clone(), event["state"].clone()));
    }
    states.dedup();
    assert_eq!(
        states,
        [
            (json!("awaiting_documents"), json!("pending_manual_review")),
            (json!("pending_manual_review"), json!("manually_approved")),
        ]
    );

    // Deleting stops new deliveries; only the owner can.
    let id = hook["id"].as_str().unwrap();
    let del = |token: &str| {
        app.client
            .delete(app.url(&format!("/v1/webhooks/{id}")))
            .bearer_auth(token.to_string())
            .send()
    };
    assert_error(del(&bob).await.unwrap(), 404, "not_found").await;
    assert_eq!(del(&alice).await.unwrap().status(), 204);
    assert_eq!(
        app.get(&alice, "/v1/webhooks")
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
}

#[tokio::test]
async fn webhook_urls_into_private_networks_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    for url in [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/",
        "ftp://example.com/",
        "nonsense",
    ] {
        assert_error(register(&app, &alice, url).await, 422, "validation_failed").await;
    }
    let rita = app.token("rita", Role::Reviewer);
    assert_error(
        register(&app, &rita, "https://example.com/x").await,
        403,
        "forbidden",
    )
    .await;
}
