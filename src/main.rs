//! The `filot` command line: parses arguments and calls into the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use figment::{Figment, providers::Serialized};
use filot::{
    Application,
    config::Settings,
    http::auth::{AuthKeys, Role},
};

#[derive(Parser)]
#[command(
    name = "filot",
    version,
    about = "KYC verification runtime for KTP/NPWP documents"
)]
struct Cli {
    /// Configuration file (node identity, peers, shared settings).
    #[arg(
        long,
        global = true,
        env = "FILOT_CONFIG",
        default_value = "cluster.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (embedded SQLite and CPU defaults need no configuration).
    Serve {
        /// Address to listen on [env: FILOT_LISTEN; default 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<String>,
        /// Data directory for the database, blobs and generated keys [env: FILOT_DATA_DIR; default ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print a signed JWT for trying the API.
    Token {
        #[arg(long)]
        sub: String,
        /// user, reviewer or admin.
        #[arg(long, default_value = "user")]
        role: String,
        /// Lifetime, e.g. 3600, 90s, 30m, 12h, 7d (default: auth.default_token_ttl).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Read cards with the OCR model; one JSON object per file and line.
    Ocr {
        /// JPEG, PNG or PDF files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// KTP or NPWP (default: recognised from the card).
        #[arg(long = "type")]
        doc_type: Option<String>,
        /// Indented JSON for people.
        #[arg(long)]
        pretty: bool,
        /// cpu, or cuda:N with a CUDA build.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also print the raw OCR lines with per-character confidence.
        #[arg(long)]
        lines: bool,
        /// Write a PNG per file into DIR with the detected boxes and the read text drawn on it.
        #[arg(long, value_name = "DIR")]
        annotate: Option<PathBuf>,
    },
    /// Time the OCR pipeline: det ms, rec ms per line, ms per card, cold and warm.
    BenchOcr {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Warm passes over the files.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Lines per recognition batch.
        #[arg(long, default_value_t = 8)]
        rec_batch: usize,
        /// Append the figures as one JSON line to this file.
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Score the OCR readings of specimen folders (card + ground-truth JSON) and print rates.
    OcrReport {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Also list every miss.
        #[arg(long)]
        verbose: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Run a BULI2 simulator to test against: verifies FiLot's signatures, records decisions per
    /// Idempotency-Key, calls back signed, and misbehaves on request (POST /sim/faults).
    Buli2Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// The shared HMAC secret (the same value as FiLot's FILOT_BULI2_SECRET).
        #[arg(long, env = "FILOT_BULI2_SECRET", hide_env_values = true)]
        secret: String,
        /// FiLot's callback endpoint, e.g. http://127.0.0.1:8080/internal/buli2/callbacks.
        #[arg(long)]
        callback_url: Option<String>,
        /// Milliseconds to wait before calling back.
        #[arg(long, default_value_t = 200)]
        callback_delay_ms: u64,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted); exit 1 listing every problem.
    Check,
}

fn overrides(listen: Option<String>, data_dir: Option<PathBuf>) -> Figment {
    let mut f = Figment::new();
    if let Some(l) = listen {
        f = f.merge(Serialized::default("listen", l));
    }
    if let Some(d) = data_dir {
        f = f.merge(Serialized::default("data_dir", d));
    }
    f
}

fn load(cli_config: &std::path::Path, overrides: Figment) -> Result<Settings, ExitCode> {
    Settings::load_with(Some(cli_config), overrides).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// `--ttl`: a duration as in the settings (`90s`, `30m`, `1h30m`), or a bare count of seconds.
fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let ttl = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => filot::config::duration::parse(text).ok()?,
    };
    (!ttl.is_zero()).then_some(ttl)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen, data_dir } => {
            let settings = match load(&cli.config, overrides(listen, data_dir)) {
                Ok(s) => s,
                Err(code) => return code,
            };
            filot::telemetry::init(&settings);
            let data_dir = settings.data_dir.clone();
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("filot: cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!(
                "filot listening on http://{addr} (Swagger UI: http://{addr}/docs) — mint a token: filot token --sub alice --role user --data-dir {}",
                data_dir.display(),
                addr = app.local_addr()
            );
            match app.run_until_stopped(filot::shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("filot: server error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token {
            sub,
            role,
            ttl,
            data_dir,
        } => {
            let settings = match load(&cli.config, overrides(None, data_dir)) {
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
            let ttl = match ttl.as_deref().map(parse_ttl) {
                Some(Some(d)) => d,
                Some(None) => {
                    eprintln!("filot token: --ttl must look like 3600, 90s, 30m, 12h or 7d");
                    return ExitCode::from(2);
                }
                None => settings.auth.default_token_ttl,
            };
            let minted =
                AuthKeys::from_settings(&settings).and_then(|keys| keys.mint(&sub, role, ttl));
            match minted {
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
        Command::Migrate { data_dir } => {
            let settings = match load(&cli.config, overrides(None, data_dir)) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match filot::open_database(&settings).await {
                Ok(db) => {
                    db.close().await;
                    println!(
                        "migrations applied to {}",
                        filot::config::redact_url_password(&settings.effective_database_url())
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("filot migrate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ocr {
            files,
            doc_type,
            pretty,
            device,
            lines,
            annotate,
        } => match engine(&device) {
            Ok(engine) => ocr(
                &engine,
                &files,
                doc_type.as_deref(),
                pretty,
                lines,
                annotate.as_deref(),
            ),
            Err(code) => code,
        },
        Command::OcrReport {
            dirs,
            verbose,
            device,
        } => match engine(&device) {
            Ok(engine) => ocr_report(&engine, &dirs, verbose),
            Err(code) => code,
        },
        Command::BenchOcr {
            files,
            device,
            rounds,
            rec_batch,
            results,
        } => bench_ocr(&device, rec_batch, &files, rounds, results.as_deref()),
        Command::Buli2Sim {
            listen,
            secret,
            callback_url,
            callback_delay_ms,
        } => {
            let config = filot::buli2::sim::SimConfig {
                secret: secret.into_bytes(),
                callback_url,
                callback_delay: Duration::from_millis(callback_delay_ms),
            };
            match filot::buli2::sim::start(&listen, config).await {
                Ok(sim) => {
                    println!(
                        "BULI2 simulator on {} (decisions at /kyc/decisions)",
                        sim.url()
                    );
                    filot::shutdown_signal().await;
                    sim.stop();
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("filot buli2-sim: cannot listen on {listen}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => match Settings::load(Some(&cli.config)) {
            Ok(settings) => {
                print!("{}", settings.redacted_toml());
                println!("# configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn engine(device: &str) -> Result<filot::gpu::OcrEngine, ExitCode> {
    filot::gpu::OcrEngine::on(device, filot::gpu::OcrParams::default()).map_err(|e| {
        eprintln!("filot: {e}");
        ExitCode::from(2)
    })
}

fn ocr(
    engine: &filot::gpu::OcrEngine,
    files: &[PathBuf],
    doc_type: Option<&str>,
    pretty: bool,
    lines: bool,
    annotate: Option<&std::path::Path>,
) -> ExitCode {
    let doc_type = match doc_type.map(str::parse::<filot::kyc::DocumentType>) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("filot ocr: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    if let Some(dir) = annotate
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("filot ocr: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let options = filot::gpu::report::ReadOptions {
        doc_type,
        today: chrono::Utc::now().date_naive(),
        with_lines: lines,
        annotate,
    };
    let mut failed = false;
    for (i, file) in files.iter().enumerate() {
        if files.len() > 3 {
            progress(i, files.len(), file);
        }
        match filot::gpu::report::read_file(engine, file, options) {
            Ok((reading, _)) => {
                let json = if pretty {
                    serde_json::to_string_pretty(&reading)
                } else {
                    serde_json::to_string(&reading)
                };
                println!("{}", json.expect("serializable"));
            }
            Err(e) => {
                eprintln!("filot ocr: {}: {e}", file.display());
                failed = true;
            }
        }
    }
    if files.len() > 3 {
        progress(files.len(), files.len(), std::path::Path::new(""));
        eprintln!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A one-line progress bar on stderr (rewritten in place on a terminal).
fn progress(done: usize, total: usize, file: &std::path::Path) {
    use std::io::IsTerminal;
    let width = 30;
    let filled = done * width / total.max(1);
    let bar = format!(
        "[{}{}] {done}/{total} {}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        file.display()
    );
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K{bar}");
    } else if done < total {
        eprintln!("{bar}");
    }
}

fn ocr_report(engine: &filot::gpu::OcrEngine, dirs: &[PathBuf], verbose: bool) -> ExitCode {
    let today = chrono::Utc::now().date_naive();
    let mut rates = filot::gpu::report::Rates::default();
    for dir in dirs {
        if let Err(e) = filot::gpu::report::score_dir(engine, dir, today, &mut rates) {
            eprintln!("filot ocr-report: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    if verbose {
        for miss in &rates.misses {
            println!("miss {miss}");
        }
    }
    print!("{}", rates.summary());
    ExitCode::SUCCESS
}

fn bench_ocr(
    device: &str,
    rec_batch: usize,
    files: &[PathBuf],
    rounds: usize,
    results: Option<&std::path::Path>,
) -> ExitCode {
    let params = filot::gpu::OcrParams {
        rec_batch,
        ..Default::default()
    };
    let report = match filot::gpu::bench::run(device, params, files, rounds) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("filot bench-ocr: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.summary());
    if let Some(path) = results {
        let line = serde_json::to_string(&report).expect("serializable");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(f, "{line}")
            });
        if let Err(e) = appended {
            eprintln!("filot bench-ocr: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
