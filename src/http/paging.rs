//! Keyset pagination shared by the list endpoints: a page size within bounds and an opaque
//! cursor that only this API issues: the position's `created_at` (8 bytes) and id (a UUID, 16
//! bytes) in base64url, always 32 characters. Every string of that shape decodes to some
//! position, so the spec's pattern (see `spec`) and the service accept exactly the same
//! cursors.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::errors::ApiError;

/// The pattern every cursor matches (declared in the OpenAPI document).
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{32}$";

/// The requested page size, default 20, between 1 and `max`.
pub fn limit(requested: Option<u32>, max: u32) -> Result<u32, ApiError> {
    let limit = requested.unwrap_or(20.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

/// The cursor after the row (`created_at`, `id`). Ids that are not UUIDs do not page.
pub fn encode(created_at: i64, id: &str) -> String {
    let id = Uuid::parse_str(id).unwrap_or_default();
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&created_at.to_be_bytes());
    raw[8..].copy_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// The `next_cursor` of a page: the position after its last item, when more follow.
pub fn next(position: Option<crate::store::Position>) -> Option<String> {
    position.map(|(created_at, id)| encode(created_at, &id))
}

/// The position a `cursor` parameter names; 422 when it is not of the cursor's shape.
pub fn decode(cursor: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("cursor", "is not a cursor this API issued");
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw: [u8; 24] = raw.try_into().map_err(|_| bad())?;
    let created_at = i64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
    let id = Uuid::from_bytes(raw[8..].try_into().expect("16 bytes"));
    Ok(Some((created_at, id.to_string())))
}

/// Milliseconds since the epoch as a timestamp for the API.
pub fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_every_pattern_match_decodes() {
        let id = Uuid::now_v7().to_string();
        let c = encode(1_764_000_000_000, &id);
        assert_eq!(c.len(), 32);
        let re = regex::Regex::new(CURSOR_PATTERN).unwrap();
        assert!(re.is_match(&c));
        assert_eq!(decode(Some(&c)).unwrap(), Some((1_764_000_000_000, id)));
        for any in [
            "A".repeat(32),
            "_".repeat(32),
            "-".repeat(32),
            "z9".repeat(16),
        ] {
            assert!(re.is_match(&any));
            assert!(decode(Some(&any)).is_ok(), "{any}");
        }
        assert!(decode(Some("short")).is_err());
        assert!(decode(Some(&"=".repeat(32))).is_err());
    }
}
