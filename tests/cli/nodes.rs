//! Two `filot` API nodes on one Postgres and one Redis, their OCR on a third, OCR-only node
//! joined over the cluster: every document is read exactly once and every decision delivered
//! once, whichever API node takes the work.

use std::time::{Duration, Instant};

use crate::{
    cluster::{COOKIE, OcrNode, free_port, peer_list},
    harness::*,
    support,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_and_redis_process_each_document_exactly_once() {
    let Some(db_url) = support::postgres::fresh_database("filot_nodes").await else {
        eprintln!(
            "FILOT_TEST_POSTGRES_URL unset: skipping the two-node test (scripts/test.sh sets it)"
        );
        return;
    };
    let redis = support::redis::RedisServer::start();
    let secret = "two-nodes-shared-secret";
    let sim = crate::support::buli2_sim(secret).await;
    let (redis_url, sim_url) = (redis.url(), sim.url());
    // One data directory: the nodes share the blob store and the generated secrets, as
    // nodes on shared storage would.
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b, port_ocr) = (free_port(), free_port(), free_port());
    let ocr = OcrNode::start(
        "ocr",
        port_ocr,
        &[("a", port_a), ("b", port_b)],
        &[("FILOT_OCR__DEVICES", r#"["cpu","cpu"]"#)],
    );
    let node = |name: &'static str, port: u16| {
        vec![
            ("FILOT_NODE__ROLES", r#"["api","outbox"]"#.to_string()),
            ("FILOT_CLUSTER__LISTEN", format!("127.0.0.1:{port}")),
            ("FILOT_CLUSTER__PEERS", peer_list(&[("ocr", port_ocr)])),
            ("FILOT_CLUSTER__COOKIE", COOKIE.to_string()),
            ("FILOT_DATABASE_URL", db_url.clone()),
            ("FILOT_REDIS_URL", redis_url.clone()),
            ("FILOT_NODE__NAME", name.to_string()),
            ("FILOT_BULI2_URL", sim_url.clone()),
            ("FILOT_BULI2_SECRET", secret.to_string()),
            ("FILOT_OUTBOX__POLL_INTERVAL", "50ms".to_string()),
            ("FILOT_WORKFLOW__POLL_INTERVAL", "50ms".to_string()),
            (MANY_ACTIVE[0].0, MANY_ACTIVE[0].1.to_string()),
        ]
    };
    let env_a = node("a@127.0.0.1", port_a);
    let env_a: Vec<(&str, &str)> = env_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = serve_with(dir.path(), &env_a);
    let env_b = node("b@127.0.0.1", port_b);
    let env_b: Vec<(&str, &str)> = env_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = serve_with(dir.path(), &env_b);
    let alice = token(dir.path(), "alice", "user");
    let rita = token(dir.path(), "rita", "reviewer");
    let client = reqwest::Client::new();
    let (api_a, api_b) = (
        Api {
            client: client.clone(),
            base: a.base.clone(),
        },
        Api {
            client: client.clone(),
            base: b.base.clone(),
        },
    );
    let mut ids = upload_burst(&[&api_a, &api_b], &[&alice, &alice]).await;
    ids.extend(upload_burst(&[&api_b, &api_a], &[&alice, &alice]).await);
    api_b.all_final(&alice, &ids).await;

    // Each KTP's verification, started on alternate nodes; both nodes' workflow drivers and
    // outboxes compete for every one of them.
    let ktps: Vec<&String> = ids
        .iter()
        .zip(BURST.iter().chain(BURST.iter()))
        .filter(|(_, (kind, _))| *kind == "KTP")
        .map(|(id, _)| id)
        .collect();
    let mut verifications = Vec::new();
    for (i, ktp) in ktps.iter().enumerate() {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        verifications.push(api.start(&alice, ktp, None).await);
    }
    let mut decided = 0;
    for id in &verifications {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = api_a.get(&rita, &format!("/v1/verifications/{id}")).await;
            let state = v["state"].as_str().unwrap();
            if state == "pending_manual_review" {
                break;
            }
            if state.starts_with("auto_") && v["delivery_state"] == "sent" {
                decided += 1;
                break;
            }
            assert!(Instant::now() < deadline, "{id}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    a.terminate();
    b.terminate();
    let log = ocr.kill();
    assert!(
        log.contains("reading a card for another node"),
        "the OCR node read the cards: {log}"
    );

    let mut by_node = std::collections::BTreeMap::<String, usize>::new();
    for (id, events) in document_logs(&db_url, &ids).await {
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert!(
            kinds == ["uploaded", "queued", "processing", "extracted"]
                || kinds == ["uploaded", "queued", "processing", "failed"],
            "{id}: processed exactly once: {kinds:?}"
        );
        let run = &events[2].detail.as_ref().unwrap();
        *by_node
            .entry(run["node"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(
        by_node.keys().collect::<Vec<_>>(),
        ["a@127.0.0.1", "b@127.0.0.1"],
        "both nodes took work: {by_node:?}"
    );
    // Every decision reached BULI2 exactly once: no node sent a row the other was sending.
    let got = client
        .get(format!("{}/sim/deliveries", sim.url()))
        .send()
        .await
        .unwrap()
        .json::<filot::buli2::sim::Deliveries>()
        .await
        .unwrap();
    assert!(
        decided >= 1,
        "some verifications were decided automatically"
    );
    assert_eq!(got.by_key.len(), decided, "{got:?}");
    assert!(got.by_key.values().all(|r| r.count == 1), "{got:?}");
}
