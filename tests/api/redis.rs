//! With `FILOT_REDIS_URL`: a Redis outage pauses processing without losing or refusing
//! uploads, readiness says why, and rate limits are shared by every node using the Redis.

use std::time::Duration;

use filot::http::auth::Role;

use crate::{
    helpers::{spawn_app_with, wait_final},
    support::redis::RedisServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_pauses_processing_and_loses_nothing() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.ocr.devices = vec!["cpu".into()];
        s.redis_url = Some(filot::config::Secret::new(url));
    })
    .await;
    let alice = app.token("alice", Role::User);
    let ready = app
        .wait_for(&alice, "/health/ready", 10, |b| b["status"] == "ready")
        .await;
    assert!(ready["checks"].to_string().contains("redis: ok"), "{ready}");

    redis.stop();
    let ready = app
        .wait_for(&alice, "/health/ready", 10, |b| b["status"] == "degraded")
        .await;
    assert!(
        ready["checks"]
            .to_string()
            .contains("redis: unavailable; processing is paused"),
        "{ready}"
    );
    // Uploads are accepted (the database is the truth) and wait.
    let id = app.upload_ktp(&alice).await;
    app.two_rounds_of(|p| &p.ocr).await;
    let doc = app.document(&alice, &id).await;
    assert_eq!(doc["status"], "queued", "no lease, no processing: {doc}");

    // Redis returns (empty: it kept nothing): processing resumes by itself.
    redis.restart();
    let doc = wait_final(&app, &alice, &id).await;
    assert_eq!(doc["status"], "extracted", "{doc}");
    app.wait_for(&alice, "/health/ready", 10, |b| b["status"] == "ready")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_by_nodes_on_one_redis() {
    let redis = RedisServer::start();
    let node = |name: &'static str| {
        let url = redis.url();
        move |s: &mut filot::config::Settings| {
            s.redis_url = Some(filot::config::Secret::new(url));
            s.node.name = format!("{name}@localhost");
            s.limits.uploads_per_user_per_minute = 3;
        }
    };
    let a = spawn_app_with(node("a")).await;
    let b = spawn_app_with(node("b")).await;
    let (ta, tb) = (a.token("alice", Role::User), b.token("alice", Role::User));
    a.upload_ktp(&ta).await;
    b.upload_ktp(&tb).await;
    a.upload_ktp(&ta).await;
    // Alice's fourth upload within the minute, on either node, is one too many.
    let resp = b
        .upload(
            &tb,
            "KTP",
            crate::helpers::fixture("ktp_003.jpg"),
            "k.jpg",
            None,
        )
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // Someone else is not affected.
    let bob = b.token("bob", Role::User);
    b.upload_ktp(&bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_while_a_long_run_works() {
    let redis = RedisServer::start();
    let a = spawn_app_with(|s| {
        s.ocr.devices = vec!["cpu".into()];
        s.redis_url = Some(filot::config::Secret::new(redis.url()));
        s.redis.lease_ttl = Duration::from_secs(3);
        s.node.name = "a@localhost".into();
    })
    .await;
    // Node B shares the database and Redis and only watches: its reaper requeues any run
    // whose lease it finds expired.
    let db_url = a.state.settings.effective_database_url();
    let b = spawn_app_with(|s| {
        s.database_url = filot::config::DatabaseUrl::new(db_url);
        s.redis_url = Some(filot::config::Secret::new(redis.url()));
        s.redis.lease_ttl = Duration::from_secs(3);
        s.node.name = "b@localhost".into();
        s.ocr.reaper_poll_interval = Duration::from_millis(100);
    })
    .await;
    // A's first run takes well over the lease's TTL (four times it). The TTL leaves a renewal
    // (every third of it) a second of slack on a CI machine busy with other tests; at 600 ms
    // a starved renewal task once let B take the run back.
    let faults = a.state.documents.context().ocr_faults.clone();
    faults.on_call(1, filot::testing::Fault::Slow(12_000));
    let alice = a.token("alice", Role::User);
    let id = a.upload_ktp(&alice).await;
    let doc = wait_final(&a, &alice, &id).await;
    assert_eq!(doc["status"], "extracted", "{doc}");
    let kinds = a.event_kinds(&id).await;
    assert_eq!(
        kinds,
        ["uploaded", "queued", "processing", "extracted"],
        "renewed all along: B never took the run back"
    );
    drop(b);
}
