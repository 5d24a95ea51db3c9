//! Batch uploads: many parts at once, each judged on its own, read by the same OCR as single
//! uploads, safe to retry with an `Idempotency-Key`, counted part by part against the rate
//! limits, and followed through `GET /v1/batches/{id}` by their owner only.

use filot::http::auth::Role;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, fixture, spawn_app, spawn_app_with};

fn form(parts: &[(&str, &str)]) -> Form {
    parts.iter().fold(Form::new(), |form, (field, file)| {
        let bytes = if file.ends_with(".txt") {
            b"not a card at all".to_vec()
        } else {
            fixture(file)
        };
        form.part(
            field.to_string(),
            Part::bytes(bytes).file_name(file.to_string()),
        )
    })
}

async fn send(
    app: &TestApp,
    token: &str,
    parts: &[(&str, &str)],
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/v1/batches"))
        .bearer_auth(token)
        .multipart(form(parts));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

fn errors(answer: &Value) -> Vec<(String, String)> {
    answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["error"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_five_cards_is_read_to_five_extracted() {
    let app = spawn_app_with(|s| s.ocr.devices = vec!["cpu".into()]).await;
    let alice = app.token("alice", Role::User);
    let parts = [
        ("ktp", "ktp_003.jpg"),
        ("ktp", "ktp_001.png"),
        ("ktp", "ktp_000.pdf"),
        ("ktp", "ktp_007.jpg"),
        ("npwp", "npwp_000.jpg"),
    ];
    let resp = send(&app, &alice, &parts, None).await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    let documents = answer["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 5, "{answer}");
    assert!(errors(&answer).is_empty());
    let names: Vec<&str> = documents
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, parts.map(|(_, f)| f));
    assert_eq!(documents[4]["type"], "NPWP");
    let batch = format!("/v1/batches/{}", answer["batch_id"].as_str().unwrap());
    let view = app
        .wait_for(&alice, &batch, 300, |v| v["counts"]["extracted"] == 5)
        .await;
    assert_eq!(view["counts"]["queued"], 0, "{view}");
    assert_eq!(view["counts"]["failed"], 0, "{view}");
    for d in view["documents"].as_array().unwrap() {
        assert_eq!(d["status"], "extracted");
        // Each is an ordinary document of its owner.
        let doc = app.document(&alice, d["id"].as_str().unwrap()).await;
        assert_eq!(doc["ocr_source"], "model");
    }
}

#[tokio::test]
async fn a_bad_part_is_refused_with_its_code_and_the_others_go_in() {
    let app = spawn_app_with(|s| s.limits.max_batch_parts = 6).await;
    let alice = app.token("alice", Role::User);
    let resp = send(
        &app,
        &alice,
        &[
            ("ktp", "ktp_003.jpg"),
            ("npwp", "npwp_000.jpg"),
            ("ktp", "notes.txt"),
            ("ktp", "ktp_001.png"),
            ("ktp", "ktp_006.jpg"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["documents"].as_array().unwrap().len(), 4, "{answer}");
    assert_eq!(
        errors(&answer),
        [(
            "notes.txt".to_string(),
            "unsupported_media_type".to_string()
        )]
    );
    for d in answer["documents"].as_array().unwrap() {
        assert_eq!(d["status"], "queued");
    }
    let view: Value = app
        .get(
            &alice,
            &format!("/v1/batches/{}", answer["batch_id"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["counts"]["queued"], 4, "{view}");
    assert_eq!(view["rejected"], answer["rejected"]);

    // Parts with other names, and parts past the limit, are refused one by one too.
    let resp = send(
        &app,
        &alice,
        &[
            ("passport", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_003.jpg"),
            ("ktp", "ktp_007.jpg"),
        ],
        None,
    )
    .await;
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["documents"].as_array().unwrap().len(), 6);
    assert_eq!(
        errors(&answer),
        [
            ("ktp_003.jpg".to_string(), "unknown_part".to_string()),
            ("ktp_007.jpg".to_string(), "too_many_parts".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_retried_batch_answers_the_same_and_parts_count_against_the_rate_limit() {
    let app = spawn_app_with(|s| s.limits.uploads_per_user_per_minute = 3).await;
    let alice = app.token("alice", Role::User);
    let parts = [
        ("ktp", "ktp_003.jpg"),
        ("ktp", "ktp_001.png"),
        ("ktp", "ktp_006.jpg"),
        ("ktp", "ktp_007.jpg"),
    ];
    let first: Value = send(&app, &alice, &parts, Some("batch-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["documents"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(
        errors(&first),
        [("ktp_007.jpg".to_string(), "rate_limited".to_string())]
    );
    // The retry answers what the first request was answered, and makes nothing new.
    let again = send(&app, &alice, &parts, Some("batch-1")).await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let listed: Value = app.get(&alice, "/v1/documents").await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    // The same key with other parts is a mistake.
    assert_error(
        send(&app, &alice, &parts[..2], Some("batch-1")).await,
        409,
        "idempotency_key_reused",
    )
    .await;

    // Only its owner (and admins) can follow a batch.
    let path = format!("/v1/batches/{}", first["batch_id"].as_str().unwrap());
    let bob = app.token("bob", Role::User);
    assert_error(app.get(&bob, &path).await, 404, "not_found").await;
    let admin = app.token("ada", Role::Admin);
    assert_eq!(app.get(&admin, &path).await.status(), 200);
    // Reviewers do not upload.
    let rita = app.token("rita", Role::Reviewer);
    assert_eq!(send(&app, &rita, &parts[..1], None).await.status(), 403);
}

#[tokio::test]
async fn a_body_that_is_not_a_batch_is_refused_whole() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let resp = app
        .client
        .post(app.url("/v1/batches"))
        .bearer_auth(&alice)
        .header("Content-Type", "multipart/form-data; boundary=nope")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let over = spawn_app_with(|s| s.limits.max_batch_bytes = 100_000).await;
    let alice = over.token("alice", Role::User);
    assert_error(
        send(&over, &alice, &[("ktp", "ktp_003.jpg")], None).await,
        413,
        "request_too_large",
    )
    .await;
}
