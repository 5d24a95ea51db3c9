use std::time::Duration;

use filot::{http::auth::Role, kyc::DocumentId, store::documents};

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

fn assert_gap_free(events: &[documents::DocumentEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as i64 + 1,
            "event sequence has a gap or duplicate at {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_operations_leave_a_gap_free_sequence() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let hot = app.upload_ktp(&alice).await;
    let mut others = Vec::new();
    for _ in 0..6 {
        others.push(app.upload_ktp(&alice).await);
    }

    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = tokio::task::JoinSet::new();
    let targets =
        std::iter::repeat_n(hot.clone(), 1000).chain(others.iter().cycle().take(300).cloned());
    for id in targets {
        let client = app.client.clone();
        let url = app.url(&format!("/v1/documents/{id}/file"));
        let token = alice.clone();
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }

    let hot_id: DocumentId = hot.parse().unwrap();
    let events = documents::events(&app.state.db, &hot_id).await.unwrap();
    assert_eq!(events.len(), 2 + 1000, "no lost update");
    assert_gap_free(&events);
    let record = documents::get(&app.state.db, &hot_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.version, events.len() as i64);
    for id in &others {
        let events = documents::events(&app.state.db, &id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(events.len(), 2 + 50);
        assert_gap_free(&events);
    }
}

#[tokio::test]
async fn a_panicking_actor_is_restarted_from_the_database_and_the_caller_gets_a_clean_error() {
    use std::sync::atomic::Ordering::SeqCst;
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    let path = format!("/v1/documents/{id}/file");
    assert_eq!(app.get(&alice, &path).await.status(), 200);

    app.state
        .documents
        .context()
        .panic_next_apply
        .store(true, SeqCst);
    let resp = app.get(&alice, &path).await;
    let body = assert_error(resp, 503, "document_unavailable").await;
    assert!(
        !body["message"].as_str().unwrap().contains("panic"),
        "no internals in the body"
    );

    // The service keeps serving, the document's actor is back, and its history is intact.
    assert_eq!(app.get(&alice, &path).await.status(), 200);
    assert_eq!(app.get(&alice, "/health/ready").await.status(), 200);
    let stats = app.state.documents.stats().await.unwrap();
    assert_eq!(stats.restarts, 1);
    let events = documents::events(&app.state.db, &id.parse().unwrap())
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["uploaded", "queued", "file_read", "file_read"]);
    assert_gap_free(&events);
}

#[tokio::test]
async fn a_document_whose_actor_keeps_failing_is_quarantined() {
    use std::sync::atomic::Ordering::SeqCst;
    let app = spawn_app_with(|s| s.documents.max_restarts = 1).await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    let path = format!("/v1/documents/{id}/file");
    for _ in 0..2 {
        app.state
            .documents
            .context()
            .panic_next_apply
            .store(true, SeqCst);
        assert_eq!(app.get(&alice, &path).await.status(), 503);
    }
    app.state
        .documents
        .context()
        .panic_next_apply
        .store(false, SeqCst);
    assert_error(app.get(&alice, &path).await, 503, "document_unavailable").await;
    // Other documents are unaffected.
    let other = app.upload_ktp(&alice).await;
    assert_eq!(
        app.get(&alice, &format!("/v1/documents/{other}/file"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn idle_actors_stop_and_come_back_on_demand() {
    let app = spawn_app_with(|s| s.documents.actor_idle = Duration::from_secs(1)).await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    assert_eq!(app.state.documents.stats().await.unwrap().active, 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = app.state.documents.stats().await.unwrap();
        if stats.active == 0 {
            assert!(stats.idle_stops >= 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "actor never stopped: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get(&alice, &format!("/v1/documents/{id}/file"))
            .await
            .status(),
        200
    );
    assert_eq!(app.state.documents.stats().await.unwrap().active, 1);
}

#[tokio::test]
async fn shutdown_stops_the_tree_and_restart_resumes_from_the_database() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    let settings = (*app.state.settings).clone();
    let state = app.state.clone();
    let dir = app.stop().await;
    assert!(state.documents.stats().await.is_none(), "tree stopped");
    drop(state);
    // Same data directory, same keys: the upload and its history are still there.
    let app = crate::helpers::spawn_in(dir, settings).await;
    let alice = app.token("alice", Role::User);
    let resp = app.get(&alice, &format!("/v1/documents/{id}/file")).await;
    assert_eq!(resp.status(), 200, "uploads survive a restart");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let boundary = "INFLIGHT";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nKTP\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"k.jpg\"\r\n\r\n"
    )
    .into_bytes();
    body.extend(crate::helpers::fixture("ktp_003.jpg"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (first, second) = body.split_at(body.len() / 2);
    let (first, second) = (first.to_vec(), second.to_vec());

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let request = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&alice)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let request = tokio::spawn(request);
    tx.send(Ok(first)).await.unwrap();
    // The upload holds its slot once it is being received.
    let slots = app.state.upload_slots.clone();
    let all = app.state.settings.limits.max_concurrent_uploads as usize;
    until(|| async { slots.available_permits() < all }).await;

    // Shutdown starts while the upload is half-way through: new connections are refused.
    let base = app.base.clone();
    let addr = base.trim_start_matches("http://").to_string();
    let stopping = tokio::spawn(app.stop());
    until(|| async { tokio::net::TcpStream::connect(&addr).await.is_err() }).await;
    tx.send(Ok(second)).await.unwrap();
    drop(tx);

    let resp = request.await.unwrap().expect("in-flight request completes");
    assert_eq!(
        resp.status(),
        202,
        "the in-flight upload is finished, not cut off"
    );
    stopping.await.unwrap();
    // And no new connection is accepted.
    assert!(reqwest::get(format!("{base}/health/live")).await.is_err());
}

#[tokio::test]
async fn a_user_change_after_another_nodes_write_is_applied_to_the_stored_truth() {
    let app = spawn_app().await;
    let alice = app.token("alice", Role::User);
    let id = app.upload_ktp(&alice).await;
    let path = format!("/v1/documents/{id}");
    // This node's actor caches the document (the download is audited through it)…
    let resp = app.get(&alice, &format!("{path}/file")).await;
    assert_eq!(resp.status(), 200);
    // …then another node writes it (straight to the shared database).
    let doc_id: DocumentId = id.parse().unwrap();
    let stored = documents::get(&app.state.db, &doc_id)
        .await
        .unwrap()
        .unwrap();
    documents::apply(
        &app.state.db,
        &stored,
        &documents::DocumentChange::FileRead,
        "bob@other-node",
    )
    .await
    .unwrap();
    // Erasing through this node still works: the stale cache costs a retry, not an error.
    let resp = app.delete(&alice, &path).await;
    assert_eq!(resp.status(), 200);
    let events = documents::events(&app.state.db, &doc_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["uploaded", "queued", "file_read", "file_read", "erased"]
    );
}

/// Waits (up to 10 s) until `done` holds.
async fn until<F: std::future::Future<Output = bool>>(done: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
