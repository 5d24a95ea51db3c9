//! The generated PP-OCRv4 models (burn-onnx ModelGen output, built by `build.rs`) and the
//! recognition dictionary read from the rec model's ONNX metadata.

#[allow(clippy::all, unused, non_snake_case, non_camel_case_types)]
pub mod det {
    include!(concat!(
        env!("OUT_DIR"),
        "/model/det/ch_PP-OCRv4_det_infer.rs"
    ));

    /// The built-in weights, as the Burnpack file they were embedded from.
    pub fn embedded_weights() -> &'static [u8] {
        EMBEDDED_STATES
    }
}

#[allow(clippy::all, unused, non_snake_case, non_camel_case_types)]
pub mod rec {
    include!(concat!(
        env!("OUT_DIR"),
        "/model/rec/ch_PP-OCRv4_rec_infer.rs"
    ));

    /// The built-in weights, as the Burnpack file they were embedded from.
    pub fn embedded_weights() -> &'static [u8] {
        EMBEDDED_STATES
    }
}

const DICT: &str = include_str!(concat!(env!("OUT_DIR"), "/rec_dict.txt"));

/// Class index → text. Index 0 is the CTC blank and the last class is a space, around the
/// characters listed in the model's metadata.
pub fn dictionary() -> Vec<String> {
    let mut dict = vec![String::new()];
    dict.extend(DICT.lines().map(str::to_string));
    dict.push(" ".into());
    dict
}
