//! The reading cache and the identity index rows a document carries: what [`super::apply`]
//! writes beside a change (an extraction adds its cache entry; an erasure removes every row
//! that points at the document, its challenger comparison's too) and what intake looks up.

use crate::{
    kyc::DocumentId,
    store::{Db, StoreError},
};

/// The document whose reading answers `cache_key`, if any is kept.
pub async fn find(db: &Db, cache_key: &str) -> Result<Option<DocumentId>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT document_id FROM reading_cache WHERE cache_key = $1")
            .bind(cache_key)
            .fetch_optional(db.pool())
            .await?;
    row.map(|(id,)| {
        id.parse()
            .map_err(|_| StoreError::Corrupt("reading_cache.document_id".into()))
    })
    .transpose()
}

/// Keeps `id`'s reading for `cache_key` (the newest reading of a key wins).
pub(super) async fn remember(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cache_key: &str,
    id: &DocumentId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reading_cache (cache_key, document_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (cache_key) DO UPDATE SET document_id = excluded.document_id, \
         created_at = excluded.created_at",
    )
    .bind(cache_key)
    .bind(id.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes every cache entry, identity index row and comparison row that points at document
/// `id`.
pub(super) async fn forget(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &DocumentId,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM reading_cache WHERE document_id = $1",
        "DELETE FROM identity_index WHERE document_id = $1",
        "DELETE FROM ocr_comparisons WHERE document_id = $1",
        "DELETE FROM ocr_comparison_fields WHERE document_id = $1",
        "DELETE FROM ocr_ground_truth WHERE document_id = $1",
    ] {
        sqlx::query(statement)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
