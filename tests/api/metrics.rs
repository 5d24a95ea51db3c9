//! `GET /metrics` after an end-to-end run (real OCR, a decision, its BULI2 delivery) shows the
//! whole catalogue, with bounded labels and no personal data.

use std::time::Duration;

use filot::{
    buli2::sim::{self, SimConfig},
    http::auth::Role,
};

use crate::helpers::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_catalogue_after_an_end_to_end_run() {
    let secret = "metrics-test-shared-secret";
    let buli2 = sim::start(
        "127.0.0.1:0",
        SimConfig {
            secret: secret.as_bytes().to_vec(),
            callback_url: None,
            callback_delay: Duration::from_millis(10),
        },
    )
    .await
    .unwrap();
    let app = spawn_app_with(|s| {
        s.ocr.devices = vec!["cpu".into()];
        s.buli2_url = Some(buli2.url());
        s.buli2_secret = Some(filot::config::Secret::new(secret));
        s.outbox.poll_ms = 100;
    })
    .await;
    let alice = app.token("alice", Role::User);
    let ktp = app.upload_id(&alice, "KTP", "ktp_007.jpg").await;
    let vid = app.start_verification(&alice, &ktp, None).await;
    app.wait_for(&alice, &format!("/v1/verifications/{vid}"), 300, |v| {
        v["delivery_state"] == "sent"
    })
    .await;

    let text = app.metrics_text().await;
    for name in [
        "filot_queue_length",
        "filot_gpu_active_jobs",
        "filot_gpu_processing_time_ms",
        "filot_verification_latency_ms",
        "filot_buli2_retry_count",
        "filot_ocr_success_count",
        "filot_ocr_failure_count",
        "filot_decision_count",
        "filot_buli2_forward_count",
        "filot_gpu_fallback_count",
        "filot_reaper_requeue_count",
        "filot_actor_restart_count",
        "filot_buli2_circuit_breaker_state",
        "filot_http_requests",
        "filot_http_latency_ms",
        "filot_leases_available",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(
        text.contains(r#"filot_decision_count{outcome="auto_rejected"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"filot_buli2_forward_count 1"#), "{text}");
    assert!(text.contains(r#"route="/v1/verifications/:id""#), "{text}");
    assert!(
        !text.contains(&vid) && !text.contains(&ktp),
        "no ids as label values"
    );
}
