//! The real `filot` binary: zero-configuration start, token minting, config check, migrate,
//! graceful shutdown on SIGTERM, and personal data masked out of its logs.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod correlation;

const BIN: &str = env!("CARGO_BIN_EXE_filot");

/// A command in `dir` with no FILOT_* variables from the environment leaking in.
fn filot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FILOT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

struct Server {
    child: Child,
    base: String,
    stderr: std::thread::JoinHandle<String>,
}

/// `filot serve` on port 0 in `dir` with no configuration; waits for the printed line.
fn serve(dir: &std::path::Path) -> Server {
    serve_with(dir, &[])
}

/// `filot serve` with some FILOT_* settings in its environment.
fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut child = filot(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FILOT_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn filot serve");
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("startup line");
    assert!(
        line.contains("filot token --sub"),
        "startup line says how to mint a token: {line}"
    );
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address in the startup line")
        .to_string();
    Server {
        child,
        base: format!("http://{addr}"),
        stderr,
    }
}

impl Server {
    /// SIGTERM, wait for a clean exit, return the log.
    fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "clean exit after SIGTERM: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stderr.join().unwrap()
    }
}

fn token(dir: &std::path::Path, sub: &str, role: &str) -> String {
    let out = filot(dir)
        .args(["token", "--sub", sub, "--role", role, "--ttl", "10m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn zero_config_serve_then_token_upload_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let data = dir.path().join("data");
    assert!(
        data.join("filot.db").exists(),
        "SQLite database created in ./data"
    );
    assert!(data.join("secrets/jwt-hs256.key").exists());
    assert!(data.join("secrets/blob-aes256.key").exists());

    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/docs", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let spec: serde_json::Value = client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/v1/documents"].is_object());

    let alice = token(dir.path(), "alice", "user");
    let form = reqwest::multipart::Form::new().text("type", "KTP").part(
        "file",
        reqwest::multipart::Part::bytes(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/ktp_003.jpg"
            ))
            .unwrap(),
        )
        .file_name("k.jpg"),
    );
    let resp = client
        .post(format!("{}/v1/documents", server.base))
        .bearer_auth(&alice)
        .header("x-correlation-id", "upload-trace-abc")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-correlation-id"], "upload-trace-abc");
    let log = server.terminate();
    assert!(log.contains("stopped"), "graceful shutdown logged: {log}");
    // Every log line of that request carries its correlation id.
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("upload-trace-abc"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("document accepted")),
        "{log}"
    );
    assert!(lines.iter().any(|l| l.contains("\"status\":202")), "{log}");
}

#[tokio::test]
async fn personal_data_never_reaches_the_log_unmasked() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let alice = token(dir.path(), "alice", "user");
    let client = reqwest::Client::new();
    let nik = "3201234567890001";
    let npwp = "01.234.567.8-901.234";
    let email = "budi.santoso@example.co.id";
    let phone = "+6281234567890";
    // PII in the path, the query, a header, a declared file name, and the body.
    for path in [
        format!("/v1/documents/{nik}"),
        "/v1/documents/3201-2345-6789-0001".to_string(),
        format!("/v1/documents/{npwp}/file"),
        format!("/v1/{email}"),
        format!("/v1/documents?phone={phone}"),
    ] {
        let _ = client
            .get(format!("{}{path}", server.base))
            .bearer_auth(&alice)
            .header("x-correlation-id", nik)
            .send()
            .await
            .unwrap();
    }
    let form = reqwest::multipart::Form::new().text("type", "KTP").part(
        "file",
        reqwest::multipart::Part::bytes(format!("{nik} {email} {phone}").into_bytes())
            .file_name(format!("{nik}_{phone}.jpg")),
    );
    let resp = client
        .post(format!("{}/v1/documents", server.base))
        .bearer_auth(&alice)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let log = server.terminate();
    for raw in [nik, npwp, email, phone, "081234567890", "1234567890"] {
        assert!(!log.contains(raw), "`{raw}` leaked into the log:\n{log}");
    }
    assert!(
        log.contains("[id]") || log.contains("[npwp]"),
        "the values reached the log masked:\n{log}"
    );
    assert!(log.contains("[email]"), "{log}");
    // A declared file name is never logged, masked or not: only its plain extension.
    assert!(log.contains(r#""declared_extension":"jpg""#), "{log}");
    // A NIK written in groups is masked too.
    assert!(!log.contains("3201-2345-6789-0001"), "{log}");
}

#[test]
fn config_check_prints_redacted_settings_or_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = filot(dir.path())
        .args(["config", "check"])
        .env(
            "FILOT_AUTH__JWT_SECRET",
            "a-very-secret-value-that-is-long-enough-0123",
        )
        .env(
            "FILOT_DATABASE_URL",
            "postgres://filot:hunter2@db.internal/filot",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("listen = \"127.0.0.1:8080\""), "{stdout}");
    assert!(
        !stdout.contains("a-very-secret-value") && !stdout.contains("hunter2"),
        "{stdout}"
    );

    let out = filot(dir.path())
        .args(["config", "check"])
        .env("FILOT_LISTEN", "nowhere")
        .env("FILOT_LIMITS__MAX_FILE_BYTES", "big")
        .env("FILOT_DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["listen", "limits.max_file_bytes", "database_url"] {
        assert!(stderr.contains(key), "{key} not reported:\n{stderr}");
    }
}

#[test]
fn migrate_creates_the_database_and_token_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = filot(dir.path())
        .args(["migrate", "--data-dir", "d"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("d/filot.db").exists());
    let out = filot(dir.path())
        .args(["token", "--sub", "alice", "--role", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = filot(dir.path())
        .args(["token", "--sub", "alice", "--ttl", "forever"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

impl Server {
    /// SIGKILL: no shutdown code runs at all.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        let _ = self.stderr.join();
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn upload(&self, token: &str, doc_type: &str, name: &str) -> String {
        let form = reqwest::multipart::Form::new()
            .text("type", doc_type.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(fixture(name)).file_name(name.to_string()),
            );
        let resp = self
            .client
            .post(format!("{}/v1/documents", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        resp.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn post(&self, token: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> serde_json::Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn start(&self, token: &str, ktp: &str, npwp: Option<&str>) -> String {
        let mut body = serde_json::json!({ "ktp_document_id": ktp });
        if let Some(n) = npwp {
            body["npwp_document_id"] = n.into();
        }
        self.post(token, "/v1/verifications", body).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn wait_state(&self, token: &str, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let v = self.get(token, &format!("/v1/verifications/{id}")).await;
            if v["state"] == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} is {} not {want}",
                v["state"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `(state, event kinds)`; asserts the log is gap-free.
    async fn snapshot(&self, token: &str, id: &str) -> (String, Vec<String>) {
        let v = self.get(token, &format!("/v1/verifications/{id}")).await;
        let log = self
            .get(token, &format!("/v1/verifications/{id}/events"))
            .await;
        let log = log.as_array().unwrap();
        let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=log.len() as i64).collect::<Vec<_>>(),
            "{id}: gap-free"
        );
        let kinds = log
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        (v["state"].as_str().unwrap().to_string(), kinds)
    }
}

/// Room for one user's many verifications in progress at once (the default allows five).
const MANY_ACTIVE: [(&str, &str); 1] = [("FILOT_LIMITS__MAX_ACTIVE_VERIFICATIONS_PER_USER", "100")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_verifications_in_every_state_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &MANY_ACTIVE);
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

#[test]
fn buli2_without_its_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = filot(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FILOT_BULI2_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("buli2_secret: required"), "{err}");
}

/// A BULI2 simulator on a free port that never calls back.
async fn start_sim(secret: &str) -> filot::buli2::sim::Sim {
    filot::buli2::sim::start(
        "127.0.0.1:0",
        filot::buli2::sim::SimConfig {
            secret: secret.as_bytes().to_vec(),
            callback_url: None,
            callback_delay: Duration::from_millis(50),
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_decision_and_repeats_only_its_key() {
    let secret = "kill-test-shared-secret";
    let sim = start_sim(secret).await;
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

#[tokio::test]
async fn emf_metrics_are_flushed_to_a_file_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let emf = dir.path().join("metrics.emf");
    let emf_path = emf.display().to_string();
    let server = serve_with(
        dir.path(),
        &[
            ("FILOT_METRICS__EMF_ENABLED", "true"),
            ("FILOT_METRICS__EMF_OUTPUT", emf_path.as_str()),
            ("FILOT_METRICS__EMF_INTERVAL", "1h"),
        ],
    );
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!("{}/health/live", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        !emf.exists() || std::fs::read_to_string(&emf).unwrap().is_empty(),
        "batched, not per request"
    );
    server.terminate();
    let text = std::fs::read_to_string(&emf).expect("flushed at shutdown");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests = lines
        .iter()
        .find(|l| l["route"] == "/health/live" && l.get("filot.http.requests").is_some())
        .expect("the request counter, with its route dimension");
    assert_eq!(requests["filot.http.requests"], 3);
    assert_eq!(
        requests["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "FiLot"
    );
}

#[path = "../support/redis.rs"]
mod redis_server;

/// Every document's event log, read straight from the database at `url`.
async fn document_logs(
    url: &str,
    ids: &[String],
) -> Vec<(String, Vec<filot::store::documents::DocumentEvent>)> {
    let db = filot::store::Db::connect(url, 2, Duration::from_secs(10))
        .await
        .unwrap();
    let mut logs = Vec::new();
    for id in ids {
        let events = filot::store::documents::events(&db, &id.parse().unwrap())
            .await
            .unwrap();
        logs.push((id.clone(), events));
    }
    db.close().await;
    logs
}

/// Asserts no two OCR runs of one document overlap: every `processing` is closed (requeued,
/// extracted, failed) before the next one starts. Returns the number of runs.
fn runs_never_overlap(id: &str, events: &[filot::store::documents::DocumentEvent]) -> usize {
    let (mut open, mut runs) = (false, 0);
    for e in events {
        match e.kind.as_str() {
            "processing" => {
                assert!(
                    !open,
                    "{id}: a run started while another was open: {events:?}"
                );
                open = true;
                runs += 1;
            }
            "requeued" | "extracted" | "failed" => {
                assert!(open, "{id}: {} without a run: {events:?}", e.kind);
                open = false;
            }
            _ => {}
        }
    }
    assert!(!open, "{id}: a run was left open");
    runs
}

impl Api {
    async fn status(&self, token: &str, id: &str) -> String {
        self.get(token, &format!("/v1/documents/{id}")).await["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until every document is `extracted` or `failed`.
    async fn all_final(&self, token: &str, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(400);
        for id in ids {
            loop {
                let status = self.status(token, id).await;
                if status == "extracted" || status == "failed" {
                    break;
                }
                assert!(Instant::now() < deadline, "{id} still {status}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

const BURST: [(&str, &str); 8] = [
    ("KTP", "ktp_003.jpg"),
    ("NPWP", "npwp_000.jpg"),
    ("KTP", "ktp_001.png"),
    ("KTP", "ktp_006.jpg"),
    ("KTP", "ktp_007.jpg"),
    ("KTP", "ktp_000.pdf"),
    ("KTP", "ktp_003.jpg"),
    ("NPWP", "npwp_000.jpg"),
];

/// Uploads the burst concurrently; the ids of the accepted uploads.
async fn upload_burst(apis: &[&Api], token: &[&str]) -> Vec<String> {
    let uploads = BURST.iter().enumerate().map(|(i, (kind, name))| {
        let n = i % apis.len();
        apis[n].upload(token[n], kind, name)
    });
    futures_util::future::join_all(uploads).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_burst_loses_nothing_and_never_overlaps_runs() {
    let redis = redis_server::RedisServer::start();
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

/// A fresh database on the test Postgres server (`FILOT_TEST_POSTGRES_URL`).
async fn fresh_postgres() -> Option<String> {
    let admin_url = std::env::var("FILOT_TEST_POSTGRES_URL").ok()?;
    let admin = filot::store::Db::connect(&admin_url, 1, Duration::from_secs(10))
        .await
        .expect("test Postgres reachable");
    let name = format!("filot_nodes_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_and_redis_process_each_document_exactly_once() {
    let Some(db_url) = fresh_postgres().await else {
        eprintln!(
            "FILOT_TEST_POSTGRES_URL unset: skipping the two-node test (scripts/test.sh sets it)"
        );
        return;
    };
    let redis = redis_server::RedisServer::start();
    let secret = "two-nodes-shared-secret";
    let sim = start_sim(secret).await;
    let (redis_url, sim_url) = (redis.url(), sim.url());
    // One data directory: the nodes share the blob store and the generated secrets, as
    // nodes on shared storage would.
    let dir = tempfile::tempdir().unwrap();
    let node = |name: &'static str| {
        vec![
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
    let env_a = node("a@localhost");
    let env_a: Vec<(&str, &str)> = env_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = serve_with(dir.path(), &env_a);
    let env_b = node("b@localhost");
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
        ["a@localhost", "b@localhost"],
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
