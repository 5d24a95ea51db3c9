//! # OCR on Burn
//!
//! PaddleOCR's PP-OCRv4 text detection (DBNet) and recognition (SVTR-LCNet, CTC), or PP-OCRv6
//! small recognition (`OcrParams::recogniser`), converted
//! unmodified from ONNX at build time (see `build.rs` and `models/`), running on Burn's CPU
//! backend (`flex`) or, with `--features cuda`, on a CUDA GPU. This module owns the models
//! and the pixels-to-lines pipeline, which knows nothing of KTP/NPWP fields. Only the tools
//! built on it that score readings against specimens (`report`, behind `filot ocr-report`)
//! read cards through `crate::kyc`.

pub mod annotate;
pub mod batcher;
pub mod bench;
pub mod card;
pub mod ctc;
pub mod db;
pub mod depthwise;
pub mod fused;
pub mod image_ops;
mod models;
pub use models::{Recogniser, SecondLook};
pub mod page;
pub mod reading;
pub mod report;
mod vector;
pub mod warp;
pub mod weights;

/// The build-time rewrite that emits the [`fused::map`] calls, unit-tested here.
#[cfg(test)]
#[path = "../../build/fuse.rs"]
mod fuse_rewrite;

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

pub use db::Quad;
pub use page::{PageGeometry, PageQuality, Prepared, ReadAhead};

/// `cpu` or `cuda:N` (the latter only in builds with the `cuda` feature).
pub fn parse_device(name: &str) -> Result<Device, OcrError> {
    match name.trim() {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        other if other.starts_with("cuda") => {
            let index: usize = other
                .strip_prefix("cuda")
                .and_then(|r| r.strip_prefix(':').or(Some(r)))
                .filter(|r| !r.is_empty())
                .map_or(Ok(0), str::parse)
                .map_err(|_| OcrError::Device(other.to_string()))?;
            Ok(Device::cuda(index))
        }
        other => Err(OcrError::Device(other.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error(
        "unknown or unsupported OCR device `{0}` (cpu; cuda:N needs a build with --features cuda)"
    )]
    Device(String),
    #[error("image cannot be decoded: {0}")]
    Decode(String),
    #[error("the PDF has no page image to read")]
    NoPageImage,
    #[error("model output has an unexpected shape: {0}")]
    Shape(String),
}

/// Tunables of the pipeline (all configurable under `ocr.*`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OcrParams {
    /// Detector input: shorter side scaled to this (multiple of 32 after rounding).
    pub det_min_side: u32,
    /// Detector input: longer side never beyond this.
    pub det_max_side: u32,
    /// Detector input for a found card: the flattened card (kept `det_min_side` tall for the
    /// quality measures) is scaled to this height before detection. A card's lines are
    /// large at any scale the recogniser reads well, so the detector needs fewer pixels
    /// than a whole photo does.
    pub det_card_side: u32,
    pub det_thresh: f32,
    pub det_box_thresh: f32,
    pub det_unclip_ratio: f32,
    /// Recogniser input height (the model's: 48).
    pub rec_height: usize,
    /// Widest line crop fed to the recogniser.
    pub rec_max_width: usize,
    /// Lines per recognition batch.
    pub rec_batch: usize,
    /// Look for the card in the photo and read it flattened (otherwise the whole photo is
    /// read, turned upright).
    pub find_card: bool,
    /// An ink-free gap at least this many times the text's height is a space (when it is
    /// also much wider than the line's usual gap between letters).
    pub word_gap_factor: f32,
    /// CPU threads this engine's model calls run on: 0 shares the process's pool (every
    /// core); n gives the engine a pool of its own, so that several CPU workers, one engine
    /// each, read several cards side by side (small model calls scale poorly across cores).
    pub threads: usize,
    /// The model that recognises the text lines: `ppocr_v4` (fast) or `ppocr_v6_small`
    /// (about twice the time per line, and far better on small or blurred print).
    pub recogniser: Recogniser,
    /// The recogniser that reads a card's lines again when the first reading is doubtful: it
    /// would ask for a retake, or its name is unsure (`off`, `ppocr_v4` or `ppocr_v6_small`;
    /// the same as `recogniser` is off).
    pub second_look: SecondLook,
}

impl Default for OcrParams {
    fn default() -> Self {
        Self {
            det_min_side: 736,
            det_max_side: 1600,
            det_card_side: 576,
            det_thresh: 0.3,
            det_box_thresh: 0.5,
            det_unclip_ratio: 1.6,
            rec_height: 48,
            rec_max_width: 1600,
            rec_batch: 8,
            find_card: true,
            word_gap_factor: 0.2,
            threads: 0,
            recogniser: Recogniser::PpocrV4,
            second_look: SecondLook::PpocrV6Small,
        }
    }
}

impl OcrParams {
    /// What reads a card, as a fingerprint: the model files' checksums, this build's version
    /// and every parameter that changes what is read (not `threads` or `rec_batch`, which
    /// only change how fast). Readings cached under one fingerprint are never given out
    /// under another.
    pub fn engine_fingerprint(&self) -> String {
        use sha2::Digest;
        let mut params = serde_json::to_value(self).expect("parameters serialize");
        if let Some(map) = params.as_object_mut() {
            map.remove("threads");
            map.remove("rec_batch");
        }
        let mut h = sha2::Sha256::new();
        h.update(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/SHA256SUMS"
        )));
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(params.to_string());
        hex::encode(h.finalize())
    }
}

/// One line of text found on the page.
#[derive(Debug, Clone, Serialize)]
pub struct OcrLine {
    pub text: String,
    pub confidence: f32,
    #[serde(skip)]
    pub char_confidence: Vec<f32>,
    /// Corners in image pixels: top-left, top-right, bottom-right, bottom-left.
    pub quad: [[f32; 2]; 4],
}

#[derive(Debug, Clone, Serialize)]
pub struct OcrPage {
    pub width: u32,
    pub height: u32,
    pub lines: Vec<OcrLine>,
    /// Where the page lies in the photo (line quads are in page pixels).
    pub geometry: PageGeometry,
    pub quality: PageQuality,
    pub det_ms: f64,
    pub rec_ms: f64,
    /// Whether the lines are the second recogniser's (see [`reading`]).
    pub second_look: bool,
    /// Where the time went, stage by stage.
    #[serde(skip)]
    pub timings: Timings,
}

/// Both models loaded on one device. Loading takes milliseconds (weights are embedded).
pub struct OcrEngine {
    det: models::det::Model,
    rec: models::RecModel,
    dict: Vec<String>,
    /// The recogniser that looks again at doubtful cards, with its dictionary.
    second: Option<(models::RecModel, Vec<String>)>,
    device: Device,
    params: OcrParams,
    /// The engine's own threads (`OcrParams::threads`), when it has them.
    threads: Option<rayon::ThreadPool>,
}

impl OcrEngine {
    pub fn new(device: Device, params: OcrParams) -> Self {
        let threads = (params.threads > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(params.threads)
                    .thread_name(|i| format!("ocr-engine-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        Self {
            det: models::det::Model::from_embedded(&device),
            rec: params.recogniser.embedded(&device),
            dict: params.recogniser.dictionary(),
            second: params.second_look_model(&device),
            device,
            params,
            threads,
        }
    }

    /// Runs `work` on this engine's own threads when it has them (see
    /// `OcrParams::threads`), otherwise here: every model call inside runs there.
    pub fn within<R: Send>(&self, work: impl FnOnce(&Self) -> R + Send) -> R {
        match &self.threads {
            Some(pool) => pool.install(|| work(self)),
            None => work(self),
        }
    }

    /// The CPU engine (Burn `flex`).
    pub fn cpu(params: OcrParams) -> Self {
        Self::new(Device::flex(), params)
    }

    /// The engine on `device`: `cpu`, or `cuda:N` in builds with the `cuda` feature.
    pub fn on(device: &str, params: OcrParams) -> Result<Self, OcrError> {
        Ok(Self::new(parse_device(device)?, params))
    }

    /// Waits for queued device work (timings on asynchronous backends).
    pub fn sync(&self) {
        let _ = self.device.sync();
    }

    /// Reads every text line of an image file's bytes (JPEG, PNG, or a scanned PDF), decoded
    /// within the default image limits.
    pub fn read(&self, bytes: &[u8]) -> Result<OcrPage, OcrError> {
        let img = image_ops::decode(bytes, &crate::media::ImageLimits::default())?;
        self.read_image(&img)
    }

    /// Reads a photo: the card found and turned upright ([`Self::prepare`]), then every line.
    pub fn read_image(&self, img: &image::RgbImage) -> Result<OcrPage, OcrError> {
        Ok(self.read_lines(img)?.0)
    }

    /// [`Self::read_image`], with the page's text boxes and the line crops cut for them.
    fn read_lines(&self, img: &image::RgbImage) -> Result<ReadLines, OcrError> {
        let started = Instant::now();
        let prepared = self.prepare(img)?;
        let det_ms = ms_since(started);
        let started = Instant::now();
        let mut timings = prepared.timings;
        let crops = self.page_crops(img, &prepared.boxes, &prepared.geometry);
        timings.crops = ms_since(started);
        let rec = Instant::now();
        let rest = self.recognize_crops(&prepared.read_ahead.unread(&crops))?;
        let lines = lines_from(&prepared.boxes, prepared.read_ahead.merge(rest));
        timings.rec = ms_since(rec);
        let page = OcrPage {
            width: prepared.page.width(),
            height: prepared.page.height(),
            lines,
            geometry: prepared.geometry,
            quality: prepared.quality,
            det_ms,
            rec_ms: ms_since(started),
            second_look: false,
            timings,
        };
        Ok((page, prepared.boxes, crops))
    }

    /// Text boxes on `img`, its shorter side scaled to `min_side` for the detector.
    fn detect(
        &self,
        img: &image::RgbImage,
        min_side: u32,
        timings: &mut Timings,
    ) -> Result<Vec<(Quad, f32)>, OcrError> {
        let p = &self.params;
        let started = Instant::now();
        let input = image_ops::det_input(img, min_side, p.det_max_side);
        let (w, h) = (input.width, input.height);
        let x = Tensor::<4>::from_data(TensorData::new(input.data, [1, 3, h, w]), &self.device);
        let out = self.det.forward(x);
        let dims = out.dims();
        let prob = out
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| OcrError::Shape(format!("{e:?}")))?;
        timings.det += ms_since(started);
        let started = Instant::now();
        if prob.len() != w * h {
            return Err(OcrError::Shape(format!(
                "det output {dims:?} for input {w}×{h}"
            )));
        }
        let params = db::DbParams {
            thresh: p.det_thresh,
            box_thresh: p.det_box_thresh,
            unclip_ratio: p.det_unclip_ratio,
            ..Default::default()
        };
        let mut boxes = db::boxes_from_map(
            &prob,
            w,
            h,
            input.scale,
            (img.width() as f32, img.height() as f32),
            &params,
        );
        db::reading_order(&mut boxes);
        timings.post += ms_since(started);
        Ok(boxes)
    }

    /// Detected text boxes in reading order.
    pub fn detect_boxes(&self, img: &image::RgbImage) -> Result<Vec<(Quad, f32)>, OcrError> {
        self.detect(img, self.params.det_min_side, &mut Timings::default())
    }

    /// Each box cut out of the page as a recogniser input.
    pub fn crops(&self, img: &image::RgbImage, boxes: &[(Quad, f32)]) -> Vec<Crop> {
        let p = &self.params;
        boxes
            .iter()
            .map(|(q, _)| image_ops::rec_crop(img, q, p.rec_height, p.rec_max_width))
            .collect()
    }

    /// Recognises crops (from one page or several) in batches of similar width, each batch
    /// padded only to its own widest crop. Results are in the order of `crops`.
    pub fn recognize_crops(&self, crops: &[Crop]) -> Result<Vec<ctc::Decoded>, OcrError> {
        self.recognize_with(&self.rec, &self.dict, crops)
    }

    fn recognize_with(
        &self,
        model: &models::RecModel,
        dict: &[String],
        crops: &[Crop],
    ) -> Result<Vec<ctc::Decoded>, OcrError> {
        let p = &self.params;
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by_key(|&i| crops[i].1);
        let mut lines: Vec<Option<ctc::Decoded>> = vec![None; crops.len()];
        // Batches of similar width only: a crop padded far beyond its own width costs compute
        // for nothing (and the model sees the padding).
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            match batches.last_mut() {
                Some(b) if b.len() < p.rec_batch.max(1) && crops[i].1 * 4 <= crops[b[0]].1 * 5 => {
                    b.push(i)
                }
                _ => batches.push(vec![i]),
            }
        }
        for batch in &batches {
            // Round the batch width up to a multiple of 8 (the model's time-step stride).
            let width = batch
                .iter()
                .map(|&i| crops[i].1)
                .max()
                .unwrap_or(8)
                .div_ceil(8)
                * 8;
            let h = p.rec_height;
            let mut data = vec![0f32; batch.len() * 3 * h * width];
            for (b, &i) in batch.iter().enumerate() {
                let (crop, cw) = &crops[i];
                for c in 0..3 {
                    for y in 0..h {
                        let src = &crop[c * h * cw + y * cw..c * h * cw + (y + 1) * cw];
                        let dst = b * 3 * h * width + c * h * width + y * width;
                        data[dst..dst + cw].copy_from_slice(src);
                    }
                }
            }
            let x = Tensor::<4>::from_data(
                TensorData::new(data, [batch.len(), 3, h, width]),
                &self.device,
            );
            let out = model.forward(x);
            let [bn, steps, classes] = out.dims();
            if bn != batch.len() || classes != dict.len() {
                return Err(OcrError::Shape(format!(
                    "rec output {:?}, dictionary {}",
                    out.dims(),
                    dict.len()
                )));
            }
            let probs = out
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| OcrError::Shape(format!("{e:?}")))?;
            for (b, &i) in batch.iter().enumerate() {
                // Steps beyond this crop's own width are padding.
                let own = crops[i].1.div_ceil(8).min(steps);
                let slice = &probs[b * steps * classes..(b * steps + own) * classes];
                let (crop, cw) = &crops[i];
                // Luminance of the crop (its BGR planes averaged) for finding word gaps.
                let lum: Vec<f32> = (0..h * cw)
                    .map(|j| (crop[j] + crop[h * cw + j] + crop[2 * h * cw + j]) / 3.0)
                    .collect();
                let ink = ctc::ink(&lum, *cw, h);
                let blank = ink.blank_columns;
                let min_gap = ((ink.height as f32 * p.word_gap_factor) as usize).max(2);
                let d = ctc::greedy_decode(
                    slice,
                    own,
                    classes,
                    dict,
                    &|a, b| ctc::longest_blank_run(&blank, a, b, 8),
                    min_gap,
                );
                lines[i] = Some(d);
            }
        }
        Ok(lines
            .into_iter()
            .map(|d| d.expect("every crop is in one batch"))
            .collect())
    }
}

/// Where one card's reading time went, in milliseconds (stages that did not run are 0).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Decoding the file into pixels.
    pub decode: f64,
    /// Finding the card in the photo and warping it flat.
    pub find: f64,
    /// The detector model (input preparation and the forward pass).
    pub det: f64,
    /// Boxes from the detector's map.
    pub post: f64,
    /// Deciding a half turn (probe lines read both ways round) and measuring the page.
    pub orient: f64,
    /// Cutting line crops out of the photo.
    pub crops: f64,
    /// The recogniser's run that held this card's lines (the whole batch, with other cards').
    pub rec: f64,
    /// Waiting for other cards' lines to fill a recognition batch, or for the device.
    pub wait: f64,
    /// Reading a doubtful card's lines again with the second recogniser.
    pub second: f64,
}

impl Timings {
    /// The stages by name, in the order they run.
    pub fn stages(&self) -> [(&'static str, f64); 9] {
        [
            ("decode", self.decode),
            ("find", self.find),
            ("det", self.det),
            ("post", self.post),
            ("orient", self.orient),
            ("crops", self.crops),
            ("rec", self.rec),
            ("wait", self.wait),
            ("second", self.second),
        ]
    }
}

/// Milliseconds since `started`.
pub fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// A page read, with the text boxes its lines were read in and the crops cut for them.
type ReadLines = (OcrPage, Vec<(Quad, f32)>, Vec<Crop>);

/// A recogniser input: BGR planes of a line, its width (height is the model's).
pub type Crop = (Vec<f32>, usize);

/// Pairs boxes with what was read in them, dropping empty readings.
pub fn lines_from(boxes: &[(Quad, f32)], decoded: Vec<ctc::Decoded>) -> Vec<OcrLine> {
    boxes
        .iter()
        .zip(decoded)
        .filter_map(|(b, d)| OcrLine::read(b, d))
        .collect()
}

impl OcrLine {
    /// What was read in a text box, unless nothing was.
    pub fn read((quad, _): &(Quad, f32), d: ctc::Decoded) -> Option<Self> {
        (!d.text.is_empty()).then_some(Self {
            text: d.text,
            confidence: d.confidence,
            char_confidence: d.char_confidence,
            quad: quad.0,
        })
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::OcrParams;

    #[test]
    fn the_engine_fingerprint_follows_what_changes_a_reading() {
        let base = OcrParams::default();
        let same = base.engine_fingerprint();
        assert_eq!(same, OcrParams::default().engine_fingerprint());
        let other = OcrParams {
            det_min_side: 640,
            ..OcrParams::default()
        };
        assert_ne!(same, other.engine_fingerprint());
        // How fast it reads does not change what it reads.
        let faster = OcrParams {
            threads: 4,
            rec_batch: 32,
            ..OcrParams::default()
        };
        assert_eq!(same, faster.engine_fingerprint());
    }
}
