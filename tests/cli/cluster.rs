//! The cluster as real processes on loopback: one `api` node on SQLite and OCR-only nodes
//! with empty data directories, joined only through `FILOT_CLUSTER__*` / `FILOT_NODE__*`.
//! Work spreads over the OCR nodes, survives one being killed or paused, and waits `queued`
//! while there is none; a node with the wrong cookie or another protocol never joins.

use std::{
    process::Child,
    time::{Duration, Instant},
};

use crate::harness::*;

pub(crate) const COOKIE: &str = "loopback-cluster-cookie";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An OCR-only node: its own empty directory, one CPU device on one thread.
pub(crate) struct OcrNode {
    child: Child,
    dir: tempfile::TempDir,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl OcrNode {
    /// Started with `peers` (`name`, cluster port) to dial.
    pub(crate) fn start(
        name: &str,
        port: u16,
        peers: &[(&str, u16)],
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{name}@127.0.0.1");
        let listen = format!("127.0.0.1:{port}");
        let peers = peer_list(peers);
        let mut env = vec![
            ("FILOT_NODE__NAME", name.as_str()),
            ("FILOT_NODE__ROLES", r#"["ocr"]"#),
            ("FILOT_CLUSTER__LISTEN", listen.as_str()),
            ("FILOT_CLUSTER__PEERS", peers.as_str()),
            ("FILOT_CLUSTER__COOKIE", COOKIE),
            ("FILOT_OCR__PARAMS__THREADS", "1"),
        ];
        env.extend_from_slice(extra);
        let (child, stderr, line) = spawn_serve(dir.path(), &env);
        assert!(line.contains("OCR node"), "startup line: {line}");
        Self {
            child,
            dir,
            stderr: Some(stderr),
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGKILL; returns its log.
    pub(crate) fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.stderr.take().unwrap().join().unwrap();
        // It wrote nothing anywhere: no database, no blobs, no secrets.
        let left: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "an OCR node keeps no files: {left:?}");
        log
    }
}

/// `FILOT_CLUSTER__PEERS` for nodes on loopback.
pub(crate) fn peer_list(peers: &[(&str, u16)]) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|(name, p)| format!(r#""{name}@127.0.0.1:{p}""#))
        .collect();
    format!("[{}]", peers.join(","))
}

/// The `api` node (SQLite, no local OCR) with the OCR nodes as peers.
fn api_node(dir: &std::path::Path, port: u16, peers: &[(&str, u16)]) -> Server {
    let peers = peer_list(peers);
    let listen = format!("127.0.0.1:{port}");
    serve_with(
        dir,
        &[
            ("FILOT_NODE__NAME", "api@127.0.0.1"),
            ("FILOT_NODE__ROLES", r#"["api","outbox"]"#),
            ("FILOT_CLUSTER__LISTEN", listen.as_str()),
            ("FILOT_CLUSTER__PEERS", peers.as_str()),
            ("FILOT_CLUSTER__COOKIE", COOKIE),
            ("FILOT_OCR__POLL_INTERVAL", "200ms"),
        ],
    )
}

/// `name → (state, processed)` from the admin view.
async fn cluster(api: &Api, admin: &str) -> std::collections::BTreeMap<String, (String, u64)> {
    let view = api.get(admin, "/v1/admin/cluster").await;
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                (
                    n["state"].as_str().unwrap().to_string(),
                    n["processed"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

/// The kinds of document `id`'s events, from the api node's SQLite database in `dir`.
async fn event_kinds(dir: &std::path::Path, id: &str) -> Vec<String> {
    let url = format!("sqlite://{}", dir.join("data/filot.db").display());
    let (_, events) = document_logs(&url, &[id.to_string()]).await.remove(0);
    runs_never_overlap(id, &events);
    events.into_iter().map(|e| e.kind).collect()
}

/// Waits until the API node sees `node` up.
async fn wait_up(api: &Api, admin: &str, node: &str) {
    wait_for(&format!("{node} up"), 60, async || {
        cluster(api, admin)
            .await
            .get(node)
            .is_some_and(|(s, _)| s == "up")
    })
    .await;
}

/// A fixture's ground truth.
fn truth(file: &str) -> serde_json::Value {
    let json = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        file.rsplit_once('.').unwrap().0
    ))
    .unwrap();
    serde_json::from_str(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ocr_nodes_share_a_burst_and_losing_one_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, p1, p2, p_bad, p_old) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let server = api_node(
        dir.path(),
        api_port,
        &[
            ("ocr1", p1),
            ("ocr2", p2),
            ("intruder", p_bad),
            ("old", p_old),
        ],
    );
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let alice = token(dir.path(), "alice", "user");
    let admin = token(dir.path(), "ops", "admin");

    // No OCR member yet: uploads are accepted and wait queued; readiness says why.
    let early = api.upload(&alice, "KTP", "ktp_003.jpg").await;
    let ready: serde_json::Value = api
        .client
        .get(format!("{}/health/ready", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready.to_string().contains("no OCR capacity"), "{ready}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.status(&alice, &early).await, "queued");

    // A node with the wrong cookie and one built with other cluster messages never join.
    let intruder = OcrNode::start(
        "intruder",
        p_bad,
        &[("api", api_port)],
        &[("FILOT_CLUSTER__COOKIE", "wrong")],
    );
    let old = OcrNode::start(
        "old",
        p_old,
        &[("api", api_port)],
        &[("TEST_FILOT_CLUSTER_PROTOCOL", "99")],
    );
    let ocr1 = OcrNode::start("ocr1", p1, &[("api", api_port)], &[]);
    let ocr2 = OcrNode::start("ocr2", p2, &[("api", api_port)], &[]);
    wait_up(&api, &admin, "ocr1@127.0.0.1").await;
    wait_up(&api, &admin, "ocr2@127.0.0.1").await;
    // The early upload is read once a node joined.
    api.all_final(&alice, std::slice::from_ref(&early)).await;
    assert_eq!(api.status(&alice, &early).await, "extracted");

    // A burst of 24; once both nodes have read some, one is killed mid-burst.
    let mut files = Vec::new();
    let mut uploads = Vec::new();
    for (kind, file) in BURST.iter().cycle().take(24) {
        files.push((*kind, *file));
        uploads.push(api.upload(&alice, kind, file));
    }
    let ids = futures_util::future::join_all(uploads).await;
    wait_for("both OCR nodes took work", 300, async || {
        let nodes = cluster(&api, &admin).await;
        nodes["ocr1@127.0.0.1"].1 >= 1 && nodes["ocr2@127.0.0.1"].1 >= 1
    })
    .await;
    let log2 = ocr2.kill();
    assert!(log2.contains("reading a card for another node"), "{log2}");
    let noticed = wait_for("the killed node marked down", 30, async || {
        cluster(&api, &admin).await["ocr2@127.0.0.1"].0 == "down"
    })
    .await;
    assert!(noticed < Duration::from_secs(30));
    api.all_final(&alice, &ids).await;

    for (id, (kind, file)) in ids.iter().zip(&files) {
        let doc = api.get(&alice, &format!("/v1/documents/{id}")).await;
        assert_eq!(doc["status"], "extracted", "{file}: {doc}");
        let truth = truth(file);
        assert_eq!(doc["fields"]["name"], truth["name"], "{file}");
        if *kind == "KTP" {
            assert_eq!(doc["fields"]["birth_date"], truth["birth_date"], "{file}");
        }
    }
    let nodes = cluster(&api, &admin).await;
    assert!(!nodes.contains_key("intruder@127.0.0.1"), "{nodes:?}");
    assert!(!nodes.contains_key("old@127.0.0.1"), "{nodes:?}");
    let log1 = ocr1.kill();
    assert!(log1.contains("cluster node joined"), "{log1}");
    let log_old = old.kill();
    assert!(log_old.contains("refusing cluster node"), "{log_old}");
    intruder.kill();
    let log = server.terminate();
    assert!(log.contains("refusing cluster node"), "{log}");
    assert!(log.contains("cluster node left"), "{log}");

    let url = format!("sqlite://{}", dir.path().join("data/filot.db").display());
    let mut all = ids.clone();
    all.push(early);
    for (id, events) in document_logs(&url, &all).await {
        runs_never_overlap(&id, &events);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_ocr_node_is_declared_down_its_work_rerouted_and_its_late_answer_fenced_out() {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, p1, p2) = (free_port(), free_port(), free_port());
    let server = api_node(dir.path(), api_port, &[("ocr1", p1), ("ocr2", p2)]);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let alice = token(dir.path(), "alice", "user");
    let admin = token(dir.path(), "ops", "admin");
    let ocr1 = OcrNode::start("ocr1", p1, &[("api", api_port)], &[]);
    wait_up(&api, &admin, "ocr1@127.0.0.1").await;
    // ocr1 takes the card, then freezes mid-read.
    let id = api.upload(&alice, "KTP", "ktp_006.jpg").await;
    wait_for("the card is being read", 30, async || {
        api.status(&alice, &id).await == "processing"
    })
    .await;
    ocr1.signal("-STOP");
    wait_for("the paused node declared down", 30, async || {
        cluster(&api, &admin).await["ocr1@127.0.0.1"].0 == "down"
    })
    .await;
    let ocr2 = OcrNode::start("ocr2", p2, &[("api", api_port)], &[]);
    api.all_final(&alice, std::slice::from_ref(&id)).await;
    assert_eq!(api.status(&alice, &id).await, "extracted");
    // Woken, it finishes its stale read and rejoins; its answer changes nothing.
    ocr1.signal("-CONT");
    wait_for("ocr1 back up", 30, async || {
        cluster(&api, &admin).await["ocr1@127.0.0.1"].0 == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ocr1.kill();
    ocr2.kill();
    let log = server.terminate();
    assert!(log.contains("declared down"), "{log}");
    assert_eq!(
        event_kinds(dir.path(), &id).await,
        [
            "uploaded",
            "queued",
            "processing",
            "requeued",
            "processing",
            "extracted"
        ],
        "one run lost with its node, one that finished; nothing after"
    );
}

/// A CA and a certificate it signed for 127.0.0.1 (client and server use), as PEM files in
/// `dir`: `<name>-ca.pem`, `<name>.pem`, `<name>.key`.
fn certificates(dir: &std::path::Path, name: &str) -> [String; 3] {
    let path = |f: &str| dir.join(f).display().to_string();
    let (ca_key, ca, key, csr, cert, ext) = (
        path(&format!("{name}-ca.key")),
        path(&format!("{name}-ca.pem")),
        path(&format!("{name}.key")),
        path(&format!("{name}.csr")),
        path(&format!("{name}.pem")),
        path(&format!("{name}.ext")),
    );
    let [ca_key_s, ca_s, key_s, csr_s, cert_s, ext_s] = [&ca_key, &ca, &key, &csr, &cert, &ext];
    let (ca_key, ca, key, csr, ext) = (
        ca_key_s.as_str(),
        ca_s.as_str(),
        key_s.as_str(),
        csr_s.as_str(),
        ext_s.as_str(),
    );
    let out_cert = cert_s.as_str();
    std::fs::write(
        ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                ca_key,
                "-out",
                ca,
                "-days",
                "2",
                "-subj",
                "/CN=filot test CA",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", key, "-out", csr, "-subj", "/CN=node"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            out_cert,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    [cert_s.clone(), key_s.clone(), ca_s.clone()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_a_card_is_read_and_a_node_without_the_clusters_certificate_never_joins() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, ca] = certificates(dir.path(), "cluster");
    let [rogue_cert, rogue_key, rogue_ca] = certificates(dir.path(), "rogue");
    let tls = |cert: &str, key: &str, ca: &str| {
        vec![
            ("FILOT_CLUSTER__TLS__CERT".to_string(), cert.to_string()),
            ("FILOT_CLUSTER__TLS__KEY".to_string(), key.to_string()),
            ("FILOT_CLUSTER__TLS__CA".to_string(), ca.to_string()),
        ]
    };
    let (api_port, p1, p_rogue) = (free_port(), free_port(), free_port());
    let peers = peer_list(&[("ocr1", p1), ("rogue", p_rogue)]);
    let listen = format!("127.0.0.1:{api_port}");
    let mut env: Vec<(String, String)> = vec![
        ("FILOT_NODE__NAME".into(), "api@127.0.0.1".into()),
        ("FILOT_NODE__ROLES".into(), r#"["api","outbox"]"#.into()),
        ("FILOT_CLUSTER__LISTEN".into(), listen),
        ("FILOT_CLUSTER__PEERS".into(), peers),
        ("FILOT_CLUSTER__COOKIE".into(), COOKIE.into()),
    ];
    env.extend(tls(&cert, &key, &ca));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = serve_with(dir.path(), &env);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let alice = token(dir.path(), "alice", "user");
    let admin = token(dir.path(), "ops", "admin");
    let own = tls(&cert, &key, &ca);
    let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ocr1 = OcrNode::start("ocr1", p1, &[("api", api_port)], &own);
    // The right cookie, a certificate from another CA.
    let rogue = tls(&rogue_cert, &rogue_key, &rogue_ca);
    let rogue: Vec<(&str, &str)> = rogue
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rogue = OcrNode::start("rogue", p_rogue, &[("api", api_port)], &rogue);
    wait_up(&api, &admin, "ocr1@127.0.0.1").await;
    let id = api.upload(&alice, "KTP", "ktp_003.jpg").await;
    api.all_final(&alice, std::slice::from_ref(&id)).await;
    assert_eq!(api.status(&alice, &id).await, "extracted");
    assert!(!cluster(&api, &admin).await.contains_key("rogue@127.0.0.1"));
    let log = ocr1.kill();
    assert!(log.contains(r#""tls":true"#), "{log}");
    rogue.kill();
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_device_on_an_ocr_node_gets_new_models_and_the_card_is_read_on_its_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, p1) = (free_port(), free_port());
    let server = api_node(dir.path(), api_port, &[("ocr1", p1)]);
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let alice = token(dir.path(), "alice", "user");
    let ocr1 = OcrNode::start(
        "ocr1",
        p1,
        &[("api", api_port)],
        &[
            ("TEST_FILOT_OCR_SERVER_HANG_FIRST", "1"),
            ("FILOT_OCR__JOB_DEADLINE", "20s"),
        ],
    );
    let id = api.upload(&alice, "KTP", "ktp_003.jpg").await;
    api.all_final(&alice, std::slice::from_ref(&id)).await;
    assert_eq!(api.status(&alice, &id).await, "extracted");
    let log = ocr1.kill();
    assert!(log.contains("reloading the device's models"), "{log}");
    server.terminate();
    assert_eq!(
        event_kinds(dir.path(), &id).await,
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
