//! BULI2, both ways, against the real simulator (`filot::buli2::sim`, also `filot buli2-sim`):
//! signed deliveries with idempotency keys, the circuit breaker, dead letters and their retry,
//! and the callback endpoint's refusals.

use std::time::Duration;

use filot::{
    buli2::{signature::sign, sim::Sim},
    config::Settings,
    http::auth::Role,
    store::{outbox, verifications},
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, fixture, spawn_app_with};

const SECRET: &str = "a-shared-buli2-secret-for-tests";

fn fast_outbox(s: &mut Settings, sim: &Sim) {
    s.buli2_url = Some(sim.url());
    s.buli2_secret = Some(filot::config::Secret::new(SECRET));
    let o = &mut s.outbox;
    o.poll_interval = Duration::from_millis(100);
    o.timeout = Duration::from_secs(2);
    o.backoff_min = Duration::from_millis(20);
    o.backoff_max = Duration::from_millis(100);
    o.round_delay = Duration::from_millis(200);
    o.round_delay_max = Duration::from_millis(400);
    o.breaker_cooldown = Duration::from_millis(500);
}

/// The simulator (calling back unless `callbacks` is false) and FiLot pointed at it.
async fn with_buli2(callbacks: bool, tune: impl FnOnce(&mut Settings)) -> (TestApp, Sim) {
    let sim = crate::support::buli2_sim(SECRET).await;
    let app = spawn_app_with(|s| {
        fast_outbox(s, &sim);
        tune(s);
    })
    .await;
    if callbacks {
        sim.set_callback_url(Some(app.url("/internal/buli2/callbacks")));
    }
    (app, sim)
}

async fn fault(app: &TestApp, sim: &Sim, body: Value) {
    let r = app
        .client
        .post(format!("{}/sim/faults", sim.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn delivery_state(app: &TestApp, id: &str, want: &str, secs: u64) -> Value {
    let rita = app.token("rita", Role::Reviewer);
    app.wait_for(&rita, &format!("/v1/verifications/{id}"), secs, |v| {
        v["delivery_state"] == want
    })
    .await
}

async fn outbox_row(app: &TestApp, vid: &str) -> outbox::OutboxRow {
    let (id, _, _) = verifications::outbox_of(&app.state.db, vid)
        .await
        .unwrap()
        .remove(0);
    outbox::get(&app.state.db, &id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_decision_reaches_buli2_signed_once_and_is_acknowledged() {
    let (app, sim) = with_buli2(true, |_| {}).await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    let v = delivery_state(&app, &vid, "acknowledged", 20).await;
    assert_eq!(v["state"], "auto_approved");

    let row = outbox_row(&app, &vid).await;
    assert_eq!(row.state, outbox::OutboxState::Sent);
    let got = sim.deliveries().await.unwrap();
    assert_eq!(got.bad_signatures, 0, "FiLot's signature verified");
    let rec = &got.by_key[&row.id];
    assert_eq!(rec.count, 1, "Idempotency-Key = outbox row id, sent once");
    assert_eq!(rec.verification_id.as_deref(), Some(vid.as_str()));
    assert_eq!(rec.decision.as_deref(), Some("auto_approved"));

    let rita = app.token("rita", Role::Reviewer);
    let log: Vec<Value> = app
        .get(&rita, &format!("/v1/verifications/{vid}/events"))
        .await
        .json()
        .await
        .unwrap();
    let tail: Vec<(&str, &str)> = log[3..]
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(tail.contains(&("buli2_answered", "buli2")), "{log:?}");
    let answered = log.iter().find(|e| e["kind"] == "buli2_answered").unwrap();
    assert_eq!(answered["detail"]["outcome"], "accepted");
}

#[tokio::test]
async fn buli2_down_opens_the_breaker_then_every_decision_arrives_once() {
    let (app, sim) = with_buli2(false, |_| {}).await;
    fault(&app, &sim, json!({ "mode": "error" })).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.approved_case(&app.token("alice", Role::User)).await);
    }
    // BULI2 being down blocks nothing: uploads and queries keep answering.
    let alice = app.token("alice", Role::User);
    let started = std::time::Instant::now();
    let r = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(app.get(&alice, "/v1/documents").await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Five failures open the breaker; the cool-down (500 ms) passes; one probe goes out.
    let requests = || async { sim.deliveries().await.unwrap().requests };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while requests().await < 6 {
        assert!(tokio::time::Instant::now() < deadline, "no probe went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // From then on at most one call per cool-down, however often the outbox looks. Without
    // the breaker every round would send: 4 rows × 3 attempts, each row due every 200–400 ms.
    let (before, since) = (requests().await, std::time::Instant::now());
    for _ in 0..3 {
        app.two_rounds_of(|p| &p.outbox).await;
    }
    let (sent, elapsed) = (requests().await - before, since.elapsed());
    let probes = elapsed.as_millis() as u64 / 500 + 1;
    assert!(
        sent <= probes,
        "{sent} calls reached BULI2 in {elapsed:?} of outage; the breaker allows {probes}"
    );
    fault(&app, &sim, json!({ "mode": "none" })).await;

    for id in &ids {
        delivery_state(&app, id, "sent", 30).await;
    }
    let got = sim.deliveries().await.unwrap();
    for id in &ids {
        let row = outbox_row(&app, id).await;
        assert_eq!(row.state, outbox::OutboxState::Sent);
        assert_eq!(got.by_key[&row.id].count, 1, "each decision once per key");
    }
    assert_eq!(got.by_key.len(), 4);
}

#[tokio::test]
async fn a_refusal_is_dead_lettered_at_once_and_an_admin_retry_delivers_it() {
    let (app, sim) = with_buli2(false, |_| {}).await;
    fault(&app, &sim, json!({ "mode": "reject", "requests": 1 })).await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    delivery_state(&app, &vid, "dead_lettered", 20).await;
    let row = outbox_row(&app, &vid).await;
    assert_eq!(row.state, outbox::OutboxState::Dead);
    assert_eq!(row.attempts, 1, "a 4xx is not retried");
    assert_eq!(row.last_error.as_deref(), Some("rejected with HTTP 400"));

    let admin = app.token("ada", Role::Admin);
    let rita = app.token("rita", Role::Reviewer);
    assert_error(app.get(&rita, "/v1/admin/outbox").await, 403, "forbidden").await;
    let page: Value = app
        .get(&admin, "/v1/admin/outbox?state=dead")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], row.id.as_str());
    assert_eq!(page["items"][0]["verification_id"], vid.as_str());
    assert!(
        page["items"][0].get("payload").is_none(),
        "no personal data here"
    );

    let retry = |id: String| {
        let app = &app;
        let admin = &admin;
        async move {
            app.client
                .post(app.url(&format!("/v1/admin/outbox/{id}/retry")))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
        }
    };
    let r = retry(row.id.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "pending");
    delivery_state(&app, &vid, "sent", 20).await;
    assert_error(retry(row.id.clone()).await, 409, "outbox_not_dead").await;
    assert_error(retry("nope".into()).await, 404, "not_found").await;
}

#[tokio::test]
async fn failing_rounds_are_rescheduled_then_dead_lettered() {
    let (app, sim) = with_buli2(false, |s| {
        s.outbox.max_rounds = 2;
        s.outbox.breaker_failures = 1_000;
    })
    .await;
    fault(&app, &sim, json!({ "mode": "error", "requests": 1_000 })).await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    delivery_state(&app, &vid, "dead_lettered", 20).await;
    let row = outbox_row(&app, &vid).await;
    assert_eq!((row.rounds, row.attempts), (2, 6), "2 rounds of 3 attempts");
    assert_eq!(row.last_error.as_deref(), Some("HTTP 503"));
}

#[tokio::test]
async fn a_slow_answer_is_resent_with_the_same_key_and_processed_once() {
    let (app, sim) = with_buli2(false, |s| s.outbox.timeout = Duration::from_secs(1)).await;
    fault(
        &app,
        &sim,
        json!({ "mode": "slow", "requests": 1, "delay_ms": 1_500 }),
    )
    .await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    delivery_state(&app, &vid, "sent", 20).await;
    let row = outbox_row(&app, &vid).await;
    let got = sim.deliveries().await.unwrap();
    assert_eq!(got.by_key.len(), 1);
    assert_eq!(
        got.by_key[&row.id].count, 2,
        "the retry carried the same key"
    );
}

async fn event_count(app: &TestApp, token: &str, path: &str) -> usize {
    app.get(token, path)
        .await
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .len()
}

async fn post_callback(
    app: &TestApp,
    body: &[u8],
    ts: Option<i64>,
    sig: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/internal/buli2/callbacks"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(ts) = ts {
        req = req.header("X-Buli2-Timestamp", ts.to_string());
    }
    if let Some(sig) = sig {
        req = req.header("X-Buli2-Signature", sig);
    }
    req.send().await.unwrap()
}

async fn signed(app: &TestApp, body: &Value) -> reqwest::Response {
    let bytes = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp();
    post_callback(
        app,
        &bytes,
        Some(ts),
        Some(sign(SECRET.as_bytes(), ts, &bytes)),
    )
    .await
}

#[tokio::test]
async fn callbacks_are_verified_and_a_replay_has_no_second_effect() {
    let (app, _sim) = with_buli2(false, |_| {}).await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    delivery_state(&app, &vid, "sent", 20).await;
    let rita = app.token("rita", Role::Reviewer);
    let path = format!("/v1/verifications/{vid}/events");
    let body = json!({ "event_id": "evt-1", "verification_id": vid, "outcome": "accepted",
                       "loan_reference": "LN-0042" });
    let bytes = body.to_string().into_bytes();
    let now = chrono::Utc::now().timestamp();
    let before = event_count(&app, &rita, &path).await;

    // Refused: no headers, a wrong signature, a signature over other bytes, a stale or
    // future timestamp — all 401, nothing recorded.
    assert_error(
        post_callback(&app, &bytes, None, None).await,
        401,
        "unauthorized",
    )
    .await;
    let wrong = sign(b"another-secret-entirely", now, &bytes);
    assert_error(
        post_callback(&app, &bytes, Some(now), Some(wrong)).await,
        401,
        "unauthorized",
    )
    .await;
    let other = sign(SECRET.as_bytes(), now, b"{}");
    assert_error(
        post_callback(&app, &bytes, Some(now), Some(other)).await,
        401,
        "unauthorized",
    )
    .await;
    for ts in [now - 301, now + 301] {
        let sig = sign(SECRET.as_bytes(), ts, &bytes);
        assert_error(
            post_callback(&app, &bytes, Some(ts), Some(sig)).await,
            401,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(event_count(&app, &rita, &path).await, before);

    // Accepted once; the replay answers 200 and changes nothing.
    let r = signed(&app, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "applied");
    let v = delivery_state(&app, &vid, "acknowledged", 5).await;
    assert_eq!(v["delivery_state"], "acknowledged");
    let after = event_count(&app, &rita, &path).await;
    assert_eq!(after, before + 1);
    let r = signed(&app, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "replayed");
    assert_eq!(event_count(&app, &rita, &path).await, after);

    // Junk and schema-invalid bodies (signed correctly) are 422; unknown cases 404.
    let junk = b"not json at all".to_vec();
    let sig = sign(SECRET.as_bytes(), now, &junk);
    assert_error(
        post_callback(&app, &junk, Some(now), Some(sig)).await,
        422,
        "invalid_callback",
    )
    .await;
    for bad in [
        json!({ "event_id": "e2", "verification_id": vid, "outcome": "maybe" }),
        json!({ "event_id": "e3", "outcome": "accepted" }),
        json!({ "event_id": "", "verification_id": vid, "outcome": "accepted" }),
        json!({ "event_id": "e4", "verification_id": "v", "outcome": "accepted" }),
    ] {
        assert_error(signed(&app, &bad).await, 422, "invalid_callback").await;
    }
    let unknown = json!({ "event_id": "e5", "verification_id": "00000000-0000-7000-8000-000000000000",
                          "outcome": "accepted" });
    assert_error(signed(&app, &unknown).await, 404, "not_found").await;
}

#[tokio::test]
async fn dropped_connections_are_retried_within_the_round() {
    let (app, sim) = with_buli2(false, |_| {}).await;
    fault(&app, &sim, json!({ "mode": "drop", "requests": 2 })).await;
    let vid = app.approved_case(&app.token("alice", Role::User)).await;
    delivery_state(&app, &vid, "sent", 20).await;
    let row = outbox_row(&app, &vid).await;
    assert_eq!(
        (row.rounds, row.attempts),
        (0, 3),
        "two drops, then delivered"
    );
    assert_eq!(sim.deliveries().await.unwrap().by_key[&row.id].count, 1);
}

#[tokio::test]
async fn throttling_and_request_timeouts_are_retried_not_dead_lettered() {
    for status in [429, 408] {
        let (app, sim) = with_buli2(false, |_| {}).await;
        fault(
            &app,
            &sim,
            json!({ "mode": "status", "status": status, "requests": 2 }),
        )
        .await;
        let vid = app.approved_case(&app.token("alice", Role::User)).await;
        delivery_state(&app, &vid, "sent", 20).await;
        let row = outbox_row(&app, &vid).await;
        assert_eq!(
            (row.rounds, row.attempts),
            (0, 3),
            "HTTP {status}: retried in the round"
        );
    }
}
