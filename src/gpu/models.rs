//! The generated models (burn-onnx ModelGen output, built by `build.rs`): PP-OCRv4's
//! detector, and two recognisers to choose from (`ocr.params.recogniser`), each with the
//! dictionary read from its ONNX metadata.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Generated code with its embedded weights, and those weights as a file's bytes.
macro_rules! generated {
    ($name:ident, $file:literal) => {
        #[allow(clippy::all, unused, non_snake_case, non_camel_case_types)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), $file));

            /// The built-in weights, as the Burnpack file they were embedded from.
            pub fn embedded_weights() -> &'static [u8] {
                EMBEDDED_STATES
            }
        }
    };
}

generated!(det, "/model/det/ch_PP-OCRv4_det_infer.rs");
generated!(rec, "/model/rec/ch_PP-OCRv4_rec_infer.rs");
generated!(rec6, "/model/rec6/PP-OCRv6_rec_small.rs");

/// Which model recognises the text lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recogniser {
    /// PP-OCRv4 mobile (SVTR-LCNet, 6,625 classes): the fast one.
    #[default]
    PpocrV4,
    /// PP-OCRv6 small (18,710 classes): about twice the CPU time per line, and it reads
    /// small, blurred print (a dotted zero, a shaken NIK) far better.
    PpocrV6Small,
}

/// A recogniser's model (both are large and one is chosen per engine: no boxing).
#[allow(clippy::large_enum_variant)]
pub(super) enum RecModel {
    V4(rec::Model),
    V6(rec6::Model),
}

impl RecModel {
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        match self {
            Self::V4(m) => m.forward(x),
            Self::V6(m) => m.forward(x),
        }
    }
}

impl Recogniser {
    /// Its model with the built-in weights on `device`.
    pub(super) fn embedded(self, device: &Device) -> RecModel {
        match self {
            Self::PpocrV4 => RecModel::V4(rec::Model::from_embedded(device)),
            Self::PpocrV6Small => RecModel::V6(rec6::Model::from_embedded(device)),
        }
    }

    /// Class index → text. Index 0 is the CTC blank and the last class is a space, around
    /// the characters listed in the model's metadata.
    pub fn dictionary(self) -> Vec<String> {
        let listed = match self {
            Self::PpocrV4 => include_str!(concat!(env!("OUT_DIR"), "/rec_dict.txt")),
            Self::PpocrV6Small => include_str!(concat!(env!("OUT_DIR"), "/rec6_dict.txt")),
        };
        let mut dict = vec![String::new()];
        dict.extend(listed.lines().map(str::to_string));
        dict.push(" ".into());
        dict
    }
}

/// Which recogniser, if any, reads a doubtful card's lines a second time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondLook {
    /// Every card is read once.
    Off,
    PpocrV4,
    #[default]
    PpocrV6Small,
}

impl SecondLook {
    /// The recogniser it names, unless that is `first` (a second look would read the same).
    pub fn recogniser(self, first: Recogniser) -> Option<Recogniser> {
        match self {
            Self::Off => None,
            Self::PpocrV4 => Some(Recogniser::PpocrV4),
            Self::PpocrV6Small => Some(Recogniser::PpocrV6Small),
        }
        .filter(|r| *r != first)
    }
}

impl super::OcrParams {
    /// The second look's model (built-in weights) and dictionary on `device`, if any.
    pub(super) fn second_look_model(&self, device: &Device) -> Option<(RecModel, Vec<String>)> {
        self.second_look
            .recogniser(self.recogniser)
            .map(|r| (r.embedded(device), r.dictionary()))
    }
}
