//! Repeated documents and numbers used by more than one account, on the real binary (its own
//! metrics) with the real model: the same file uploaded twice by its owner is read once; the
//! same card verified under another account is flagged for a person, never approved on its
//! own, while its owner re-applying is not flagged; the database keeps no NIK or NPWP, not
//! even as a plain hash; erasing a document, or changing the OCR parameters, forgets what was
//! cached.

use std::time::{Duration, Instant};

use sha2::Digest;

use crate::{
    harness::{Api, counter, serve_with, token},
    support,
};

/// The document once `extracted` (or failed: the test fails saying so).
async fn extracted(api: &Api, token: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let doc = api.get(token, &format!("/v1/documents/{id}")).await;
        match doc["status"].as_str() {
            Some("extracted") => return doc,
            Some("failed") => panic!("{id} failed: {doc}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{id} not read: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The verification once checked (out of `awaiting_documents`), as a reviewer sees it.
async fn checked(api: &Api, reviewer: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = api.get(reviewer, &format!("/v1/verifications/{id}")).await;
        if v["state"] != "awaiting_documents" {
            return v;
        }
        assert!(Instant::now() < deadline, "{id} never checked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_files_are_read_once_and_numbers_reused_across_accounts_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &[("FILOT_OCR__PARAMS__THREADS", "2")]);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (alice, bob, rita) = (
        token(dir.path(), "alice", "user"),
        token(dir.path(), "bob", "user"),
        token(dir.path(), "rita", "reviewer"),
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&support::fixture("ktp_003.json")).unwrap();
    let npwp_truth: serde_json::Value =
        serde_json::from_slice(&support::fixture("npwp_000.json")).unwrap();

    // Alice's card is read by the model; the same file again is not read again.
    let first = api.upload_answer(&alice, "KTP", "ktp_003.jpg").await;
    assert_eq!(first["status"], "queued");
    let first_id = first["id"].as_str().unwrap();
    let read = extracted(&api, &alice, first_id).await;
    assert_eq!(read["ocr_source"], "model");
    let npwp = api.upload_answer(&alice, "NPWP", "npwp_000.jpg").await;
    let npwp_id = npwp["id"].as_str().unwrap();
    extracted(&api, &alice, npwp_id).await;

    let again = api.upload_answer(&alice, "KTP", "ktp_003.jpg").await;
    assert_eq!(again["status"], "extracted", "{again}");
    let again_id = again["id"].as_str().unwrap();
    let cached = api.get(&rita, &format!("/v1/documents/{again_id}")).await;
    assert_eq!(cached["ocr_source"], "cache");
    assert_eq!(cached["fields"]["nik"], truth["nik"]);
    let original = api.get(&rita, &format!("/v1/documents/{first_id}")).await;
    assert_eq!(cached["fields"], original["fields"]);
    let metrics = api.metrics().await;
    assert_eq!(
        counter(&metrics, "filot_ocr_success_count"),
        2.0,
        "KTP and NPWP, once each"
    );
    assert_eq!(counter(&metrics, "filot_ocr_cache_hit_count"), 1.0);

    // Alice applies with her KTP and NPWP.
    let alice_case = api.start(&alice, first_id, Some(npwp_id)).await;
    let alice_case_view = checked(&api, &rita, &alice_case).await;
    assert!(
        !reasons(&alice_case_view)
            .iter()
            .any(|r| r.ends_with("_used_by_other_account"))
    );

    // Bob uploads the same card: his case is flagged and waits for a person.
    let bobs = api.upload_answer(&bob, "KTP", "ktp_003.jpg").await;
    assert_eq!(
        bobs["status"], "queued",
        "another owner never gets Alice's reading"
    );
    let bobs_id = bobs["id"].as_str().unwrap();
    extracted(&api, &bob, bobs_id).await;
    let bob_case = api.start(&bob, bobs_id, None).await;
    let v = checked(&api, &rita, &bob_case).await;
    assert!(
        reasons(&v).contains(&"nik_used_by_other_account".to_string()),
        "{v}"
    );
    assert_ne!(v["state"], "auto_approved", "{v}");
    let collisions = v["identity_collisions"].as_array().unwrap();
    assert_eq!(collisions.len(), 1, "{v}");
    assert_eq!(collisions[0]["kind"], "nik");
    assert_eq!(collisions[0]["verification_id"], alice_case.as_str());
    // Bob sees neither the reason nor whose case it is.
    let own = api
        .get(&bob, &format!("/v1/verifications/{bob_case}"))
        .await;
    assert!(
        own.get("reasons").is_none() && own.get("identity_collisions").is_none(),
        "{own}"
    );

    // Alice re-applying with her own card (the cached reading) is not flagged.
    let alice_again = api.start(&alice, again_id, None).await;
    let v = checked(&api, &rita, &alice_again).await;
    assert!(
        !reasons(&v)
            .iter()
            .any(|r| r.ends_with("_used_by_other_account")),
        "{v}"
    );

    // No number is kept in the clear, or as a plain hash, anywhere in the database.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("filot.db")
        {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(stored.len() > 10_000);
    let nik = truth["nik"].as_str().unwrap();
    let npwp_digits: String = npwp_truth["npwp"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    for value in [nik, npwp_digits.as_str()] {
        let plain_hash = hex::encode(sha2::Sha256::digest(value.as_bytes()));
        for needle in [value.to_string(), plain_hash] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the database holds a number or its plain hash"
            );
        }
    }
    let ktp_hash = hex::encode(sha2::Sha256::digest(support::fixture("ktp_003.jpg")));
    assert!(
        !stored.windows(64).any(|w| w == ktp_hash.as_bytes()),
        "a plain file hash"
    );

    // Erasing the document a reading was kept for forgets it: the file is read again.
    api.erase(&alice, first_id).await;
    let after_erasure = api.upload_answer(&alice, "KTP", "ktp_003.jpg").await;
    assert_eq!(after_erasure["status"], "queued");
    let read_again = after_erasure["id"].as_str().unwrap();
    extracted(&api, &alice, read_again).await;
    server.terminate();

    // Other OCR parameters read differently: nothing read before is given out.
    let server = serve_with(
        dir.path(),
        &[
            ("FILOT_OCR__DEVICES", "[]"),
            ("FILOT_OCR__PARAMS__DET_MIN_SIDE", "640"),
        ],
    );
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let changed = api.upload_answer(&alice, "KTP", "ktp_003.jpg").await;
    assert_eq!(changed["status"], "queued", "{changed}");
    server.terminate();
}
