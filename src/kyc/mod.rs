//! # KYC domain
//!
//! Pure domain types and rules: identifiers and document kinds parsed at the edge, so that
//! anything inside the system is valid by construction. Nothing here does I/O.

pub mod card;
mod ids;
pub mod nik;
pub mod npwp;
pub mod npwp_card;
pub mod retake;
pub mod text;
pub mod workflow;

pub use ids::{
    BatchId, DocumentId, DocumentType, OutboxId, ParseIdError, VerificationId, WebhookId,
};

use chrono::NaiveDate;

/// Reads a card from OCR boxes: its type (recognised from the text unless given) and fields.
pub fn read_card(
    boxes: &[text::TextBox],
    doc_type: Option<DocumentType>,
    today: NaiveDate,
) -> (DocumentType, card::CardReading) {
    let doc_type = doc_type.unwrap_or_else(|| card::detect_type(boxes));
    let reading = match doc_type {
        DocumentType::Ktp => card::read_ktp(boxes, today),
        DocumentType::Npwp => npwp_card::read_npwp(boxes),
    };
    (doc_type, reading)
}
