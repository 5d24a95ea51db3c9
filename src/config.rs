//! # Settings
//!
//! One typed tree for the whole service, built in three layers: built-in defaults, then
//! `cluster.toml` (node identity and shared settings), then `FILOT_*` environment variables
//! (nested keys use `__`, e.g. `FILOT_LIMITS__MAX_FILE_BYTES`).
//!
//! Loading never stops at the first problem: [`Settings::load`] reports every invalid setting
//! at once, so an operator fixes a broken deployment in one round. Secrets are wrapped in
//! [`Secret`] and never print.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment, Provider,
    providers::{Env, Format, Serialized, Toml},
    value::Value,
};
use serde::{Deserialize, Serialize};

/// A configured secret. `Debug`, `Display` and `Serialize` all redact it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The only way to read the value: a call that stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human-readable when it is.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Where the embedded database, blobs and generated secrets live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty means SQLite in `data_dir`.
    pub database_url: String,
    /// Log level filter in `tracing` syntax (overridden by `RUST_LOG`).
    pub log_level: String,
    pub log_format: LogFormat,
    /// BULI2's base URL (`FILOT_BULI2_URL`); decisions go to `{url}/kyc/decisions`. Unset: the
    /// BULI2 integration is off (decisions wait in the outbox).
    pub buli2_url: Option<String>,
    /// Shared HMAC secret for BULI2 (`FILOT_BULI2_SECRET`), both directions. Required when
    /// `buli2_url` is set: FiLot never sends unsigned or accepts unverified.
    pub buli2_secret: Option<Secret>,
    /// `redis://[:password@]host:port[/db]` (`FILOT_REDIS_URL`). Set: leases and rate limits
    /// are shared through it by every node. Unset: both live in this process (one node).
    pub redis_url: Option<Secret>,
    pub redis: RedisSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub blobs: BlobSettings,
    pub limits: Limits,
    pub documents: DocumentSettings,
    pub ocr: OcrSettings,
    pub workflow: WorkflowSettings,
    pub outbox: OutboxSettings,
    pub metrics: MetricsSettings,
    pub node: NodeSettings,
    pub cluster: ClusterSettings,
}

/// Redis pool and the leases kept in it (the in-process leases use the same TTL and wait).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Connections in the pool.
    pub pool_size: u32,
    /// Milliseconds a call waits for a connection (Redis down costs a caller at most this).
    pub timeout_ms: u64,
    /// Milliseconds a lease lives without renewal (its holder renews every third of it).
    pub lease_ttl_ms: u64,
    /// Milliseconds a request waits for a verification's lease held by another node.
    pub lease_wait_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout_ms: 1_000,
            lease_ttl_ms: 30_000,
            lease_wait_ms: 2_000,
        }
    }
}

/// Metrics: Prometheus text at `GET /metrics` always; CloudWatch EMF lines when enabled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Also write CloudWatch Embedded Metric Format JSON lines.
    pub emf_enabled: bool,
    /// `stdout`, or a file the lines are appended to.
    pub emf_output: String,
    /// Seconds between EMF flushes (and one at shutdown).
    pub emf_interval_secs: u64,
    pub emf_namespace: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            emf_enabled: false,
            emf_output: "stdout".into(),
            emf_interval_secs: 60,
            emf_namespace: "FiLot".into(),
        }
    }
}

/// Delivery of decisions (BULI2) and status webhooks from the transactional outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxSettings {
    /// How often the OutboxActor looks for due rows, in milliseconds.
    pub poll_ms: u64,
    /// Per HTTP attempt.
    pub timeout_secs: u64,
    /// Attempts per delivery round (exponential back-off with jitter in between).
    pub attempts: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Failed rounds after which a row is dead-lettered.
    pub max_rounds: u32,
    /// Delay before the next round, doubling per failed round up to `round_delay_max_ms`.
    pub round_delay_ms: u64,
    pub round_delay_max_ms: u64,
    /// Consecutive failed calls that open BULI2's circuit breaker…
    pub breaker_failures: u32,
    /// …and how long it stays open before one probe.
    pub breaker_cooldown_ms: u64,
    /// Accepted clock difference on signed callbacks, either way, in seconds.
    pub callback_window_secs: u64,
    /// Active status webhooks one user may register.
    pub max_webhooks_per_user: u32,
    /// Allow webhook URLs that point at loopback, private or link-local addresses (off:
    /// a client must not make FiLot call into its own network).
    pub webhook_allow_private: bool,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_ms: 500,
            timeout_secs: 30,
            attempts: 3,
            backoff_min_ms: 500,
            backoff_max_ms: 10_000,
            max_rounds: 5,
            round_delay_ms: 30_000,
            round_delay_max_ms: 3_600_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            callback_window_secs: 300,
            max_webhooks_per_user: 5,
            webhook_allow_private: false,
        }
    }
}

/// The KYC review workflow: decision thresholds, blocking issues, review SLA, versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowSettings {
    /// Workflow version new verifications start under (1 or 2). Running instances keep the
    /// version they started with. 2 re-checks the NPWP after a reviewer corrects the KTP.
    pub version: u32,
    /// Score (0–100) at or above which a case with no blocking issue is approved on its own.
    pub approve_at: u32,
    /// Score below which a case is rejected on its own.
    pub reject_below: u32,
    /// Issue codes that reject a case on their own, whatever the score.
    pub blocking_issues: Vec<String>,
    /// A verification waiting for a reviewer longer than this moves to `expired`.
    pub review_sla_hours: u64,
    /// How often the workflow driver looks for verifications whose documents are ready and
    /// for due timers, in milliseconds.
    pub poll_ms: u64,
    /// A verification actor with no message for this long stops (state stays in the database).
    pub actor_idle_secs: u64,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        Self {
            version: crate::kyc::workflow::CURRENT_VERSION,
            approve_at: 85,
            reject_below: 35,
            blocking_issues: vec![
                "holder_under_17".into(),
                "nik_unknown_province".into(),
                "nik_region_invalid".into(),
            ],
            review_sla_hours: 168,
            poll_ms: 500,
            actor_idle_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// HS256 shared secret. Unset: a random one is generated once into `data_dir/secrets`.
    pub jwt_secret: Option<Secret>,
    /// PEM file with an RS256 public key. When set, tokens are verified with it (RS256 only).
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM file with the RS256 private key, only needed by `filot token` in RS256 mode.
    pub jwt_private_key_file: Option<PathBuf>,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Lifetime of tokens minted by `filot token` unless `--ttl` says otherwise.
    pub default_token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BlobSettings {
    /// Base64 of a 32-byte AES-256-GCM key. Unset: generated once into `data_dir/secrets`.
    pub encryption_key: Option<Secret>,
}

/// Every limit the intake enforces. Each is documented in `.env.example`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted file part (bytes); larger → 413 `file_too_large`.
    pub max_file_bytes: u64,
    /// Largest accepted upload request body (bytes), multipart framing included.
    pub max_request_bytes: u64,
    /// Largest JSON request body (bytes) on other routes.
    pub max_json_bytes: u64,
    /// Images whose header declares a side longer than this are refused before decoding.
    pub max_image_side: u32,
    /// Images whose header declares more pixels than this are refused before decoding.
    pub max_image_pixels: u64,
    /// Uploads per user per minute.
    pub uploads_per_user_per_minute: u32,
    /// Uploads per client address per minute.
    pub uploads_per_ip_per_minute: u32,
    /// Authenticated requests per user per minute, all routes together.
    pub requests_per_user_per_minute: u32,
    /// Failed authentications per client address per minute before that address gets 429.
    pub auth_failures_per_ip_per_minute: u32,
    /// Seconds an upload may take to arrive in full.
    pub upload_timeout_secs: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Page size bounds for list endpoints.
    pub max_page_size: u32,
    /// How long an `Idempotency-Key` is remembered, in hours.
    pub idempotency_ttl_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentSettings {
    /// A document actor with no message for this long stops; the next message starts a new one.
    pub actor_idle_secs: u64,
    /// How long an API call waits for a document actor's answer.
    pub actor_call_timeout_ms: u64,
    /// Restarts of one document actor tolerated inside `restart_window_secs`; beyond, the
    /// document is quarantined (503) until the window passes.
    pub max_restarts: u32,
    pub restart_window_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrSettings {
    /// One OCR worker per entry: `cpu` (Burn's CPU backend) or `cuda:N` (builds with the
    /// `cuda` feature). Empty: this node runs no OCR and uploads stay `queued`.
    pub devices: Vec<String>,
    /// How often the pool looks for documents waiting for OCR, in milliseconds.
    pub poll_ms: u64,
    /// Recognition batches across documents on one device: at most this many lines…
    pub batch_lines: usize,
    /// …gathered for at most this many milliseconds.
    pub batch_wait_ms: u64,
    /// Seconds one OCR run may take before the reaper stops its worker and requeues it.
    pub job_deadline_secs: u64,
    /// Runs a document gets; after the last one times out it is `failed` (`ocr_timeout`).
    pub max_attempts: u32,
    /// Milliseconds between the reaper's looks for runs past their deadline.
    pub reaper_poll_ms: u64,
    /// Failures of one OCR worker tolerated per window (each restarted on reloaded models)
    /// before it is given up; when every worker is given up the pool fails, and the pool is
    /// restarted as many times per window before it is left down.
    pub max_restarts: u32,
    pub restart_window_secs: u64,
    /// Pipeline tunables (detector sizes, thresholds, recognition batch).
    pub params: crate::gpu::OcrParams,
}

impl Default for OcrSettings {
    fn default() -> Self {
        Self {
            devices: vec!["cpu".into()],
            poll_ms: 500,
            batch_lines: 64,
            batch_wait_ms: 5,
            job_deadline_secs: 300,
            max_attempts: 3,
            reaper_poll_ms: 5_000,
            max_restarts: 5,
            restart_window_secs: 60,
            params: crate::gpu::OcrParams::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSettings {
    /// `name@host` of this node in the cluster.
    pub name: String,
    /// What this node does: any of `api`, `ocr`, `outbox`.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClusterSettings {
    /// Address the cluster listener binds; empty = no cluster listener.
    pub listen: String,
    /// Other nodes, `name@host:port`. Empty = single node.
    pub peers: Vec<String>,
    /// Erlang-style magic cookie shared by all nodes.
    pub cookie: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            log_level: "info".into(),
            log_format: LogFormat::Auto,
            buli2_url: None,
            buli2_secret: None,
            redis_url: None,
            redis: RedisSettings::default(),
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            blobs: BlobSettings::default(),
            limits: Limits::default(),
            documents: DocumentSettings::default(),
            ocr: OcrSettings::default(),
            workflow: WorkflowSettings::default(),
            outbox: OutboxSettings::default(),
            metrics: MetricsSettings::default(),
            node: NodeSettings::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout_ms: 5_000,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_private_key_file: None,
            issuer: "filot".into(),
            leeway_secs: 30,
            default_token_ttl_secs: 3_600,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 2 * 1024 * 1024,
            max_request_bytes: 2 * 1024 * 1024 + 64 * 1024,
            max_json_bytes: 64 * 1024,
            max_image_side: 12_000,
            max_image_pixels: 48_000_000,
            uploads_per_user_per_minute: 30,
            uploads_per_ip_per_minute: 120,
            requests_per_user_per_minute: 1_200,
            auth_failures_per_ip_per_minute: 30,
            upload_timeout_secs: 60,
            trust_forwarded_for: false,
            max_page_size: 100,
            idempotency_ttl_hours: 24,
        }
    }
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            actor_idle_secs: 60,
            actor_call_timeout_ms: 10_000,
            max_restarts: 5,
            restart_window_secs: 60,
        }
    }
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            name: "filot@localhost".into(),
            roles: vec!["api".into(), "ocr".into(), "outbox".into()],
        }
    }
}

/// Every problem found while loading settings, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Environment variables with the `FILOT_` prefix that are not settings (test harness knobs).
const NON_SETTING_ENV: &[&str] = &["TEST_POSTGRES_URL", "TEST_POSTGRES_CTL", "CONFIG"];

impl Settings {
    /// Loads defaults ← `cluster_toml` (when the file exists) ← `FILOT_*` env.
    pub fn load(cluster_toml: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(cluster_toml, Figment::new())
    }

    /// Like [`Settings::load`], with extra overrides on top (command-line flags).
    pub fn load_with(cluster_toml: Option<&Path>, overrides: Figment) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = cluster_toml {
            if path.exists() {
                figment = figment.merge(Toml::file_exact(path));
            } else if std::env::var_os("FILOT_CONFIG").is_some() {
                return Err(ConfigError {
                    problems: vec![format!("config file {} does not exist", path.display())],
                });
            }
        }
        let env = Env::prefixed("FILOT_").split("__").ignore(NON_SETTING_ENV);
        let figment = figment.merge(env).merge(overrides);
        Self::extract_all(figment)
    }

    /// Extracts settings, collecting every type error and every semantic error.
    fn extract_all(figment: Figment) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let figment = match figment.extract::<Settings>() {
            Ok(_) => figment,
            Err(_) => {
                // Walk every known leaf; report each one that does not fit, then put the
                // default back so the remaining (semantic) checks can still run.
                let defaults = Figment::from(Serialized::defaults(Settings::default()));
                let mut repaired = figment.clone();
                for (key, default) in leaves(&defaults) {
                    if let Err(e) = extract_like(&figment, &key, &default) {
                        problems.push(format!("{key}: {}", e.kind));
                        repaired = repaired.merge(Serialized::default(&key, default));
                    }
                }
                repaired
            }
        };
        let settings = match figment.extract::<Settings>() {
            Ok(s) => s,
            Err(e) => {
                for err in e {
                    problems.push(format!("{}: {}", err.path.join("."), err.kind));
                }
                return Err(ConfigError { problems });
            }
        };
        problems.extend(settings.validate());
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Semantic checks that types alone cannot express.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "listen: `{}` is not a socket address (e.g. 127.0.0.1:8080)",
                self.listen
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir: must not be empty".into());
        }
        let url = self.database_url.trim();
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p));
        if !url.is_empty() && !known_scheme {
            p.push("database_url: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if self.database.max_connections == 0 {
            p.push("database.max_connections: must be at least 1".into());
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            p.push("auth.jwt_secret: must be at least 32 characters".into());
        }
        if self.auth.issuer.trim().is_empty() {
            p.push("auth.issuer: must not be empty".into());
        }
        if let Some(path) = &self.auth.jwt_public_key_file
            && !path.exists()
        {
            p.push(format!(
                "auth.jwt_public_key_file: {} does not exist",
                path.display()
            ));
        }
        if let Some(key) = &self.blobs.encryption_key {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(key.expose().trim()) {
                Ok(bytes) if bytes.len() == 32 => {}
                _ => p.push("blobs.encryption_key: must be base64 of exactly 32 bytes".into()),
            }
        }
        let l = &self.limits;
        let positive: [(&str, u64); 10] = [
            ("limits.upload_timeout_secs", l.upload_timeout_secs),
            ("limits.max_file_bytes", l.max_file_bytes),
            ("limits.max_json_bytes", l.max_json_bytes),
            ("limits.max_image_side", l.max_image_side.into()),
            ("limits.max_image_pixels", l.max_image_pixels),
            (
                "limits.uploads_per_user_per_minute",
                l.uploads_per_user_per_minute.into(),
            ),
            (
                "limits.uploads_per_ip_per_minute",
                l.uploads_per_ip_per_minute.into(),
            ),
            (
                "limits.requests_per_user_per_minute",
                l.requests_per_user_per_minute.into(),
            ),
            (
                "limits.auth_failures_per_ip_per_minute",
                l.auth_failures_per_ip_per_minute.into(),
            ),
            ("limits.max_page_size", l.max_page_size.into()),
        ];
        for (key, value) in positive {
            if value == 0 {
                p.push(format!("{key}: must be greater than 0"));
            }
        }
        if l.max_request_bytes < l.max_file_bytes {
            p.push("limits.max_request_bytes: must be at least limits.max_file_bytes".into());
        }
        if self.documents.actor_idle_secs == 0 {
            p.push("documents.actor_idle_secs: must be greater than 0".into());
        }
        if self.documents.actor_call_timeout_ms == 0 {
            p.push("documents.actor_call_timeout_ms: must be greater than 0".into());
        }
        for device in &self.ocr.devices {
            if crate::gpu::parse_device(device).is_err() {
                p.push(format!("ocr.devices: `{device}` is not available in this build (cpu; cuda:N with --features cuda)"));
            }
        }
        if self.ocr.batch_lines == 0 {
            p.push("ocr.batch_lines: must be greater than 0".into());
        }
        for (key, value) in [
            ("ocr.poll_ms", self.ocr.poll_ms),
            ("ocr.job_deadline_secs", self.ocr.job_deadline_secs),
            ("ocr.max_attempts", self.ocr.max_attempts.into()),
            ("ocr.reaper_poll_ms", self.ocr.reaper_poll_ms),
            ("ocr.restart_window_secs", self.ocr.restart_window_secs),
            ("redis.pool_size", self.redis.pool_size.into()),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("redis.lease_ttl_ms", self.redis.lease_ttl_ms),
        ] {
            if value == 0 {
                p.push(format!("{key}: must be greater than 0"));
            }
        }
        if let Some(url) = &self.redis_url {
            let u = url.expose().trim();
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                p.push("redis_url: must be a redis:// or rediss:// URL".into());
            }
        }
        if let Some(url) = &self.buli2_url {
            let u = url.trim();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                p.push("buli2_url: must be an http:// or https:// URL".into());
            }
            match &self.buli2_secret {
                None => p.push(
                    "buli2_secret: required when buli2_url is set (FiLot never fails open)".into(),
                ),
                Some(s) if s.expose().len() < 16 => {
                    p.push("buli2_secret: must be at least 16 characters".into())
                }
                Some(_) => {}
            }
        }
        let o = &self.outbox;
        for (key, value) in [
            ("outbox.poll_ms", o.poll_ms),
            ("outbox.timeout_secs", o.timeout_secs),
            ("outbox.attempts", o.attempts.into()),
            ("outbox.max_rounds", o.max_rounds.into()),
            ("outbox.breaker_failures", o.breaker_failures.into()),
            ("outbox.callback_window_secs", o.callback_window_secs),
        ] {
            if value == 0 {
                p.push(format!("{key}: must be greater than 0"));
            }
        }
        if self.metrics.emf_enabled && self.metrics.emf_interval_secs == 0 {
            p.push("metrics.emf_interval_secs: must be greater than 0".into());
        }
        let w = &self.workflow;
        if !(1..=crate::kyc::workflow::CURRENT_VERSION).contains(&w.version) {
            p.push(format!(
                "workflow.version: must be between 1 and {}",
                crate::kyc::workflow::CURRENT_VERSION
            ));
        }
        if w.approve_at > 100 || w.reject_below > w.approve_at {
            p.push(
                "workflow.approve_at / reject_below: need 0 <= reject_below <= approve_at <= 100"
                    .into(),
            );
        }
        for (key, value) in [
            ("workflow.review_sla_hours", w.review_sla_hours),
            ("workflow.poll_ms", w.poll_ms),
            ("workflow.actor_idle_secs", w.actor_idle_secs),
        ] {
            if value == 0 {
                p.push(format!("{key}: must be greater than 0"));
            }
        }
        if !self.node.name.contains('@') {
            p.push(format!(
                "node.name: `{}` must look like name@host",
                self.node.name
            ));
        }
        for role in &self.node.roles {
            if !["api", "ocr", "outbox"].contains(&role.as_str()) {
                p.push(format!(
                    "node.roles: unknown role `{role}` (api, ocr, outbox)"
                ));
            }
        }
        if !self.cluster.peers.is_empty() && self.cluster.cookie.is_none() {
            p.push("cluster.cookie: required when cluster.peers is not empty".into());
        }
        p
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .expect("validated in Settings::validate")
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.trim().is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("filot.db").display()
            )
        } else {
            self.database_url.trim().to_string()
        }
    }

    /// The effective configuration as TOML, secrets redacted, database password hidden.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.database_url = redact_url_password(&self.effective_database_url());
        toml::to_string_pretty(&copy).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    pub fn actor_call_timeout(&self) -> Duration {
        Duration::from_millis(self.documents.actor_call_timeout_ms)
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:[redacted]@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_string(),
    }
}

/// All leaf keys (dotted paths) of a figment, with their values.
fn leaves(figment: &Figment) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Dict(_, dict) => {
                for (k, v) in dict {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    if let Ok(root) = figment.find_value("") {
        walk("", &root, &mut out);
    } else if let Ok(dict) = figment.data() {
        for (_, d) in dict {
            for (k, v) in d {
                walk(&k, &v, &mut out);
            }
        }
    }
    out
}

/// Extracts `key` from `figment` as the same kind of value its default has.
fn extract_like(figment: &Figment, key: &str, default: &Value) -> Result<(), Box<figment::Error>> {
    if !figment.contains(key) {
        return Ok(());
    }
    let result = match default {
        Value::Num(_, n) if n.to_f64().is_some_and(|f| f.fract() == 0.0) => {
            figment.extract_inner::<u64>(key).map(drop)
        }
        Value::Num(..) => figment.extract_inner::<f64>(key).map(drop),
        Value::Bool(..) => figment.extract_inner::<bool>(key).map(drop),
        Value::String(..) => figment.extract_inner::<String>(key).map(drop),
        Value::Array(..) => figment.extract_inner::<Vec<String>>(key).map(drop),
        _ => Ok(()),
    };
    result.map_err(Box::new)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error by design
mod tests {
    use super::*;

    fn manifest(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    #[test]
    fn shipped_cluster_toml_loads_and_validates() {
        figment::Jail::expect_with(|_jail| {
            let s = Settings::load(Some(&manifest("cluster.toml"))).map_err(|e| e.to_string())?;
            assert!(s.node.name.contains('@'));
            Ok(())
        });
    }

    #[test]
    fn shipped_env_example_loads_and_validates() {
        let text = std::fs::read_to_string(manifest(".env.example")).unwrap();
        figment::Jail::expect_with(|jail| {
            let mut count = 0;
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = line.split_once('=').expect("KEY=value lines");
                assert!(k.starts_with("FILOT_"), "{k} lacks the FILOT_ prefix");
                jail.set_env(k, v);
                count += 1;
            }
            assert!(count > 10, ".env.example documents too few variables");
            Settings::load(Some(&manifest("cluster.toml"))).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn buli2_without_a_secret_refuses_to_start() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_BULI2_URL", "http://buli2.internal:9090");
            let all = Settings::load(None)
                .expect_err("invalid")
                .problems
                .join("\n");
            assert!(all.contains("buli2_secret: required"), "{all}");
            jail.set_env("FILOT_BULI2_SECRET", "a-long-shared-secret");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.buli2_url.as_deref(), Some("http://buli2.internal:9090"));
            Ok(())
        });
    }

    #[test]
    fn workflow_settings_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_WORKFLOW__VERSION", "3");
            jail.set_env("FILOT_WORKFLOW__APPROVE_AT", "30");
            jail.set_env("FILOT_WORKFLOW__REVIEW_SLA_HOURS", "0");
            let all = Settings::load(None)
                .expect_err("invalid")
                .problems
                .join("\n");
            assert!(all.contains("workflow.version"), "{all}");
            assert!(all.contains("reject_below"), "{all}");
            assert!(all.contains("workflow.review_sla_hours"), "{all}");
            Ok(())
        });
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_LISTEN", "not-an-address");
            jail.set_env("FILOT_LIMITS__MAX_FILE_BYTES", "lots");
            jail.set_env("FILOT_LIMITS__MAX_PAGE_SIZE", "0");
            jail.set_env("FILOT_AUTH__JWT_SECRET", "short");
            let err = Settings::load(None).expect_err("invalid");
            let all = err.problems.join("\n");
            assert!(all.contains("listen"), "{all}");
            assert!(all.contains("limits.max_file_bytes"), "{all}");
            assert!(all.contains("limits.max_page_size"), "{all}");
            assert!(all.contains("auth.jwt_secret"), "{all}");
            assert_eq!(err.problems.len(), 4, "{all}");
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"127.0.0.1:9000\"\n[limits]\nmax_file_bytes = 1000\nmax_request_bytes = 5000\n")?;
            jail.set_env("FILOT_LISTEN", "127.0.0.1:9100");
            let s = Settings::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "127.0.0.1:9100");
            assert_eq!(s.limits.max_file_bytes, 1000);
            assert_eq!(s.limits.max_json_bytes, Limits::default().max_json_bytes);
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(Secret::new("x".repeat(40)));
        s.database_url = "postgres://u:hunter2@db/filot".into();
        s.redis_url = Some(Secret::new("redis://:swordfish@cache:6379/0"));
        let text = s.redacted_toml();
        assert!(!text.contains(&"x".repeat(40)));
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("swordfish"));
        assert!(!format!("{s:?}").contains("swordfish"));
        assert!(format!("{s:?}").contains("[redacted]"));
    }
}
