//! The identity index: the blind index of every NIK and NPWP a verification's documents
//! yielded, with the verification, document and owner it came from. It finds the same number
//! used by another account without holding a number: rows carry HMACs only
//! ([`super::blind`]). Rows are written with the verification's check and removed with the
//! document they came from (erasure).

use super::{Db, StoreError};

/// What an identity row indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Nik,
    Npwp,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nik => "nik",
            Self::Npwp => "npwp",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "nik" => Ok(Self::Nik),
            "npwp" => Ok(Self::Npwp),
            _ => Err(StoreError::Corrupt(format!("identity kind `{s}`"))),
        }
    }

    /// The reason a verification gets when another account's verification has its number.
    pub fn reuse_reason(self) -> &'static str {
        match self {
            Self::Nik => "nik_used_by_other_account",
            Self::Npwp => "npwp_used_by_other_account",
        }
    }
}

/// One number of one verification, as its blind index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub kind: IdentityKind,
    pub value_index: String,
    pub document_id: String,
}

/// Another account's verification holding the same number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: IdentityKind,
    pub verification_id: String,
}

/// The verifications of owners other than `owner` (not cancelled; erased documents have no
/// rows) that held one of `rows`' numbers first: before `owner` ever used it. The account that
/// used a number first re-applying with it is not flagged; every later account is. Oldest
/// first.
pub async fn collisions(
    db: &Db,
    owner: &str,
    rows: &[IdentityRow],
) -> Result<Vec<Collision>, StoreError> {
    let mut found = Vec::new();
    for row in rows {
        let hits: Vec<(String,)> = sqlx::query_as(
            "SELECT i.verification_id FROM identity_index i \
             JOIN verifications v ON v.id = i.verification_id \
             WHERE i.kind = $1 AND i.value_index = $2 AND i.owner <> $3 AND v.state <> 'cancelled' \
             AND i.created_at < COALESCE((SELECT MIN(m.created_at) FROM identity_index m \
                 JOIN verifications mv ON mv.id = m.verification_id \
                 WHERE m.kind = $1 AND m.value_index = $2 AND m.owner = $3 \
                 AND mv.state <> 'cancelled'), $4) \
             ORDER BY i.created_at, i.verification_id",
        )
        .bind(row.kind.as_str())
        .bind(&row.value_index)
        .bind(owner)
        .bind(i64::MAX)
        .fetch_all(db.pool())
        .await?;
        found.extend(hits.into_iter().map(|(verification_id,)| Collision {
            kind: row.kind,
            verification_id,
        }));
    }
    Ok(found)
}

/// Every other account's verification sharing a number with verification `id` (earlier or
/// later; not cancelled), for its reviewers.
pub async fn collisions_of(db: &Db, id: &str) -> Result<Vec<Collision>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT other.kind, other.verification_id FROM identity_index mine \
         JOIN identity_index other ON other.kind = mine.kind AND other.value_index = mine.value_index \
         JOIN verifications v ON v.id = other.verification_id \
         WHERE mine.verification_id = $1 AND other.owner <> mine.owner AND v.state <> 'cancelled' \
         ORDER BY other.kind, other.verification_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|(kind, verification_id)| {
            Ok(Collision {
                kind: IdentityKind::parse(&kind)?,
                verification_id,
            })
        })
        .collect()
}

/// Writes verification `id`'s rows (a row already there is kept).
pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    owner: &str,
    rows: &[IdentityRow],
    at: i64,
) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query(
            "INSERT INTO identity_index (kind, value_index, verification_id, document_id, owner, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(row.kind.as_str())
        .bind(&row.value_index)
        .bind(id)
        .bind(&row.document_id)
        .bind(owner)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
