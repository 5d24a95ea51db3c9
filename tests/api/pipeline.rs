//! Uploads go through the real OCR model: queued → processing → extracted | failed.

use filot::{http::auth::Role, store::documents};

use crate::helpers::{fixture, spawn_app_with, wait_final};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_read_checked_and_shown_masked_to_its_owner() {
    let app = spawn_app_with(|s| s.ocr.devices = vec!["cpu".into()]).await;
    let alice = app.token("alice", Role::User);
    let reviewer = app.token("rita", Role::Reviewer);
    let id = app.upload_ktp(&alice).await;
    let want: serde_json::Value = serde_json::from_slice(&fixture("ktp_003.json")).unwrap();

    let doc = wait_final(&app, &alice, &id).await;
    assert_eq!(doc["status"], "extracted", "{doc}");
    let nik = want["nik"].as_str().unwrap();
    assert_eq!(
        doc["fields"]["nik"],
        format!("{}••••••••{}", &nik[..4], &nik[12..]),
        "owner sees the NIK masked"
    );
    assert_eq!(doc["fields"]["name"], want["name"]);
    assert_eq!(doc["fields"]["birth_date"], want["birth_date"]);
    assert!(doc["ocr_ms"].as_u64().is_some(), "OCR timing is recorded");
    // …and where it went, stage by stage (what `filot bench-ocr --concurrency` reports).
    let metrics = app.metrics_text().await;
    for stage in [
        "decode", "find", "det", "post", "orient", "crops", "rec", "wait",
    ] {
        assert!(
            metrics.contains(&format!("filot_ocr_stage_ms_count{{stage=\"{stage}\"}}")),
            "{stage}"
        );
    }
    assert!(
        doc.get("issues").is_none() && doc.get("confidence").is_none(),
        "what the checks found is not shown to the owner: {doc}"
    );

    let full: serde_json::Value = app
        .get(&reviewer, &format!("/v1/documents/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        full["fields"]["nik"], want["nik"],
        "reviewers see the full NIK"
    );
    assert_eq!(full["issues"], serde_json::json!([]));
    assert!(full["confidence"]["nik"].as_f64().unwrap() > 0.5);

    // Reviewers see what was read line by line, where it lies in the photo; owners do not.
    let reading: serde_json::Value = app
        .get(&reviewer, &format!("/v1/documents/{id}/reading"))
        .await
        .json()
        .await
        .unwrap();
    let lines = reading["lines"].as_array().unwrap();
    let nik_line = lines
        .iter()
        .find(|l| l["text"].as_str().unwrap().contains(nik))
        .unwrap_or_else(|| panic!("the NIK's line: {reading}"));
    let img = image::load_from_memory(&fixture("ktp_003.jpg")).unwrap();
    for corner in nik_line["quad"].as_array().unwrap() {
        let (x, y) = (corner[0].as_f64().unwrap(), corner[1].as_f64().unwrap());
        assert!(
            (0.0..=img.width() as f64).contains(&x) && (0.0..=img.height() as f64).contains(&y),
            "corners in the photo: {nik_line}"
        );
    }
    let resp = app
        .get(&alice, &format!("/v1/documents/{id}/reading"))
        .await;
    assert_eq!(resp.status(), 403);

    // Personal fields are sealed at rest: the NIK is not in the database in the clear.
    let record = documents::get(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!record.fields.unwrap().sealed.contains(nik));
    let kinds = app.event_kinds(&id).await;
    assert_eq!(kinds, ["uploaded", "queued", "processing", "extracted"]);

    // Erasure wipes the extracted fields too.
    app.delete(&alice, &format!("/v1/documents/{id}")).await;
    let gone: serde_json::Value = app
        .get(&reviewer, &format!("/v1/documents/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(gone["fields"].is_null(), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_without_a_page_image_fails_with_a_reason() {
    let app = spawn_app_with(|s| s.ocr.devices = vec!["cpu".into()]).await;
    let alice = app.token("alice", Role::User);
    // A PDF with a text layer but no page image: accepted at intake, nothing for OCR to read.
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        .to_vec();
    let resp = app.upload(&alice, "KTP", pdf, "text.pdf", None).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = wait_final(&app, &alice, &id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["failure_reason"], "ocr_unreadable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_left_processing_by_a_stopped_node_is_finished_after_restart() {
    // First life: no OCR worker; the document is taken to `processing` and the node stops.
    let app = spawn_app_with(|s| s.ocr.devices = vec![]).await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    app.claim(&id).await;
    let mut settings = (*app.state.settings).clone();
    let dir = app.stop().await;

    // Second life with a worker: the interrupted document is read to the end.
    settings.ocr.devices = vec!["cpu".into()];
    let app = crate::helpers::spawn_in(dir, settings).await;
    let alice = app.token("alice", Role::User);
    let doc = wait_final(&app, &alice, &id).await;
    assert_eq!(doc["status"], "extracted", "{doc}");
    let kinds = app.event_kinds(&id).await;
    assert_eq!(
        kinds,
        [
            "uploaded",
            "queued",
            "processing",
            "requeued",
            "processing",
            "extracted"
        ]
    );
}

/// Uploads `bytes` as a KTP JPEG and waits for the document to settle.
async fn settle_upload(
    app: &crate::helpers::TestApp,
    token: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    let resp = app.upload(token, "KTP", bytes, "photo.jpg", None).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_final(app, token, &id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sideways_photo_is_read_and_a_photo_with_no_card_asks_for_a_retake() {
    let app = spawn_app_with(|s| s.ocr.devices = vec!["cpu".into()]).await;
    let alice = app.token("alice", Role::User);

    // A hurried phone photo, the card turned a quarter turn and small in the frame.
    let doc = settle_upload(&app, &alice, fixture("wild_ktp_016.jpg")).await;
    let want: serde_json::Value = serde_json::from_slice(&fixture("wild_ktp_016.json")).unwrap();
    assert_eq!(doc["status"], "extracted", "{doc}");
    assert_eq!(doc["fields"]["birth_date"], want["birth_date"]);
    assert_eq!(doc["orientation"], 90, "{doc}");
    let quad = doc["card_quad"].as_array().expect("the card's corners");
    assert_eq!(quad.len(), 4);

    // A photo of a table top: nothing to send to review, and the reason tells the app to ask
    // for a new photo at once.
    let table = image::RgbImage::from_fn(960, 720, |x, y| {
        let grain = ((x * 7 + y * 13) % 17) as u8;
        image::Rgb([90 + grain, 80 + grain, 70 + grain])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&table)
        .unwrap();
    let doc = settle_upload(&app, &alice, jpeg).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["failure_reason"], "no_card_found", "{doc}");
    assert!(doc["fields"].is_null(), "{doc}");
}
