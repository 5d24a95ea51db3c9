//! One correlation id from the upload to BULI2's delivery, on the binary's own JSON logs, with
//! the service restarted between the stages: the id is stored with the document and the
//! verification, so every later stage (the OCR run, the workflow's transitions, the outbox's
//! delivery) logs it, and BULI2 receives it as `X-Correlation-Id` and a W3C `traceparent`.

use std::time::{Duration, Instant};

use crate::harness::{Api, serve_with, token};

const ID: &str = "trace-abc12345";
const SECRET: &str = "correlation-test-buli2-secret";

/// The log lines of a run that carry `ID` and say `message`.
fn lines_with<'a>(log: &'a str, message: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(ID) && l.contains(message))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_correlation_id_from_upload_to_buli2_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = crate::support::buli2_sim(SECRET).await;
    let client = reqwest::Client::new();

    // 1. The upload, on a node that reads nothing.
    let first = serve_with(dir.path(), &[("FILOT_OCR__DEVICES", "[]")]);
    let alice = token(dir.path(), "alice", "user");
    let rita = token(dir.path(), "rita", "reviewer");
    let form = reqwest::multipart::Form::new().text("type", "KTP").part(
        "file",
        reqwest::multipart::Part::bytes(crate::support::fixture("ktp_003.jpg"))
            .file_name("ktp.jpg"),
    );
    let resp = client
        .post(format!("{}/v1/documents", first.base))
        .bearer_auth(&alice)
        .header("X-Correlation-Id", ID)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-correlation-id"], ID);
    let ktp = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log1 = first.terminate();

    // 2. After a restart: OCR reads it; the verification (started without the header)
    //    inherits the upload's id and is decided. BULI2 is not configured yet.
    let second = serve_with(dir.path(), &[("FILOT_WORKFLOW__POLL_INTERVAL", "100ms")]);
    let api = Api {
        client: client.clone(),
        base: second.base.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while api.get(&alice, &format!("/v1/documents/{ktp}")).await["status"] != "extracted" {
        assert!(Instant::now() < deadline, "the card was never read");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let vid = api.start(&alice, &ktp, None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = api.get(&rita, &format!("/v1/verifications/{vid}")).await;
        if v["state"] == "pending_manual_review" {
            let body =
                serde_json::json!({ "signal_id": "s1", "decision": "approve", "reason": "ok" });
            api.post(
                &rita,
                &format!("/v1/verifications/{vid}/signals/review-decision"),
                body,
            )
            .await;
        } else if v["outcome"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log2 = second.terminate();

    // 3. After another restart, with BULI2 configured: the decision is delivered.
    let third = serve_with(
        dir.path(),
        &[
            ("FILOT_OCR__DEVICES", "[]"),
            ("FILOT_BULI2_URL", &sim.url()),
            ("FILOT_BULI2_SECRET", SECRET),
            ("FILOT_OUTBOX__POLL_INTERVAL", "100ms"),
        ],
    );
    let api = Api {
        client: client.clone(),
        base: third.base.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get(&rita, &format!("/v1/verifications/{vid}")).await["delivery_state"] == "not_sent"
    {
        assert!(
            Instant::now() < deadline,
            "the decision was never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = sim.deliveries().await.unwrap();
    let log3 = third.terminate();

    let delivered = got.by_key.values().next().expect("one delivery");
    assert_eq!(delivered.correlation_id.as_deref(), Some(ID));
    let traceparent = delivered.traceparent.clone().expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[3]),
        (4, "00", "01"),
        "{traceparent}"
    );
    assert!(
        parts[1].len() == 32 && parts[2].len() == 16,
        "{traceparent}"
    );

    assert!(!lines_with(&log1, "request").is_empty(), "upload:\n{log1}");
    assert!(
        !lines_with(&log2, "OCR run started").is_empty(),
        "OCR:\n{log2}"
    );
    assert!(
        !lines_with(&log2, "document read").is_empty(),
        "OCR:\n{log2}"
    );
    assert!(
        !lines_with(&log2, "verification moved").is_empty(),
        "workflow:\n{log2}"
    );
    assert!(
        !lines_with(&log3, "delivered").is_empty(),
        "outbox:\n{log3}"
    );
}
