//! The challenger: a second OCR engine (other parameters, optionally other weights) that
//! reads again a sample of the documents the champion read, so that a candidate model is
//! measured on live traffic before anyone promotes it. The champion's reading is the one
//! that counts; the challenger's is compared with it field by field, kept only as blind
//! indexes (`crate::store::comparisons`), and thrown away.
//!
//! It never delays champion work: it reads only while no document anywhere is queued or
//! being read, one document at a time, on a thread of its own whose model calls run at the
//! lowest CPU priority (a champion read that starts meanwhile gets the processors first).
//! Sampled documents wait durably (the `pending` row is written with the extraction), so a
//! restart or a busy day loses none; a document's lease keeps two nodes from comparing it.

use std::{
    collections::BTreeMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, mpsc},
    time::Instant,
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{
    gpu::{OcrEngine, OcrParams, image_ops, weights::Weights},
    kyc::{DocumentId, DocumentType},
    media::ImageLimits,
    resilience::{Outage, Poller},
    store::{
        Db,
        blobs::BlobStore,
        comparisons::{self, Compared},
        documents::{self, DocumentStatus},
        leases::{LeaseKind, Leases},
        now_millis,
    },
    telemetry::metrics::names,
};

/// Whether document `id` is in the challenger's `share_percent` sample: a stable draw from
/// the id, so every node and every retry draws the same.
pub fn sampled(id: &DocumentId, share_percent: u8) -> bool {
    let digest = Sha256::digest(id.to_string().as_bytes());
    let draw = u16::from_be_bytes([digest[0], digest[1]]) % 100;
    draw < u16::from(share_percent)
}

/// What the challenger reads with.
#[derive(Debug, Clone)]
pub struct ChallengerEngine {
    pub device: String,
    pub params: OcrParams,
    pub weights: Weights,
}

/// What a challenger reads with, as a fingerprint: the parameters that change a reading and
/// its weights (`crate::gpu::weights::describe`). Comparisons are kept under it.
pub fn fingerprint(params: &OcrParams, weights: &str) -> String {
    let both = format!("{}\n{weights}", params.engine_fingerprint());
    hex::encode(Sha256::digest(both.as_bytes()))
}

#[derive(Clone)]
pub struct ChallengerArgs {
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub leases: Leases,
    pub engine: ChallengerEngine,
    /// The engine's [`fingerprint`], computed once at start: comparisons are kept under it
    /// and the admin's summary reads them by it.
    pub fingerprint: String,
    pub poll: Poller,
    pub image_limits: ImageLimits,
}

pub enum ChallengerMsg {
    /// Compare what waits, if the champion has nothing to do.
    Poll,
}

impl ractor::Message for ChallengerMsg {}

pub struct Challenger;

pub struct ChallengerState {
    args: ChallengerArgs,
    bench: Bench,
    /// The lease service, when it is away.
    leases_down: Outage,
}

/// Documents compared in one poll round at most (the mailbox is answered in between).
const PER_ROUND: usize = 16;

impl Actor for Challenger {
    type Msg = ChallengerMsg;
    type State = ChallengerState;
    type Arguments = ChallengerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ChallengerArgs,
    ) -> Result<ChallengerState, ActorProcessingErr> {
        let bench = Bench::start(args.engine.clone()).await?;
        args.poll.start(&myself, || ChallengerMsg::Poll);
        tracing::info!(device = %args.engine.device, engine = &args.fingerprint[..12], "challenger model loaded");
        Ok(ChallengerState {
            args,
            bench,
            leases_down: Outage::new("challenger model"),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ChallengerMsg,
        state: &mut ChallengerState,
    ) -> Result<(), ActorProcessingErr> {
        let ChallengerMsg::Poll = msg;
        let _round = state.args.poll.round();
        for _ in 0..PER_ROUND {
            match state.compare_next().await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "challenger comparison not recorded; trying later");
                    break;
                }
            }
        }
        Ok(())
    }
}

impl ChallengerState {
    /// Compares the oldest waiting document, when the champion has nothing waiting or
    /// running. `false`: nothing was done (nothing waits, the champion is busy, or another
    /// node holds the document).
    async fn compare_next(&mut self) -> Result<bool, crate::store::StoreError> {
        let db = &self.args.db;
        if documents::count_awaiting_ocr(db).await? > 0 {
            return Ok(false);
        }
        let Some(id) = comparisons::pending(db, 1).await?.into_iter().next() else {
            return Ok(false);
        };
        let lease = match self
            .args
            .leases
            .try_acquire(LeaseKind::Comparison, &id.to_string(), 0)
            .await
        {
            Ok(Some(lease)) => {
                self.leases_down.record(true, &"ok");
                lease
            }
            // Another node compares it.
            Ok(None) => return Ok(false),
            Err(e) => {
                self.leases_down.record(false, &e);
                return Ok(false);
            }
        };
        let result = self.compare(id).await;
        self.args.leases.release(&lease).await;
        result.map(|()| true)
    }

    async fn compare(&mut self, id: DocumentId) -> Result<(), crate::store::StoreError> {
        let db = &self.args.db;
        let record = documents::get(db, &id).await?;
        let champion = record.as_ref().and_then(|r| {
            let fields = r.fields.as_ref()?.open(&self.args.blobs, &id)?.fields;
            (r.status == DocumentStatus::Extracted).then_some(fields)
        });
        let (Some(record), Some(champion)) = (record, champion) else {
            // Its reading cannot be opened: nothing to compare it with.
            tracing::warn!(document_id = %id, "sampled document has no readable champion reading; skipped");
            comparisons::skip(db, &id, now_millis()).await?;
            return Ok(());
        };
        let started = Instant::now();
        let read = match record.blob_key.clone() {
            Some(key) => {
                let blobs = self.args.blobs.clone();
                match tokio::task::spawn_blocking(move || blobs.get(&key)).await {
                    Ok(Ok(bytes)) => {
                        let limits = self.args.image_limits;
                        self.bench.read(bytes, record.doc_type, limits).await
                    }
                    _ => Err("file_unavailable"),
                }
            }
            None => Err("file_unavailable"),
        };
        let ms = started.elapsed().as_millis() as u64;
        let (outcome, fields) = match read {
            Ok(fields) => ("read", fields),
            Err(code) => (code, BTreeMap::new()),
        };
        let rows = comparisons::compare_fields(
            &self.args.blobs.blind,
            &id.to_string(),
            &champion,
            &fields,
        );
        let disagreed = rows.iter().filter(|r| !r.agree).count();
        let compared = self.compared(outcome, ms, rows);
        if comparisons::record(db, &id, &compared, now_millis()).await? {
            metrics::counter!(names::OCR_CHALLENGER_COUNT, "outcome" => outcome).increment(1);
            metrics::histogram!(names::OCR_CHALLENGER_MS).record(ms as f64);
            tracing::info!(document_id = %id, challenger_ms = ms, disagreed, outcome, "challenger compared");
        }
        Ok(())
    }

    fn compared(&self, outcome: &str, ms: u64, fields: Vec<comparisons::FieldRow>) -> Compared {
        Compared {
            engine: self.args.fingerprint.clone(),
            challenger_ms: ms,
            outcome: outcome.into(),
            fields,
        }
    }
}

/// A reading's fields, or why there are none (a stable code).
type Fields = Result<BTreeMap<String, String>, &'static str>;

struct Job {
    bytes: Vec<u8>,
    doc_type: DocumentType,
    limits: ImageLimits,
    reply: oneshot::Sender<Fields>,
}

/// The challenger's engine on a thread of its own at the lowest CPU priority; it ends when
/// the bench is dropped.
struct Bench {
    jobs: mpsc::Sender<Job>,
}

impl Bench {
    async fn start(spec: ChallengerEngine) -> Result<Self, ActorProcessingErr> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, loaded) = oneshot::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("ocr-challenger".into())
            .spawn(move || {
                crate::gpu::weights::lowest_priority();
                let engine =
                    match OcrEngine::background(&spec.device, spec.params.clone(), &spec.weights) {
                        Ok(engine) => engine,
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                            return;
                        }
                    };
                let _ = ready.send(Ok(()));
                while let Ok(job) = queue.recv() {
                    let fields = catch_unwind(AssertUnwindSafe(|| read_fields(&engine, &job)))
                        .unwrap_or(Err("ocr_crashed"));
                    let _ = job.reply.send(fields);
                }
            })?;
        match loaded.await {
            Ok(Ok(())) => Ok(Self { jobs }),
            Ok(Err(e)) => Err(format!("challenger model: {e}").into()),
            Err(_) => Err("challenger model thread ended while loading".into()),
        }
    }

    async fn read(&self, bytes: Vec<u8>, doc_type: DocumentType, limits: ImageLimits) -> Fields {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            bytes,
            doc_type,
            limits,
            reply,
        };
        if self.jobs.send(job).is_err() {
            return Err("ocr_error");
        }
        answer.await.unwrap_or(Err("ocr_error"))
    }
}

/// Reads one card's fields on the challenger's engine.
fn read_fields(engine: &OcrEngine, job: &Job) -> Fields {
    let img = image_ops::decode(&job.bytes, &job.limits).map_err(|_| "ocr_unreadable")?;
    let today = chrono::Utc::now().date_naive();
    let read = engine
        .within(|engine| engine.read_card(&img, Some(job.doc_type), today))
        .map_err(|_| "ocr_error")?;
    Ok(read.card.fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_stable_and_near_its_share() {
        let ids: Vec<DocumentId> = (0..2_000).map(|_| DocumentId::new()).collect();
        let share = |p| ids.iter().filter(|id| sampled(id, p)).count();
        assert_eq!(share(0), 0);
        assert_eq!(share(100), ids.len());
        let quarter = share(25);
        assert!((400..600).contains(&quarter), "{quarter} of 2000 at 25%");
        assert!(ids.iter().all(|id| sampled(id, 25) == sampled(id, 25)));
    }
}
