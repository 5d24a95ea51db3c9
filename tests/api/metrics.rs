//! `GET /metrics` after an end-to-end run (real OCR, a decision, its BULI2 delivery) shows the
//! whole catalogue, with bounded labels and no personal data.

use std::time::Duration;

use filot::http::auth::Role;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_catalogue_after_an_end_to_end_run() {
    let secret = "metrics-test-shared-secret";
    let buli2 = crate::support::buli2_sim(secret).await;
    let app = spawn_app_with(|s| {
        s.ocr.devices = vec!["cpu".into()];
        s.buli2_url = Some(buli2.url());
        s.buli2_secret = Some(filot::config::Secret::new(secret));
        s.outbox.poll_interval = Duration::from_millis(100);
    })
    .await;
    let alice = app.token("alice", Role::User);
    let ktp = app.upload_id(&alice, "KTP", "ktp_007.jpg").await;
    let vid = app.start_verification(&alice, &ktp, None).await;
    let rita = app.token("rita", Role::Reviewer);
    app.wait_for(&rita, &format!("/v1/verifications/{vid}"), 300, |v| {
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
    // One recorder serves every test in this binary: counts are at least this run's.
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert!(value(r#"filot_decision_count{outcome="auto_rejected"}"#) >= 1.0);
    assert!(value("filot_buli2_forward_count") >= 1.0);
    assert!(text.contains(r#"route="/v1/verifications/{id}""#), "{text}");
    assert!(
        !text.contains(&vid) && !text.contains(&ktp),
        "no ids as label values"
    );
}

/// The label values of `label` on `metric`'s series in a Prometheus text.
fn label_values<'a>(text: &'a str, metric: &str, label: &str) -> Vec<&'a str> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| l.split(&key).nth(1)?.split('"').next())
        .collect()
}

#[tokio::test]
async fn http_labels_stay_a_fixed_set_whatever_clients_send() {
    let app = spawn_app().await;
    for i in 0..60 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url(&format!("/made/up/{i}/path-{i}")))
            .send()
            .await
            .unwrap();
        let _ = app
            .client
            .get(app.url(&format!("/v1/x{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = app.metrics_text().await;
    let spec = app.spec().await;
    let mut routes: Vec<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    routes.extend(
        [
            "/openapi.json",
            "/docs",
            "/metrics",
            "/internal/buli2/callbacks",
            "/console",
            "/console/",
            "unmatched",
        ]
        .map(String::from),
    );
    for route in label_values(&text, "filot_http_requests", "route") {
        assert!(
            routes.iter().any(|r| r == route),
            "route label {route} is not a template"
        );
    }
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    for method in label_values(&text, "filot_http_requests", "method") {
        assert!(methods.contains(&method), "method label {method}");
    }
    assert!(text.contains(r#"method="other""#) && text.contains(r#"route="unmatched""#));
    assert!(
        !text.contains("BREW") && !text.contains("made"),
        "no invented label values"
    );
}

#[tokio::test]
async fn the_catalogue_exists_before_anything_happened() {
    let app = spawn_app().await;
    let text = app.metrics_text().await;
    for outcome in [
        "auto_approved",
        "auto_rejected",
        "manually_approved",
        "manually_rejected",
        "cancelled",
        "expired",
    ] {
        let decisions = format!(r#"filot_decision_count{{outcome="{outcome}"}}"#);
        let latency = format!(r#"filot_verification_latency_ms_count{{outcome="{outcome}"}}"#);
        assert!(text.contains(&decisions), "{decisions} missing:\n{text}");
        assert!(text.contains(&latency), "{latency} missing:\n{text}");
    }
}

#[tokio::test]
async fn metrics_can_need_a_token() {
    let token = "metrics-scrape-token-0123456789";
    let app = spawn_app_with(|s| {
        s.metrics.token = Some(filot::config::Secret::new(token));
    })
    .await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(resp, 401, "unauthorized").await;
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("wrong-token-of-some-length")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("filot_http_requests"));
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener() {
    let app = spawn_app_with(|s| s.metrics.listen = "127.0.0.1:0".into()).await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    let other = app.metrics_base.clone().expect("a metrics listener");
    let resp = app
        .client
        .get(format!("{other}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("filot_decision_count"));
    // That listener serves nothing else.
    let resp = app
        .client
        .get(format!("{other}/v1/documents"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
