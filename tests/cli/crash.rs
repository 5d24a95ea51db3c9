//! `kill -9` at the worst moments (verifications in every state, a decision mid-delivery, an
//! upload burst mid-OCR): after a restart nothing accepted is lost, nothing is done twice, and
//! no two OCR runs of one document overlap.

use std::time::{Duration, Instant};

use crate::{harness::*, support};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_verifications_in_every_state_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The card uploaded again at the end must still be waiting for OCR when the process
    // dies, not given its earlier reading from the cache.
    let uncached = [MANY_ACTIVE[0], ("FILOT_OCR__CACHE_READINGS", "false")];
    let server = serve_with(dir.path(), &uncached);
    let alice = token(dir.path(), "alice", "user");
    let rita = token(dir.path(), "rita", "reviewer");
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };

    let ktp_ok = api.upload(&alice, "KTP", "ktp_000.pdf").await;
    let npwp_ok = api.upload(&alice, "NPWP", "npwp_000.jpg").await;
    let ktp_bad = api.upload(&alice, "KTP", "ktp_007.jpg").await;
    // One card is in one verification at a time: four uploads of the odd card.
    let mut odd = Vec::new();
    for _ in 0..4 {
        odd.push(api.upload(&alice, "KTP", "ktp_006.jpg").await);
    }
    let approved = api.start(&alice, &ktp_ok, Some(&npwp_ok)).await;
    let rejected = api.start(&alice, &ktp_bad, None).await;
    let decided = api.start(&alice, &odd[0], None).await;
    let cancelled = api.start(&alice, &odd[1], None).await;
    let refused = api.start(&alice, &odd[2], None).await;
    let pending = api.start(&alice, &odd[3], None).await;
    api.wait_state(&alice, &approved, "auto_approved").await;
    api.wait_state(&alice, &rejected, "auto_rejected").await;
    for id in [&decided, &cancelled, &refused, &pending] {
        api.wait_state(&alice, id, "pending_manual_review").await;
    }
    api.post(
        &rita,
        &format!("/v1/verifications/{refused}/signals/review-decision"),
        serde_json::json!({ "signal_id": "f1", "decision": "reject", "reason": "altered card" }),
    )
    .await;
    let decision =
        serde_json::json!({ "signal_id": "d1", "decision": "approve", "reason": "checked" });
    let first_answer = api
        .post(
            &rita,
            &format!("/v1/verifications/{decided}/signals/review-decision"),
            decision.clone(),
        )
        .await;
    api.post(
        &rita,
        &format!("/v1/verifications/{cancelled}/signals/cancel-review"),
        serde_json::json!({ "signal_id": "c1", "reason": "withdrawn" }),
    )
    .await;
    // One still waiting for its document when the process dies.
    let fresh = api.upload(&alice, "KTP", "ktp_006.jpg").await;
    let awaiting = api.start(&alice, &fresh, None).await;

    // auto_approved, auto_rejected, manually_approved, cancelled, manually_rejected,
    // pending_manual_review, and awaiting_documents below (expiry across a restart is in
    // tests/api/workflow.rs, where the clock can move).
    let ids = [
        &approved, &rejected, &decided, &cancelled, &refused, &pending,
    ];
    let mut before = Vec::new();
    for id in ids {
        before.push(api.snapshot(&rita, id).await);
    }
    let (awaiting_state, _) = api.snapshot(&rita, &awaiting).await;
    assert_eq!(awaiting_state, "awaiting_documents");
    server.kill();

    let server = serve_with(dir.path(), &MANY_ACTIVE);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    for (id, was) in ids.iter().zip(&before) {
        assert_eq!(
            &api.snapshot(&rita, id).await,
            was,
            "{id} resumed where it was"
        );
    }
    // The interrupted one carries on: its document is read and the case checked.
    api.wait_state(&alice, &awaiting, "pending_manual_review")
        .await;
    let (_, kinds) = api.snapshot(&rita, &awaiting).await;
    assert_eq!(
        kinds,
        ["started", "documents_ready", "checked"],
        "no event twice"
    );
    // Signals keep their exactly-once effect across the crash…
    let replay = api
        .post(
            &rita,
            &format!("/v1/verifications/{decided}/signals/review-decision"),
            decision,
        )
        .await;
    assert_eq!(replay, first_answer);
    // …and the waiting case can still be decided.
    let done = api
        .post(
            &rita,
            &format!("/v1/verifications/{pending}/signals/review-decision"),
            serde_json::json!({ "signal_id": "p1", "decision": "reject", "reason": "mismatch confirmed" }),
        )
        .await;
    assert_eq!(done["state"], "manually_rejected");
    server.terminate();

    // Exactly one outbox row per decided verification, none for the undecided.
    let db = filot::store::Db::connect(
        &format!("sqlite://{}", dir.path().join("data/filot.db").display()),
        1,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    for id in [
        &approved, &rejected, &decided, &cancelled, &refused, &pending,
    ] {
        let rows = filot::store::verifications::outbox_of(&db, id)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{id}");
    }
    assert!(
        filot::store::verifications::outbox_of(&db, &awaiting)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_decision_and_repeats_only_its_key() {
    let secret = "kill-test-shared-secret";
    let sim = crate::support::buli2_sim(secret).await;
    let client = reqwest::Client::new();
    let sim_get = || {
        let client = client.clone();
        let url = format!("{}/sim/deliveries", sim.url());
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<filot::buli2::sim::Deliveries>()
                .await
                .unwrap()
        }
    };
    // BULI2 takes its time over the first delivery: FiLot dies while waiting for the answer.
    client
        .post(format!("{}/sim/faults", sim.url()))
        .json(&serde_json::json!({ "mode": "slow", "requests": 1, "delay_ms": 20_000 }))
        .send()
        .await
        .unwrap();
    let url = sim.url();
    let env = [
        ("FILOT_BULI2_URL", url.as_str()),
        ("FILOT_BULI2_SECRET", secret),
        ("FILOT_OUTBOX__POLL_INTERVAL", "100ms"),
        ("FILOT_OUTBOX__TIMEOUT", "1m"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &env);
    let alice = token(dir.path(), "alice", "user");
    let rita = token(dir.path(), "rita", "reviewer");
    let api = Api {
        client: client.clone(),
        base: server.base.clone(),
    };
    let ktp = api.upload(&alice, "KTP", "ktp_007.jpg").await;
    let id = api.start(&alice, &ktp, None).await;
    api.wait_state(&alice, &id, "auto_rejected").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim_get().await.requests == 0 {
        assert!(Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();

    let server = serve_with(dir.path(), &env);
    let api = Api {
        client: client.clone(),
        base: server.base.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = api.get(&rita, &format!("/v1/verifications/{id}")).await;
        if v["delivery_state"] == "sent" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered after restart: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.terminate();
    let got = sim_get().await;
    assert_eq!(got.by_key.len(), 1, "one decision, one key: {got:?}");
    let (_, rec) = got.by_key.iter().next().unwrap();
    assert_eq!(
        rec.count, 2,
        "re-sent once after the crash, with the same key"
    );
    assert_eq!(rec.verification_id.as_deref(), Some(id.as_str()));
    assert_eq!(rec.decision.as_deref(), Some("auto_rejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_burst_loses_nothing_and_never_overlaps_runs() {
    let redis = support::redis::RedisServer::start();
    let url = redis.url();
    let env = [
        ("FILOT_REDIS_URL", url.as_str()),
        // A short lease, so the restarted node takes back its dead predecessor's run soon.
        ("FILOT_REDIS__LEASE_TTL", "2s"),
        ("FILOT_OCR__REAPER_POLL_INTERVAL", "200ms"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &env);
    let alice = token(dir.path(), "alice", "user");
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let ids = upload_burst(&[&api], &[&alice]).await;
    // Kill it while it reads one of them.
    let deadline = Instant::now() + Duration::from_secs(120);
    'wait: loop {
        for id in &ids {
            if api.status(&alice, id).await == "processing" {
                break 'wait;
            }
        }
        assert!(Instant::now() < deadline, "nothing was processed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    // What the dead process left `processing` (read from its database before the restart).
    let db_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("data/filot.db").display()
    );
    let left: Vec<String> = document_logs(&db_url, &ids)
        .await
        .into_iter()
        .filter(|(_, events)| events.last().is_some_and(|e| e.kind == "processing"))
        .map(|(id, _)| id)
        .collect();

    let server = serve_with(dir.path(), &env);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    api.all_final(&alice, &ids).await;
    server.terminate();

    let logs = document_logs(&db_url, &ids).await;
    assert_eq!(logs.len(), BURST.len(), "every accepted upload is there");
    for (id, events) in &logs {
        assert!(runs_never_overlap(id, events) >= 1);
        let taken_back = events
            .iter()
            .any(|e| e.kind == "requeued" && e.detail.as_ref().unwrap()["reason"] == "node_lost");
        assert_eq!(
            taken_back,
            left.contains(id),
            "{id}: a run the dead process left is requeued once its lease expired, no other"
        );
    }
}
