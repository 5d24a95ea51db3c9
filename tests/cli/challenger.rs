//! Challenger models on live traffic, on the real binary with the real model: a challenger
//! (other detector parameters, the recogniser's weights loaded from a file named by its
//! checksum) reads every sampled document after the champion, without counting as a champion
//! read; the admin's comparison counts documents, per-field agreement and both latencies; a
//! reviewer's correction says which engine had the field right; erasure forgets the
//! document's comparison. Weights that do not match their checksum stop the start.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use crate::harness::{Api, counter, filot, serve_with, token};

/// The comparison once `n` documents are compared.
async fn compared(api: &Api, admin: &str, n: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let c = api.get(admin, "/v1/admin/ocr/comparison").await;
        if c["documents_compared"] == n {
            return c;
        }
        assert!(Instant::now() < deadline, "never {n} compared: {c}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn status_of(api: &Api, token: &str, id: &str, done: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = api.get(token, id).await;
        let status = v["status"].as_str().or(v["state"].as_str()).unwrap_or("");
        if done.contains(&status) {
            return v;
        }
        assert!(status != "failed", "{id} failed: {v}");
        assert!(Instant::now() < deadline, "{id} stuck: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_reads_sampled_documents_after_the_champion_and_reviewers_say_who_was_right() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in weights, exported: the challenger's recogniser loads them from the file.
    let out = filot(dir.path())
        .args(["export-weights", "weights"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let (rec_sha, rec_path) = listing
        .lines()
        .find_map(|l| l.split_once("  ").filter(|(_, p)| p.ends_with("rec.bpk")))
        .unwrap_or_else(|| panic!("rec.bpk listed: {listing}"));
    let rec_path = dir.path().join(rec_path).display().to_string();

    // Weights that are not what their checksum says stop the start, naming the setting.
    let wrong = "0".repeat(64);
    let mut child = filot(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FILOT_OCR__CHALLENGER__SHARE_PERCENT", "100")
        .env("FILOT_OCR__CHALLENGER__REC_WEIGHTS", &rec_path)
        .env("FILOT_OCR__CHALLENGER__REC_WEIGHTS_SHA256", &wrong)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "started with wrong weights");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("ocr.challenger") && stderr.contains("SHA-256"),
        "{stderr}"
    );

    let server = serve_with(
        dir.path(),
        &[
            ("FILOT_OCR__PARAMS__THREADS", "2"),
            ("FILOT_OCR__CHALLENGER__SHARE_PERCENT", "100"),
            ("FILOT_OCR__CHALLENGER__PARAMS__DET_MIN_SIDE", "640"),
            ("FILOT_OCR__CHALLENGER__REC_WEIGHTS", &rec_path),
            ("FILOT_OCR__CHALLENGER__REC_WEIGHTS_SHA256", rec_sha),
            ("FILOT_WORKFLOW__FOUR_EYES", "off"),
        ],
    );
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (alice, bob, rita, ada) = (
        token(dir.path(), "alice", "user"),
        token(dir.path(), "bob", "user"),
        token(dir.path(), "rita", "reviewer"),
        token(dir.path(), "ada", "admin"),
    );
    let empty = api.get(&ada, "/v1/admin/ocr/comparison").await;
    assert_eq!(empty["documents_compared"], 0, "{empty}");
    assert_eq!(empty["share_percent"], 100);
    let refused = api
        .client
        .get(format!("{}/v1/admin/ocr/comparison", api.base))
        .bearer_auth(&rita)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "admins only");

    // Two accounts upload the same card: the champion reads each once, then the challenger.
    let alices = api.upload(&alice, "KTP", "ktp_003.jpg").await;
    let bobs = api.upload(&bob, "KTP", "ktp_003.jpg").await;
    for (owner, id) in [(&alice, &alices), (&bob, &bobs)] {
        status_of(&api, owner, &format!("/v1/documents/{id}"), &["extracted"]).await;
    }
    let c = compared(&api, &ada, 2).await;
    assert_eq!(c["documents_pending"], 0, "{c}");
    let nik = &c["fields"]["nik"];
    let agree = nik["agree"].as_i64().unwrap();
    assert_eq!(agree + nik["disagree"].as_i64().unwrap(), 2, "{c}");
    assert!(
        agree == 0 || agree == 2,
        "the same file reads the same: {c}"
    );
    assert_eq!(nik["reviewed"], 0);
    assert!(c["latency_ms"]["champion"].as_i64().unwrap() > 0, "{c}");
    assert!(c["latency_ms"]["challenger"].as_i64().unwrap() > 0, "{c}");
    let metrics = api.metrics().await;
    let series = |name: &str| counter(&metrics, name);
    assert_eq!(
        series("filot_ocr_success_count"),
        2.0,
        "champion reads only"
    );
    assert_eq!(series("filot_ocr_challenger_count{outcome=\"read\"}"), 2.0);

    // Bob's case waits for a person (Alice used the NIK first); the reviewer corrects the NIK
    // to what the champion read, and the name to what neither engine read.
    let alice_case = api.start(&alice, &alices, None).await;
    let path = |id: &str| format!("/v1/verifications/{id}");
    status_of(
        &api,
        &rita,
        &path(&alice_case),
        &["auto_approved", "pending_manual_review", "auto_rejected"],
    )
    .await;
    let bob_case = api.start(&bob, &bobs, None).await;
    status_of(&api, &rita, &path(&bob_case), &["pending_manual_review"]).await;
    let read = api.get(&rita, &format!("/v1/documents/{bobs}")).await;
    let champion_nik = read["fields"]["nik"].as_str().unwrap().to_string();
    let decision = serde_json::json!({
        "signal_id": "decide-1",
        "decision": "approve",
        "reason": "checked against the card",
        "corrected_fields": { "nik": champion_nik, "name": "SESEORANG LAIN" },
    });
    api.post(
        &rita,
        &format!("/v1/verifications/{bob_case}/signals/review-decision"),
        decision,
    )
    .await;
    let c = api.get(&ada, "/v1/admin/ocr/comparison").await;
    let nik = &c["fields"]["nik"];
    assert_eq!(nik["reviewed"], 1, "{c}");
    assert_eq!(nik["champion_right"], 1, "{c}");
    assert_eq!(
        nik["challenger_right"].as_i64().unwrap(),
        agree / 2,
        "right where it agreed with the champion: {c}"
    );
    let name = &c["fields"]["name"];
    assert_eq!(name["reviewed"], 1, "{c}");
    assert_eq!(
        (&name["champion_right"], &name["challenger_right"]),
        (&0.into(), &0.into())
    );

    // Erasing a document forgets its comparison.
    api.erase(&bob, &bobs).await;
    let c = api.get(&ada, "/v1/admin/ocr/comparison").await;
    assert_eq!(c["documents_compared"], 1, "{c}");
    assert_eq!(c["fields"]["nik"]["reviewed"], 0, "{c}");
    server.terminate();
}
