//! The `filot` command line: parses arguments and hands each command to `filot::cli`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use filot::cli::{self, Overrides, ocr};

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
        /// Measure the service instead: start it (embedded database, temporary data
        /// directory) and keep this many cards in flight through its HTTP API.
        #[arg(long)]
        concurrency: Option<usize>,
        /// With --concurrency: how long to keep the load on.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// With --concurrency: OCR workers on the device.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// With --concurrency: threads of each CPU worker's engine (0: all cores, shared).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Write the built-in model weights (det.bpk, rec.bpk, rec_v6_small.bpk: Burnpack) into DIR and print
    /// each file's SHA-256: the starting point of other weights for `ocr.challenger`.
    ExportWeights { dir: PathBuf },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_path();
    match cli.command {
        Command::Serve { listen, data_dir } => {
            cli::serve(config, Overrides { listen, data_dir }).await
        }
        Command::Token {
            sub,
            role,
            ttl,
            data_dir,
        } => {
            let overrides = Overrides {
                data_dir,
                ..Default::default()
            };
            cli::token(config, overrides, &sub, &role, ttl.as_deref())
        }
        Command::Migrate { data_dir } => {
            let overrides = Overrides {
                data_dir,
                ..Default::default()
            };
            cli::migrate(config, overrides).await
        }
        Command::Ocr {
            files,
            doc_type,
            pretty,
            device,
            lines,
            annotate,
        } => match ocr::engine(config, &device) {
            Ok(engine) => {
                let flags = ocr::ReadFlags {
                    doc_type: doc_type.as_deref(),
                    pretty,
                    lines,
                    annotate: annotate.as_deref(),
                };
                ocr::read(&engine, &files, flags)
            }
            Err(code) => code,
        },
        Command::ExportWeights { dir } => ocr::export_weights(&dir),
        Command::OcrReport {
            dirs,
            verbose,
            device,
        } => match ocr::engine(config, &device) {
            Ok(engine) => ocr::score(&engine, &dirs, verbose),
            Err(code) => code,
        },
        Command::BenchOcr {
            files,
            device,
            rec_batch,
            results,
            concurrency: Some(concurrency),
            seconds,
            workers,
            threads,
            ..
        } => match ocr::params(config) {
            Ok(params) => {
                let load = cli::throughput::Load {
                    device,
                    workers,
                    threads,
                    rec_batch,
                    concurrency,
                    seconds,
                    params,
                };
                ocr::bench_service(load, &files, results.as_deref()).await
            }
            Err(code) => code,
        },
        Command::BenchOcr {
            files,
            device,
            rounds,
            rec_batch,
            results,
            concurrency: None,
            ..
        } => match ocr::params(config) {
            Ok(params) => {
                let params = filot::gpu::OcrParams {
                    rec_batch,
                    ..params
                };
                ocr::bench(params, &device, &files, rounds, results.as_deref())
            }
            Err(code) => code,
        },
        Command::Buli2Sim {
            listen,
            secret,
            callback_url,
            callback_delay_ms,
        } => {
            let sim = filot::buli2::sim::SimConfig {
                secret: secret.into_bytes(),
                callback_url,
                callback_delay: Duration::from_millis(callback_delay_ms),
            };
            cli::buli2_sim(&listen, sim).await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => cli::config_check(config),
    }
}
