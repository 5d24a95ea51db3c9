//! One OCR worker: claims the document it is handed (with the lease's fencing token and a
//! deadline), reads it on its device's models, and records the reading with the same token;
//! or abandons the run (requeued, or failed after its last attempt). Every line of a run
//! carries the upload's correlation id.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use super::{DeviceModels, ModelSlot, OcrPoolMsg, OcrWorkerMsg};
#[cfg(feature = "test-hooks")]
use crate::testing::Fault;
use crate::{
    actors::DocumentError,
    actors::Documents,
    gpu::{
        self, OcrPage, image_ops,
        reading::{self, CardRead},
    },
    kyc::{self, DocumentId},
    store::{
        blobs::BlobStore,
        documents::{self, Claim, DocumentChange, Placement, ReadLine, Reading, SealedReading},
        leases::{self, Lease, Leases},
        now_millis,
    },
    telemetry::metrics::names,
};

/// Why a run ended without a result, and what the document becomes.
#[derive(Debug, Clone, Copy)]
pub enum Abandon {
    /// Past its deadline (the reaper stopped it).
    Timeout,
    /// Its worker crashed.
    Crashed,
    /// Its node died or restarted (found by the reaper: no lease, or this node's own
    /// leftover from before a restart).
    NodeLost,
    /// The model failed (not the document): worth another attempt.
    EngineError,
}

impl Abandon {
    /// (reason recorded on a requeue, failure reason after the last attempt)
    pub fn reasons(self) -> (&'static str, &'static str) {
        match self {
            Self::Timeout => ("ocr_timeout", "ocr_timeout"),
            Self::Crashed => ("worker_crashed", "ocr_crashed"),
            Self::NodeLost => ("node_lost", "ocr_interrupted"),
            Self::EngineError => ("ocr_error", "ocr_error"),
        }
    }
}

/// Ends the run `token` of document `id` without a result: back to `queued` for another
/// attempt, or `failed` when it had its last one. Fenced: a run that meanwhile finished, or
/// a newer claim, is left alone (`ClaimLost`/`Final`).
pub async fn abandon(
    documents: &Documents,
    id: DocumentId,
    token: i64,
    max_attempts: u32,
    why: Abandon,
    principal: &str,
) -> Result<(), DocumentError> {
    let record = documents::get(&documents.context().db, &id)
        .await?
        .ok_or(DocumentError::NotFound)?;
    let (requeue, fail) = why.reasons();
    let change = if record.ocr_attempts >= i64::from(max_attempts) {
        metrics::counter!(names::OCR_FAILURE_COUNT, "reason" => fail).increment(1);
        DocumentChange::Failed {
            reason: fail.into(),
            token,
        }
    } else {
        metrics::counter!(names::REAPER_REQUEUE_COUNT, "reason" => requeue).increment(1);
        DocumentChange::Requeued {
            reason: requeue.into(),
            token,
        }
    };
    let kind = change.kind();
    documents.apply(id, change, principal).await?;
    tracing::warn!(document_id = %id, attempts = record.ocr_attempts, reason = requeue, outcome = kind, "OCR run abandoned");
    Ok(())
}

/// Where a worker's cards are read: this node's models, or another node's OCR pool.
pub(super) enum Reader {
    Local(ModelSlot),
    Remote(super::remote::RemoteOcr),
}

impl Reader {
    /// The metrics label of where it reads: `cpu`, `cuda:0`, or `node:<name>`.
    fn device(&self) -> String {
        match self {
            Self::Local(slot) => slot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .device
                .clone(),
            Self::Remote(r) => format!("node:{}", r.node),
        }
    }
}

pub struct WorkerArgs {
    pub(super) index: usize,
    pub(super) reader: Reader,
    pub(super) documents: Documents,
    pub(super) blobs: Arc<BlobStore>,
    pub(super) leases: Leases,
    pub(super) job_deadline: Duration,
    pub(super) max_attempts: u32,
    pub(super) image_limits: crate::media::ImageLimits,
    pub(super) reading_engine: Option<String>,
    pub(super) challenge_share: u8,
    pub(super) pool: ActorRef<OcrPoolMsg>,
}

pub struct OcrWorker;

impl Actor for OcrWorker {
    type Msg = OcrWorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: OcrWorkerMsg,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        let OcrWorkerMsg::Run(id, lease) = msg;
        let device = state.reader.device();
        let active = metrics::gauge!(names::GPU_ACTIVE_JOBS, "device" => device.clone());
        active.increment(1.0);
        let started = std::time::Instant::now();
        let outcome = leases::while_held(&state.leases, &lease, run(state, id, &lease)).await;
        active.decrement(1.0);
        metrics::histogram!(names::GPU_PROCESSING_TIME_MS, "device" => device)
            .record(started.elapsed().as_secs_f64() * 1e3);
        match outcome {
            Ok(()) => {}
            Err(DocumentError::NotQueued(_)) | Err(DocumentError::ClaimLost) => {
                tracing::info!(document_id = %id, "document taken or settled elsewhere; skipped");
            }
            Err(e) => tracing::warn!(document_id = %id, error = %e, "OCR run did not complete"),
        }
        state.leases.release(&lease).await;
        let _ = state.pool.cast(OcrPoolMsg::Done {
            worker: state.index,
            id,
        });
        Ok(())
    }
}

pub(super) const ACTOR: &str = "ocr";

/// How one read ended.
enum Read {
    Card(kyc::card::CardReading, Placement, Vec<ReadLine>),
    /// The document cannot be read (not an image, nothing found): a final failure.
    Unreadable(&'static str),
    /// The model failed, not the document: another attempt may succeed.
    EngineError(String),
    /// The node reading it was lost: requeued.
    NodeLost(String),
}

/// Claims document `id` with `lease`, reads it, and records the outcome with the same token.
async fn run(state: &WorkerArgs, id: DocumentId, lease: &Lease) -> Result<(), DocumentError> {
    let claim = Claim {
        node: state.leases.node().to_string(),
        token: lease.token,
        deadline: now_millis() + state.job_deadline.as_millis() as i64,
    };
    let record = state
        .documents
        .apply(id, DocumentChange::Processing(claim), ACTOR)
        .await?;
    let Some(key) = record.blob_key.clone() else {
        return Ok(());
    };
    // Every line of the run carries the upload's correlation id, on whichever node it runs.
    let span = tracing::info_span!(
        "ocr_run",
        document_id = %id,
        correlation_id = record.correlation_id.as_deref().unwrap_or(""),
        attempt = record.ocr_attempts,
    );
    read_and_record(state, id, lease, key, record)
        .instrument(span)
        .await
}

async fn read_and_record(
    state: &WorkerArgs,
    id: DocumentId,
    lease: &Lease,
    key: String,
    record: documents::DocumentRecord,
) -> Result<(), DocumentError> {
    tracing::info!(device = %state.reader.device(), "OCR run started");
    let started = std::time::Instant::now();
    let (read, cache_key) = read(state, id, &record, key).await;
    let token = lease.token;
    let change = match read {
        Read::Card(card, placement, lines) => {
            metrics::counter!(names::OCR_SUCCESS_COUNT).increment(1);
            let ocr_ms = started.elapsed().as_millis() as u64;
            tracing::info!(ocr_ms, issues = card.issues.len(), "document read");
            let reading = Reading {
                fields: card.fields,
                confidence: card.confidence,
                lines,
            };
            match SealedReading::seal(&state.blobs, &id, &reading, Some(ocr_ms), Some(placement)) {
                Ok(fields) => DocumentChange::Extracted {
                    fields,
                    issues: card.issues,
                    token,
                    cache_key,
                    challenge: crate::actors::challenger::sampled(&id, state.challenge_share),
                },
                Err(_) => DocumentChange::Failed {
                    reason: "sealing_failed".into(),
                    token,
                },
            }
        }
        Read::Unreadable(reason) => {
            metrics::counter!(names::OCR_FAILURE_COUNT, "reason" => reason).increment(1);
            tracing::warn!(reason, "OCR could not read the document");
            DocumentChange::Failed {
                reason: reason.into(),
                token,
            }
        }
        Read::EngineError(e) => {
            tracing::error!(error = %e, "OCR model failed");
            return abandon(
                &state.documents,
                id,
                token,
                state.max_attempts,
                Abandon::EngineError,
                ACTOR,
            )
            .await;
        }
        Read::NodeLost(e) => {
            tracing::warn!(error = %e, "the node reading the document was lost");
            return abandon(
                &state.documents,
                id,
                token,
                state.max_attempts,
                Abandon::NodeLost,
                ACTOR,
            )
            .await;
        }
    };
    state.documents.apply(id, change, ACTOR).await?;
    Ok(())
}

/// How reading a card's pixels ended (on this node or another).
pub(super) enum PageRead {
    Page(Box<OcrPage>),
    /// The file cannot be read: a final failure, with its reason code.
    Unreadable(&'static str),
    /// The model failed, not the document: another attempt may succeed.
    EngineError(String),
    /// The node reading it went away (or stopped answering): requeued at once.
    NodeLost(String),
}

/// Reads one stored card: fetched here, its pixels read by this node's models or by
/// another node's pool, its fields made sense of here. Also the key the reading is cached
/// under, when readings are cached.
async fn read(
    state: &WorkerArgs,
    id: DocumentId,
    record: &documents::DocumentRecord,
    key: String,
) -> (Read, Option<String>) {
    let blobs = state.blobs.clone();
    let bytes = match tokio::task::spawn_blocking(move || blobs.get(&key)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return (Read::EngineError(format!("blob: {e}")), None),
        Err(_) => return (Read::EngineError("blob read panicked".into()), None),
    };
    let cache_key = state
        .reading_engine
        .as_deref()
        .zip(record.file_index.as_deref())
        .map(|(engine, file_index)| {
            crate::actors::intake::reading_key(
                &state.blobs,
                file_index,
                &record.owner,
                record.doc_type,
                engine,
            )
        });
    let (correlation_id, doc_type) = (record.correlation_id.clone(), record.doc_type);
    let page = match &state.reader {
        Reader::Local(slot) => {
            let models = slot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            #[cfg(feature = "test-hooks")]
            let before = {
                let faults = state.documents.context().ocr_faults.clone();
                let fault = faults.next(state.index);
                if fault == Some(Fault::Panic) {
                    panic!("injected fault: OCR worker panics");
                }
                move || match fault {
                    Some(Fault::Hang) => {
                        faults.hang();
                        Ok(())
                    }
                    Some(Fault::Slow(ms)) => {
                        std::thread::sleep(Duration::from_millis(ms));
                        Ok(())
                    }
                    Some(Fault::Error) => Err(PageRead::EngineError("injected model error".into())),
                    Some(Fault::Panic) | None => Ok(()),
                }
            };
            #[cfg(not(feature = "test-hooks"))]
            let before = || Ok(());
            read_page(&models, bytes, state.image_limits, Some(doc_type), before).await
        }
        Reader::Remote(remote) => {
            let request = crate::cluster::wire::ReadRequest {
                document_id: id.to_string(),
                correlation_id,
                doc_type: Some(doc_type),
                bytes,
            };
            remote.read(request, state.job_deadline).await
        }
    };
    let read = match page {
        PageRead::Page(page) => card_of(&page, doc_type),
        PageRead::Unreadable(code) => Read::Unreadable(code),
        PageRead::EngineError(e) => Read::EngineError(e),
        PageRead::NodeLost(e) => Read::NodeLost(e),
    };
    (read, cache_key)
}

/// The card's fields from a read page; a photo with no key field readable, and a reason to
/// retake it, is unreadable.
fn card_of(page: &OcrPage, doc_type: kyc::DocumentType) -> Read {
    let today = chrono::Utc::now().date_naive();
    let placement = Placement {
        orientation: page.geometry.orientation,
        card_quad: page.geometry.card_quad,
    };
    let card = reading::read_page(page, Some(doc_type), today).1;
    // Nothing to review when no key field could be read: the photo must be retaken,
    // and the reason says why.
    match kyc::retake::among(&card.issues) {
        Some(code) if !kyc::retake::any_key_field(doc_type, &card) => Read::Unreadable(code),
        _ => Read::Card(card, placement, photo_lines(page)),
    }
}

/// The page's lines with their corners in the photo's pixels (where a reviewer sees them).
fn photo_lines(page: &OcrPage) -> Vec<ReadLine> {
    let to_photo = &page.geometry.to_photo;
    page.lines
        .iter()
        .map(|l| ReadLine {
            text: l.text.clone(),
            confidence: l.confidence,
            quad: l.quad.map(|p| to_photo.apply(p)),
        })
        .collect()
}

/// Decodes and reads one card's pixels on `models`. Detection runs on a blocking thread
/// holding the device's models (`before` runs there first: test builds inject faults);
/// recognition goes through the device's batcher. A card of `doc_type` (`None`: either)
/// read with doubt is read again by the second recogniser ([`gpu::reading`]), and the page
/// of the better reading is the answer.
pub(super) async fn read_page(
    models: &DeviceModels,
    bytes: Vec<u8>,
    limits: crate::media::ImageLimits,
    doc_type: Option<kyc::DocumentType>,
    before: impl FnOnce() -> Result<(), PageRead> + Send + 'static,
) -> PageRead {
    let engine = models.engine.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let img = image_ops::decode(&bytes, &limits)
            .map_err(|_| PageRead::Unreadable("ocr_unreadable"))?;
        let decode = gpu::ms_since(started);
        let started = Instant::now();
        // The models are read-only: a panic in an earlier read leaves nothing half-changed.
        let engine = engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wait = gpu::ms_since(started);
        before()?;
        let (prepared, crops, crops_ms) = engine
            .within(|engine| {
                let prepared = engine.prepare(&img)?;
                let started = Instant::now();
                let crops = engine.page_crops(&img, &prepared.boxes, &prepared.geometry);
                Ok((prepared, crops, gpu::ms_since(started)))
            })
            .map_err(|e: gpu::OcrError| PageRead::EngineError(e.to_string()))?;
        let timings = gpu::Timings {
            decode,
            wait,
            crops: crops_ms,
            ..prepared.timings
        };
        let page = OcrPage {
            width: prepared.page.width(),
            height: prepared.page.height(),
            lines: Vec::new(),
            geometry: prepared.geometry,
            quality: prepared.quality,
            det_ms: 0.0,
            rec_ms: 0.0,
            second_look: false,
            timings,
        };
        Ok::<_, PageRead>((page, prepared.boxes, crops, prepared.read_ahead))
    })
    .await;
    let (mut page, boxes, crops, read_ahead) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(read)) => return read,
        // A panic while reading this document would recur on every retry: record it as a
        // failure of the document instead of retrying it for ever.
        Err(_) => return PageRead::Unreadable("ocr_crashed"),
    };
    let recognised = match models
        .batcher
        .recognize_timed(read_ahead.unread(&crops))
        .await
    {
        Ok(recognised) => recognised,
        Err(e) => return PageRead::EngineError(e.to_string()),
    };
    let t = &mut page.timings;
    t.rec = recognised.rec_ms;
    t.wait += recognised.wait_ms;
    page.det_ms = t.find + t.det + t.post + t.orient;
    page.rec_ms = t.rec;
    page.lines = gpu::lines_from(&boxes, read_ahead.merge(recognised.lines));
    let today = chrono::Utc::now().date_naive();
    let first = CardRead::of(page, doc_type, today);
    let read = if models.looks_again && (first.doubtful() || first.unconfirmed()) {
        let confirming = !first.doubtful();
        let engine = models.engine.clone();
        let again = tokio::task::spawn_blocking(move || {
            engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .within(|engine| engine.look_again(first, &boxes, &crops, doc_type, today))
        })
        .await;
        match again {
            Ok(Ok(read)) => {
                let outcome = match (read.page.second_look, confirming) {
                    (true, _) => "better",
                    (false, true) => "confirmed",
                    (false, false) => "no_better",
                };
                metrics::counter!(names::OCR_SECOND_LOOK, "outcome" => outcome).increment(1);
                read
            }
            Ok(Err(e)) => return PageRead::EngineError(e.to_string()),
            Err(_) => return PageRead::Unreadable("ocr_crashed"),
        }
    } else {
        first
    };
    let stages = read.page.timings.stages();
    for (stage, ms) in stages
        .into_iter()
        .filter(|&(s, ms)| s != "second" || ms > 0.0)
    {
        metrics::histogram!(names::OCR_STAGE_MS, "stage" => stage).record(ms);
    }
    PageRead::Page(Box::new(read.page))
}
