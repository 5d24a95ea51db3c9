//! Champion/challenger comparisons: which documents were sampled for the challenger model,
//! what it found when it read them (per field: agreement, and each engine's value as a blind
//! index keyed by the document, never a value), the ground truth reviewers' corrections
//! gave, and the summary an admin reads. Rows are written beside the extraction (sampling),
//! by the challenger (its reading) and beside a verification's corrections (truth), and
//! removed with the document (erasure: `super::documents::cache::forget`).

use std::collections::BTreeMap;

use sqlx::Row;

use super::{
    Db, StoreError,
    blind::{BlindIndex, Domain},
};
use crate::kyc::{DocumentId, DocumentType};

/// A value as both engines and a reviewer are compared on: trimmed, inner whitespace
/// collapsed, upper case (a reviewer's "Budi  santoso" is the card's "BUDI SANTOSO").
pub fn normalize(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The blind index of `field`'s `value` on document `id`: equal only for the same document,
/// field and (normalized) value, so comparisons never link two documents.
pub fn field_index(blind: &BlindIndex, id: &str, field: &str, value: &str) -> String {
    let value = normalize(value);
    blind.of(
        Domain::Comparison,
        &[id.as_bytes(), field.as_bytes(), value.as_bytes()],
    )
}

/// One field of one comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRow {
    pub field: String,
    pub agree: bool,
    /// The champion's value's index (`None`: it read nothing there).
    pub champion_index: Option<String>,
    pub challenger_index: Option<String>,
}

/// Compares two readings field by field (every field either engine read).
pub fn compare_fields(
    blind: &BlindIndex,
    id: &str,
    champion: &BTreeMap<String, String>,
    challenger: &BTreeMap<String, String>,
) -> Vec<FieldRow> {
    let mut names: Vec<&String> = champion.keys().chain(challenger.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|field| {
            let index = |reading: &BTreeMap<String, String>| {
                reading.get(field).map(|v| field_index(blind, id, field, v))
            };
            let (champion_index, challenger_index) = (index(champion), index(challenger));
            FieldRow {
                field: field.clone(),
                agree: champion_index == challenger_index,
                champion_index,
                challenger_index,
            }
        })
        .collect()
}

/// Samples document `id` for the challenger: its champion reading took `champion_ms`.
pub(super) async fn enqueue(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &DocumentId,
    doc_type: DocumentType,
    champion_ms: u64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ocr_comparisons (document_id, state, doc_type, champion_ms, created_at) \
         VALUES ($1, 'pending', $2, $3, $4) ON CONFLICT (document_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(doc_type.as_str())
    .bind(champion_ms as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The oldest documents waiting for the challenger.
pub async fn pending(db: &Db, limit: u32) -> Result<Vec<DocumentId>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT document_id FROM ocr_comparisons WHERE state = 'pending' \
         ORDER BY created_at, document_id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|(id,)| {
            id.parse()
                .map_err(|_| StoreError::Corrupt("ocr_comparisons.document_id".into()))
        })
        .collect()
}

/// What the challenger made of one document.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The challenger's fingerprint.
    pub engine: String,
    pub challenger_ms: u64,
    /// `read`, or why it could not (`ocr_unreadable`, `ocr_error`, …).
    pub outcome: String,
    pub fields: Vec<FieldRow>,
}

/// Records the challenger's result for `id`. `false` when the document is no longer
/// waiting (erased meanwhile, or compared by another node): nothing is written.
pub async fn record(
    db: &Db,
    id: &DocumentId,
    compared: &Compared,
    now: i64,
) -> Result<bool, StoreError> {
    let id = id.to_string();
    let mut tx = db.pool().begin().await?;
    let updated = sqlx::query(
        "UPDATE ocr_comparisons SET state = 'compared', challenger_ms = $1, \
         challenger_engine = $2, outcome = $3, compared_at = $4 \
         WHERE document_id = $5 AND state = 'pending'",
    )
    .bind(compared.challenger_ms as i64)
    .bind(&compared.engine)
    .bind(&compared.outcome)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    for f in &compared.fields {
        sqlx::query(
            "INSERT INTO ocr_comparison_fields \
             (document_id, field, agree, champion_index, challenger_index) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&f.field)
        .bind(i64::from(f.agree))
        .bind(f.champion_index.as_deref())
        .bind(f.challenger_index.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Takes `id` out of the challenger's queue without a comparison (its champion reading cannot
/// be opened).
pub async fn skip(db: &Db, id: &DocumentId, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ocr_comparisons SET state = 'skipped', compared_at = $1 \
         WHERE document_id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A value a reviewer's correction set on a sampled document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRow {
    pub document_id: String,
    pub field: String,
    /// [`field_index`] of the corrected value.
    pub truth_index: String,
}

/// Keeps `rows` (of `verification_id`'s corrections) for the documents that were sampled;
/// a later correction of the same field replaces an earlier one.
pub(super) async fn remember_truth(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    verification_id: &str,
    rows: &[TruthRow],
    now: i64,
) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query(
            "INSERT INTO ocr_ground_truth \
             (document_id, field, truth_index, verification_id, recorded_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE EXISTS (SELECT 1 FROM ocr_comparisons WHERE document_id = $1) \
             ON CONFLICT (document_id, field) DO UPDATE SET truth_index = excluded.truth_index, \
             verification_id = excluded.verification_id, recorded_at = excluded.recorded_at",
        )
        .bind(&row.document_id)
        .bind(&row.field)
        .bind(&row.truth_index)
        .bind(verification_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One field's counts over the compared documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldCounts {
    pub agree: i64,
    pub disagree: i64,
    /// Fields a reviewer corrected (human ground truth)…
    pub reviewed: i64,
    /// …and of those, how many each engine had read as the reviewer did.
    pub champion_right: i64,
    pub challenger_right: i64,
}

/// Every comparison made by challenger `engine`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub documents_compared: i64,
    /// Sampled documents the challenger has not read yet (any engine).
    pub documents_pending: i64,
    /// Mean latency per document, in milliseconds (`None`: nothing compared yet).
    pub champion_ms: Option<i64>,
    pub challenger_ms: Option<i64>,
    pub fields: BTreeMap<String, FieldCounts>,
}

pub async fn summary(db: &Db, engine: &str) -> Result<Summary, StoreError> {
    let docs = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(SUM(champion_ms) AS BIGINT) AS champion, \
         CAST(SUM(challenger_ms) AS BIGINT) AS challenger \
         FROM ocr_comparisons WHERE state = 'compared' AND challenger_engine = $1",
    )
    .bind(engine)
    .fetch_one(db.pool())
    .await?;
    let n: i64 = docs.try_get("n")?;
    let mean = |sum: Option<i64>| sum.filter(|_| n > 0).map(|s| s / n);
    let pending = sqlx::query("SELECT COUNT(*) AS n FROM ocr_comparisons WHERE state = 'pending'")
        .fetch_one(db.pool())
        .await?;
    let rows = sqlx::query(
        "SELECT f.field AS field, \
         COUNT(CASE WHEN f.agree = 1 THEN 1 END) AS agree, \
         COUNT(CASE WHEN f.agree = 0 THEN 1 END) AS disagree, \
         COUNT(t.truth_index) AS reviewed, \
         COUNT(CASE WHEN t.truth_index = f.champion_index THEN 1 END) AS champion_right, \
         COUNT(CASE WHEN t.truth_index = f.challenger_index THEN 1 END) AS challenger_right \
         FROM ocr_comparison_fields f \
         JOIN ocr_comparisons c ON c.document_id = f.document_id \
         LEFT JOIN ocr_ground_truth t ON t.document_id = f.document_id AND t.field = f.field \
         WHERE c.state = 'compared' AND c.challenger_engine = $1 \
         GROUP BY f.field ORDER BY f.field",
    )
    .bind(engine)
    .fetch_all(db.pool())
    .await?;
    let mut fields = BTreeMap::new();
    for row in rows {
        fields.insert(
            row.try_get::<String, _>("field")?,
            FieldCounts {
                agree: row.try_get("agree")?,
                disagree: row.try_get("disagree")?,
                reviewed: row.try_get("reviewed")?,
                champion_right: row.try_get("champion_right")?,
                challenger_right: row.try_get("challenger_right")?,
            },
        );
    }
    Ok(Summary {
        documents_compared: n,
        documents_pending: pending.try_get("n")?,
        champion_ms: mean(docs.try_get("champion")?),
        challenger_ms: mean(docs.try_get("challenger")?),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_compared_blind_and_per_document() {
        let blind = BlindIndex::from_blob_key(&[3u8; 32]);
        let champion = BTreeMap::from([
            ("nik".to_string(), "3171234567890001".to_string()),
            ("name".to_string(), "BUDI SANTOSO".to_string()),
        ]);
        let challenger = BTreeMap::from([
            ("nik".to_string(), "3171234567890007".to_string()),
            ("name".to_string(), " budi  santoso".to_string()),
            ("gender".to_string(), "LAKI-LAKI".to_string()),
        ]);
        let rows = compare_fields(&blind, "doc-1", &champion, &challenger);
        let by = |f: &str| rows.iter().find(|r| r.field == f).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(
            by("name").agree,
            "the same name however it is spaced or cased"
        );
        assert!(!by("nik").agree);
        assert!(!by("gender").agree && by("gender").champion_index.is_none());
        // Never a value; and the same value on another document has another index.
        let nik = by("nik").champion_index.clone().unwrap();
        assert!(!nik.contains("3171234567890001"));
        assert_ne!(nik, field_index(&blind, "doc-2", "nik", "3171234567890001"));
        assert_eq!(nik, field_index(&blind, "doc-1", "nik", "3171234567890001"));
    }
}
