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
        s.outbox.poll_interval = Duration::from_millis(100);
        s.outbox.backoff_min = Duration::from_millis(20);
        s.outbox.backoff_max = Duration::from_millis(50);
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
async fn webhook_urls_into_private_networks_are_refused_in_every_spelling() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.token("alice", Role::User);
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "http://[64:ff9b::a00:1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://[fd12::1]/",
        "http://198.18.0.1/",
    ] {
        let resp = register(&app, &alice, url).await;
        assert_eq!(resp.status(), 422, "{url}");
        assert_error(resp, 422, "webhook_url_forbidden").await;
    }
    // A name that resolves into a private network is refused the same way.
    filot::testing::pin("intranet.filot.test", "10.1.2.3".parse().unwrap());
    let resp = register(&app, &alice, "https://intranet.filot.test/hook").await;
    assert_error(resp, 422, "webhook_url_forbidden").await;
    for url in ["ftp://example.com/", "nonsense"] {
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

/// The webhook rows of a verification, once each has failed at least one round.
async fn failed_webhook_rows(app: &TestApp, vid: &str) -> Vec<filot::store::outbox::OutboxRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut rows = Vec::new();
        for (id, kind, _) in filot::store::verifications::outbox_of(&app.state.db, vid)
            .await
            .unwrap()
        {
            if kind == "webhook" {
                rows.push(
                    filot::store::outbox::get(&app.state.db, &id)
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
        }
        if !rows.is_empty() && rows.iter().all(|r| r.last_error.is_some()) {
            return rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_delivery_checks_the_address_it_connects_to() {
    let app = spawn_app_with(|s| {
        s.outbox.poll_interval = Duration::from_millis(100);
        s.outbox.backoff_min = Duration::from_millis(10);
        s.outbox.backoff_max = Duration::from_millis(20);
    })
    .await;
    let (url, inbox) = receiver().await;
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let alice = app.token("alice", Role::User);
    // A name that resolved to a public address at registration...
    filot::testing::pin("rebind.filot.test", "93.184.216.34".parse().unwrap());
    let hook_url = format!("http://rebind.filot.test:{port}/hook");
    assert_eq!(register(&app, &alice, &hook_url).await.status(), 201);
    // ...and to loopback since (DNS rebinding), where a listener waits.
    filot::testing::pin("rebind.filot.test", "127.0.0.1".parse().unwrap());
    // A row stored with a loopback name (as a registration before this check would have).
    let id = uuid::Uuid::now_v7().to_string();
    let hook = filot::store::webhooks::Webhook {
        id: id.clone(),
        owner: "alice".into(),
        url: format!("http://localhost:{port}/hook"),
        secret: app.state.blobs.seal_text(&id, "whsec_test").unwrap(),
        active: true,
        created_at: filot::store::now_millis(),
    };
    filot::store::webhooks::insert(&app.state.db, &hook, 5)
        .await
        .unwrap();

    let vid = app.approved_case(&alice).await;
    let rows = failed_webhook_rows(&app, &vid).await;
    assert_eq!(rows.len(), 2, "one row per webhook");
    for row in rows {
        assert_eq!(row.state, filot::store::outbox::OutboxState::Pending);
        let error = row.last_error.unwrap();
        assert!(error.contains("no public address"), "{error}");
    }
    assert!(
        inbox.lock().unwrap().got.is_empty(),
        "nothing reached loopback"
    );
}

#[tokio::test]
async fn webhook_redirects_are_not_followed() {
    let app = spawn_app_with(|s| {
        s.outbox.webhook_allow_private = true;
        s.outbox.poll_interval = Duration::from_millis(100);
        s.outbox.backoff_min = Duration::from_millis(10);
        s.outbox.backoff_max = Duration::from_millis(20);
    })
    .await;
    let followed = Arc::new(Mutex::new(Inbox::default()));
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let redirect = poem::endpoint::make_sync(|_| {
        poem::Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("Location", "/elsewhere")
            .finish()
    });
    let app_routes = Route::new()
        .at("/hook", post(redirect))
        .at("/elsewhere", post(receive))
        .data(followed.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app_routes));
    let alice = app.token("alice", Role::User);
    assert_eq!(
        register(&app, &alice, &format!("http://{addr}/hook"))
            .await
            .status(),
        201
    );
    let vid = app.approved_case(&alice).await;
    let rows = failed_webhook_rows(&app, &vid).await;
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert!(
        followed.lock().unwrap().got.is_empty(),
        "the redirect was not followed"
    );
}

/// A server that accepts connections and never answers; counts what it accepted.
async fn black_hole() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}/hook"), accepted)
}

#[tokio::test]
async fn hanging_webhooks_never_hold_back_buli2_decisions() {
    const SECRET: &str = "a-shared-buli2-secret-for-tests";
    let sim = crate::support::buli2_sim(SECRET).await;
    let app = spawn_app_with(|s| {
        s.buli2_url = Some(sim.url());
        s.buli2_secret = Some(filot::config::Secret::new(SECRET));
        s.outbox.poll_interval = Duration::from_millis(100);
        s.outbox.webhook_allow_private = true;
        // Endpoints that accept and never answer hold their deliveries for two minutes.
        s.outbox.webhook_timeout = Duration::from_secs(120);
        s.outbox.webhook_concurrency_per_endpoint = 2;
    })
    .await;
    let (hole, accepted) = black_hole().await;
    let alice = app.token("alice", Role::User);
    for _ in 0..3 {
        assert_eq!(register(&app, &alice, &hole).await.status(), 201);
    }
    let mut cases = Vec::new();
    for _ in 0..5 {
        let bob = app.token(&format!("bob{}", cases.len()), Role::User);
        cases.push(app.approved_case(&bob).await);
        // Alice's cases feed her three hanging webhooks.
        cases.push(app.approved_case(&alice).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = sim.deliveries().await.unwrap();
        if got.by_key.len() == cases.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} decisions reached BULI2 while webhooks hang",
            got.by_key.len(),
            cases.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The webhooks are still waiting, at most two at a time per endpoint, none lost.
    let open = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=6).contains(&open),
        "{open} connections to the hanging endpoints"
    );
    let pending = filot::store::outbox::list(
        &app.state.db,
        filot::store::outbox::OutboxState::Pending,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        pending.items.len(),
        5 * 3,
        "every webhook delivery is still queued"
    );
}
