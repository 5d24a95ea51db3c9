//! OcrPool and OcrWorker: the OCR stage of the document pipeline.
//!
//! The pool owns no queue of its own: the database is the queue. On every tick (and whenever
//! an upload wakes it) it hands the oldest documents waiting for OCR to its idle workers, one
//! each; a document stays `queued` while every worker is busy, so the API never blocks and a
//! restart loses nothing. Each worker loads the models once on its device and takes one
//! document at a time through `processing → extracted | failed`, every change through the
//! document's own actor. A worker that fails is restarted by the pool (its document goes back
//! to waiting); one that keeps failing is given up after `max_restarts` in a window.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::telemetry::metrics::names;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use crate::{
    gpu::{self, OcrEngine, OcrPage, OcrParams, batcher::RecBatcher, image_ops, report},
    kyc::{self, DocumentId},
    store::{
        blobs::BlobStore,
        documents::{self, DocumentChange},
    },
    supervision::Documents,
};

#[derive(RactorMessage)]
pub enum OcrPoolMsg {
    /// Look for waiting documents now.
    Poll,
    /// A worker finished (or gave up on) a document.
    Done { worker: usize, id: DocumentId },
    /// Start worker `index` again after a failure.
    Respawn(usize),
}

#[derive(RactorMessage)]
pub enum OcrWorkerMsg {
    Run(DocumentId),
}

/// What the pool needs to run.
#[derive(Clone)]
pub struct OcrPoolArgs {
    pub documents: Documents,
    pub blobs: Arc<BlobStore>,
    /// One worker per entry: `cpu` or `cuda:N`.
    pub devices: Vec<String>,
    pub params: OcrParams,
    pub poll: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// Cross-document recognition batches: at most this many lines…
    pub batch_lines: usize,
    /// …gathered for at most this long.
    pub batch_wait: Duration,
}

/// The models loaded on one device, and that device's recognition batcher.
#[derive(Clone)]
struct DeviceModels {
    /// The device the models run on (a metrics label: `cpu`, `cuda:0`, …).
    device: String,
    engine: Arc<Mutex<OcrEngine>>,
    batcher: RecBatcher,
}

pub struct OcrPoolState {
    args: OcrPoolArgs,
    /// Per worker: its device's models (workers on one device share them).
    models: Vec<DeviceModels>,
    workers: Vec<Option<ActorRef<OcrWorkerMsg>>>,
    idle: Vec<usize>,
    busy: Vec<Option<DocumentId>>,
    in_flight: HashSet<DocumentId>,
    failures: VecDeque<Instant>,
}

pub struct OcrPool;

impl OcrPoolState {
    async fn spawn_worker(
        &mut self,
        pool: &ActorRef<OcrPoolMsg>,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let args = WorkerArgs {
            index,
            models: self.models[index].clone(),
            documents: self.args.documents.clone(),
            blobs: self.args.blobs.clone(),
            pool: pool.clone(),
        };
        let (worker, _) = Actor::spawn_linked(None, OcrWorker, args, pool.get_cell()).await?;
        self.workers[index] = Some(worker);
        self.idle.push(index);
        Ok(())
    }

    async fn dispatch(&mut self) {
        if self.idle.is_empty() {
            return;
        }
        let want = (self.idle.len() + self.in_flight.len()) as u32;
        let waiting = match documents::awaiting_ocr(&self.args.documents.context().db, want).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the OCR backlog");
                return;
            }
        };
        for id in waiting {
            if self.in_flight.contains(&id) {
                continue;
            }
            let Some(index) = self.idle.pop() else { break };
            let Some(worker) = self.workers[index].clone() else {
                continue;
            };
            if worker.cast(OcrWorkerMsg::Run(id)).is_ok() {
                self.in_flight.insert(id);
                self.busy[index] = Some(id);
            } else {
                self.idle.push(index);
            }
        }
    }
}

/// Loads the models on `device`; a GPU that cannot start (no driver, no memory) falls back to
/// the CPU instead of leaving the node without OCR, and says so in a metric and the log. The
/// engine is built and wrapped on the blocking thread: the models are large values, kept off
/// the async stack.
async fn load_engine(
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

impl Actor for OcrPool {
    type Msg = OcrPoolMsg;
    type State = OcrPoolState;
    type Arguments = OcrPoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OcrPoolArgs,
    ) -> Result<OcrPoolState, ActorProcessingErr> {
        let n = args.devices.len();
        // Load the models once per distinct device; its workers share them and its batcher.
        let mut loaded: Vec<(String, DeviceModels)> = Vec::new();
        let mut models = Vec::with_capacity(n);
        for device in &args.devices {
            if let Some((_, m)) = loaded.iter().find(|(d, _)| d == device) {
                models.push(m.clone());
                continue;
            }
            let (engine, runs_on) = load_engine(device, &args.params).await?;
            let batcher = RecBatcher::spawn(engine.clone(), args.batch_lines, args.batch_wait);
            let m = DeviceModels {
                device: runs_on,
                engine,
                batcher,
            };
            loaded.push((device.clone(), m.clone()));
            models.push(m);
        }
        let mut state = OcrPoolState {
            models,
            workers: vec![None; n],
            idle: Vec::new(),
            busy: vec![None; n],
            in_flight: HashSet::new(),
            failures: VecDeque::new(),
            args,
        };
        for index in 0..n {
            state.spawn_worker(&myself, index).await?;
        }
        if n > 0 {
            myself.send_interval(state.args.poll, || OcrPoolMsg::Poll);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: OcrPoolMsg,
        state: &mut OcrPoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OcrPoolMsg::Poll => {
                // The backlog gauge once per poll, not on every finished document.
                let db = &state.args.documents.context().db;
                if let Ok(n) = documents::count_awaiting_ocr(db).await {
                    metrics::gauge!(names::QUEUE_LENGTH).set(n as f64);
                }
                state.dispatch().await
            }
            OcrPoolMsg::Done { worker, id } => {
                state.in_flight.remove(&id);
                if state.busy.get(worker).copied().flatten() == Some(id) {
                    state.busy[worker] = None;
                    state.idle.push(worker);
                }
                state.dispatch().await;
            }
            OcrPoolMsg::Respawn(index) => {
                if state.workers[index].is_none()
                    && let Err(e) = state.spawn_worker(&myself, index).await
                {
                    tracing::error!(worker = index, error = %e, "OCR worker restart failed");
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut OcrPoolState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(index) = state
                    .workers
                    .iter()
                    .position(|w| w.as_ref().is_some_and(|w| w.get_id() == cell.get_id()))
                else {
                    return Ok(());
                };
                tracing::error!(worker = index, error = %err, "OCR worker failed; its document waits for another try");
                metrics::counter!(names::ACTOR_RESTART_COUNT, "kind" => "ocr_worker").increment(1);
                state.workers[index] = None;
                state.idle.retain(|&i| i != index);
                if let Some(id) = state.busy[index].take() {
                    state.in_flight.remove(&id);
                }
                let window = state.args.restart_window;
                state.failures.retain(|t| t.elapsed() <= window);
                state.failures.push_back(Instant::now());
                if state.failures.len() > state.args.max_restarts as usize {
                    tracing::error!(
                        worker = index,
                        "OCR workers keep failing; not restarting this one"
                    );
                } else {
                    let backoff =
                        Duration::from_millis(200 * 2u64.pow(state.failures.len().min(5) as u32));
                    myself.send_after(backoff, move || OcrPoolMsg::Respawn(index));
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(index) = state
                    .workers
                    .iter()
                    .position(|w| w.as_ref().is_some_and(|w| w.get_id() == cell.get_id()))
                {
                    state.workers[index] = None;
                    state.idle.retain(|&i| i != index);
                }
            }
            SupervisionEvent::ActorStarted(_) => {}
            SupervisionEvent::ProcessGroupChanged(_) => {}
            SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}

pub struct WorkerArgs {
    index: usize,
    models: DeviceModels,
    documents: Documents,
    blobs: Arc<BlobStore>,
    pool: ActorRef<OcrPoolMsg>,
}

pub struct WorkerState {
    index: usize,
    device: String,
    engine: Arc<Mutex<OcrEngine>>,
    batcher: RecBatcher,
    documents: Documents,
    blobs: Arc<BlobStore>,
    pool: ActorRef<OcrPoolMsg>,
}

pub struct OcrWorker;

impl Actor for OcrWorker {
    type Msg = OcrWorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState {
            index: args.index,
            device: args.models.device.clone(),
            engine: args.models.engine,
            batcher: args.models.batcher,
            documents: args.documents,
            blobs: args.blobs,
            pool: args.pool,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: OcrWorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OcrWorkerMsg::Run(id) => {
                let device = state.device.clone();
                let active = metrics::gauge!(names::GPU_ACTIVE_JOBS, "device" => device.clone());
                active.increment(1.0);
                let started = std::time::Instant::now();
                let outcome = process(state, id).await;
                active.decrement(1.0);
                metrics::histogram!(names::GPU_PROCESSING_TIME_MS, "device" => device)
                    .record(started.elapsed().as_secs_f64() * 1e3);
                if let Err(e) = &outcome {
                    tracing::warn!(document_id = %id, error = %e, "OCR run did not complete");
                }
                let _ = state.pool.cast(OcrPoolMsg::Done {
                    worker: state.index,
                    id,
                });
            }
        }
        Ok(())
    }
}

const ACTOR: &str = "ocr";

/// Takes one document through OCR. Errors leave it for another try (it stays `processing`).
async fn process(state: &WorkerState, id: DocumentId) -> Result<(), crate::actors::DocumentError> {
    let record = state
        .documents
        .apply(id, DocumentChange::Processing, ACTOR)
        .await?;
    let Some(key) = record.blob_key.clone() else {
        return Ok(());
    };
    let (blobs, engine) = (state.blobs.clone(), state.engine.clone());
    let doc_type = record.doc_type;
    let started = std::time::Instant::now();
    let prepared = tokio::task::spawn_blocking(move || {
        let bytes = blobs.get(&key).map_err(|e| format!("blob: {e}"))?;
        let img = image_ops::decode(&bytes).map_err(|e| e.to_string())?;
        // The models are read-only: a panic in an earlier read leaves nothing half-changed.
        let engine = engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let boxes = engine.detect_boxes(&img).map_err(|e| e.to_string())?;
        let crops = engine.crops(&img, &boxes);
        Ok::<_, String>((img.width(), img.height(), boxes, crops))
    })
    .await
    // A panic while reading this document would recur on every retry: record it as a failure
    // of the document instead of leaving it `processing` for ever.
    .unwrap_or_else(|_| Err("ocr_crashed".to_string()));
    let read = match prepared {
        Ok((width, height, boxes, crops)) => match state.batcher.recognize(crops).await {
            Ok(decoded) => {
                let page = OcrPage {
                    width,
                    height,
                    lines: gpu::lines_from(&boxes, decoded),
                    det_ms: 0.0,
                    rec_ms: 0.0,
                };
                let today = chrono::Utc::now().date_naive();
                Ok(kyc::read_card(&report::boxes(&page), Some(doc_type), today).1)
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    match &read {
        Ok(_) => metrics::counter!(names::OCR_SUCCESS_COUNT).increment(1),
        Err(reason) => {
            let reason = if reason == "ocr_crashed" {
                "ocr_crashed"
            } else {
                "ocr_unreadable"
            };
            metrics::counter!(names::OCR_FAILURE_COUNT, "reason" => reason).increment(1)
        }
    }
    let change = match read {
        Ok(card) => {
            let plain = serde_json::json!({ "fields": card.fields, "confidence": card.confidence })
                .to_string();
            match state.blobs.seal_text(&id.to_string(), &plain) {
                Ok(sealed) => DocumentChange::Extracted {
                    fields: serde_json::json!({ "sealed": sealed, "ocr_ms": started.elapsed().as_millis() as u64 }),
                    issues: card.issues,
                },
                Err(_) => DocumentChange::Failed {
                    reason: "sealing_failed".into(),
                },
            }
        }
        Err(reason) => {
            tracing::warn!(document_id = %id, reason = %reason, "OCR could not read the document");
            let code = if reason == "ocr_crashed" {
                "ocr_crashed"
            } else {
                "ocr_unreadable"
            };
            DocumentChange::Failed {
                reason: code.into(),
            }
        }
    };
    state.documents.apply(id, change, ACTOR).await?;
    Ok(())
}
