//! Build script: verifies the shipped OCR model files against models/SHA256SUMS, converts the
//! unmodified ONNX files (PP-OCRv4 detection and recognition, PP-OCRv6 small recognition) into
//! Burn code (burn-onnx ModelGen), and extracts each recogniser's dictionary from its ONNX
//! metadata (key `character`). The generated forward passes then get their scalar
//! element-wise chains fused (build/fuse.rs).

use std::{fs, path::PathBuf};

use sha2::{Digest, Sha256};

#[path = "build/fuse.rs"]
mod fuse;

const MODELS: [(&str, &str); 3] = [
    ("ch_PP-OCRv4_det_infer.onnx", "det"),
    ("ch_PP-OCRv4_rec_infer.onnx", "rec"),
    ("PP-OCRv6_rec_small.onnx", "rec6"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let models = manifest.join("models");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=models/SHA256SUMS");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/fuse.rs");

    let sums = fs::read_to_string(models.join("SHA256SUMS")).expect("models/SHA256SUMS");
    for (file, name) in MODELS {
        println!("cargo:rerun-if-changed=models/{file}");
        let path = models.join(file);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actual = hex::encode(Sha256::digest(&bytes));
        let expected = sums
            .lines()
            .find_map(|l| l.strip_suffix(file).map(|h| h.trim().to_string()))
            .unwrap_or_else(|| panic!("{file} is not listed in models/SHA256SUMS"));
        assert_eq!(
            actual, expected,
            "{file}: checksum mismatch (corrupt or replaced model)"
        );

        burn_onnx::ModelGen::new()
            .input(path.to_str().unwrap())
            .out_dir(&format!("model/{name}/"))
            .load_strategy(burn_onnx::LoadStrategy::Embedded)
            .run_from_script();

        // Fuse the scalar element-wise chains of the generated forward passes (build/fuse.rs).
        let generated = out.join(format!("model/{name}/{}", file.replace(".onnx", ".rs")));
        let source = fs::read_to_string(&generated)
            .unwrap_or_else(|e| panic!("{}: {e}", generated.display()));
        fs::write(&generated, fuse::fuse_source(&source)).unwrap();

        if name.starts_with("rec") {
            let dict = onnx_metadata(&bytes, "character")
                .expect("rec model has a `character` metadata entry");
            fs::write(out.join(format!("{name}_dict.txt")), dict).unwrap();
        }
    }
}

/// Reads one `metadata_props` value (ModelProto field 14: key = 1, value = 2) from an ONNX
/// file, walking the protobuf wire format directly.
fn onnx_metadata(model: &[u8], key: &str) -> Option<String> {
    let mut pos = 0;
    while pos < model.len() {
        let (tag, next) = varint(model, pos)?;
        pos = next;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => pos = varint(model, pos)?.1,
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let (len, next) = varint(model, pos)?;
                let (start, end) = (next, next + len as usize);
                if field == 14 {
                    let entry = &model[start..end];
                    if let (Some(k), Some(v)) = (string_field(entry, 1), string_field(entry, 2))
                        && k == key
                    {
                        return Some(v);
                    }
                }
                pos = end;
            }
            _ => return None,
        }
    }
    None
}

fn string_field(msg: &[u8], want: u64) -> Option<String> {
    let mut pos = 0;
    while pos < msg.len() {
        let (tag, next) = varint(msg, pos)?;
        pos = next;
        if tag & 7 != 2 {
            return None;
        }
        let (len, next) = varint(msg, pos)?;
        let (start, end) = (next, next + len as usize);
        if tag >> 3 == want {
            return String::from_utf8(msg.get(start..end)?.to_vec()).ok();
        }
        pos = end;
    }
    None
}

fn varint(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(pos)?;
        pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}
