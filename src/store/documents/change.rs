//! The changes a document goes through, each one event, and what each does to the row.

use super::{Claim, DocumentRecord, DocumentStatus, SealedReading};

/// A change to an existing document. Each becomes one event.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentChange {
    /// Someone downloaded the original file (audited: it is a copy of an identity card).
    FileRead,
    /// Personal data and the file are wiped; the row stays as a tombstone.
    Erased,
    /// An OCR worker took the queued document (a new attempt).
    Processing(Claim),
    /// OCR finished: the (sealed) fields and the issues found. `token`: the claim's.
    /// `cache_key`: the reading cache's key for this file, owner and engine, to keep this
    /// reading under (`None`: not cached). `challenge`: sampled for the challenger model
    /// (see `crate::store::comparisons`).
    Extracted {
        fields: SealedReading,
        issues: Vec<String>,
        token: i64,
        cache_key: Option<String>,
        challenge: bool,
    },
    /// OCR could not read the document (or ran out of attempts); `reason` is a stable code.
    Failed { reason: String, token: i64 },
    /// A run was abandoned (past its deadline, or its node died): back to `queued`.
    Requeued { reason: String, token: i64 },
}

impl DocumentChange {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FileRead => "file_read",
            Self::Erased => "erased",
            Self::Processing(_) => "processing",
            Self::Extracted { .. } => "extracted",
            Self::Failed { .. } => "failed",
            Self::Requeued { .. } => "requeued",
        }
    }

    /// The fencing token this change carries (OCR changes only): the row must not hold a
    /// newer one.
    pub fn token(&self) -> Option<i64> {
        match self {
            Self::Processing(claim) => Some(claim.token),
            Self::Extracted { token, .. }
            | Self::Failed { token, .. }
            | Self::Requeued { token, .. } => Some(*token),
            Self::FileRead | Self::Erased => None,
        }
    }

    /// What the audit trail keeps about this change beyond its kind (never personal data).
    pub(super) fn detail(&self, after: &DocumentRecord) -> Option<serde_json::Value> {
        match self {
            Self::Processing(claim) => Some(serde_json::json!({
                "attempt": after.ocr_attempts, "node": claim.node, "token": claim.token,
            })),
            Self::Requeued { reason, token } | Self::Failed { reason, token } => {
                Some(serde_json::json!({ "reason": reason, "token": token }))
            }
            Self::Extracted { token, .. } => {
                Some(serde_json::json!({ "token": token, "source": "model" }))
            }
            Self::FileRead | Self::Erased => None,
        }
    }

    /// The record after this change.
    pub fn apply(&self, before: &DocumentRecord, now: i64) -> DocumentRecord {
        let mut after = before.clone();
        after.version += 1;
        after.updated_at = now;
        match self {
            Self::FileRead => {}
            Self::Processing(claim) => {
                after.status = DocumentStatus::Processing;
                after.ocr_attempts += 1;
                after.ocr_deadline = Some(claim.deadline);
                after.ocr_node = Some(claim.node.clone());
                after.fence = claim.token;
            }
            Self::Extracted { fields, issues, .. } => {
                after.status = DocumentStatus::Extracted;
                after.fields = Some(fields.clone());
                after.issues = issues.clone();
                after.failure_reason = None;
                after.ocr_deadline = None;
            }
            Self::Failed { reason, .. } => {
                after.status = DocumentStatus::Failed;
                after.failure_reason = Some(reason.clone());
                after.ocr_deadline = None;
            }
            Self::Requeued { .. } => {
                after.status = DocumentStatus::Queued;
                after.ocr_deadline = None;
                after.ocr_node = None;
            }
            Self::Erased => {
                after.status = DocumentStatus::Erased;
                after.content_type = None;
                after.size_bytes = None;
                after.file_index = None;
                after.blob_key = None;
                after.fields = None;
                after.issues = Vec::new();
                after.failure_reason = None;
                after.erased_at = Some(now);
            }
        }
        after
    }
}
