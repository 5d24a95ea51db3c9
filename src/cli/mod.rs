//! # Command line
//!
//! What each `filot` subcommand does once `main.rs` has parsed its arguments: load the
//! settings (defaults ← config file ← `FILOT_*` ← flags), do the work, and answer with an exit
//! code: 0 done, 1 the work failed, 2 bad arguments or settings. The OCR tools (`ocr`,
//! `ocr-report`, `bench-ocr`) are in `ocr`. Nothing in the service calls into this module;
//! it owns no state and parses no argument syntax (clap does, in `main.rs`).

pub mod ocr;
pub mod throughput;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use figment::{Figment, providers::Serialized};

use crate::{
    Application,
    config::Settings,
    http::auth::{AuthKeys, Role},
};

/// Flags that override settings for one command.
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    fn figment(self) -> Figment {
        let mut f = Figment::new();
        if let Some(l) = self.listen {
            f = f.merge(Serialized::default("listen", l));
        }
        if let Some(d) = self.data_dir {
            f = f.merge(Serialized::default("data_dir", d));
        }
        f
    }
}

fn load(config: &Path, overrides: Overrides) -> Result<Settings, ExitCode> {
    Settings::load_with(Some(config), overrides.figment()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// `filot serve`: runs the service until SIGINT/SIGTERM.
pub async fn serve(config: &Path, overrides: Overrides) -> ExitCode {
    let settings = match load(config, overrides) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::telemetry::init(&settings);
    if !settings.node.roles.iter().any(|r| r == "api") {
        return serve_ocr_node(settings).await;
    }
    let data_dir = settings.data_dir.clone();
    let Some(app) = started(Application::build(settings).await) else {
        return ExitCode::FAILURE;
    };
    // Handle SIGTERM from before the line that tells a supervisor (or a test) we are up.
    let stop = crate::shutdown_signal();
    println!(
        "filot listening on http://{addr} (Swagger UI: http://{addr}/docs) — mint a token: filot token --sub alice --role user --data-dir {}",
        data_dir.display(),
        addr = app.local_addr()
    );
    stopped(app.run_until_stopped(stop).await)
}

/// The built node, or `None` once the reason it could not start is logged and printed.
fn started<T>(built: Result<T, crate::StartError>) -> Option<T> {
    built
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot start");
            eprintln!("filot: cannot start: {e}");
        })
        .ok()
}

/// How serving ended, as the process's exit code.
fn stopped(served: std::io::Result<()>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filot: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `filot serve` on a node without the `api` role: OCR for the cluster, health and metrics.
async fn serve_ocr_node(settings: crate::config::Settings) -> ExitCode {
    let name = settings.node.name.clone();
    let Some(node) = started(crate::ocr_node::OcrNode::build(settings).await) else {
        return ExitCode::FAILURE;
    };
    let stop = crate::shutdown_signal();
    println!(
        "filot OCR node {name} listening on http://{} (health and metrics only)",
        node.local_addr()
    );
    stopped(node.run_until_stopped(stop).await)
}

/// `filot token`: prints a JWT signed with this deployment's keys.
pub fn token(
    config: &Path,
    overrides: Overrides,
    sub: &str,
    role: &str,
    ttl: Option<&str>,
) -> ExitCode {
    let settings = match load(config, overrides) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let role: Role = match role.parse() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("filot token: {e}");
            return ExitCode::from(2);
        }
    };
    let ttl = match ttl.map(parse_ttl) {
        Some(Some(d)) => d,
        Some(None) => {
            eprintln!("filot token: --ttl must look like 3600, 90s, 30m, 12h or 7d");
            return ExitCode::from(2);
        }
        None => settings.auth.default_token_ttl,
    };
    match AuthKeys::from_settings(&settings).and_then(|keys| keys.mint(sub, role, ttl)) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("filot token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--ttl`: a duration as in the settings (`90s`, `30m`, `1h30m`), or a bare count of seconds.
fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let ttl = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => crate::config::duration::parse(text).ok()?,
    };
    (!ttl.is_zero()).then_some(ttl)
}

/// `filot migrate`: applies the database migrations and exits.
pub async fn migrate(config: &Path, overrides: Overrides) -> ExitCode {
    let settings = match load(config, overrides) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match crate::open_database(&settings).await {
        Ok(db) => {
            db.close().await;
            println!(
                "migrations applied to {}",
                crate::config::redact_url_password(&settings.effective_database_url())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("filot migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What this node will be in the cluster, in one line.
fn cluster_summary(settings: &Settings) -> String {
    let c = &settings.cluster;
    let roles = settings.node.roles.join(", ");
    if c.listen.is_empty() {
        return format!("single node {} ({roles})", settings.node.name);
    }
    let needs = if settings.node.roles.iter().any(|r| r == "api") {
        "the database"
    } else {
        "no database and no shared disk"
    };
    format!(
        "node {} ({roles}) listens on {}, dials {} peer(s), declares a peer down after {:?} without a heartbeat; needs {needs}",
        settings.node.name,
        c.listen,
        c.peers.len(),
        c.heartbeat_deadline
    )
}

/// `filot config check`: prints the effective settings (secrets redacted), or every problem.
pub fn config_check(config: &Path) -> ExitCode {
    match Settings::load(Some(config)) {
        Ok(settings) => {
            print!("{}", settings.redacted_toml());
            println!("# cluster: {}", cluster_summary(&settings));
            println!("# configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `filot buli2-sim`: a BULI2 simulator until SIGINT/SIGTERM.
pub async fn buli2_sim(listen: &str, config: crate::buli2::sim::SimConfig) -> ExitCode {
    match crate::buli2::sim::start(listen, config).await {
        Ok(sim) => {
            let stop = crate::shutdown_signal();
            println!(
                "BULI2 simulator on {} (decisions at /kyc/decisions)",
                sim.url()
            );
            stop.await;
            sim.stop();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("filot buli2-sim: cannot listen on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_as_settings_durations_or_seconds() {
        assert_eq!(parse_ttl("3600"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_ttl("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("0"), None);
        assert_eq!(parse_ttl("forever"), None);
    }
}
