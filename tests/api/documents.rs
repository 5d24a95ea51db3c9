use filot::{http::auth::Role, kyc::DocumentId, store::documents};

use crate::helpers::{assert_error, fixture, spawn_app};

#[tokio::test]
async fn list_is_own_newest_first_and_paginated() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let bob = app.token("bob", Role::User);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.upload_ktp(&alice).await);
    }
    app.upload_ktp(&bob).await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/documents?limit=2&cursor={c}"),
            None => "/v1/documents?limit=2".into(),
        };
        let page: serde_json::Value = app.get(&alice, &path).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_error(
        app.get(&alice, "/v1/documents?limit=0").await,
        422,
        "validation_failed",
    )
    .await;
    assert_error(
        app.get(&alice, "/v1/documents?limit=1000").await,
        422,
        "validation_failed",
    )
    .await;
    assert_error(
        app.get(&alice, "/v1/documents?cursor=garbage").await,
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn file_download_returns_the_original_and_is_audited() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    let resp = app.get(&alice, &format!("/v1/documents/{id}/file")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        fixture("ktp_003.jpg").as_slice()
    );
    let events = documents::events(&app.state.db, &id.parse::<DocumentId>().unwrap())
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["uploaded", "queued", "file_read"]);
    assert_eq!(events.last().unwrap().principal, "alice");
}

#[tokio::test]
async fn erasure_wipes_file_and_personal_fields_and_keeps_a_tombstone() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let admin = app.token("adam", Role::Admin);
    let id = app.upload_ktp(&alice).await;
    let other = app.upload_ktp(&alice).await;
    let path = format!("/v1/documents/{id}");

    let resp = app.delete(&alice, &path).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "erased");
    assert!(body["erased_at"].as_str().is_some());
    assert!(
        body["content_type"].is_null() && body["size_bytes"].is_null() && body["fields"].is_null()
    );

    // The document and its file are gone (410), the file off the disk; the tombstone stays in
    // the list.
    assert_error(app.get(&alice, &path).await, 410, "document_erased").await;
    let listed: serde_json::Value = app.get(&alice, "/v1/documents").await.json().await.unwrap();
    let tombstone = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap();
    assert_eq!(tombstone["status"], "erased");
    assert_error(
        app.get(&alice, &format!("{path}/file")).await,
        410,
        "document_erased",
    )
    .await;
    let blob = app
        .dir
        .path()
        .join("blobs")
        .join(&id[..2])
        .join(format!("{id}.blob"));
    assert!(!blob.exists());
    let record = documents::get(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.file_index.is_none() && record.blob_key.is_none());

    // Erasing again is fine; an admin may erase someone's document.
    assert_eq!(app.delete(&alice, &path).await.status(), 200);
    let resp = app.delete(&admin, &format!("/v1/documents/{other}")).await;
    assert_eq!(resp.status(), 200);
    let events = documents::events(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "erased").count(), 1);
}

#[tokio::test]
async fn malformed_ids_are_plain_404s() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    for id in [
        "nope",
        "3201234567890001",
        "01A21EC7-DD64-7593-BE08-33C2371CB1F3",
    ] {
        assert_error(
            app.get(&alice, &format!("/v1/documents/{id}")).await,
            404,
            "not_found",
        )
        .await;
    }
}
