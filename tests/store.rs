//! Store tests, run against SQLite always and against Postgres when FILOT_TEST_POSTGRES_URL
//! names a server (each test gets a fresh database there).

use std::{collections::BTreeMap, time::Duration};

use filot::{
    kyc::{DocumentId, DocumentType},
    store::{
        Db, StoreError,
        documents::{self, DocumentChange, DocumentStatus, IdempotencyRecord, NewDocument},
        now_millis,
    },
};

struct Backend {
    name: &'static str,
    db: Db,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = Db::connect(&url, 5, Duration::from_secs(5)).await.unwrap();
    db.migrate().await.unwrap();
    Backend {
        name: "sqlite",
        db,
        url,
        _dir: Some(dir),
    }
}

/// A fresh database on the test Postgres server, or None when none is configured.
async fn postgres() -> Option<Backend> {
    let url = support::postgres::fresh_database("filot_test").await?;
    let db = Db::connect(&url, 5, Duration::from_secs(10)).await.unwrap();
    db.migrate().await.unwrap();
    Some(Backend {
        name: "postgres",
        db,
        url,
        _dir: None,
    })
}

async fn backends() -> Vec<Backend> {
    let mut all = vec![sqlite().await];
    match postgres().await {
        Some(pg) => all.push(pg),
        None => eprintln!("FILOT_TEST_POSTGRES_URL unset: store tests ran on SQLite only"),
    }
    all
}

fn new_doc(owner: &str, created_at: i64) -> NewDocument {
    let id = DocumentId::new();
    NewDocument {
        id,
        owner: owner.into(),
        doc_type: DocumentType::Ktp,
        content_type: "image/jpeg".into(),
        size_bytes: 10,
        file_index: "00".repeat(32),
        blob_key: id.to_string(),
        created_at,
        correlation_id: Some("test-correlation".into()),
        storage_quota: None,
        reused: None,
    }
}

#[tokio::test]
async fn insert_get_list_and_events() {
    for b in backends().await {
        let db = &b.db;
        let t0 = now_millis();
        let mut ids = Vec::new();
        for i in 0..5 {
            let rec = documents::insert(db, &new_doc("alice", t0 + i), None)
                .await
                .unwrap();
            assert_eq!(rec.status, DocumentStatus::Queued, "{}", b.name);
            assert_eq!(rec.version, 2);
            ids.push(rec.id);
        }
        documents::insert(db, &new_doc("bob", t0), None)
            .await
            .unwrap();
        ids.reverse();
        let first = documents::list_by_owner(db, "alice", None, 3)
            .await
            .unwrap();
        assert_eq!(
            first.items.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids[..3],
            "{}",
            b.name
        );
        let last = first.items.last().unwrap();
        assert_eq!(
            first.next,
            Some((last.created_at, last.id.to_string())),
            "{}",
            b.name
        );
        let rest = documents::list_by_owner(db, "alice", Some((last.created_at, last.id)), 10)
            .await
            .unwrap();
        assert_eq!(
            rest.items.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids[3..],
            "{}",
            b.name
        );
        assert_eq!(rest.next, None, "{}: the last page says so", b.name);
        let events = documents::events(db, &ids[0]).await.unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>(),
            [(1, "uploaded"), (2, "queued")]
        );
    }
}

#[tokio::test]
async fn a_stale_writer_is_refused_and_leaves_no_event() {
    for b in backends().await {
        let db = &b.db;
        let rec = documents::insert(db, &new_doc("alice", now_millis()), None)
            .await
            .unwrap();
        let after = documents::apply(db, &rec, &DocumentChange::FileRead, "alice")
            .await
            .unwrap();
        assert_eq!(after.version, 3);
        let stale = documents::apply(db, &rec, &DocumentChange::Erased, "mallory").await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(_))),
            "{}: {stale:?}",
            b.name
        );
        let now = documents::get(db, &rec.id).await.unwrap().unwrap();
        assert_eq!(now.status, DocumentStatus::Queued);
        assert_eq!(documents::events(db, &rec.id).await.unwrap().len(), 3);

        let erased = documents::apply(db, &now, &DocumentChange::Erased, "alice")
            .await
            .unwrap();
        assert_eq!(erased.status, DocumentStatus::Erased);
        assert!(
            erased.blob_key.is_none() && erased.file_index.is_none() && erased.erased_at.is_some()
        );
        assert_eq!(
            documents::get(db, &rec.id).await.unwrap().unwrap(),
            erased,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn concurrent_writers_on_one_version_one_wins() {
    for b in backends().await {
        let db = b.db.clone();
        let rec = documents::insert(&db, &new_doc("alice", now_millis()), None)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (db, rec) = (db.clone(), rec.clone());
            tasks.spawn(async move {
                documents::apply(&db, &rec, &DocumentChange::FileRead, "x")
                    .await
                    .is_ok()
            });
        }
        let mut wins = 0;
        while let Some(ok) = tasks.join_next().await {
            wins += usize::from(ok.unwrap());
        }
        assert_eq!(wins, 1, "{}", b.name);
        assert_eq!(documents::events(&db, &rec.id).await.unwrap().len(), 3);
    }
}

#[tokio::test]
async fn idempotency_keys_are_unique_per_owner_and_expire() {
    for b in backends().await {
        let db = &b.db;
        let idem = |doc: &NewDocument| IdempotencyRecord {
            owner: "alice".into(),
            key: "k1".into(),
            request_hash: "h".into(),
            document_id: doc.id.to_string(),
            status_code: 202,
            response_body: "{}".into(),
        };
        let a = new_doc("alice", now_millis());
        documents::insert(db, &a, Some((&idem(&a), 0)))
            .await
            .unwrap();
        let b2 = new_doc("alice", now_millis());
        let dup = documents::insert(db, &b2, Some((&idem(&b2), 0)))
            .await
            .unwrap_err();
        assert!(dup.is_unique_violation(), "{}: {dup:?}", b.name);
        assert!(
            documents::get(db, &b2.id).await.unwrap().is_none(),
            "the loser's row rolled back"
        );
        let found = documents::find_idempotency(db, "alice", "k1", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.document_id, a.id.to_string());
        // Expired keys no longer answer, and a new upload may take the key over.
        assert!(
            documents::find_idempotency(db, "alice", "k1", now_millis() + 1)
                .await
                .unwrap()
                .is_none()
        );
        let c = new_doc("alice", now_millis() + 5);
        documents::insert(db, &c, Some((&idem(&c), now_millis() + 1)))
            .await
            .unwrap();
        assert_eq!(documents::purge_idempotency(db, 0).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn the_service_runs_on_postgres() {
    let Some(pg) = postgres().await else {
        eprintln!("FILOT_TEST_POSTGRES_URL unset: skipping the Postgres service run");
        return;
    };
    let url = pg.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let settings = filot::config::Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        database_url: filot::config::DatabaseUrl::new(url),
        // This test counts events of file reads alone.
        ocr: filot::config::OcrSettings {
            devices: vec![],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = filot::Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let token = state
        .auth
        .mint(
            "alice",
            filot::http::auth::Role::User,
            Duration::from_secs(60),
        )
        .unwrap();
    let client = reqwest::Client::new();
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ktp_003.jpg"
    ))
    .unwrap();
    let form = reqwest::multipart::Form::new().text("type", "KTP").part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("k.jpg"),
    );
    let resp = client
        .post(format!("{base}/v1/documents"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (client, url, token) = (
            client.clone(),
            format!("{base}/v1/documents/{id}/file"),
            token.clone(),
        );
        tasks.spawn(async move {
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
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.unwrap(), 200);
    }
    let events = documents::events(&state.db, &id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(events.len(), 202);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as i64 + 1)
    );
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

/// The workflow's rows on both backends: log + projection, timers, signals, outbox, queues.
#[tokio::test]
async fn verification_log_timers_signals_and_outbox() {
    use filot::{
        kyc::workflow::{Event, State, Verification},
        store::verifications::{self, Extras, NewOutbox, SignalRecord},
    };
    for b in backends().await {
        let db = &b.db;
        let t0 = now_millis();
        let doc = documents::insert(db, &new_doc("alice", t0), None)
            .await
            .unwrap();
        let started = Event::Started {
            owner: "alice".into(),
            ktp_document_id: doc.id.to_string(),
            npwp_document_id: None,
            workflow_version: 2,
        };
        let id = uuid::Uuid::now_v7().to_string();
        let v0 = Verification::start(&id, &started, t0).unwrap();
        verifications::insert(db, &v0, &started, Some("corr-12345678"), 5)
            .await
            .unwrap();
        assert!(
            verifications::ready_to_check(db, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}: the document is still queued",
            b.name
        );
        documents::apply(
            db,
            &doc,
            &DocumentChange::Failed {
                reason: "ocr_unreadable".into(),
                token: 0,
            },
            "ocr",
        )
        .await
        .unwrap();
        let ready = verifications::ready_to_check(db, 10).await.unwrap();
        assert_eq!(ready, std::slice::from_ref(&id));

        let events = vec![
            Event::DocumentsReady {
                ktp_status: "failed".into(),
                npwp_status: None,
            },
            Event::Checked {
                score: 40,
                reasons: vec!["ktp_unreadable_ocr_unreadable".into()],
                outcome: State::PendingManualReview,
                review_id: Some("rev".into()),
                sla_timer_id: Some(format!("t-{id}")),
                sla_due_at: Some(t0 + 1_000),
            },
        ];
        let mut v1 = v0.clone();
        for e in &events {
            v1.apply(e, t0 + 1).unwrap();
        }
        let tagged: Vec<_> = events
            .into_iter()
            .map(|e| (e, "system".to_string()))
            .collect();
        let arm = Extras {
            arm_timer: Some((format!("t-{id}"), t0 + 1_000)),
            ..Default::default()
        };
        verifications::append(db, &v0, &v1, &tagged, &arm, 1)
            .await
            .unwrap();
        // A writer holding the old version is refused and leaves nothing.
        let stale = verifications::append(db, &v0, &v1, &tagged, &Extras::default(), 1).await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{}", b.name);
        assert_eq!(verifications::events(db, &id).await.unwrap().len(), 3);

        let page = verifications::list_by_state(db, State::PendingManualReview, None, 10)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].reasons, ["ktp_unreadable_ocr_unreadable"]);
        assert_eq!(page.next, None, "no more pages");
        assert!(
            verifications::due_timers(db, t0 + 999, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            verifications::due_timers(db, t0 + 1_000, 10).await.unwrap(),
            [(format!("t-{id}"), id.clone())]
        );

        let expired = Event::Expired {
            timer_id: format!("t-{id}"),
        };
        let mut v2 = v1.clone();
        v2.apply(&expired, t0 + 2_000).unwrap();
        let fire = Extras {
            spend_timer: Some(format!("t-{id}")),
            signal: Some(SignalRecord {
                signal_id: "s".into(),
                kind: "cancel-review".into(),
                request_hash: "h".into(),
                response: "{}".into(),
            }),
            outbox: vec![NewOutbox {
                id: uuid::Uuid::now_v7().to_string(),
                kind: filot::store::outbox::Kind::Buli2Decision,
                target: None,
                payload: "sealed".into(),
            }],
            ..Default::default()
        };
        // A writer whose lease is older than the last writer's is fenced out, even on the
        // latest version.
        let fenced = verifications::append(
            db,
            &v1,
            &v2,
            &[(expired.clone(), "system".into())],
            &fire,
            0,
        )
        .await;
        assert!(
            matches!(fenced, Err(StoreError::Fenced(_))),
            "{}: {fenced:?}",
            b.name
        );
        verifications::append(db, &v1, &v2, &[(expired, "system".into())], &fire, 1)
            .await
            .unwrap();
        assert!(
            verifications::due_timers(db, t0 + 5_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(verifications::outbox_of(db, &id).await.unwrap().len(), 1);
        assert!(
            verifications::find_signal(db, &id, "s")
                .await
                .unwrap()
                .is_some()
        );
        let row = verifications::get(db, &id).await.unwrap().unwrap();
        assert_eq!((row.state, row.version), (State::Expired, 4), "{}", b.name);

        // The same signal id cannot be recorded twice, whatever the writer.
        let mut v3 = v2.clone();
        let delivered = Event::DeliveryChanged {
            delivery: filot::kyc::workflow::Delivery::Sent,
        };
        v3.apply(&delivered, t0 + 3_000).unwrap();
        let again = Extras {
            signal: fire.signal.clone(),
            ..Default::default()
        };
        let dup =
            verifications::append(db, &v2, &v3, &[(delivered, "system".into())], &again, 1).await;
        assert!(dup.unwrap_err().is_unique_violation(), "{}", b.name);
        assert_eq!(
            verifications::events(db, &id).await.unwrap().len(),
            4,
            "rolled back"
        );
    }
}

#[path = "support/mod.rs"]
mod support;

fn claim(token: i64) -> DocumentChange {
    DocumentChange::Processing(documents::Claim {
        node: "a@test".into(),
        token,
        deadline: now_millis() + 60_000,
    })
}

#[tokio::test]
async fn a_writer_with_an_older_lease_token_is_fenced_out() {
    for b in backends().await {
        let db = &b.db;
        let rec = documents::insert(db, &new_doc("alice", now_millis()), None)
            .await
            .unwrap();
        // Node A claims with token 5 and stalls; its run is requeued and node B claims with 7.
        let a = documents::apply(db, &rec, &claim(5), "ocr").await.unwrap();
        assert_eq!((a.fence, a.ocr_attempts), (5, 1), "{}", b.name);
        let requeued = DocumentChange::Requeued {
            reason: "node_lost".into(),
            token: 5,
        };
        let back = documents::apply(db, &a, &requeued, "reaper").await.unwrap();
        let b_run = documents::apply(db, &back, &claim(7), "ocr").await.unwrap();
        assert_eq!((b_run.fence, b_run.ocr_attempts), (7, 2));
        // A wakes up and writes its result on top of the latest version: refused by the token.
        let late = DocumentChange::Extracted {
            fields: documents::SealedReading {
                sealed: "sealed".into(),
                ocr_ms: None,
                placement: None,
                source: Default::default(),
            },
            issues: vec![],
            token: 5,
            cache_key: None,
            challenge: false,
        };
        let refused = documents::apply(db, &b_run, &late, "ocr").await;
        assert!(
            matches!(refused, Err(StoreError::Fenced(_))),
            "{}: {refused:?}",
            b.name
        );
        // A claim must beat the row's token, not just match it.
        let again = documents::apply(db, &b_run, &claim(7), "ocr").await;
        assert!(matches!(again, Err(StoreError::Fenced(_))), "{again:?}");
        let stored = documents::get(db, &rec.id).await.unwrap().unwrap();
        assert_eq!(stored, b_run, "{}: nothing changed", b.name);
        let kinds: Vec<String> = documents::events(db, &rec.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["uploaded", "queued", "processing", "requeued", "processing"]
        );
    }
}

#[tokio::test]
async fn redis_leases_exclude_other_nodes_expire_and_survive_a_redis_restart() {
    use filot::store::{
        leases::{LeaseKind::Document, Leases},
        redis::Redis,
    };
    let mut server = support::redis::RedisServer::start();
    let redis = Redis::connect(&server.url(), 4, Duration::from_secs(1)).unwrap();
    let ttl = Duration::from_millis(400);
    let a = Leases::redis(redis.clone(), "a@test", ttl);
    let b = Leases::redis(redis.clone(), "b@test", ttl);

    let la = a
        .try_acquire(Document, "d1", 0)
        .await
        .unwrap()
        .expect("free");
    assert!(b.try_acquire(Document, "d1", 0).await.unwrap().is_none());
    let holder = format!("a@test:{}", la.token);
    assert_eq!(b.holder(Document, "d1").await.unwrap(), Some(holder));
    // Renewed while A works: B keeps waiting past the TTL.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(a.renew(&la).await.unwrap());
    }
    assert!(b.try_acquire(Document, "d1", 0).await.unwrap().is_none());
    // A dies (no more renewals): the lease expires and B gets a newer token; A's renewal and
    // release no longer touch B's lease.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let lb = loop {
        if let Some(lease) = b.try_acquire(Document, "d1", 0).await.unwrap() {
            break lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(lb.token > la.token);
    assert!(!a.renew(&la).await.unwrap());
    a.release(&la).await;
    let holder = format!("b@test:{}", lb.token);
    assert_eq!(a.holder(Document, "d1").await.unwrap(), Some(holder));
    b.release(&lb).await;
    assert_eq!(a.holder(Document, "d1").await.unwrap(), None);

    // Redis down: a clear error, quickly, not a hang.
    server.stop();
    let started = std::time::Instant::now();
    assert!(a.try_acquire(Document, "d2", 0).await.is_err());
    assert!(a.check().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    // Back without its data (no persistence): the counter restarts, but a token never falls
    // below the one the database row already carries.
    server.restart();
    let mut lc = None;
    for _ in 0..50 {
        if let Ok(Some(l)) = a.try_acquire(Document, "d2", 1_000).await {
            lc = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lc.expect("Redis answers again").token > 1_000);
}

/// The reading cache and the identity index on both backends: an extraction keeps its cache
/// entry, a repeated upload is created extracted from it, a number another owner used first
/// is found (and not the other way round), and an erasure forgets both.
#[tokio::test]
async fn reading_cache_and_identity_index() {
    use filot::{
        kyc::workflow::{Event, Verification},
        store::{
            comparisons,
            documents::{Claim, OcrSource, Reused, SealedReading, cache},
            identity::{self, IdentityKind, IdentityRow},
            verifications::{self, Extras},
        },
    };
    for b in backends().await {
        let db = &b.db;
        let t0 = now_millis();
        // Alice's card is read and its reading kept under a key.
        let first = documents::insert(db, &new_doc("alice", t0), None)
            .await
            .unwrap();
        let claim = Claim {
            node: "n1".into(),
            token: 1,
            deadline: t0 + 60_000,
        };
        let running = documents::apply(db, &first, &DocumentChange::Processing(claim), "ocr")
            .await
            .unwrap();
        let sealed = SealedReading {
            sealed: "sealed".into(),
            ocr_ms: Some(5),
            placement: None,
            source: OcrSource::Model,
        };
        let extracted = DocumentChange::Extracted {
            fields: sealed.clone(),
            issues: vec!["nik_gender_mismatch".into()],
            token: 1,
            cache_key: Some("key-1".into()),
            challenge: true,
        };
        documents::apply(db, &running, &extracted, "ocr")
            .await
            .unwrap();
        assert_eq!(
            cache::find(db, "key-1").await.unwrap(),
            Some(first.id),
            "{}",
            b.name
        );
        // The same file again: created extracted from the kept reading, with no run.
        let mut again = new_doc("alice", t0 + 1);
        again.reused = Some(Reused {
            fields: SealedReading {
                source: OcrSource::Cache,
                ..sealed
            },
            issues: vec!["nik_gender_mismatch".into()],
            from: first.id,
        });
        let copy = documents::insert(db, &again, None).await.unwrap();
        assert_eq!(copy.status, DocumentStatus::Extracted, "{}", b.name);
        assert_eq!(copy.fields.unwrap().source, OcrSource::Cache);
        assert_eq!(copy.issues, ["nik_gender_mismatch"]);
        let kinds: Vec<String> = documents::events(db, &copy.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{}:{}", e.kind, e.principal))
            .collect();
        assert_eq!(kinds, ["uploaded:alice", "extracted:ocr:cache"]);

        // Alice's and then Bob's verification carry the same NIK.
        let nik = |document_id: &DocumentId| IdentityRow {
            kind: IdentityKind::Nik,
            value_index: "blind-nik".into(),
            document_id: document_id.to_string(),
        };
        let bobs = documents::insert(db, &new_doc("bob", t0 + 2), None)
            .await
            .unwrap();
        let mut cases = Vec::new();
        let mut latest = Vec::new();
        for (owner, doc, at) in [("alice", first.id, t0 + 10), ("bob", bobs.id, t0 + 20)] {
            let started = Event::Started {
                owner: owner.into(),
                ktp_document_id: doc.to_string(),
                npwp_document_id: None,
                workflow_version: 3,
            };
            let id = uuid::Uuid::now_v7().to_string();
            let v0 = Verification::start(&id, &started, at).unwrap();
            verifications::insert(db, &v0, &started, None, 5)
                .await
                .unwrap();
            let ready = Event::DocumentsReady {
                ktp_status: "extracted".into(),
                npwp_status: None,
            };
            let mut v1 = v0.clone();
            v1.apply(&ready, at).unwrap();
            let extras = Extras {
                identity: vec![nik(&doc)],
                ..Default::default()
            };
            verifications::append(db, &v0, &v1, &[(ready, "system".into())], &extras, 1)
                .await
                .unwrap();
            cases.push(id);
            latest.push(v1);
        }
        let found = identity::collisions(db, "bob", &[nik(&bobs.id)])
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{}", b.name);
        assert_eq!(found[0].verification_id, cases[0]);
        assert!(
            identity::collisions(db, "alice", &[nik(&first.id)])
                .await
                .unwrap()
                .is_empty(),
            "{}: the first account to use a number is not flagged",
            b.name
        );
        let of_alice = identity::collisions_of(db, &cases[0]).await.unwrap();
        assert_eq!(of_alice.len(), 1);
        assert_eq!(of_alice[0].verification_id, cases[1]);

        // Alice's first document was sampled for the challenger: it waits, is compared, and a
        // reviewer's correction says which engine read the NIK right.
        assert_eq!(comparisons::pending(db, 10).await.unwrap(), [first.id]);
        let blind = filot::store::blind::BlindIndex::from_blob_key(&[9u8; 32]);
        let id = first.id.to_string();
        let champion = BTreeMap::from([
            ("nik".to_string(), "3171234567890001".to_string()),
            ("name".to_string(), "BUDI".to_string()),
        ]);
        let challenger = BTreeMap::from([
            ("nik".to_string(), "3171234567890007".to_string()),
            ("name".to_string(), "BUDI".to_string()),
        ]);
        let compared = comparisons::Compared {
            engine: "challenger-a".into(),
            challenger_ms: 7,
            outcome: "read".into(),
            fields: comparisons::compare_fields(&blind, &id, &champion, &challenger),
        };
        assert!(
            comparisons::record(db, &first.id, &compared, t0)
                .await
                .unwrap()
        );
        assert!(
            !comparisons::record(db, &first.id, &compared, t0)
                .await
                .unwrap(),
            "{}: compared once",
            b.name
        );
        let v0 = &latest[0];
        let truth = comparisons::TruthRow {
            document_id: id.clone(),
            field: "nik".into(),
            truth_index: comparisons::field_index(&blind, &id, "nik", "3171234567890007"),
        };
        let extras = Extras {
            ground_truth: vec![truth],
            ..Default::default()
        };
        verifications::append(db, v0, v0, &[], &extras, 2)
            .await
            .unwrap();
        let summary = comparisons::summary(db, "challenger-a").await.unwrap();
        assert_eq!(
            (summary.documents_compared, summary.documents_pending),
            (1, 0),
            "{}",
            b.name
        );
        assert_eq!(
            (summary.champion_ms, summary.challenger_ms),
            (Some(5), Some(7))
        );
        let nik = &summary.fields["nik"];
        assert_eq!(
            (nik.agree, nik.disagree, nik.reviewed),
            (0, 1, 1),
            "{}",
            b.name
        );
        assert_eq!((nik.champion_right, nik.challenger_right), (0, 1));
        assert_eq!(summary.fields["name"].agree, 1);
        let other = comparisons::summary(db, "challenger-b").await.unwrap();
        assert_eq!(
            other.documents_compared, 0,
            "another challenger starts at zero"
        );

        // Erasing Alice's first document forgets its cache entry and its number.
        let now = documents::get(db, &first.id).await.unwrap().unwrap();
        documents::apply(db, &now, &DocumentChange::Erased, "alice")
            .await
            .unwrap();
        assert_eq!(cache::find(db, "key-1").await.unwrap(), None, "{}", b.name);
        let summary = comparisons::summary(db, "challenger-a").await.unwrap();
        assert_eq!(summary, Default::default(), "{}: comparison erased", b.name);
        assert!(
            identity::collisions_of(db, &cases[1])
                .await
                .unwrap()
                .is_empty()
        );
    }
}
