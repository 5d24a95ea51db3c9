//! Other weights for the built-in models, and engines that read in the background.
//!
//! A challenger engine (see `crate::actors::challenger`) may run other weights of the
//! built-in detector and recogniser architectures: Burnpack files (`.bpk`), each checked
//! against the SHA-256 its settings name, and loaded once at start so that a wrong file is a
//! start-up error, not a failed read. `filot ocr export-weights DIR` writes the built-in
//! weights out, the starting point of a fine-tune. A background engine runs its model calls
//! on threads of its own at the lowest CPU priority: champion work that arrives while it
//! reads gets the processors first.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::Arc,
};

use burn::tensor::{Bytes, Device};
use sha2::{Digest, Sha256};

use super::{
    OcrEngine, OcrError, OcrParams,
    models::{self, RecModel, Recogniser},
    parse_device,
};

/// The detector's and the recogniser's weights; `None` keeps the built-in ones.
#[derive(Clone, Default)]
pub struct Weights {
    det: Option<Arc<Vec<u8>>>,
    rec: Option<Arc<Vec<u8>>>,
    /// `det=<sha256|built-in>;rec=<…>`: what the engine reads with.
    fingerprint: String,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.fingerprint)
    }
}

/// One model's weights file as configured: an empty path keeps the built-in weights.
#[derive(Debug, Clone, Copy)]
pub struct WeightsFile<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: its SHA-256 is {actual}, not the {expected} its settings name")]
    Checksum {
        path: String,
        actual: String,
        expected: String,
    },
    #[error("{0}: other weights need their SHA-256 in the settings beside the path")]
    NoChecksum(String),
    #[error("{path}: not weights of the built-in {model} model")]
    Incompatible { path: String, model: &'static str },
}

/// Which model a weights file is for.
#[derive(Debug, Clone, Copy)]
enum Model {
    Det,
    Rec,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Self::Det => "detector",
            Self::Rec => "recogniser",
        }
    }
}

/// One generated model with `bytes` as its weights (the built-in ones when `None`); a file
/// that does not fit the model (the generated loader panics) is `Err(which)`.
macro_rules! load {
    ($module:ident, $bytes:expr, $device:expr, $which:expr) => {
        match $bytes {
            None => Ok(models::$module::Model::from_embedded($device)),
            Some(bytes) => {
                let bytes = Bytes::from_bytes_vec(bytes.to_vec());
                catch_unwind(AssertUnwindSafe(|| {
                    models::$module::Model::from_bytes(bytes, $device)
                }))
                .map_err(|_| $which)
            }
        }
    };
}

impl Weights {
    /// Reads and checks the configured files, and loads each once (on the CPU) to prove it
    /// fits its model (the recogniser's: `recogniser`).
    pub fn load(
        det: WeightsFile,
        rec: WeightsFile,
        recogniser: Recogniser,
    ) -> Result<Self, WeightsError> {
        let det_bytes = read_checked(det)?;
        let rec_bytes = read_checked(rec)?;
        let weights = Self {
            fingerprint: describe(det, rec),
            det: det_bytes,
            rec: rec_bytes,
        };
        let cpu = Device::flex();
        weights
            .det_model(&cpu)
            .map_err(|_| WeightsError::Incompatible {
                path: det.path.into(),
                model: Model::Det.name(),
            })?;
        weights
            .rec_model(&cpu, recogniser)
            .map_err(|_| WeightsError::Incompatible {
                path: rec.path.into(),
                model: Model::Rec.name(),
            })?;
        Ok(weights)
    }

    /// What the engine reads with, for its fingerprint (checksums, never paths).
    pub fn fingerprint(&self) -> &str {
        if self.fingerprint.is_empty() {
            "det=built-in;rec=built-in"
        } else {
            &self.fingerprint
        }
    }

    fn det_model(&self, device: &Device) -> Result<models::det::Model, Model> {
        load!(det, &self.det, device, Model::Det)
    }

    fn rec_model(&self, device: &Device, which: Recogniser) -> Result<RecModel, Model> {
        match which {
            Recogniser::PpocrV4 => load!(rec, &self.rec, device, Model::Rec).map(RecModel::V4),
            Recogniser::PpocrV6Small => {
                load!(rec6, &self.rec, device, Model::Rec).map(RecModel::V6)
            }
        }
    }
}

/// What `det` and `rec` name, for an engine's fingerprint: checksums, never paths.
pub fn describe(det: WeightsFile, rec: WeightsFile) -> String {
    format!("det={};rec={}", label(det), label(rec))
}

fn label(file: WeightsFile) -> String {
    if file.path.trim().is_empty() {
        "built-in".into()
    } else {
        file.sha256.trim().to_lowercase()
    }
}

fn read_checked(file: WeightsFile) -> Result<Option<Arc<Vec<u8>>>, WeightsError> {
    let path = file.path.trim();
    if path.is_empty() {
        return Ok(None);
    }
    let expected = file.sha256.trim().to_lowercase();
    if expected.is_empty() {
        return Err(WeightsError::NoChecksum(path.into()));
    }
    let bytes = std::fs::read(path).map_err(|error| WeightsError::Read {
        path: path.into(),
        error,
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(WeightsError::Checksum {
            path: path.into(),
            actual,
            expected,
        });
    }
    Ok(Some(Arc::new(bytes)))
}

/// Writes the built-in weights into `dir` (`det.bpk`, `rec.bpk`, `rec_v6_small.bpk`); returns
/// each file with its SHA-256.
pub fn export_builtin(dir: &Path) -> std::io::Result<Vec<(std::path::PathBuf, String)>> {
    std::fs::create_dir_all(dir)?;
    [
        ("det.bpk", models::det::embedded_weights()),
        ("rec.bpk", models::rec::embedded_weights()),
        ("rec_v6_small.bpk", models::rec6::embedded_weights()),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        Ok((path, hex::encode(Sha256::digest(bytes))))
    })
    .collect()
}

impl OcrEngine {
    /// An engine for background reading on `device`: `weights` instead of the built-in
    /// ones, and every model call on a pool of its own (`params.threads` threads, or one per
    /// core when 0) at the lowest CPU priority.
    pub fn background(
        device: &str,
        params: OcrParams,
        weights: &Weights,
    ) -> Result<Self, OcrError> {
        let device = parse_device(device)?;
        let threads = match params.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ocr-background-{i}"))
            .start_handler(|_| lowest_priority())
            .build()
            .map_err(|e| OcrError::Device(format!("background threads: {e}")))?;
        let incompatible = |m: Model| OcrError::Device(format!("{} weights do not load", m.name()));
        Ok(Self {
            det: weights.det_model(&device).map_err(incompatible)?,
            rec: weights
                .rec_model(&device, params.recogniser)
                .map_err(incompatible)?,
            dict: params.recogniser.dictionary(),
            second: params.second_look_model(&device),
            device,
            params,
            threads: Some(pool),
        })
    }
}

/// Lowers the calling thread's CPU priority as far as it goes (Linux: nice 19, for this
/// thread only); elsewhere nothing changes.
pub fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; on Linux a thread id names one thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_load_only_as_their_checksum_and_their_model_say() {
        const V4: Recogniser = Recogniser::PpocrV4;
        let dir = tempfile::tempdir().unwrap();
        let files = export_builtin(dir.path()).unwrap();
        let [(det, det_sha), (rec, rec_sha)] = [files[0].clone(), files[1].clone()];
        let (det, rec) = (det.display().to_string(), rec.display().to_string());
        let (det, det_sha, rec, rec_sha) = (
            det.as_str(),
            det_sha.as_str(),
            rec.as_str(),
            rec_sha.as_str(),
        );
        fn file<'a>(path: &'a str, sha256: &'a str) -> WeightsFile<'a> {
            WeightsFile { path, sha256 }
        }

        let loaded = Weights::load(file(det, det_sha), file(rec, rec_sha), V4).unwrap();
        assert_eq!(loaded.fingerprint(), format!("det={det_sha};rec={rec_sha}"));
        assert!(!loaded.fingerprint().contains(dir.path().to_str().unwrap()));
        let builtin = Weights::load(file("", ""), file("", ""), V4).unwrap();
        assert_eq!(builtin.fingerprint(), "det=built-in;rec=built-in");

        let wrong_sum = Weights::load(file(det, rec_sha), file("", ""), V4);
        assert!(matches!(wrong_sum, Err(WeightsError::Checksum { .. })));
        let no_sum = Weights::load(file(det, ""), file("", ""), V4);
        assert!(matches!(no_sum, Err(WeightsError::NoChecksum(_))));
        // The detector's weights named as the recogniser's: the right file for the wrong model.
        let swapped = Weights::load(file("", ""), file(det, det_sha), V4);
        assert!(
            matches!(
                swapped,
                Err(WeightsError::Incompatible {
                    model: "recogniser",
                    ..
                })
            ),
            "{swapped:?}"
        );
        // PP-OCRv4's recogniser weights for the PP-OCRv6 recogniser.
        let other = Weights::load(file("", ""), file(rec, rec_sha), Recogniser::PpocrV6Small);
        assert!(
            matches!(other, Err(WeightsError::Incompatible { .. })),
            "{other:?}"
        );
    }
}
