//! `filot bench-ocr --concurrency N`: the service's OCR throughput, measured on the service
//! itself. A real `Application` (embedded SQLite and blob store in a temporary directory, the
//! OCR pool with its workers and batchers: the code `filot serve` runs) is started on a
//! loopback port; N clients each upload a card over HTTP, wait for it to be read, and upload
//! the next, for the given number of seconds. It prints cards/s, latency percentiles from
//! upload to reading, and where the OCR time went by stage (the `filot.ocr.stage_ms`
//! histograms the workers record), and on CUDA the GPU's utilisation from `nvidia-smi`.
//! Timings belong here, never in tests.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{Application, config::Settings, http::auth::Role};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Load {
    pub device: String,
    /// OCR workers on the device.
    pub workers: usize,
    /// Threads per CPU engine (`ocr.params.threads`; 0: all cores, shared).
    pub threads: usize,
    pub rec_batch: usize,
    /// Cards in flight at once.
    pub concurrency: usize,
    pub seconds: u64,
    /// The configured `ocr.params` (its `rec_batch` and `threads` replaced by the above).
    pub params: crate::gpu::OcrParams,
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub mode: &'static str,
    pub device: String,
    pub workers: usize,
    /// Threads per CPU engine (0: all cores, shared).
    pub engine_threads: usize,
    pub threads: usize,
    pub concurrency: usize,
    pub rec_batch: usize,
    pub cards: usize,
    pub failed: usize,
    pub seconds: f64,
    pub cards_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Mean milliseconds per card by stage (decode, find, det, post, orient, crops, rec, wait).
    pub stage_ms: BTreeMap<String, f64>,
    /// On CUDA, the GPU's mean utilisation over the run, sampled from `nvidia-smi` when it is
    /// there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_util_pct: Option<f64>,
}

impl ThroughputReport {
    pub fn summary(&self) -> String {
        let stages: Vec<String> = self
            .stage_ms
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        let gpu = self
            .gpu_util_pct
            .map(|u| format!("; GPU busy {u:.0}%"))
            .unwrap_or_default();
        format!(
            "service on {} ({} workers of {} threads, {} cores), {} in flight, rec batch {}: {} cards in {:.1} s ({} failed): {:.2} cards/s, p50 {:.0} ms, p99 {:.0} ms; per card (ms): {}{gpu}",
            self.device,
            self.workers,
            match self.engine_threads {
                0 => "all".to_string(),
                n => n.to_string(),
            },
            self.threads,
            self.concurrency,
            self.rec_batch,
            self.cards,
            self.seconds,
            self.failed,
            self.cards_per_s,
            self.p50_ms,
            self.p99_ms,
            stages.join(", ")
        )
    }
}

/// A card to upload: its bytes, type and file name.
struct Card {
    bytes: Vec<u8>,
    doc_type: &'static str,
    name: String,
}

fn load_cards(files: &[PathBuf]) -> Result<Vec<Card>, String> {
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "card.jpg".into());
            let doc_type = if name.to_ascii_lowercase().contains("npwp") {
                "NPWP"
            } else {
                "KTP"
            };
            Ok(Card {
                bytes,
                doc_type,
                name,
            })
        })
        .collect()
}

/// Runs the load against a service started for it, and stops the service.
pub async fn run(load: Load, files: &[PathBuf]) -> Result<ThroughputReport, String> {
    let cards = load_cards(files)?;
    if cards.is_empty() {
        return Err("no card to upload".into());
    }
    let dir = std::env::temp_dir().join(format!("filot-bench-{}", uuid::Uuid::new_v4()));
    let measured = serve_and_measure(&load, cards, &dir).await;
    // The temporary service's data (database, blobs, keys) goes, however the run ended.
    let _ = std::fs::remove_dir_all(&dir);
    let Measured {
        mut latencies,
        failed,
        seconds,
        before,
        after,
        gpu_util_pct,
    } = measured?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    let stage_ms = after
        .iter()
        .map(|(stage, &(sum, count))| {
            let (sum0, count0) = before.get(stage).copied().unwrap_or((0.0, 0.0));
            let n = (count - count0).max(1.0);
            (stage.clone(), (sum - sum0) / n)
        })
        .collect();
    Ok(ThroughputReport {
        mode: "service",
        device: load.device,
        workers: load.workers,
        engine_threads: load.threads,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        concurrency: load.concurrency,
        rec_batch: load.rec_batch,
        cards: latencies.len(),
        failed,
        seconds,
        cards_per_s: (latencies.len() + failed) as f64 / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        stage_ms,
        gpu_util_pct,
    })
}

/// What one run under load gave.
struct Measured {
    /// Upload to reading, per card read.
    latencies: Vec<f64>,
    /// Cards the service failed.
    failed: usize,
    seconds: f64,
    /// The stage histograms' (sum, count) before and after the load.
    before: BTreeMap<String, (f64, f64)>,
    after: BTreeMap<String, (f64, f64)>,
    gpu_util_pct: Option<f64>,
}

/// Starts the service in `dir`, warms it with one card, keeps `load.concurrency` cards in
/// flight for `load.seconds`, and stops it again (on every path).
async fn serve_and_measure(load: &Load, cards: Vec<Card>, dir: &Path) -> Result<Measured, String> {
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    settings.ocr.devices = vec![load.device.clone(); load.workers.max(1)];
    settings.ocr.params = load.params.clone();
    // The same few files go round and round: a cached reading would measure nothing.
    settings.ocr.cache_readings = false;
    settings.ocr.params.rec_batch = load.rec_batch;
    settings.ocr.params.threads = load.threads;
    settings.ocr.poll_interval = Duration::from_millis(50);
    let l = &mut settings.limits;
    l.uploads_per_user_per_minute = 1_000_000;
    l.uploads_per_ip_per_minute = 1_000_000;
    l.requests_per_user_per_minute = 1_000_000;
    let app = Application::build(settings)
        .await
        .map_err(|e| format!("cannot start the service: {e}"))?;
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", app.local_addr()),
        token: app
            .state()
            .auth
            .mint(
                "bench",
                Role::User,
                Duration::from_secs(load.seconds + 3600),
            )
            .map_err(|e| e.to_string())?,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let measured = client.measure(load, Arc::new(cards)).await;
    let _ = stop.send(());
    let _ = server.await;
    measured
}

/// Samples GPU `index`'s utilisation from `nvidia-smi` twice a second until told to stop;
/// the mean, or `None` when `nvidia-smi` is not there or answered nothing.
fn sample_gpu(
    index: String,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Option<f64>>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            let out = tokio::process::Command::new("nvidia-smi")
                .args([
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-i",
                    &index,
                ])
                .output()
                .await
                .ok()?;
            samples.extend(utilisation(&String::from_utf8_lossy(&out.stdout)));
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
    });
    (stop, task)
}

/// The percentage `nvidia-smi --format=csv,noheader,nounits` printed, if any.
fn utilisation(text: &str) -> Option<f64> {
    text.lines().next()?.trim().parse().ok()
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// One card first, unmeasured (models warm, every lazy start done), then the load.
    async fn measure(&self, load: &Load, cards: Arc<Vec<Card>>) -> Result<Measured, String> {
        if !self.read(&cards[0]).await?.1 {
            return Err("the warm-up card was not read".into());
        }
        let before = self.stage_sums().await?;
        let (sampling, samples) = match load.device.strip_prefix("cuda:") {
            Some(index) => {
                let (stop, samples) = sample_gpu(index.to_string());
                (Some(stop), Some(samples))
            }
            None => (None, None),
        };
        let started = Instant::now();
        let deadline = started + Duration::from_secs(load.seconds);
        let in_flight = load.concurrency.max(1);
        let tasks: Vec<_> = (0..in_flight)
            .map(|k| {
                let (client, cards) = (self.clone(), cards.clone());
                tokio::spawn(async move {
                    let (mut latencies, mut failed) = (Vec::new(), 0usize);
                    let mut next = k;
                    while Instant::now() < deadline {
                        match client.read(&cards[next % cards.len()]).await? {
                            (ms, true) => latencies.push(ms),
                            (_, false) => failed += 1,
                        }
                        next += in_flight;
                    }
                    Ok::<_, String>((latencies, failed))
                })
            })
            .collect();
        let (mut latencies, mut failed) = (Vec::new(), 0);
        for task in tasks {
            let (l, f) = task.await.map_err(|e| e.to_string())??;
            latencies.extend(l);
            failed += f;
        }
        let seconds = started.elapsed().as_secs_f64();
        if let Some(stop) = sampling {
            let _ = stop.send(());
        }
        let gpu_util_pct = match samples {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        Ok(Measured {
            latencies,
            failed,
            seconds,
            before,
            after: self.stage_sums().await?,
            gpu_util_pct,
        })
    }

    /// Uploads a card and waits for its reading: (milliseconds, whether it was read).
    async fn read(&self, card: &Card) -> Result<(f64, bool), String> {
        let started = Instant::now();
        let form = reqwest::multipart::Form::new()
            .text("type", card.doc_type)
            .part(
                "file",
                reqwest::multipart::Part::bytes(card.bytes.clone()).file_name(card.name.clone()),
            );
        let resp = self
            .http
            .post(format!("{}/v1/documents", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().as_u16() != 202 {
            return Err(format!("upload answered {}", resp.status()));
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        let id = body["id"]
            .as_str()
            .ok_or("upload answered no id")?
            .to_string();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let doc: serde_json::Value = self
                .http
                .get(format!("{}/v1/documents/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            match doc["status"].as_str() {
                Some("extracted") => return Ok((started.elapsed().as_secs_f64() * 1e3, true)),
                Some("failed") => return Ok((started.elapsed().as_secs_f64() * 1e3, false)),
                _ => {}
            }
        }
    }

    /// The OCR stage histograms' (sum, count) from `/metrics`.
    async fn stage_sums(&self) -> Result<BTreeMap<String, (f64, f64)>, String> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        Ok(stage_sums(&text))
    }
}

/// (sum, count) per stage of the `filot_ocr_stage_ms` summary in Prometheus text.
fn stage_sums(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("filot_ocr_stage_ms_") else {
            continue;
        };
        let (which, rest) = rest.split_once('{').unwrap_or((rest, ""));
        let Some(stage) = rest
            .split_once("stage=\"")
            .and_then(|(_, s)| s.split_once('"'))
            .map(|(s, _)| s.to_string())
        else {
            continue;
        };
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let entry = sums.entry(stage).or_default();
        match which {
            "sum" => entry.0 = value,
            "count" => entry.1 = value,
            _ => {}
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_utilisation_is_read_from_nvidia_smi_csv() {
        assert_eq!(utilisation("87\n"), Some(87.0));
        assert_eq!(utilisation(" 3 \n"), Some(3.0));
        assert_eq!(utilisation(""), None);
        assert_eq!(utilisation("[N/A]\n"), None);
    }

    #[test]
    fn stage_sums_are_read_from_prometheus_text() {
        let text = "# TYPE filot_ocr_stage_ms summary\n\
                    filot_ocr_stage_ms{stage=\"det\",quantile=\"0.5\"} 300\n\
                    filot_ocr_stage_ms_sum{stage=\"det\"} 912.5\n\
                    filot_ocr_stage_ms_count{stage=\"det\"} 3\n\
                    filot_ocr_stage_ms_sum{stage=\"rec\"} 40\n\
                    filot_ocr_stage_ms_count{stage=\"rec\"} 2\n\
                    filot_gpu_processing_time_ms_sum 7\n";
        let sums = stage_sums(text);
        assert_eq!(sums["det"], (912.5, 3.0));
        assert_eq!(sums["rec"], (40.0, 2.0));
        assert_eq!(sums.len(), 2);
    }
}
