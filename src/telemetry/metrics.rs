//! Metrics: the `metrics` crate everywhere, exported as Prometheus text at `GET /metrics` and,
//! when enabled, as CloudWatch Embedded Metric Format (EMF) JSON lines, batched and flushed on
//! an interval and at shutdown.
//!
//! Labels are bounded by construction: devices, outcomes, reasons, route templates (from the
//! service's own route table, `crate::http::routes`), methods from a fixed set, status codes —
//! never ids, invented paths or personal data. Prometheus spells the dots as underscores
//! (`filot.queue_length` → `filot_queue_length`).

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex, OnceLock, atomic::Ordering},
    time::Duration,
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::{
    layers::FanoutBuilder,
    registry::{AtomicStorage, Registry},
};

/// The metric catalogue.
pub mod names {
    pub const QUEUE_LENGTH: &str = "filot.queue_length";
    pub const GPU_ACTIVE_JOBS: &str = "filot.gpu.active_jobs";
    pub const GPU_PROCESSING_TIME_MS: &str = "filot.gpu.processing_time_ms";
    pub const GPU_FALLBACK_COUNT: &str = "filot.gpu.fallback_count";
    pub const OCR_STAGE_MS: &str = "filot.ocr.stage_ms";
    pub const OCR_SUCCESS_COUNT: &str = "filot.ocr.success_count";
    pub const OCR_FAILURE_COUNT: &str = "filot.ocr.failure_count";
    pub const OCR_CACHE_HIT_COUNT: &str = "filot.ocr.cache_hit_count";
    pub const OCR_SECOND_LOOK: &str = "filot.ocr.second_look_count";
    pub const OCR_CHALLENGER_COUNT: &str = "filot.ocr.challenger.count";
    pub const OCR_CHALLENGER_MS: &str = "filot.ocr.challenger.ms";
    pub const IDENTITY_REUSE_COUNT: &str = "filot.identity.reuse_count";
    pub const VERIFICATION_LATENCY_MS: &str = "filot.verification.latency_ms";
    pub const DECISION_COUNT: &str = "filot.decision.count";
    pub const BULI2_FORWARD_COUNT: &str = "filot.buli2.forward_count";
    pub const BULI2_RETRY_COUNT: &str = "filot.buli2.retry_count";
    pub const BULI2_BREAKER_STATE: &str = "filot.buli2.circuit_breaker_state";
    pub const OUTBOX_DEAD_LETTER_COUNT: &str = "filot.outbox.dead_letter_count";
    pub const REAPER_REQUEUE_COUNT: &str = "filot.reaper.requeue_count";
    pub const ACTOR_RESTART_COUNT: &str = "filot.actor.restart_count";
    pub const LEASES_AVAILABLE: &str = "filot.leases.available";
    pub const HTTP_REQUESTS: &str = "filot.http.requests";
    pub const HTTP_LATENCY_MS: &str = "filot.http.latency_ms";
    pub const CLUSTER_NODES: &str = "filot.cluster.nodes";
    pub const CLUSTER_DISPATCH_LATENCY_MS: &str = "filot.cluster.dispatch_latency_ms";
    pub const CLUSTER_REFUSED_COUNT: &str = "filot.cluster.refused_count";
}

/// EMF output settings (see `config::MetricsSettings`).
#[derive(Debug, Clone)]
pub struct EmfOptions {
    pub namespace: String,
    /// `stdout` or a file path (appended to).
    pub output: String,
    pub interval: Duration,
}

struct Installed {
    prometheus: PrometheusHandle,
    emf: Option<Arc<EmfRecorder>>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// [`install`] as the `metrics.*` settings say.
pub fn install_for(m: &crate::config::MetricsSettings) {
    install(m.emf_enabled.then(|| EmfOptions {
        namespace: m.emf_namespace.clone(),
        output: m.emf_output.clone(),
        interval: m.emf_interval,
    }));
}

/// Installs the process-wide recorder (the first call wins; later calls reuse it) and
/// describes the catalogue. With `emf`, also starts the EMF flusher.
pub fn install(emf: Option<EmfOptions>) {
    INSTALLED.get_or_init(|| {
        let prometheus = PrometheusBuilder::new()
            .set_buckets(&[
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0,
                10_000.0, 30_000.0, 60_000.0,
            ])
            .expect("static buckets")
            .build_recorder();
        let handle = prometheus.handle();
        let emf = emf.map(|o| Arc::new(EmfRecorder::new(o)));
        let mut fanout = FanoutBuilder::default().add_recorder(prometheus);
        if let Some(e) = &emf {
            fanout = fanout.add_recorder(SharedEmf(e.clone()));
        }
        if metrics::set_global_recorder(fanout.build()).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        describe();
        if let Some(e) = &emf {
            let e = e.clone();
            std::thread::Builder::new()
                .name("emf-flush".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(e.options.interval);
                        e.flush();
                    }
                })
                .expect("spawn the EMF flusher");
        }
        Installed {
            prometheus: handle,
            emf,
        }
    });
}

/// Prometheus text exposition of every metric.
pub fn render() -> String {
    match INSTALLED.get() {
        Some(i) => {
            i.prometheus.run_upkeep();
            i.prometheus.render()
        }
        None => String::new(),
    }
}

/// Writes out what EMF has batched (called at shutdown).
pub fn flush() {
    if let Some(e) = INSTALLED.get().and_then(|i| i.emf.as_ref()) {
        e.flush();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_gauge!(QUEUE_LENGTH, "Documents waiting for OCR");
    describe_gauge!(GPU_ACTIVE_JOBS, "OCR jobs running, by device");
    describe_histogram!(
        GPU_PROCESSING_TIME_MS,
        Unit::Milliseconds,
        "OCR time per document, by device"
    );
    describe_histogram!(
        OCR_STAGE_MS,
        Unit::Milliseconds,
        "OCR time per document, by stage: decode, find, det, post, orient, crops, rec, wait, second (only on cards read twice)"
    );
    describe_counter!(
        OCR_SECOND_LOOK,
        "Doubtful cards read again by the second recogniser, by outcome: better (its reading kept), no_better, or confirmed (a sure card's unsure key digits read alike)"
    );
    describe_counter!(
        GPU_FALLBACK_COUNT,
        "OCR devices that could not start and fell back to the CPU"
    );
    describe_counter!(OCR_SUCCESS_COUNT, "Documents read");
    describe_counter!(OCR_FAILURE_COUNT, "Documents OCR could not read, by reason");
    describe_counter!(
        OCR_CACHE_HIT_COUNT,
        "Uploads given the reading of the same file uploaded before (no OCR run)"
    );
    describe_counter!(
        OCR_CHALLENGER_COUNT,
        "Documents the challenger model read again, by outcome (read, or why not)"
    );
    describe_histogram!(
        OCR_CHALLENGER_MS,
        Unit::Milliseconds,
        "The challenger model's time per document"
    );
    describe_counter!(
        IDENTITY_REUSE_COUNT,
        "Verifications whose NIK or NPWP belongs to another account's, by kind"
    );
    describe_histogram!(
        VERIFICATION_LATENCY_MS,
        Unit::Milliseconds,
        "Start to final decision, by outcome"
    );
    describe_counter!(DECISION_COUNT, "Final decisions, by outcome");
    describe_counter!(BULI2_FORWARD_COUNT, "Decisions delivered to BULI2");
    describe_counter!(
        BULI2_RETRY_COUNT,
        "Extra BULI2 attempts (beyond the first of a delivery)"
    );
    describe_gauge!(
        BULI2_BREAKER_STATE,
        "BULI2 circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        OUTBOX_DEAD_LETTER_COUNT,
        "Outbox rows dead-lettered, by kind"
    );
    describe_counter!(
        REAPER_REQUEUE_COUNT,
        "OCR runs given back for another attempt, by reason (ocr_timeout, worker_crashed, node_lost, ocr_error)"
    );
    describe_gauge!(
        LEASES_AVAILABLE,
        "1 while leases can be taken (Redis answers); 0 while processing is paused"
    );
    describe_counter!(
        ACTOR_RESTART_COUNT,
        "Actor restarts by their supervisor, by kind"
    );
    describe_gauge!(
        CLUSTER_NODES,
        "Cluster nodes as this node sees them (itself included), by state: up, down"
    );
    describe_histogram!(
        CLUSTER_DISPATCH_LATENCY_MS,
        Unit::Milliseconds,
        "Sending a card to another node's OCR pool until its reading is back"
    );
    describe_counter!(
        CLUSTER_REFUSED_COUNT,
        "Cluster nodes refused for speaking another protocol version"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by method, route and status");
    describe_histogram!(
        HTTP_LATENCY_MS,
        Unit::Milliseconds,
        "HTTP latency, by method, route and status"
    );
    // Present from the start (Prometheus practice: a series that exists at zero).
    metrics::gauge!(QUEUE_LENGTH).set(0.0);
    metrics::gauge!(BULI2_BREAKER_STATE).set(0.0);
    metrics::counter!(GPU_FALLBACK_COUNT).increment(0);
    metrics::counter!(OCR_SUCCESS_COUNT).increment(0);
    metrics::counter!(OCR_CACHE_HIT_COUNT).increment(0);
    metrics::counter!(OCR_CHALLENGER_COUNT, "outcome" => "read").increment(0);
    for outcome in ["better", "no_better", "confirmed"] {
        metrics::counter!(OCR_SECOND_LOOK, "outcome" => outcome).increment(0);
    }
    // The photo-retake codes are failure reasons too, when no key field could be read.
    let ocr_failures = ["ocr_unreadable", "ocr_crashed", "ocr_timeout", "ocr_error"];
    for reason in ocr_failures.into_iter().chain(crate::kyc::retake::CODES) {
        metrics::counter!(OCR_FAILURE_COUNT, "reason" => reason).increment(0);
    }
    // Every final outcome's decision count, and its latency histogram, before the first one.
    for outcome in crate::kyc::workflow::State::ALL
        .iter()
        .filter(|s| s.is_final())
    {
        metrics::counter!(DECISION_COUNT, "outcome" => outcome.as_str()).increment(0);
        let _ = metrics::histogram!(VERIFICATION_LATENCY_MS, "outcome" => outcome.as_str());
    }
    metrics::counter!(BULI2_FORWARD_COUNT).increment(0);
    metrics::counter!(BULI2_RETRY_COUNT).increment(0);
    for reason in ["ocr_timeout", "worker_crashed", "node_lost", "ocr_error"] {
        metrics::counter!(REAPER_REQUEUE_COUNT, "reason" => reason).increment(0);
    }
    metrics::gauge!(LEASES_AVAILABLE).set(1.0);
    // Kinds: per-key actors (`document`, `verification`), OCR workers, the root's children.
    for kind in [
        "document",
        "verification",
        "ocr_worker",
        "documents",
        "verifications",
        "driver",
        "ocr",
        "outbox",
        "webhooks",
        "reaper",
        "challenger",
    ] {
        metrics::counter!(ACTOR_RESTART_COUNT, "kind" => kind).increment(0);
    }
}

/// Aggregates everything recorded between flushes and writes it as EMF lines.
struct EmfRecorder {
    options: EmfOptions,
    registry: Registry<Key, AtomicStorage>,
    flushed_counters: Mutex<HashMap<Key, u64>>,
    units: Mutex<HashMap<String, Unit>>,
}

#[derive(Clone)]
struct SharedEmf(Arc<EmfRecorder>);

impl EmfRecorder {
    fn new(options: EmfOptions) -> Self {
        Self {
            options,
            registry: Registry::atomic(),
            flushed_counters: Mutex::new(HashMap::new()),
            units: Mutex::new(HashMap::new()),
        }
    }

    /// The EMF lines for what changed since the last call.
    fn lines(&self, now_ms: i64) -> Vec<String> {
        let mut lines = Vec::new();
        let units = self.units.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let unit_of = |name: &str, default: &str| {
            units
                .get(name)
                .map(|u| emf_unit(*u))
                .unwrap_or(default)
                .to_string()
        };
        let mut line = |key: &Key, unit: String, value: serde_json::Value| {
            let dims: Vec<&str> = key.labels().map(|l| l.key()).collect();
            let mut obj = serde_json::json!({
                "_aws": {
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": self.options.namespace,
                        "Dimensions": [dims],
                        "Metrics": [{ "Name": key.name(), "Unit": unit }],
                    }],
                },
            });
            for l in key.labels() {
                obj[l.key()] = l.value().into();
            }
            obj[key.name()] = value;
            lines.push(obj.to_string());
        };
        let mut flushed = self
            .flushed_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.registry.visit_counters(|key, c| {
            let now = c.load(Ordering::Relaxed);
            let before = flushed.insert(key.clone(), now).unwrap_or(0);
            if now > before {
                line(key, "Count".into(), (now - before).into());
            }
        });
        self.registry.visit_gauges(|key, g| {
            let v = f64::from_bits(g.load(Ordering::Relaxed));
            line(key, unit_of(key.name(), "None"), v.into());
        });
        self.registry.visit_histograms(|key, h| {
            let mut values = Vec::new();
            h.clear_with(|chunk| values.extend_from_slice(chunk));
            // EMF takes at most 100 values per metric per line.
            for chunk in values.chunks(100) {
                line(key, unit_of(key.name(), "None"), chunk.to_vec().into());
            }
        });
        lines
    }

    fn flush(&self) {
        let lines = self.lines(chrono::Utc::now().timestamp_millis());
        if lines.is_empty() {
            return;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        let written = if self.options.output == "stdout" {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.options.output)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write EMF metrics");
        }
    }
}

fn emf_unit(u: Unit) -> &'static str {
    match u {
        Unit::Milliseconds => "Milliseconds",
        Unit::Seconds => "Seconds",
        Unit::Count => "Count",
        Unit::Bytes => "Bytes",
        _ => "None",
    }
}

impl Recorder for SharedEmf {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

impl SharedEmf {
    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(u) = unit {
            self.0
                .units
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.as_str().to_string(), u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_carry_deltas_samples_and_dimensions() {
        let emf = Arc::new(EmfRecorder::new(EmfOptions {
            namespace: "FiLot".into(),
            output: "stdout".into(),
            interval: Duration::from_secs(60),
        }));
        let recorder = SharedEmf(emf.clone());
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("t.latency_ms", Unit::Milliseconds, "x");
            metrics::counter!("t.count", "outcome" => "auto_approved").increment(3);
            metrics::histogram!("t.latency_ms").record(12.0);
            metrics::histogram!("t.latency_ms").record(30.0);
            metrics::gauge!("t.queue").set(4.0);
        });
        let lines: Vec<serde_json::Value> = emf
            .lines(1_700_000_000_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |name: &str| {
            lines
                .iter()
                .find(|l| l.get(name).is_some())
                .unwrap()
                .clone()
        };
        let c = find("t.count");
        assert_eq!(c["t.count"], 3);
        assert_eq!(c["outcome"], "auto_approved");
        assert_eq!(
            c["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "outcome"
        );
        assert_eq!(c["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let h = find("t.latency_ms");
        assert_eq!(h["t.latency_ms"], serde_json::json!([12.0, 30.0]));
        assert_eq!(
            h["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(find("t.queue")["t.queue"], 4.0);
        // The next flush has only what changed: no counter delta, no samples.
        let again = emf.lines(1_700_000_060_000);
        assert!(
            again
                .iter()
                .all(|l| !l.contains("t.count") && !l.contains("t.latency_ms"))
        );
    }
}
