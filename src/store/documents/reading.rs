//! What OCR read on a card, as it is kept: the fields and their confidences sealed with the
//! blob key (AES-256-GCM, the document id as associated data), beside how long OCR took. One
//! type, written in one place (the OCR worker, through [`SealedReading::seal`]) and read in
//! one place ([`SealedReading::open`]): a renamed field fails to compile, not to read.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use crate::{
    kyc::DocumentId,
    store::blobs::{BlobError, BlobStore},
};

/// The fields OCR read and its confidence in each (personal data: sealed at rest).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub fields: BTreeMap<String, String>,
    pub confidence: BTreeMap<String, f32>,
    /// Every line of text found, where it lies in the photo (readings from before lines
    /// were kept have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ReadLine>,
}

/// One line of text as read, sealed with the rest of the reading (it is personal data).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadLine {
    pub text: String,
    pub confidence: f32,
    /// Corners in the uploaded photo's pixels: top-left, top-right, bottom-right,
    /// bottom-left of the text as read.
    pub quad: [[f32; 2]; 4],
}

/// Never prints a value: only which fields were read.
impl fmt::Debug for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reading")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The `fields_json` column of an extracted document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedReading {
    /// The [`Reading`] as sealed JSON.
    pub sealed: String,
    /// How long OCR took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_ms: Option<u64>,
    /// Where the card lay in the photo (geometry only, no personal data: kept in the clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Who read it: the model, or the reading cache (the same file read before).
    #[serde(default)]
    pub source: OcrSource,
}

/// Where a document's reading came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcrSource {
    /// The OCR model read this file.
    #[default]
    Model,
    /// The owner uploaded the same file before, read by the same engine: that reading.
    Cache,
}

impl OcrSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Cache => "cache",
        }
    }
}

/// How the card lay in the photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// How far the card was turned, clockwise in degrees: 0, 90, 180 or 270.
    pub orientation: u16,
    /// The card's corners in the photo's pixels (top-left, top-right, bottom-right,
    /// bottom-left of the upright card), when a card was found in the photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_quad: Option<[[f32; 2]; 4]>,
}

impl SealedReading {
    pub fn seal(
        blobs: &BlobStore,
        id: &DocumentId,
        reading: &Reading,
        ocr_ms: Option<u64>,
        placement: Option<Placement>,
    ) -> Result<Self, BlobError> {
        let plain = serde_json::to_string(reading).expect("a reading serializes");
        Ok(Self {
            sealed: blobs.seal_text(&id.to_string(), &plain)?,
            ocr_ms,
            placement,
            source: OcrSource::Model,
        })
    }

    /// `reading` of another document sealed anew for document `id`, as from the cache.
    pub fn reused(
        blobs: &BlobStore,
        id: &DocumentId,
        reading: &Reading,
        placement: Option<Placement>,
    ) -> Result<Self, BlobError> {
        Ok(Self {
            source: OcrSource::Cache,
            ..Self::seal(blobs, id, reading, None, placement)?
        })
    }

    /// The reading, or `None` when it cannot be opened (wrong key, tampered row).
    pub fn open(&self, blobs: &BlobStore, id: &DocumentId) -> Option<Reading> {
        let plain = blobs.open_text(&id.to_string(), &self.sealed).ok()?;
        serde_json::from_str(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_round_trips_sealed_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs"), &[7u8; 32]).unwrap();
        let id = DocumentId::new();
        let reading = Reading {
            fields: [("nik".to_string(), "3201234567890001".to_string())].into(),
            confidence: [("nik".to_string(), 0.97)].into(),
            ..Default::default()
        };
        let sealed = SealedReading::seal(&blobs, &id, &reading, Some(12), None).unwrap();
        assert!(!sealed.sealed.contains("3201234567890001"));
        assert_eq!(sealed.open(&blobs, &id), Some(reading.clone()));
        assert_eq!(
            sealed.open(&blobs, &DocumentId::new()),
            None,
            "bound to its id"
        );
        assert!(!format!("{reading:?}").contains("3201"));
        // The stored column keeps the shape earlier rows were written in.
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(json["ocr_ms"], 12);
        assert!(json["sealed"].is_string());
    }
}
