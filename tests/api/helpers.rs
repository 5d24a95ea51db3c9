//! spawn_app(): the real service on 127.0.0.1:0 with a fresh data directory and database.

use std::{sync::Arc, time::Duration};

use filot::{
    Application,
    config::Settings,
    http::{AppState, auth::Role},
    resilience::{Poller, Pollers},
};
use reqwest::multipart::{Form, Part};

pub struct TestApp {
    pub base: String,
    /// The separate `/metrics` listener, when `metrics.listen` is set.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub use crate::support::fixture;

/// Settings for tests: generous rate limits unless a test tightens them.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    s.limits.uploads_per_user_per_minute = 10_000;
    s.limits.uploads_per_ip_per_minute = 10_000;
    s.limits.requests_per_user_per_minute = 100_000;
    s.limits.auth_failures_per_ip_per_minute = 10_000;
    s.limits.max_active_verifications_per_user = 10_000;
    // Intake tests look at documents before OCR; the pipeline tests turn a worker on.
    s.ocr.devices = vec![];
    s.workflow.poll_interval = Duration::from_millis(100);
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    spawn_in(dir, settings).await
}

pub async fn spawn_in(dir: tempfile::TempDir, settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        metrics_base,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        state,
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn token(&self, sub: &str, role: Role) -> String {
        self.state
            .auth
            .mint(sub, role, Duration::from_secs(600))
            .expect("mint")
    }

    pub async fn upload(
        &self,
        token: &str,
        doc_type: &str,
        bytes: Vec<u8>,
        name: &str,
        idem: Option<&str>,
    ) -> reqwest::Response {
        let form = Form::new().text("type", doc_type.to_string()).part(
            "file",
            Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str("image/jpeg")
                .unwrap(),
        );
        let mut req = self
            .client
            .post(self.url("/v1/documents"))
            .bearer_auth(token)
            .multipart(form);
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("request sent")
    }

    /// Uploads the clean KTP fixture as `sub` and returns the new document id.
    pub async fn upload_ktp(&self, token: &str) -> String {
        let resp = self
            .upload(token, "KTP", fixture("ktp_003.jpg"), "ktp.jpg", None)
            .await;
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    /// Uploads a fixture as `doc_type` and returns the new document's id.
    pub async fn upload_id(&self, token: &str, doc_type: &str, name: &str) -> String {
        let resp = self
            .upload(token, doc_type, fixture(name), name, None)
            .await;
        assert_eq!(resp.status(), 202, "{name}");
        id_of(resp).await
    }

    /// Starts a verification of `ktp` (and `npwp`) and returns its id.
    pub async fn start_verification(&self, token: &str, ktp: &str, npwp: Option<&str>) -> String {
        let mut body = serde_json::json!({ "ktp_document_id": ktp });
        if let Some(n) = npwp {
            body["npwp_document_id"] = n.into();
        }
        let resp = self.post_json(token, "/v1/verifications", &body).await;
        assert_eq!(resp.status(), 202);
        id_of(resp).await
    }

    /// Settles a document as if OCR had read `fields` (with confidence 0.95 each) and found
    /// `issues`: the same sealed write the OCR worker makes, through the document's actor.
    pub async fn extract(&self, id: &str, fields: &[(&str, &str)], issues: &[&str]) {
        use filot::store::documents::{DocumentChange, Reading, SealedReading};
        let reading = Reading {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            confidence: fields.iter().map(|(k, _)| (k.to_string(), 0.95)).collect(),
            ..Default::default()
        };
        let doc = id.parse().unwrap();
        let sealed = SealedReading::seal(&self.state.blobs, &doc, &reading, Some(1), None).unwrap();
        let token = self.claim(id).await;
        let change = DocumentChange::Extracted {
            fields: sealed,
            issues: issues.iter().map(|s| s.to_string()).collect(),
            token,
            cache_key: None,
            challenge: false,
        };
        self.state
            .documents
            .apply(id.parse().unwrap(), change, "test:ocr")
            .await
            .expect("document extracted");
    }

    /// Takes a queued document to `processing` as an OCR worker of this node would (an hour's
    /// deadline) and returns the claim's fencing token.
    pub async fn claim(&self, id: &str) -> i64 {
        let lease = self
            .state
            .leases
            .try_acquire(filot::store::leases::LeaseKind::Document, id, 0)
            .await
            .unwrap()
            .expect("lease free");
        self.state.leases.release(&lease).await;
        let claim = filot::store::documents::Claim {
            node: self.state.leases.node().to_string(),
            token: lease.token,
            deadline: filot::store::now_millis() + 3_600_000,
        };
        self.state
            .documents
            .apply(
                id.parse().unwrap(),
                filot::store::documents::DocumentChange::Processing(claim),
                "test:ocr",
            )
            .await
            .expect("document claimed");
        lease.token
    }

    /// Settles a document as `failed` with `reason`, as OCR would.
    pub async fn fail(&self, id: &str, reason: &str) {
        let token = self.claim(id).await;
        let change = filot::store::documents::DocumentChange::Failed {
            reason: reason.into(),
            token,
        };
        self.state
            .documents
            .apply(id.parse().unwrap(), change, "test:ocr")
            .await
            .expect("document failed");
    }

    /// A KTP of the token's owner, read as a clean card, and a verification of it (which is
    /// auto-approved); the verification's id. Each owner's card has a NIK of its own (the
    /// serial differs), so no owner's case is flagged for using another's number.
    pub async fn approved_case(&self, token: &str) -> String {
        let ktp = self.upload_id(token, "KTP", "ktp_003.jpg").await;
        let subject = self.state.auth.verify(token).expect("a valid token").id;
        let serial = 1 + subject
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31) ^ u32::from(b))
            % 9999;
        let nik = format!("327502461289{serial:04}");
        self.extract(
            &ktp,
            &[
                ("nik", &nik),
                ("name", "KARTIKA SUSANTO"),
                ("birth_date", "1989-12-06"),
            ],
            &[],
        )
        .await;
        self.start_verification(token, &ktp, None).await
    }

    /// POSTs a signal (`review-decision`, `second-review`, `cancel-review`) to a verification.
    pub async fn signal(
        &self,
        token: &str,
        id: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.post_json(
            token,
            &format!("/v1/verifications/{id}/signals/{kind}"),
            &body,
        )
        .await
    }

    /// The served OpenAPI document.
    pub async fn spec(&self) -> serde_json::Value {
        let resp = self.client.get(self.url("/openapi.json")).send().await;
        resp.expect("request sent").json().await.expect("JSON spec")
    }

    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// GETs `path` until `done` holds for its JSON body (or panics after `secs`).
    pub async fn wait_for(
        &self,
        token: &str,
        path: &str,
        secs: u64,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let body: serde_json::Value = self.get(token, path).await.json().await.unwrap();
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} still {body} after {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 30 s) until `poller` has finished two more rounds than it had: the
    /// second began after this call, so whatever it would do about the state at the call
    /// has been done. How a test says "and nothing happened" without guessing with time.
    pub async fn two_rounds_of(&self, poller: impl Fn(&Pollers) -> &Poller) {
        let poller = poller(&self.state.pollers);
        let target = poller.rounds() + 2;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while poller.rounds() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the poller finished {} rounds, not {target}",
                poller.rounds()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// The kinds of a document's events, in order (read from the database).
    pub async fn event_kinds(&self, id: &str) -> Vec<String> {
        let events = filot::store::documents::events(&self.state.db, &id.parse().unwrap())
            .await
            .unwrap();
        events.into_iter().map(|e| e.kind).collect()
    }

    /// `GET /v1/documents/{id}`'s body.
    pub async fn document(&self, token: &str, id: &str) -> serde_json::Value {
        let resp = self.get(token, &format!("/v1/documents/{id}")).await;
        resp.json().await.unwrap()
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the server and the actor tree, keeping the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

/// The `id` of a JSON answer.
pub async fn id_of(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("JSON body");
    body["id"].as_str().expect("an id").to_string()
}

/// Asserts the one error shape and returns the body.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let header = resp
        .headers()
        .get("x-correlation-id")
        .map(|v| v.to_str().unwrap().to_string())
        .expect("X-Correlation-Id on every response");
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["correlation_id"].as_str(),
        Some(header.as_str()),
        "{body}"
    );
    body
}

/// Polls a document until OCR settled it (`extracted` or `failed`), for up to three minutes.
pub async fn wait_final(app: &TestApp, token: &str, id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let doc: serde_json::Value = app
            .get(token, &format!("/v1/documents/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if doc["status"] == "extracted" || doc["status"] == "failed" {
            return doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} after the deadline",
            doc["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The KTP fields the review tests extract.
pub const REVIEW_KTP: &[(&str, &str)] = &[
    ("nik", "3275024612894728"),
    ("name", "KARTIKA SUSANTO"),
    ("birth_date", "1989-12-06"),
];

/// A case of `owner`'s (a user, or a reviewer who also applied) waiting for a reviewer.
pub async fn in_review(app: &TestApp, owner: &str) -> String {
    let uploader = app.token(owner, Role::User);
    let ktp = app.upload_id(&uploader, "KTP", "ktp_003.jpg").await;
    app.extract(&ktp, REVIEW_KTP, &["nik_gender_mismatch"])
        .await;
    let id = app.start_verification(&uploader, &ktp, None).await;
    app.wait_for(&uploader, &format!("/v1/verifications/{id}"), 20, |v| {
        v["state"] == "pending_manual_review"
    })
    .await;
    id
}
