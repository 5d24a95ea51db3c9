//! The harness the binary's tests share: `filot` as a child process with a clean
//! environment, the HTTP calls they make to it, a BULI2 simulator, and the checks on
//! documents' event logs that the crash and cluster tests run.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support;

pub const BIN: &str = env!("CARGO_BIN_EXE_filot");

/// A command in `dir` with no FILOT_* variables from the environment leaking in.
pub(crate) fn filot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FILOT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub(crate) struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: std::thread::JoinHandle<String>,
}

/// `filot serve` on port 0 in `dir` with no configuration; waits for the printed line.
pub(crate) fn serve(dir: &std::path::Path) -> Server {
    serve_with(dir, &[])
}

/// `filot serve` on port 0 in `dir` with JSON logs and `env`: the child, its log as it will
/// be once it exits, and the line it printed when it was up.
pub(crate) fn spawn_serve(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, std::thread::JoinHandle<String>, String) {
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
    (child, stderr, line)
}

/// `filot serve` with some FILOT_* settings in its environment.
pub(crate) fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let (child, stderr, line) = spawn_serve(dir, env);
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
    pub(crate) fn terminate(mut self) -> String {
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

pub(crate) fn token(dir: &std::path::Path, sub: &str, role: &str) -> String {
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

impl Server {
    /// SIGKILL: no shutdown code runs at all.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        let _ = self.stderr.join();
    }
}

/// One series' value in the Prometheus text `metrics` (the test fails when it is missing).
pub(crate) fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
}

pub(crate) struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

impl Api {
    /// Uploads fixture `name`; the new document's id.
    pub(crate) async fn upload(&self, token: &str, doc_type: &str, name: &str) -> String {
        self.upload_answer(token, doc_type, name).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The Prometheus text `/metrics` serves.
    pub(crate) async fn metrics(&self) -> String {
        let resp = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// Erases document `id` as `token` (its owner): 200 expected.
    pub(crate) async fn erase(&self, token: &str, id: &str) {
        let resp = self
            .client
            .delete(format!("{}/v1/documents/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "erasing {id}");
    }

    /// Uploads fixture `name`; the 202 answer.
    pub(crate) async fn upload_answer(
        &self,
        token: &str,
        doc_type: &str,
        name: &str,
    ) -> serde_json::Value {
        let form = reqwest::multipart::Form::new()
            .text("type", doc_type.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(support::fixture(name)).file_name(name.to_string()),
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
        resp.json().await.unwrap()
    }

    pub(crate) async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
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

    pub(crate) async fn get(&self, token: &str, path: &str) -> serde_json::Value {
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

    pub(crate) async fn start(&self, token: &str, ktp: &str, npwp: Option<&str>) -> String {
        let mut body = serde_json::json!({ "ktp_document_id": ktp });
        if let Some(n) = npwp {
            body["npwp_document_id"] = n.into();
        }
        self.post(token, "/v1/verifications", body).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(crate) async fn wait_state(&self, token: &str, id: &str, want: &str) {
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
    pub(crate) async fn snapshot(&self, token: &str, id: &str) -> (String, Vec<String>) {
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

impl Api {
    pub(crate) async fn status(&self, token: &str, id: &str) -> String {
        self.get(token, &format!("/v1/documents/{id}")).await["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until every document is `extracted` or `failed`.
    pub(crate) async fn all_final(&self, token: &str, ids: &[String]) {
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

/// Every document's event log, read straight from the database at `url`.
pub(crate) async fn document_logs(
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
pub(crate) fn runs_never_overlap(
    id: &str,
    events: &[filot::store::documents::DocumentEvent],
) -> usize {
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
            // A repeated upload given a cached reading was never run.
            "extracted" if !open && e.principal == "ocr:cache" => {}
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

pub(crate) const BURST: [(&str, &str); 8] = [
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
pub(crate) async fn upload_burst(apis: &[&Api], token: &[&str]) -> Vec<String> {
    let uploads = BURST.iter().enumerate().map(|(i, (kind, name))| {
        let n = i % apis.len();
        apis[n].upload(token[n], kind, name)
    });
    futures_util::future::join_all(uploads).await
}

/// Room for one user's many verifications in progress at once (the default allows five).
pub(crate) const MANY_ACTIVE: [(&str, &str); 1] =
    [("FILOT_LIMITS__MAX_ACTIVE_VERIFICATIONS_PER_USER", "100")];
