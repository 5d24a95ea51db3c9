//! Loading the OCR models onto the configured devices, with the CPU as the fallback for a
//! GPU that cannot start.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use ractor::ActorProcessingErr;

use super::{DeviceModels, ModelSlot};
use crate::{
    gpu::{OcrEngine, OcrParams},
    telemetry::metrics::names,
};

/// Loads the models on `device`; a GPU that cannot start (no driver, no memory) falls back to
/// the CPU instead of leaving the node without OCR, and says so in a metric and the log. The
/// engine is built and wrapped on the blocking thread: the models are large values, kept off
/// the async stack.
pub(super) async fn load_engine(
    device: &str,
    params: &crate::gpu::OcrParams,
) -> Result<(Arc<Mutex<OcrEngine>>, String), ActorProcessingErr> {
    let load = |name: String, p: crate::gpu::OcrParams| {
        tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(|| OcrEngine::on(&name, p).map(|e| Arc::new(Mutex::new(e))))
                .map_err(|_| "the device panicked while loading the models".to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        })
    };
    match load(device.to_string(), params.clone()).await? {
        Ok(engine) => {
            tracing::info!(device, "OCR models loaded");
            Ok((engine, device.to_string()))
        }
        Err(e) if device != "cpu" => {
            tracing::error!(device, error = %e, "OCR device unavailable; falling back to the CPU");
            metrics::counter!(names::GPU_FALLBACK_COUNT, "device" => device.to_string())
                .increment(1);
            let engine = load("cpu".into(), params.clone()).await??;
            Ok((engine, "cpu".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads the models for each of `devices`: once per distinct GPU (its workers share them
/// and its batcher), and once per CPU entry (CPU workers read cards side by side, each
/// with models and, with `ocr.params.threads`, threads of its own, rather than take turns
/// with one set). Returns each entry's device and model slot.
pub(super) async fn load_devices(
    devices: &[String],
    params: &OcrParams,
    batch_lines: usize,
    batch_wait: Duration,
) -> Result<Vec<(String, ModelSlot)>, ActorProcessingErr> {
    let mut loaded: HashMap<String, ModelSlot> = HashMap::new();
    let mut models = Vec::with_capacity(devices.len());
    for (index, device) in devices.iter().enumerate() {
        let key = match device.as_str() {
            "cpu" => format!("cpu/{index}"),
            gpu => gpu.to_string(),
        };
        if let Some(slot) = loaded.get(&key) {
            models.push((device.clone(), slot.clone()));
            continue;
        }
        let (engine, runs_on) = load_engine(device, params).await?;
        let slot = Arc::new(RwLock::new(DeviceModels::new(
            engine,
            runs_on,
            batch_lines,
            batch_wait,
        )));
        loaded.insert(key, slot.clone());
        models.push((device.clone(), slot));
    }
    Ok(models)
}
