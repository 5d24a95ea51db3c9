use filot::http::auth::Role;

use crate::helpers::{assert_error, fixture, spawn_app, spawn_app_with};

async fn count_documents(app: &crate::helpers::TestApp) -> i64 {
    filot::store::documents::count(&app.state.db).await.unwrap()
}

fn blob_files(app: &crate::helpers::TestApp) -> usize {
    let root = app.dir.path().join("blobs");
    let mut n = 0;
    for entry in walk(&root) {
        if entry.extension().is_some_and(|e| e == "blob") {
            n += 1;
        }
    }
    n
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn accepted_upload_answers_202_queued_for_each_format() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    for (doc_type, file, mime) in [
        ("KTP", "ktp_003.jpg", "image/jpeg"),
        ("KTP", "ktp_001.png", "image/png"),
        ("KTP", "ktp_000.pdf", "application/pdf"),
        ("NPWP", "npwp_000.jpg", "image/jpeg"),
    ] {
        let resp = app
            .upload(&alice, doc_type, fixture(file), file, None)
            .await;
        assert_eq!(resp.status(), 202, "{file}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["type"], doc_type);
        assert_eq!(body["status"], "queued");
        assert!(body["created_at"].as_str().is_some());
        let id = body["id"].as_str().unwrap();
        let doc = app.document(&alice, id).await;
        assert_eq!(doc["status"], "queued");
        assert_eq!(doc["content_type"], mime, "{file}");
    }
}

#[tokio::test]
async fn a_scanned_pdf_is_shown_as_its_page_image_and_each_download_is_audited() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let pdf = fixture("ktp_000.pdf");
    let resp = app
        .upload(&alice, "KTP", pdf.clone(), "card.pdf", None)
        .await;
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = format!("/v1/documents/{id}/file");

    let original = app.get(&alice, &file).await;
    assert_eq!(original.headers()["content-type"], "application/pdf");
    assert_eq!(original.bytes().await.unwrap(), pdf);

    // The page form is the JPEG inside, whole, which a browser can show.
    let page = app.get(&alice, &format!("{file}?form=page")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "image/jpeg");
    let disposition = page.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.ends_with(&format!("{id}.jpg\"")),
        "{disposition}"
    );
    let jpeg = page.bytes().await.unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert!(img.width() > 400 && img.height() > 200);

    assert_error(
        app.get(&alice, &format!("{file}?form=thumbnail")).await,
        422,
        "validation_failed",
    )
    .await;
    let events = filot::store::documents::events(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap();
    let reads = events.iter().filter(|e| e.kind == "file_read").count();
    assert_eq!(reads, 2, "both downloads are in the audit trail");
}

#[tokio::test]
async fn files_over_the_limit_get_413_file_too_large() {
    let app = spawn_app_with(|s| {
        s.limits.max_file_bytes = 100_000;
        s.limits.max_request_bytes = 400_000;
    })
    .await;
    let alice = app.token("alice", Role::User);
    // 153 KB card against a 100 KB limit.
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert_error(resp, 413, "file_too_large").await;
    assert_eq!(count_documents(&app).await, 0);
}

#[tokio::test]
async fn whole_request_limit_holds_for_declared_and_streamed_bodies() {
    let app = spawn_app_with(|s| {
        s.limits.max_file_bytes = 100_000;
        s.limits.max_request_bytes = 120_000;
    })
    .await;
    let alice = app.token("alice", Role::User);
    let boundary = "XBOUNDARY";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nKTP\r\n")
            .into_bytes();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n").as_bytes());
    body.extend(std::iter::repeat_n(b'x', 200_000));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    // Declared Content-Length over the limit: refused before reading.
    let resp = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "request_too_large").await;

    // Chunked (no Content-Length): refused while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let resp = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let code = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code, 413, "{body}");
    assert!(
        ["file_too_large", "request_too_large"].contains(&body["error"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(count_documents(&app).await, 0);
}

#[tokio::test]
async fn content_is_sniffed_whatever_the_name_or_declared_type_says() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    for bytes in [
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
        b"#!/bin/sh\necho hi\n".to_vec(),
        b"<html><body>x</body></html>".to_vec(),
    ] {
        let resp = app.upload(&alice, "KTP", bytes, "card.jpg", None).await;
        assert_error(resp, 415, "unsupported_media_type").await;
    }
    // A real PNG declared as JPEG with a .pdf name is still a PNG.
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_001.png"), "card.pdf", None)
        .await;
    assert_eq!(resp.status(), 202);
    // A request whose Content-Type is not multipart at all.
    let resp = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn decompression_bombs_are_refused_from_the_header() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let resp = app
        .upload(
            &alice,
            "KTP",
            filot::media::bomb_png(60_000, 60_000),
            "bomb.png",
            None,
        )
        .await;
    let body = assert_error(resp, 422, "image_too_large").await;
    assert!(body["message"].as_str().unwrap().contains("file"));
    assert_eq!(count_documents(&app).await, 0);
}

#[tokio::test]
async fn a_bomb_inside_a_pdf_is_refused_at_upload() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    // A few hundred bytes of PDF whose page image declares 14,000 × 14,000 pixels.
    let bomb = filot::media::bomb_pdf(14_000, 14_000);
    let resp = app.upload(&alice, "KTP", bomb, "card.pdf", None).await;
    assert_error(resp, 422, "image_too_large").await;
    assert_eq!(count_documents(&app).await, 0);
    // A real scanned card in a PDF still goes through.
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_000.pdf"), "card.pdf", None)
        .await;
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn bad_form_fields_get_422_naming_the_field() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let send = |form: reqwest::multipart::Form| {
        app.client
            .post(app.url("/v1/documents"))
            .bearer_auth(&alice)
            .multipart(form)
            .send()
    };
    let file = || reqwest::multipart::Part::bytes(fixture("ktp_003.jpg")).file_name("k.jpg");

    let resp = app
        .upload(&alice, "SIM", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    let body = assert_error(resp, 422, "validation_failed").await;
    assert!(
        body["message"].as_str().unwrap().starts_with("type:"),
        "{body}"
    );

    let resp = send(reqwest::multipart::Form::new().part("file", file()))
        .await
        .unwrap();
    let body = assert_error(resp, 422, "validation_failed").await;
    assert!(
        body["message"].as_str().unwrap().starts_with("type:"),
        "{body}"
    );

    let resp = send(reqwest::multipart::Form::new().text("type", "KTP"))
        .await
        .unwrap();
    let body = assert_error(resp, 422, "validation_failed").await;
    assert!(
        body["message"].as_str().unwrap().starts_with("file:"),
        "{body}"
    );

    let resp = send(
        reqwest::multipart::Form::new()
            .text("type", "KTP")
            .part("file", file())
            .text("nik", "3201234567890001"),
    )
    .await
    .unwrap();
    let body = assert_error(resp, 422, "validation_failed").await;
    assert!(
        body["message"].as_str().unwrap().starts_with("nik:"),
        "{body}"
    );

    let resp = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header("content-type", "multipart/form-data; boundary=ZZZ")
        .body("--ZZZ\r\nthis is not a part header\r\n\r\n")
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "malformed_multipart").await;

    let resp = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header("content-type", "multipart/form-data")
        .body("whatever")
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "malformed_multipart").await;
    assert_eq!(count_documents(&app).await, 0);
}

#[tokio::test]
async fn idempotency_key_replays_the_same_answer_and_refuses_a_different_body() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let first: serde_json::Value = app
        .upload(
            &alice,
            "KTP",
            fixture("ktp_003.jpg"),
            "k.jpg",
            Some("key-1"),
        )
        .await
        .json()
        .await
        .unwrap();
    let again = app
        .upload(
            &alice,
            "KTP",
            fixture("ktp_003.jpg"),
            "renamed.jpg",
            Some("key-1"),
        )
        .await;
    assert_eq!(again.status(), 202);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(count_documents(&app).await, 1);

    let other = app
        .upload(
            &alice,
            "KTP",
            fixture("ktp_001.png"),
            "k.png",
            Some("key-1"),
        )
        .await;
    assert_error(other, 409, "idempotency_key_reused").await;
    // Keys are per user: bob's "key-1" is his own.
    let bob = app.token("bob", Role::User);
    let bobs: serde_json::Value = app
        .upload(&bob, "KTP", fixture("ktp_003.jpg"), "k.jpg", Some("key-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["id"], first["id"]);
    assert_eq!(count_documents(&app).await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_document() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        tasks.push(app.upload(
            &alice,
            "KTP",
            fixture("ktp_003.jpg"),
            "k.jpg",
            Some("same-key"),
        ));
    }
    let responses = futures_util::future::join_all(tasks).await;
    let mut ids = std::collections::HashSet::new();
    for resp in responses {
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = resp.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(count_documents(&app).await, 1);
    assert_eq!(blob_files(&app), 1, "losing racers leave no blob behind");
}

#[tokio::test]
async fn upload_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(|s| s.limits.uploads_per_user_per_minute = 2).await;
    let alice = app.token("alice", Role::User);
    for _ in 0..2 {
        assert_eq!(
            app.upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
                .await
                .status(),
            202
        );
    }
    let resp = app
        .upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
        .await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_error(resp, 429, "rate_limited").await;
}

#[tokio::test]
async fn upload_rate_limit_per_client_address() {
    let app = spawn_app_with(|s| s.limits.uploads_per_ip_per_minute = 2).await;
    for user in ["a1", "a2"] {
        let t = app.token(user, Role::User);
        assert_eq!(
            app.upload(&t, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
                .await
                .status(),
            202
        );
    }
    let t = app.token("a3", Role::User);
    assert_error(
        app.upload(&t, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
            .await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn failed_storage_leaves_no_temp_file_no_blob_and_no_row() {
    use std::sync::atomic::Ordering::SeqCst;
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let tmp = app.state.blobs.tmp_dir();

    app.state.blobs.faults.fail_before_fsync.store(true, SeqCst);
    assert_error(
        app.upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
            .await,
        503,
        "storage_unavailable",
    )
    .await;
    app.state
        .blobs
        .faults
        .fail_before_fsync
        .store(false, SeqCst);

    app.state
        .blobs
        .faults
        .fail_before_rename
        .store(true, SeqCst);
    assert_error(
        app.upload(&alice, "KTP", fixture("ktp_003.jpg"), "k.jpg", None)
            .await,
        503,
        "storage_unavailable",
    )
    .await;
    app.state
        .blobs
        .faults
        .fail_before_rename
        .store(false, SeqCst);

    app.state.db.faults.fail_next_insert.store(true, SeqCst);
    let resp = app
        .upload(
            &alice,
            "KTP",
            fixture("ktp_003.jpg"),
            "k.jpg",
            Some("k-fail"),
        )
        .await;
    assert_eq!(resp.status(), 503);

    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp directory is empty"
    );
    assert_eq!(blob_files(&app), 0, "no orphan blob");
    assert_eq!(count_documents(&app).await, 0, "no orphan row");
    // The key of a failed attempt is free: the retry succeeds.
    assert_eq!(
        app.upload(
            &alice,
            "KTP",
            fixture("ktp_003.jpg"),
            "k.jpg",
            Some("k-fail")
        )
        .await
        .status(),
        202
    );
    assert_eq!(blob_files(&app), 1);
}
