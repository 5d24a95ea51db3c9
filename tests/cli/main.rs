//! The real `filot` binary: zero-configuration start, token minting, config check, migrate,
//! graceful shutdown on SIGTERM, and personal data masked out of its logs. `crash` kills it at
//! the worst moments, `nodes` runs two of it as a cluster, `correlation` follows one id across
//! restarts; `harness` is how they all drive it.

mod challenger;
mod cluster;
mod correlation;
mod crash;
mod harness;
mod nodes;
mod repeats;
#[path = "../support/mod.rs"]
mod support;

use harness::*;

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
    assert!(stdout.contains("# cluster: single node"), "{stdout}");
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

    // A cluster node's settings are checked too: an OCR-only node must listen, a listener
    // needs the cookie, a peer must say name@host:port.
    let out = filot(dir.path())
        .args(["config", "check"])
        .env("FILOT_NODE__ROLES", r#"["ocr"]"#)
        .env("FILOT_CLUSTER__PEERS", r#"["ocr1@10.0.0.2"]"#)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for problem in [
        "set cluster.listen",
        "cluster.cookie: required",
        "cluster.peers: `ocr1@10.0.0.2` must look like name@host:port",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem} not reported:\n{stderr}"
        );
    }
    let out = filot(dir.path())
        .args(["config", "check"])
        .env("FILOT_NODE__NAME", "gpu1@10.0.0.3")
        .env("FILOT_NODE__ROLES", r#"["ocr"]"#)
        .env("FILOT_CLUSTER__LISTEN", "10.0.0.3:4370")
        .env("FILOT_CLUSTER__PEERS", r#"["api@10.0.0.2:4370"]"#)
        .env("FILOT_CLUSTER__COOKIE", "the-cluster-cookie")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("the-cluster-cookie"), "{stdout}");
    assert!(
        stdout.contains(
            "# cluster: node gpu1@10.0.0.3 (ocr) listens on 10.0.0.3:4370, dials 1 peer(s)"
        ) && stdout.contains("needs no database and no shared disk"),
        "{stdout}"
    );
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
