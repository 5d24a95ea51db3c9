//! The OCR benchmark behind `filot bench-ocr`: model load time, then cold (first) and warm
//! passes over a set of cards, each read to its fields as a worker reads it (a doubtful card
//! with its second look), reporting det ms, rec ms per line and ms per card. Timings belong
//! here, never in tests.

use std::{path::PathBuf, time::Instant};

use serde::Serialize;

use super::{OcrEngine, OcrError, OcrParams};

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub cards: usize,
    pub rec_batch: usize,
    pub threads: usize,
    pub load_ms: f64,
    pub cold_card_ms: f64,
    pub warm_card_ms: f64,
    pub warm_det_ms: f64,
    pub warm_rec_ms_per_line: f64,
    pub lines_per_card: f64,
    /// Share of the cards read a second time (doubtful at first), 0 to 1.
    pub second_looks: f64,
    pub cards_per_s: f64,
}

impl BenchReport {
    pub fn summary(&self) -> String {
        format!(
            "device {} ({} threads), {} cards, rec batch {}: load {:.0} ms; cold {:.0} ms/card; warm {:.0} ms/card (det {:.0} ms, rec {:.1} ms/line, {:.1} lines/card, {:.0}% looked at twice); {:.2} cards/s",
            self.device,
            self.threads,
            self.cards,
            self.rec_batch,
            self.load_ms,
            self.cold_card_ms,
            self.warm_card_ms,
            self.warm_det_ms,
            self.warm_rec_ms_per_line,
            self.lines_per_card,
            self.second_looks * 100.0,
            self.cards_per_s
        )
    }
}

pub fn run(
    device: &str,
    params: OcrParams,
    files: &[PathBuf],
    rounds: usize,
) -> Result<BenchReport, OcrError> {
    let images = files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .map_err(|e| OcrError::Decode(format!("{}: {e}", f.display())))
                .and_then(|b| super::image_ops::decode(&b, &Default::default()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rec_batch = params.rec_batch;
    let started = Instant::now();
    let engine = OcrEngine::on(device, params)?;
    engine.sync();
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let today = chrono::Utc::now().date_naive();
    let started = Instant::now();
    engine.read_card(&images[0], None, today)?;
    engine.sync();
    let cold_card_ms = started.elapsed().as_secs_f64() * 1e3;

    let (mut det, mut rec, mut lines, mut twice) = (0.0, 0.0, 0usize, 0usize);
    let started = Instant::now();
    for _ in 0..rounds.max(1) {
        for img in &images {
            let page = engine.read_card(img, None, today)?.page;
            det += page.det_ms;
            rec += page.rec_ms;
            lines += page.lines.len();
            twice += usize::from(page.timings.second > 0.0);
        }
    }
    engine.sync();
    let total = started.elapsed().as_secs_f64();
    let passes = (rounds.max(1) * images.len()) as f64;
    Ok(BenchReport {
        device: device.to_string(),
        cards: images.len(),
        rec_batch,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_ms,
        cold_card_ms,
        warm_card_ms: total * 1e3 / passes,
        warm_det_ms: det / passes,
        warm_rec_ms_per_line: rec / lines.max(1) as f64,
        lines_per_card: lines as f64 / passes,
        second_looks: twice as f64 / passes,
        cards_per_s: passes / total,
    })
}
