//! # Settings
//!
//! One typed tree for the whole service, built in three layers: built-in defaults, then
//! `cluster.toml` (node identity and shared settings), then `FILOT_*` environment variables
//! (nested keys use `__`, e.g. `FILOT_LIMITS__MAX_FILE_BYTES`).
//!
//! Loading never stops at the first problem: [`Settings::load`] reports every invalid setting
//! at once, so an operator fixes a broken deployment in one round. Secrets are wrapped in
//! [`Secret`] and never print.
//!
//! This module owns loading and the top of the tree; `sections` holds each section's typed
//! settings and defaults, `validate` the semantic checks. Nothing here reads the network or
//! the database: a setting is only parsed and checked.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment, Provider,
    providers::{Env, Format, Serialized, Toml},
    value::Value,
};
use serde::{Deserialize, Serialize};

pub mod duration;
mod keys;
mod peers;
mod sections;
mod validate;

pub use peers::PeerAddr;
pub use sections::*;

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

/// A database URL: it may carry a password, so `Debug` and `Serialize` hide that part
/// (`postgres://user:[redacted]@host/db`) while the rest stays readable.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The whole URL, password included: a call that stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url_password(&self.0))
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url_password(&self.0))
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
    pub database_url: DatabaseUrl,
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
    pub http: HttpSettings,
    pub supervision: SupervisionSettings,
    pub node: NodeSettings,
    pub cluster: ClusterSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: DatabaseUrl::default(),
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
            http: HttpSettings::default(),
            supervision: SupervisionSettings::default(),
            node: NodeSettings::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

/// The restart policy of each kind of actor (see `crate::resilience`).
#[derive(Debug, Clone, Copy)]
pub struct Restarts {
    pub document: crate::resilience::RestartPolicy,
    pub verification: crate::resilience::RestartPolicy,
    /// Each OCR worker, and the pool at the root.
    pub ocr: crate::resilience::RestartPolicy,
    /// The document and verification supervisors, at the root.
    pub supervisors: crate::resilience::RestartPolicy,
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
        let defaults = Figment::from(Serialized::defaults(Settings::default()));
        let mut user = Figment::new();
        if let Some(path) = cluster_toml {
            if path.exists() {
                user = user.merge(Toml::file_exact(path));
            } else if std::env::var_os("FILOT_CONFIG").is_some() {
                return Err(ConfigError {
                    problems: vec![format!("config file {} does not exist", path.display())],
                });
            }
        }
        let env = Env::prefixed("FILOT_").split("__").ignore(NON_SETTING_ENV);
        let user = user.merge(env).merge(overrides);
        let unknown = keys::unknown(&defaults, &user);
        match Self::extract_all(defaults.merge(user.clone())) {
            Ok(mut settings) if unknown.is_empty() => {
                settings
                    .ocr
                    .inherit_challenger_params(|key| user.contains(key));
                Ok(settings)
            }
            Ok(_) => Err(ConfigError { problems: unknown }),
            Err(mut e) => {
                e.problems.splice(0..0, unknown);
                Err(e)
            }
        }
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

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .expect("validated in Settings::validate")
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.expose().trim().is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("filot.db").display()
            )
        } else {
            self.database_url.expose().trim().to_string()
        }
    }

    /// The effective configuration as TOML, secrets redacted, database password hidden.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.database_url = DatabaseUrl::new(self.effective_database_url());
        toml::to_string_pretty(&copy).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// The restart policy of each kind of actor, from its settings.
    pub fn restarts(&self) -> Restarts {
        let policy = |max, window| crate::resilience::RestartPolicy { max, window };
        let (d, w, o, s) = (
            &self.documents,
            &self.workflow,
            &self.ocr,
            &self.supervision,
        );
        Restarts {
            document: policy(d.max_restarts, d.restart_window),
            verification: policy(w.max_restarts, w.restart_window),
            ocr: policy(o.max_restarts, o.restart_window),
            supervisors: policy(s.max_restarts, s.restart_window),
        }
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
        // Duration settings show as text with a unit ("30s"); no other default reads as one.
        Value::String(_, text) if duration::parse(text).is_ok() => {
            figment.extract_inner::<duration::Setting>(key).map(drop)
        }
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
    use std::time::Duration;

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
    fn the_challenger_differs_from_the_champion_only_where_it_is_told_to() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_OCR__PARAMS__DET_MAX_SIDE", "1200");
            jail.set_env("FILOT_OCR__PARAMS__DET_MIN_SIDE", "800");
            jail.set_env("FILOT_OCR__CHALLENGER__PARAMS__DET_MIN_SIDE", "640");
            jail.set_env("FILOT_OCR__CHALLENGER__SHARE_PERCENT", "25");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            let c = &s.ocr.challenger;
            assert_eq!(
                (s.ocr.params.det_min_side, c.params.det_min_side),
                (800, 640)
            );
            assert_eq!(c.params.det_max_side, 1200, "inherited from ocr.params");
            assert_eq!(c.share_percent, 25);
            jail.set_env("FILOT_OCR__CHALLENGER__SHARE_PERCENT", "101");
            jail.set_env("FILOT_OCR__CHALLENGER__REC_WEIGHTS", "/models/rec.bpk");
            let all = Settings::load(None)
                .expect_err("invalid")
                .problems
                .join("\n");
            assert!(all.contains("ocr.challenger.share_percent"), "{all}");
            assert!(all.contains("ocr.challenger.rec_weights_sha256"), "{all}");
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
            jail.set_env("FILOT_WORKFLOW__VERSION", "4");
            jail.set_env("FILOT_WORKFLOW__APPROVE_AT", "30");
            jail.set_env("FILOT_WORKFLOW__REVIEW_SLA", "0d");
            let all = Settings::load(None)
                .expect_err("invalid")
                .problems
                .join("\n");
            assert!(all.contains("workflow.version"), "{all}");
            assert!(all.contains("reject_below"), "{all}");
            assert!(all.contains("workflow.review_sla"), "{all}");
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
    fn durations_are_read_with_their_units_from_files_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[workflow]\nreview_sla = \"36h\"\n[redis]\nlease_ttl = \"1m30s\"\n",
            )?;
            jail.set_env("FILOT_OUTBOX__POLL_INTERVAL", "250ms");
            let s = Settings::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.workflow.review_sla, Duration::from_secs(36 * 3_600));
            assert_eq!(s.redis.lease_ttl, Duration::from_secs(90));
            assert_eq!(s.outbox.poll_interval, Duration::from_millis(250));
            assert!(s.redacted_toml().contains("review_sla = \"36h\""));

            jail.set_env("FILOT_OUTBOX__TIMEOUT", "30");
            jail.set_env("FILOT_AUTH__LEEWAY", "1500ms");
            let all = Settings::load(None)
                .expect_err("no unit")
                .problems
                .join("\n");
            assert!(all.contains("30 has no unit"), "{all}");
            assert!(all.contains("outbox.timeout"), "{all}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_AUTH__LEEWAY", "1500ms");
            let all = Settings::load(None)
                .expect_err("fraction")
                .problems
                .join("\n");
            assert!(all.contains("auth.leeway: must be whole seconds"), "{all}");
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
    fn unknown_settings_are_refused_naming_the_closest_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILOT_LIMITS__MAX_FILE_BYTE", "1048576");
            jail.create_file(
                "c.toml",
                "[outbox]\nwebhook_timout = \"3s\"\n[limits]\ntrust_forwarded_for = true\n",
            )?;
            let all = Settings::load(Some(Path::new("c.toml")))
                .expect_err("typos are refused")
                .problems
                .join("\n");
            assert!(
                all.contains("limits.max_file_byte: unknown setting (from FILOT_LIMITS__MAX_FILE_BYTE); did you mean limits.max_file_bytes?"),
                "{all}"
            );
            assert!(
                all.contains("did you mean outbox.webhook_timeout?"),
                "{all}"
            );
            assert!(all.contains("replaced by limits.trusted_proxies"), "{all}");
            jail.set_env("FILOT_OUTBOX__POLL_MS", "100");
            let all = Settings::load(None)
                .expect_err("old key")
                .problems
                .join("\n");
            assert!(
                all.contains("outbox.poll_ms: unknown setting (from FILOT_OUTBOX__POLL_MS); replaced by outbox.poll_interval, a duration with its unit"),
                "{all}"
            );
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(Secret::new("x".repeat(40)));
        s.database_url = DatabaseUrl::new("postgres://u:hunter2@db/filot");
        s.redis_url = Some(Secret::new("redis://:swordfish@cache:6379/0"));
        let text = s.redacted_toml();
        assert!(!text.contains(&"x".repeat(40)));
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("swordfish"));
        assert!(!format!("{s:?}").contains("swordfish"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(text.contains("postgres://u:[redacted]@db/filot"), "{text}");
        assert!(format!("{s:?}").contains("[redacted]"));
    }
}
