//! The OCR tools of the command line: `filot ocr` (read cards, one JSON line each),
//! `filot ocr-report` (score specimen folders against their ground truth) and
//! `filot bench-ocr` (time the pipeline), `filot export-weights` (the built-in weights as
//! files, for a challenger's). They drive `crate::gpu` directly, with no service,
//! database or actor running, except `bench-ocr --concurrency`, which starts the service
//! ([`super::throughput`]).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::gpu::{OcrEngine, OcrParams, bench, report};

/// The pipeline's parameters as the service would read with them: `ocr.params` from the
/// configuration (`cluster.toml`, `FILOT_OCR__PARAMS__*`); exit code 2 on a bad setting.
pub fn params(config: &Path) -> Result<OcrParams, ExitCode> {
    Ok(super::load(config, super::Overrides::default())?.ocr.params)
}

/// The engine on `device` (`cpu`, `cuda:N`) with the configured parameters; exit code 2 when
/// it cannot be had.
pub fn engine(config: &Path, device: &str) -> Result<OcrEngine, ExitCode> {
    OcrEngine::on(device, params(config)?).map_err(|e| {
        eprintln!("filot: {e}");
        ExitCode::from(2)
    })
}

/// `filot export-weights DIR`: the built-in weights as Burnpack files, one
/// `<sha256>  <path>` line each (the settings a challenger names them with).
pub fn export_weights(dir: &Path) -> ExitCode {
    match crate::gpu::weights::export_builtin(dir) {
        Ok(files) => {
            for (path, sha256) in files {
                println!("{sha256}  {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("filot: {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// What `filot ocr` prints and writes besides the reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFlags<'a> {
    pub doc_type: Option<&'a str>,
    pub pretty: bool,
    pub lines: bool,
    pub annotate: Option<&'a Path>,
}

/// `filot ocr`: one JSON reading per file and line.
pub fn read(engine: &OcrEngine, files: &[PathBuf], flags: ReadFlags<'_>) -> ExitCode {
    let doc_type = match flags.doc_type.map(str::parse::<crate::kyc::DocumentType>) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("filot ocr: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    if let Some(dir) = flags.annotate
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("filot ocr: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let options = report::ReadOptions {
        doc_type,
        today: chrono::Utc::now().date_naive(),
        with_lines: flags.lines,
        annotate: flags.annotate,
    };
    let mut failed = false;
    for (i, file) in files.iter().enumerate() {
        if files.len() > 3 {
            progress(i, files.len(), file);
        }
        match report::read_file(engine, file, options) {
            Ok((reading, _)) => {
                let json = if flags.pretty {
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
        progress(files.len(), files.len(), Path::new(""));
        eprintln!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A one-line progress bar on stderr (rewritten in place on a terminal).
fn progress(done: usize, total: usize, file: &Path) {
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

/// `filot ocr-report`: reading rates over specimen folders (card + ground-truth JSON).
pub fn score(engine: &OcrEngine, dirs: &[PathBuf], verbose: bool) -> ExitCode {
    let today = chrono::Utc::now().date_naive();
    let mut rates = report::Rates::default();
    for dir in dirs {
        if let Err(e) = report::score_dir(engine, dir, today, &mut rates) {
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

/// `filot bench-ocr`: cold and warm timings, optionally appended as a JSON line to `results`.
pub fn bench(
    params: OcrParams,
    device: &str,
    files: &[PathBuf],
    rounds: usize,
    results: Option<&Path>,
) -> ExitCode {
    let report = match bench::run(device, params, files, rounds) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("filot bench-ocr: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.summary());
    append_result(results, &report)
}

/// `filot bench-ocr --concurrency N`: the running service's throughput (see
/// [`super::throughput`]), optionally appended as a JSON line to `results`.
pub async fn bench_service(
    load: super::throughput::Load,
    files: &[PathBuf],
    results: Option<&Path>,
) -> ExitCode {
    match super::throughput::run(load, files).await {
        Ok(report) => {
            println!("{}", report.summary());
            append_result(results, &report)
        }
        Err(e) => {
            eprintln!("filot bench-ocr: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Appends a report as one JSON line to `results`, when given.
fn append_result(results: Option<&Path>, report: &impl serde::Serialize) -> ExitCode {
    let Some(path) = results else {
        return ExitCode::SUCCESS;
    };
    let line = serde_json::to_string(report).expect("serializable");
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
    ExitCode::SUCCESS
}
