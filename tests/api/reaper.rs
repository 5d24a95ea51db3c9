//! Supervision that heals: hung, crashing and failing OCR runs (the test-only fault-injection
//! backend) are stopped, their workers restarted on reloaded models, their documents requeued
//! or failed for good; a pool that keeps failing is left down without taking the node with it.

use std::time::Duration;

use filot::{
    config::Settings,
    http::auth::Role,
    store::documents::{self, DocumentEvent},
    testing::Fault,
};

use crate::helpers::{TestApp, spawn_app_with, wait_final};

/// One CPU worker, a short deadline and a fast reaper.
fn healing(s: &mut Settings, deadline_secs: u64, max_attempts: u32) {
    s.ocr.devices = vec!["cpu".into()];
    s.ocr.job_deadline = Duration::from_secs(deadline_secs);
    s.ocr.max_attempts = max_attempts;
    s.ocr.reaper_poll_interval = Duration::from_millis(100);
}

async fn events(app: &TestApp, id: &str) -> Vec<DocumentEvent> {
    documents::events(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap()
}

/// `kind` or `kind:reason` for each event.
fn trail(events: &[DocumentEvent]) -> Vec<String> {
    events
        .iter()
        .map(
            |e| match e.detail.as_ref().and_then(|d| d["reason"].as_str()) {
                Some(reason) => format!("{}:{reason}", e.kind),
                None => e.kind.clone(),
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_run_is_reaped_and_the_document_read_on_reloaded_models() {
    // A deadline generous enough for a normal run, model reload included, on a CI machine
    // that is building or testing something else at the same time (15 s was not, and once
    // neither was 40 s, with the whole API suite reading cards on two cores).
    let app = spawn_app_with(|s| healing(s, 70, 3)).await;
    let faults = app.state.documents.context().ocr_faults.clone();
    // The first run hangs inside the model call, holding the loaded models' lock: the retry
    // can only succeed on models loaded anew.
    faults.on_call(1, Fault::Hang);
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;

    let doc = wait_final(&app, &alice, &id).await;
    faults.release();
    assert_eq!(doc["status"], "extracted", "{doc}");
    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events),
        [
            "uploaded",
            "queued",
            "processing",
            "requeued:ocr_timeout",
            "processing",
            "extracted"
        ]
    );
    assert_eq!(events[3].principal, "system:reaper");
    assert_eq!(events[2].detail.as_ref().unwrap()["attempt"], 1);
    assert_eq!(events[4].detail.as_ref().unwrap()["attempt"], 2);
    let metrics = app.metrics_text().await;
    // (One recorder per test process: other tests count too, so only presence is checked.)
    assert!(
        metrics.contains("filot_reaper_requeue_count{reason=\"ocr_timeout\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("filot_actor_restart_count{kind=\"ocr_worker\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_hangs_every_time_fails_with_ocr_timeout_after_its_last_attempt() {
    let app = spawn_app_with(|s| healing(s, 1, 2)).await;
    let faults = app.state.documents.context().ocr_faults.clone();
    faults.on_call(1, Fault::Hang);
    faults.on_call(2, Fault::Hang);
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;

    let doc = wait_final(&app, &alice, &id).await;
    faults.release();
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["failure_reason"], "ocr_timeout");
    assert_eq!(
        trail(&events(&app, &id).await),
        [
            "uploaded",
            "queued",
            "processing",
            "requeued:ocr_timeout",
            "processing",
            "failed:ocr_timeout"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_and_a_model_error_are_retried_and_a_slow_run_still_finishes() {
    let app = spawn_app_with(|s| healing(s, 60, 3)).await;
    let faults = app.state.documents.context().ocr_faults.clone();
    faults.on_call(1, Fault::Panic);
    faults.on_call(2, Fault::Error);
    faults.on_call(3, Fault::Slow(300));
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;

    let doc = wait_final(&app, &alice, &id).await;
    assert_eq!(doc["status"], "extracted", "{doc}");
    assert_eq!(
        trail(&events(&app, &id).await),
        [
            "uploaded",
            "queued",
            "processing",
            "requeued:worker_crashed",
            "processing",
            "requeued:ocr_error",
            "processing",
            "extracted"
        ]
    );
    assert_eq!(faults.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_crashing_is_given_up_and_the_others_carry_on() {
    let app = spawn_app_with(|s| {
        healing(s, 60, 3);
        s.ocr.devices = vec!["cpu".into(), "cpu".into()];
        // A worker's first failure is restarted, its second gives it up.
        s.ocr.max_restarts = 1;
    })
    .await;
    let faults = app.state.documents.context().ocr_faults.clone();
    faults.on_worker(1, Fault::Panic);
    let alice = app.token("alice", Role::User);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.upload_ktp(&alice).await);
    }
    for id in &ids {
        let doc = wait_final(&app, &alice, id).await;
        assert_eq!(doc["status"], "extracted", "{doc}");
    }
    // Worker 1 crashed at most twice (then it was given up); worker 0 read everything.
    let crashes: usize = futures_util::future::join_all(ids.iter().map(|id| events(&app, id)))
        .await
        .iter()
        .flat_map(|e| trail(e))
        .filter(|k| k == "requeued:worker_crashed")
        .count();
    assert!((1..=2).contains(&crashes), "{crashes} crashes");
    let ready = app
        .wait_for(&alice, "/health/ready", 10, |b| b["status"] == "ready")
        .await;
    assert!(ready["checks"].to_string().contains("ocr: ok"), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_keeps_crashing_is_left_down_and_uploads_are_still_accepted() {
    let app = spawn_app_with(|s| {
        healing(s, 60, 3);
        // The only worker's first failure is restarted; its second gives it up, which leaves
        // the pool without workers: it escalates to the root, which restarts it once and then
        // leaves it down.
        s.ocr.max_restarts = 1;
    })
    .await;
    let faults = app.state.documents.context().ocr_faults.clone();
    for n in 1..=20 {
        faults.on_call(n, Fault::Panic);
    }
    let alice = app.token("alice", Role::User);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.upload_ktp(&alice).await);
    }
    let ready = app
        .wait_for(&alice, "/health/ready", 90, |b| b["status"] == "degraded")
        .await;
    assert!(
        ready["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("ocr: stopped")),
        "{ready}"
    );
    // The node still takes uploads; nothing is left `processing` by the crashed workers.
    let later = app.upload_ktp(&alice).await;
    ids.push(later);
    for id in &ids {
        let doc = app.document(&alice, id).await;
        let status = doc["status"].as_str().unwrap();
        assert!(
            status == "queued" || (status == "failed" && doc["failure_reason"] == "ocr_crashed"),
            "{doc}"
        );
    }
}
