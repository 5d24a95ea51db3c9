//! OcrPool and OcrWorker: the OCR stage of the document pipeline.
//!
//! The pool owns no queue of its own: the database is the queue. On every tick (and whenever
//! a worker finishes) it hands the oldest `queued` documents to its idle workers, one each,
//! after taking each document's lease (`crate::store::leases`); a document stays `queued`
//! while every worker is busy, so the API never blocks and a restart loses nothing. Each worker
//! claims its document (`processing`, with the lease's fencing token, this node, the attempt
//! number and a deadline), reads it while renewing the lease, and writes the result with the
//! same token, every change through the document's own actor.
//!
//! Restart policy (explicit): a worker that fails or is stopped by the reaper is restarted
//! after an exponential back-off (200 ms doubling to 6.4 s) on freshly loaded models (a hung
//! model may still hold the old ones); its document is requeued (or failed after its last
//! attempt). A worker that fails more than `max_restarts` times within `restart_window` is
//! given up, and the pool goes on with its other workers (one bad GPU does not stop the
//! others). When no worker is left the pool escalates: it fails, and the root supervisor
//! decides (see `supervision::root`). When the lease service (Redis) is unavailable the pool
//! takes no new work until it answers again.
//!
//! In a cluster the pool also dispatches to other nodes' OCR pools (`remote`): one slot per
//! card each up member of an `ocr:*` process group reads at once, filled least-loaded first.
//! A remote slot's worker claims and records exactly like a local one; only the pixels are
//! read elsewhere. When a member leaves or its node is declared down, its slots' documents
//! are requeued at once. An OCR-only node runs `server` instead of a pool.
//!
//! This file is the pool; `worker` is one worker's run (claim, read, record, or abandon);
//! `loading` puts the models on their devices.
//! Test builds inject faults into runs through `crate::testing::OcrFaults`.

mod loading;
mod remote;
mod server;
mod worker;

use loading::{load_devices, load_engine};
pub use server::{OcrServer, OcrServerArgs};
use worker::{ACTOR, Reader};
pub use worker::{Abandon, OcrWorker, WorkerArgs, abandon};

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use crate::telemetry::metrics::names;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::RactorMessage;

use crate::{
    actors::Documents,
    gpu::{OcrEngine, OcrParams, batcher::RecBatcher},
    kyc::DocumentId,
    resilience::{Backoff, Outage, Poller, RestartBudget, RestartPolicy},
    store::{
        blobs::BlobStore,
        documents,
        leases::{Lease, LeaseKind, Leases},
    },
};

#[derive(RactorMessage)]
pub enum OcrPoolMsg {
    /// Look for waiting documents now.
    Poll,
    /// A worker finished (or gave up on) a document.
    Done { worker: usize, id: DocumentId },
    /// Start worker `index` again after a failure, on freshly loaded models.
    Respawn(usize),
    /// The reaper: is `id` running on this node? If so, stop its worker (it is past its
    /// deadline); answers whether it was running here.
    Reap(DocumentId, RpcReplyPort<bool>),
    /// The reaper: is `id` running on this node now?
    IsRunning(DocumentId, RpcReplyPort<bool>),
}

#[derive(RactorMessage)]
pub enum OcrWorkerMsg {
    Run(DocumentId, Lease),
}

/// What the pool needs to run.
#[derive(Clone)]
pub struct OcrPoolArgs {
    pub documents: Documents,
    pub blobs: Arc<BlobStore>,
    pub leases: Leases,
    /// One worker per entry: `cpu` or `cuda:N`.
    pub devices: Vec<String>,
    pub params: OcrParams,
    pub poll: Poller,
    /// Failures of one worker tolerated per window (also the pool's, at the root).
    pub restarts: RestartPolicy,
    /// Cross-document recognition batches: at most this many lines…
    pub batch_lines: usize,
    /// …gathered for at most this long.
    pub batch_wait: Duration,
    /// How long one run may take before the reaper stops it.
    pub job_deadline: Duration,
    /// Runs a document gets before a failing or timed-out run fails it for good.
    pub max_attempts: u32,
    /// The decoder limits every stored card is decoded within.
    pub image_limits: crate::media::ImageLimits,
    /// The reading engine's fingerprint when readings are cached: each reading is kept
    /// under its file's cache key (`None`: not cached).
    pub reading_engine: Option<String>,
    /// Percent of the documents read here sampled for the challenger model (0: none).
    pub challenge_share: u8,
    /// The cluster, when this node is in one: other nodes' OCR pools take work too.
    pub roster: Option<crate::cluster::Roster>,
}

/// The models loaded on one device, and that device's recognition batcher.
#[derive(Clone)]
struct DeviceModels {
    /// The device the models run on (a metrics label: `cpu`, `cuda:0`, …).
    device: String,
    engine: Arc<Mutex<OcrEngine>>,
    batcher: RecBatcher,
    /// Whether the engine has a second recogniser for doubtful cards.
    looks_again: bool,
}

impl DeviceModels {
    /// `engine` on the device it `runs_on`, with a recognition batcher of its own.
    fn new(
        engine: Arc<Mutex<OcrEngine>>,
        runs_on: String,
        batch_lines: usize,
        batch_wait: Duration,
    ) -> Self {
        let looks_again = engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .can_look_again();
        Self {
            device: runs_on,
            batcher: RecBatcher::spawn(engine.clone(), batch_lines, batch_wait),
            engine,
            looks_again,
        }
    }
}

/// One device's current models, shared by its workers; replaced when a worker is restarted.
type ModelSlot = Arc<RwLock<DeviceModels>>;

pub struct OcrPoolState {
    args: OcrPoolArgs,
    /// Per worker: the device it was configured for, and that device's model slot.
    models: Vec<(String, ModelSlot)>,
    workers: Vec<Option<ActorRef<OcrWorkerMsg>>>,
    idle: Vec<usize>,
    /// Per worker: the document it runs and the lease it holds.
    busy: Vec<Option<(DocumentId, Lease)>>,
    /// Per worker: its recent failures, and whether it was given up.
    failures: Vec<RestartBudget>,
    given_up: Vec<bool>,
    /// The lease service, when it is away: no new work is taken.
    leases_down: Outage,
    /// Slots on other nodes' pools (indices after the local workers').
    remote: remote::RemoteSlots,
}

/// Between a worker's failure and its restart on reloaded models.
const WORKER_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(6_400));

pub struct OcrPool;

impl OcrPoolState {
    async fn spawn_worker(
        &mut self,
        pool: &ActorRef<OcrPoolMsg>,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let reader = Reader::Local(self.models[index].1.clone());
        let worker = self.start_worker(pool, index, reader).await?;
        self.workers[index] = Some(worker);
        self.idle.push(index);
        Ok(())
    }

    async fn start_worker(
        &self,
        pool: &ActorRef<OcrPoolMsg>,
        index: usize,
        reader: Reader,
    ) -> Result<ActorRef<OcrWorkerMsg>, ActorProcessingErr> {
        let args = WorkerArgs {
            index,
            reader,
            documents: self.args.documents.clone(),
            blobs: self.args.blobs.clone(),
            leases: self.args.leases.clone(),
            job_deadline: self.args.job_deadline,
            max_attempts: self.args.max_attempts,
            image_limits: self.args.image_limits,
            reading_engine: self.args.reading_engine.clone(),
            challenge_share: self.args.challenge_share,
            pool: pool.clone(),
        };
        let (worker, _) = Actor::spawn_linked(None, OcrWorker, args, pool.get_cell()).await?;
        Ok(worker)
    }

    fn running(&self, id: &DocumentId) -> Option<usize> {
        let on = |b: &Option<(DocumentId, Lease)>| b.as_ref().is_some_and(|(d, _)| d == id);
        self.busy.iter().position(on).or_else(|| {
            self.remote
                .slots
                .iter()
                .find(|(_, s)| on(&s.run))
                .map(|(i, _)| *i)
        })
    }

    fn worker(&self, index: usize) -> Option<ActorRef<OcrWorkerMsg>> {
        match self.workers.get(index) {
            Some(w) => w.clone(),
            None => self.remote.slots.get(&index)?.worker.clone(),
        }
    }

    fn run_of(&mut self, index: usize) -> Option<&mut Option<(DocumentId, Lease)>> {
        match self.busy.get_mut(index) {
            Some(run) => Some(run),
            None => self.remote.slots.get_mut(&index).map(|s| &mut s.run),
        }
    }

    async fn dispatch(&mut self) {
        if self.idle.is_empty() {
            return;
        }
        // More than there are idle workers: the oldest may be held by other nodes' workers.
        let want = self.idle.len() as u32 + 64;
        let waiting = match documents::awaiting_ocr(&self.args.documents.context().db, want).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the OCR backlog");
                return;
            }
        };
        for (id, fence) in waiting {
            if self.idle.is_empty() {
                break;
            }
            if self.running(&id).is_some() {
                continue;
            }
            let leases = self.args.leases.clone();
            let lease = match leases
                .try_acquire(LeaseKind::Document, &id.to_string(), fence)
                .await
            {
                Ok(Some(lease)) => lease,
                // Another node has it.
                Ok(None) => continue,
                Err(e) => {
                    if self.leases_down.record(false, &e) {
                        metrics::gauge!(names::LEASES_AVAILABLE).set(0.0);
                    }
                    return;
                }
            };
            if self.leases_down.record(true, &"ok") {
                metrics::gauge!(names::LEASES_AVAILABLE).set(1.0);
            }
            let Some(index) = self.pick_idle() else { break };
            let Some(worker) = self.worker(index) else {
                leases.release(&lease).await;
                continue;
            };
            if worker.cast(OcrWorkerMsg::Run(id, lease.clone())).is_ok() {
                if let Some(run) = self.run_of(index) {
                    *run = Some((id, lease));
                }
            } else {
                leases.release(&lease).await;
                self.idle.push(index);
            }
        }
    }

    /// Worker `index` is gone (failed, or stopped by the reaper): it is restarted after a
    /// back-off, or given up when it keeps failing; the pool escalates (`Err`) when no worker
    /// is left. Returns the run it had, for the caller to end.
    fn lose_worker(
        &mut self,
        myself: &ActorRef<OcrPoolMsg>,
        index: usize,
    ) -> (Option<(DocumentId, Lease)>, Result<(), ActorProcessingErr>) {
        metrics::counter!(names::ACTOR_RESTART_COUNT, "kind" => "ocr_worker").increment(1);
        self.workers[index] = None;
        self.idle.retain(|&i| i != index);
        let run = self.busy[index].take();
        let budget = &mut self.failures[index];
        let recent = budget.fail();
        let window = budget.window();
        if !budget.exhausted() {
            let backoff = WORKER_BACKOFF.after(recent);
            myself.send_after(backoff, move || OcrPoolMsg::Respawn(index));
            return (run, Ok(()));
        }
        tracing::error!(
            worker = index,
            failures = recent,
            "OCR worker keeps failing; giving it up"
        );
        self.given_up[index] = true;
        if self.given_up.iter().all(|g| *g) {
            let why =
                format!("every OCR worker failed {recent} times within {window:?}; escalating");
            return (run, Err(why.into()));
        }
        (run, Ok(()))
    }

    /// Ends a lost worker's run: its lease back, its document requeued or failed.
    fn abandon_run(&self, run: Option<(DocumentId, Lease)>, why: Abandon) {
        let Some((id, lease)) = run else { return };
        let (documents, leases) = (self.args.documents.clone(), self.args.leases.clone());
        let max = self.args.max_attempts;
        tokio::spawn(async move {
            if let Err(e) = abandon(&documents, id, lease.token, max, why, ACTOR).await {
                tracing::warn!(document_id = %id, error = %e, "abandoned run not recorded; the reaper will find it");
            }
            leases.release(&lease).await;
        });
    }

    /// Loads the models of worker `index`'s device again, for it and its device's other
    /// workers (the old ones may be held by a hung call).
    async fn reload(&mut self, index: usize) -> Result<(), ActorProcessingErr> {
        let (device, slot) = self.models[index].clone();
        let (engine, runs_on) = load_engine(&device, &self.args.params).await?;
        *slot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            DeviceModels::new(engine, runs_on, self.args.batch_lines, self.args.batch_wait);
        Ok(())
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
        let models = load_devices(
            &args.devices,
            &args.params,
            args.batch_lines,
            args.batch_wait,
        )
        .await?;
        let mut state = OcrPoolState {
            models,
            workers: vec![None; n],
            idle: Vec::new(),
            busy: vec![None; n],
            failures: vec![args.restarts.budget(); n],
            given_up: vec![false; n],
            leases_down: Outage::new("OCR"),
            remote: remote::RemoteSlots::default(),
            args,
        };
        for index in 0..n {
            state.spawn_worker(&myself, index).await?;
        }
        if n > 0 || state.args.roster.is_some() {
            state.args.poll.start(&myself, || OcrPoolMsg::Poll);
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut OcrPoolState,
    ) -> Result<(), ActorProcessingErr> {
        // Runs still going stop with the pool: give their documents back now rather than
        // after the leases expire.
        for index in 0..state.busy.len() {
            let run = state.busy[index].take();
            state.abandon_run(run, Abandon::NodeLost);
        }
        let remote: Vec<_> = std::mem::take(&mut state.remote.slots)
            .into_values()
            .collect();
        for slot in remote {
            state.abandon_run(slot.run, Abandon::NodeLost);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: OcrPoolMsg,
        state: &mut OcrPoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OcrPoolMsg::Poll => {
                let _round = state.args.poll.round();
                // The backlog gauge once per poll, not on every finished document.
                let db = &state.args.documents.context().db;
                if let Ok(n) = documents::count_awaiting_ocr(db).await {
                    metrics::gauge!(names::QUEUE_LENGTH).set(n as f64);
                }
                state.reconcile(&myself).await;
                state.dispatch().await
            }
            OcrPoolMsg::Done { worker, id } => {
                if let Some(run) = state.run_of(worker)
                    && run.as_ref().map(|(d, _)| *d) == Some(id)
                {
                    *run = None;
                    state.idle.push(worker);
                }
                // A remote run may have ended because its node went: never refill its slots.
                state.reconcile(&myself).await;
                state.dispatch().await;
            }
            OcrPoolMsg::Respawn(index) => {
                if state.workers[index].is_none() {
                    state.reload(index).await?;
                    state.spawn_worker(&myself, index).await?;
                    tracing::info!(worker = index, "OCR worker restarted on reloaded models");
                }
            }
            OcrPoolMsg::IsRunning(id, reply) => {
                let _ = reply.send(state.running(&id).is_some());
            }
            OcrPoolMsg::Reap(id, reply) => {
                let Some(index) = state.running(&id) else {
                    let _ = reply.send(false);
                    return Ok(());
                };
                tracing::error!(worker = index, document_id = %id, "OCR run past its deadline; stopping its worker");
                if index >= state.workers.len() {
                    // A remote slot: dropped here, added again by the next reconcile.
                    if let Some((_, lease)) = state.drop_remote(&myself, index) {
                        state.args.leases.release(&lease).await;
                    }
                    let _ = reply.send(true);
                    return Ok(());
                }
                if let Some(worker) = state.workers[index].take() {
                    // Stop the actor; a blocking model call cannot be interrupted, so its
                    // thread is left to finish on its own with the old models.
                    worker.unlink(myself.get_cell());
                    worker.kill();
                }
                let (run, escalate) = state.lose_worker(&myself, index);
                // The reaper records the document's outcome; the lease goes back here.
                if let Some((_, lease)) = &run {
                    state.args.leases.release(lease).await;
                }
                let _ = reply.send(true);
                escalate?;
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
                    let remote = state.remote.slots.iter().find(|(_, s)| {
                        s.worker
                            .as_ref()
                            .is_some_and(|w| w.get_id() == cell.get_id())
                    });
                    if let Some(index) = remote.map(|(i, _)| *i) {
                        tracing::error!(worker = index, error = %err, "remote OCR slot's worker failed; replacing it");
                        let run = state.drop_remote(&myself, index);
                        state.abandon_run(run, Abandon::Crashed);
                    }
                    return Ok(());
                };
                tracing::error!(worker = index, error = %err, "OCR worker failed; restarting it");
                let (run, escalate) = state.lose_worker(&myself, index);
                state.abandon_run(run, Abandon::Crashed);
                escalate?;
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
