//! Recognition batching across documents: workers sharing a device hand their line crops to
//! one batcher, which waits up to `max_wait` (or until `max_lines` lines) for other documents'
//! crops and recognises them together, so a GPU runs full batches instead of one small batch
//! per card.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use super::{Crop, OcrEngine, OcrError, ctc::Decoded};

struct Job {
    crops: Vec<Crop>,
    queued: Instant,
    reply: tokio::sync::oneshot::Sender<Result<Recognised, String>>,
}

/// One card's lines read by the batcher, and how long that took.
pub struct Recognised {
    pub lines: Vec<Decoded>,
    /// The recognition run that held them (with other cards' lines), in milliseconds.
    pub rec_ms: f64,
    /// From handing them in to that run's start: gathering a batch, or the device busy.
    pub wait_ms: f64,
}

/// A handle to one device's batcher thread; cheap to clone. The thread ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct RecBatcher {
    tx: mpsc::Sender<Job>,
    runs: Arc<AtomicU64>,
}

impl RecBatcher {
    pub fn spawn(engine: Arc<Mutex<OcrEngine>>, max_lines: usize, max_wait: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let runs = Arc::new(AtomicU64::new(0));
        let counter = runs.clone();
        std::thread::Builder::new()
            .name("ocr-rec-batcher".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let deadline = Instant::now() + max_wait;
                    let mut lines = first.crops.len();
                    let mut jobs = vec![first];
                    while lines < max_lines {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(job) => {
                                lines += job.crops.len();
                                jobs.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    // The crops are moved into one run: nothing hands them back.
                    let counts: Vec<usize> = jobs.iter().map(|j| j.crops.len()).collect();
                    let all: Vec<Crop> = jobs
                        .iter_mut()
                        .flat_map(|j| std::mem::take(&mut j.crops))
                        .collect();
                    let started = Instant::now();
                    let result = engine
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .within(|engine| engine.recognize_crops(&all))
                        .map_err(|e| e.to_string());
                    counter.fetch_add(1, Ordering::Relaxed);
                    let rec_ms = super::ms_since(started);
                    let mut results = result.map(Vec::into_iter);
                    for (job, n) in jobs.into_iter().zip(counts) {
                        let part = match &mut results {
                            Ok(iter) => Ok(Recognised {
                                lines: iter.by_ref().take(n).collect(),
                                rec_ms,
                                wait_ms: (started - job.queued).as_secs_f64() * 1e3,
                            }),
                            Err(e) => Err(e.clone()),
                        };
                        let _ = job.reply.send(part);
                    }
                }
            })
            .expect("spawn the batcher thread");
        Self { tx, runs }
    }

    /// Recognises `crops`, possibly together with other documents' crops.
    pub async fn recognize(&self, crops: Vec<Crop>) -> Result<Vec<Decoded>, OcrError> {
        Ok(self.recognize_timed(crops).await?.lines)
    }

    /// [`Self::recognize`], saying how long the run took and how long the lines waited for it.
    pub async fn recognize_timed(&self, crops: Vec<Crop>) -> Result<Recognised, OcrError> {
        if crops.is_empty() {
            return Ok(Recognised {
                lines: Vec::new(),
                rec_ms: 0.0,
                wait_ms: 0.0,
            });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job {
                crops,
                queued: Instant::now(),
                reply,
            })
            .map_err(|_| OcrError::Shape("recognition batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| OcrError::Shape("recognition batcher stopped".into()))?
            .map_err(OcrError::Shape)
    }

    /// How many combined recognition runs the batcher has made.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{OcrParams, image_ops};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crops_of_two_documents_are_recognised_in_one_run_with_the_same_result() {
        let engine = OcrEngine::cpu(OcrParams::default());
        let read = |name: &str| {
            let bytes = std::fs::read(format!(
                "{}/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let img = image_ops::decode(&bytes, &Default::default()).unwrap();
            let boxes = engine.detect_boxes(&img).unwrap();
            engine.crops(&img, &boxes)
        };
        let (a, b) = (read("ktp_003.jpg"), read("npwp_000.jpg"));
        let alone_a: Vec<String> = engine
            .recognize_crops(&a)
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect();
        let alone_b: Vec<String> = engine
            .recognize_crops(&b)
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect();

        let batcher = RecBatcher::spawn(
            Arc::new(Mutex::new(engine)),
            1_000,
            Duration::from_millis(500),
        );
        let (ra, rb) = tokio::join!(batcher.recognize(a), batcher.recognize(b));
        let texts = |r: Vec<Decoded>| r.into_iter().map(|d| d.text).collect::<Vec<_>>();
        let (ra, rb) = (texts(ra.unwrap()), texts(rb.unwrap()));
        assert_eq!(
            (ra.len(), rb.len()),
            (alone_a.len(), alone_b.len()),
            "one result per crop, in order"
        );
        // Lines padded to another batch's width can flip an uncertain character (the model
        // sees the padding); everything else reads the same.
        let same = ra
            .iter()
            .zip(&alone_a)
            .chain(rb.iter().zip(&alone_b))
            .filter(|(x, y)| x == y)
            .count();
        assert!(same + 2 >= ra.len() + rb.len(), "{ra:?} vs {alone_a:?}");
        assert_eq!(
            batcher.runs(),
            1,
            "both documents' lines went through one run"
        );
    }
}
