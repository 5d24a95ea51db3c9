//! The sections of [`Settings`](super::Settings): one typed struct per concern, each with its
//! defaults. Every field is documented here and in `.env.example`; semantic checks live in
//! `validate`. Periods are [`Duration`]s, written with a unit (`250ms`, `30s`, `5m`, `12h`,
//! `7d`; see `duration`).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::Secret;
pub use crate::kyc::workflow::FourEyes;

/// Redis pool and the leases kept in it (the in-process leases use the same TTL and wait).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long a call waits for a connection (Redis down costs a caller at most this).
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// How long a lease lives without renewal (its holder renews every third of it).
    #[serde(with = "super::duration")]
    pub lease_ttl: Duration,
    /// How long a request waits for a verification's lease held by another node.
    #[serde(with = "super::duration")]
    pub lease_wait: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(2),
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
    /// Time between EMF flushes (and one at shutdown).
    #[serde(with = "super::duration")]
    pub emf_interval: Duration,
    pub emf_namespace: String,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (`FILOT_METRICS__TOKEN`).
    pub token: Option<Secret>,
    /// When set (`host:port`), `/metrics` is served only on this separate listener (e.g. a
    /// private interface) and no longer on the API's.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            emf_enabled: false,
            emf_output: "stdout".into(),
            emf_interval: Duration::from_secs(60),
            emf_namespace: "FiLot".into(),
            token: None,
            listen: String::new(),
        }
    }
}

/// Delivery of decisions (BULI2) and status webhooks from the transactional outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxSettings {
    /// How often the OutboxActor looks for due rows.
    #[serde(with = "super::duration")]
    pub poll_interval: Duration,
    /// Per HTTP attempt.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Attempts per delivery round (exponential back-off with jitter in between).
    pub attempts: u32,
    #[serde(with = "super::duration")]
    pub backoff_min: Duration,
    #[serde(with = "super::duration")]
    pub backoff_max: Duration,
    /// Failed rounds after which a row is dead-lettered.
    pub max_rounds: u32,
    /// Delay before the next round, doubling per failed round up to `round_delay_max`.
    #[serde(with = "super::duration")]
    pub round_delay: Duration,
    #[serde(with = "super::duration")]
    pub round_delay_max: Duration,
    /// Consecutive failed calls that open BULI2's circuit breaker…
    pub breaker_failures: u32,
    /// …and how long it stays open before one probe.
    #[serde(with = "super::duration")]
    pub breaker_cooldown: Duration,
    /// Accepted clock difference on signed callbacks, either way (whole seconds).
    #[serde(with = "super::duration")]
    pub callback_window: Duration,
    /// Active status webhooks one user may register.
    pub max_webhooks_per_user: u32,
    /// Allow webhook URLs that point at loopback, private or link-local addresses (off:
    /// a client must not make FiLot call into its own network). Checked at registration and
    /// again on every delivery, where only public addresses are connected to.
    pub webhook_allow_private: bool,
    /// Per HTTP attempt to a webhook (webhooks have their own lane, client and breakers).
    #[serde(with = "super::duration")]
    pub webhook_timeout: Duration,
    /// Deliveries in flight to one webhook at once.
    pub webhook_concurrency_per_endpoint: u32,
    /// Webhook deliveries in flight at once on this node, all endpoints together.
    pub webhook_max_in_flight: u32,
    /// Consecutive failed calls that open one webhook endpoint's breaker…
    pub webhook_breaker_failures: u32,
    /// …and how long it stays open before one probe.
    #[serde(with = "super::duration")]
    pub webhook_breaker_cooldown: Duration,
    /// How long registration waits for a webhook host's DNS answer (a name that resolves to
    /// a non-public address is refused; one that does not resolve is checked at delivery).
    #[serde(with = "super::duration")]
    pub webhook_resolve_timeout: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            attempts: 3,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            max_rounds: 5,
            round_delay: Duration::from_secs(30),
            round_delay_max: Duration::from_secs(3600),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            callback_window: Duration::from_secs(300),
            max_webhooks_per_user: 5,
            webhook_allow_private: false,
            webhook_timeout: Duration::from_secs(10),
            webhook_concurrency_per_endpoint: 2,
            webhook_max_in_flight: 32,
            webhook_breaker_failures: 5,
            webhook_breaker_cooldown: Duration::from_secs(60),
            webhook_resolve_timeout: Duration::from_secs(2),
        }
    }
}

/// The KYC review workflow: decision thresholds, blocking issues, review SLA, versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowSettings {
    /// Workflow version new verifications start under (1, 2 or 3). Running instances keep the
    /// version they started with. 2 re-checks the NPWP after a reviewer corrects the KTP; 3
    /// adds the two-person rule (`four_eyes`).
    pub version: u32,
    /// Score (0–100) at or above which a case with no blocking issue is approved on its own.
    pub approve_at: u32,
    /// Score below which a case is rejected on its own.
    pub reject_below: u32,
    /// Issue codes that reject a case on their own, whatever the score.
    pub blocking_issues: Vec<String>,
    /// A verification waiting for a reviewer longer than this moves to `expired`.
    #[serde(with = "super::duration")]
    pub review_sla: Duration,
    /// How long a reviewer's claim on a case holds (renewed by claiming again).
    #[serde(with = "super::duration")]
    pub claim_ttl: Duration,
    /// How often the workflow driver looks for verifications whose documents are ready and
    /// for due timers.
    #[serde(with = "super::duration")]
    pub poll_interval: Duration,
    /// A verification actor with no message for this long stops (state stays in the database).
    #[serde(with = "super::duration")]
    pub actor_idle: Duration,
    /// Failures of one verification's actor tolerated per window before it is quarantined
    /// (503) until the window passes.
    pub max_restarts: u32,
    #[serde(with = "super::duration")]
    pub restart_window: Duration,
    /// The two-person rule for reviews (verifications started under workflow v3):
    /// `identity_corrections` (a decision that corrects nik, name, birth_date or npwp waits
    /// for a second reviewer), `always` (every review decision does), or `off`.
    pub four_eyes: FourEyes,
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
            review_sla: Duration::from_secs(168 * 3_600),
            claim_ttl: Duration::from_secs(30 * 60),
            poll_interval: Duration::from_millis(500),
            actor_idle: Duration::from_secs(60),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            four_eyes: FourEyes::IdentityCorrections,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    #[serde(with = "super::duration")]
    pub acquire_timeout: Duration,
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
    /// Expected `aud` claim (tokens for another audience are refused).
    pub audience: String,
    /// Longest lifetime (`exp - iat`, whole seconds) a token may claim; longer-lived tokens are
    /// refused even when signed correctly.
    #[serde(with = "super::duration")]
    pub max_token_lifetime: Duration,
    /// Clock skew tolerated on `exp`/`nbf` (whole seconds).
    #[serde(with = "super::duration")]
    pub leeway: Duration,
    /// Lifetime of tokens minted by `filot token` unless `--ttl` says otherwise.
    #[serde(with = "super::duration")]
    pub default_token_ttl: Duration,
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
    /// How long an upload may take to arrive in full.
    #[serde(with = "super::duration")]
    pub upload_timeout: Duration,
    /// Reverse proxies (CIDRs, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` is believed: the
    /// client is the right-most hop that is not one of them. Empty: the socket peer is the
    /// client and the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Uploads being received at once on this node; past it, 503 `too_many_uploads` with
    /// `Retry-After`.
    pub max_concurrent_uploads: u32,
    /// The `Retry-After` (whole seconds) sent with `too_many_uploads`.
    #[serde(with = "super::duration")]
    pub upload_busy_retry_after: Duration,
    /// Verifications one user may have in progress (not final) at once.
    pub max_active_verifications_per_user: u32,
    /// Bytes of stored (not erased) files one user may hold; 0 = no quota.
    pub storage_quota_bytes_per_user: u64,
    /// Page size bounds for list endpoints.
    pub max_page_size: u32,
    /// How long an `Idempotency-Key` is remembered.
    #[serde(with = "super::duration")]
    pub idempotency_ttl: Duration,
    /// Parts one batch upload (`POST /v1/batches`) may carry; the rest are refused one by one
    /// (`too_many_parts`).
    pub max_batch_parts: u32,
    /// Largest batch upload request body (bytes), multipart framing included; larger → 413
    /// `request_too_large`. Each part is still held to `max_file_bytes`.
    pub max_batch_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentSettings {
    /// A document actor with no message for this long stops; the next message starts a new one.
    #[serde(with = "super::duration")]
    pub actor_idle: Duration,
    /// How long an API call waits for a document actor's answer.
    #[serde(with = "super::duration")]
    pub actor_call_timeout: Duration,
    /// Restarts of one document actor tolerated inside `restart_window`; beyond, the
    /// document is quarantined (503) until the window passes.
    pub max_restarts: u32,
    #[serde(with = "super::duration")]
    pub restart_window: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrSettings {
    /// One OCR worker per entry: `cpu` (Burn's CPU backend) or `cuda:N` (builds with the
    /// `cuda` feature). Empty: this node runs no OCR and uploads stay `queued`.
    pub devices: Vec<String>,
    /// How often the pool looks for documents waiting for OCR.
    #[serde(with = "super::duration")]
    pub poll_interval: Duration,
    /// Recognition batches across documents on one device: at most this many lines…
    pub batch_lines: usize,
    /// …gathered for at most this long.
    #[serde(with = "super::duration")]
    pub batch_wait: Duration,
    /// How long one OCR run may take before the reaper stops its worker and requeues it.
    #[serde(with = "super::duration")]
    pub job_deadline: Duration,
    /// Runs a document gets; after the last one times out it is `failed` (`ocr_timeout`).
    pub max_attempts: u32,
    /// Time between the reaper's looks for runs past their deadline.
    #[serde(with = "super::duration")]
    pub reaper_poll_interval: Duration,
    /// Failures of one OCR worker tolerated per window (each restarted on reloaded models)
    /// before it is given up; when every worker is given up the pool fails, and the pool is
    /// restarted as many times per window before it is left down.
    pub max_restarts: u32,
    #[serde(with = "super::duration")]
    pub restart_window: Duration,
    /// Pipeline tunables (detector sizes, thresholds, recognition batch).
    pub params: crate::gpu::OcrParams,
    /// The same file uploaded again by the same owner (as the same card type) is given the
    /// reading it got before instead of being read again, while the model files and
    /// `params` are unchanged (`ocr_source: "cache"`).
    pub cache_readings: bool,
    /// A challenger engine reading a sample of the champion's documents again, afterwards.
    pub challenger: ChallengerSettings,
}

impl OcrSettings {
    /// The challenger's parameters become `params` with each key `is_set` under
    /// `ocr.challenger.params` (a dotted settings key) overriding: it differs from the
    /// champion only where it is told to.
    pub(super) fn inherit_challenger_params(&mut self, is_set: impl Fn(&str) -> bool) {
        let mut merged = serde_json::to_value(&self.params).expect("parameters serialize");
        let own = serde_json::to_value(&self.challenger.params).expect("parameters serialize");
        if let (Some(merged), Some(own)) = (merged.as_object_mut(), own.as_object()) {
            for (key, value) in own {
                if is_set(&format!("ocr.challenger.params.{key}")) {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        self.challenger.params = serde_json::from_value(merged).expect("the same parameters");
    }
}

/// A challenger OCR engine: it reads again, at the lowest priority and only while the
/// champion has nothing waiting, a share of the documents the champion read; its reading is
/// compared field by field and never counts (see `crate::actors::challenger`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChallengerSettings {
    /// Percent of the documents the champion reads (on a node with OCR devices) that the
    /// challenger reads again; 0 turns it off.
    pub share_percent: u8,
    /// Parameter overrides: each key set here replaces `ocr.params`' (e.g.
    /// `FILOT_OCR__CHALLENGER__PARAMS__DET_MIN_SIDE=640`); the rest are the champion's.
    pub params: crate::gpu::OcrParams,
    /// The device it reads on; empty: this node's first OCR device.
    pub device: String,
    /// Other detector weights: a Burnpack (`.bpk`) file of the built-in architecture
    /// (`filot ocr export-weights` writes the built-in ones); empty: the built-in weights.
    pub det_weights: String,
    /// The detector weights file's SHA-256 (required with `det_weights`).
    pub det_weights_sha256: String,
    /// Other recogniser weights, as `det_weights`.
    pub rec_weights: String,
    /// The recogniser weights file's SHA-256 (required with `rec_weights`).
    pub rec_weights_sha256: String,
}

impl Default for OcrSettings {
    fn default() -> Self {
        Self {
            devices: vec!["cpu".into()],
            poll_interval: Duration::from_millis(500),
            batch_lines: 64,
            batch_wait: Duration::from_millis(5),
            job_deadline: Duration::from_secs(300),
            max_attempts: 3,
            reaper_poll_interval: Duration::from_secs(5),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            params: crate::gpu::OcrParams::default(),
            cache_readings: true,
            challenger: ChallengerSettings::default(),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSettings {
    /// Address the cluster listener binds; empty = no cluster listener.
    pub listen: String,
    /// Other nodes, `name@host:port`. Empty = single node.
    pub peers: Vec<String>,
    /// Erlang-style magic cookie shared by all nodes (env `FILOT_CLUSTER__COOKIE`).
    pub cookie: Option<Secret>,
    /// How often each peer is pinged (and missing peers re-dialled).
    #[serde(with = "super::duration")]
    pub heartbeat_interval: Duration,
    /// A peer that has not answered for this long is declared down and its work rerouted.
    #[serde(with = "super::duration")]
    pub heartbeat_deadline: Duration,
    /// The longest wait between two dials of a peer that stays away.
    #[serde(with = "super::duration")]
    pub redial_max: Duration,
    /// The largest cluster frame accepted (a card's bytes travel in one).
    pub max_frame_bytes: u64,
    /// Mutual TLS on the cluster link; off while `cert` is empty.
    pub tls: ClusterTlsSettings,
}

/// PEM files: this node's certificate chain and key, and the CA every peer's chain must
/// lead to (peers are checked both ways).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClusterTlsSettings {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            peers: Vec::new(),
            cookie: None,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_deadline: Duration::from_secs(5),
            redial_max: Duration::from_secs(10),
            // A 2 MB card and its envelope, with room; ractor_cluster's own default is 16 MiB.
            max_frame_bytes: 4 * 1024 * 1024,
            tls: ClusterTlsSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
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
            audience: "filot".into(),
            max_token_lifetime: Duration::from_secs(86_400),
            leeway: Duration::from_secs(30),
            default_token_ttl: Duration::from_secs(3_600),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 2 * 1024 * 1024,
            max_request_bytes: 2 * 1024 * 1024 + 64 * 1024,
            max_json_bytes: 64 * 1024,
            max_image_side: crate::media::ImageLimits::default().max_side,
            max_image_pixels: crate::media::ImageLimits::default().max_pixels,
            uploads_per_user_per_minute: 30,
            uploads_per_ip_per_minute: 120,
            requests_per_user_per_minute: 1_200,
            auth_failures_per_ip_per_minute: 30,
            upload_timeout: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            max_concurrent_uploads: 32,
            upload_busy_retry_after: Duration::from_secs(2),
            max_active_verifications_per_user: 5,
            storage_quota_bytes_per_user: 0,
            max_page_size: 100,
            idempotency_ttl: Duration::from_secs(24 * 3_600),
            max_batch_parts: 50,
            max_batch_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The image size limits, as the decoders take them.
    pub fn image(&self) -> crate::media::ImageLimits {
        crate::media::ImageLimits {
            max_side: self.max_image_side,
            max_pixels: self.max_image_pixels,
        }
    }
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            actor_idle: Duration::from_secs(60),
            actor_call_timeout: Duration::from_secs(10),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
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

/// Connection-level protection of the HTTP listeners against slow and idle clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// A request's headers must arrive in full within this long (also how long a
    /// kept-alive connection may wait for its next request).
    #[serde(with = "super::duration")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
    /// A request body (other than an upload, see `limits.upload_timeout`) must arrive
    /// within this long; slower → 408 `request_timeout`.
    #[serde(with = "super::duration")]
    pub body_read_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    #[serde(with = "super::duration")]
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The supervisors of the per-entity actors (documents, verifications): how often they may
/// fail per window before the node stops itself rather than serve half a tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisionSettings {
    pub max_restarts: u32,
    #[serde(with = "super::duration")]
    pub restart_window: Duration,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}
