//! Keyset pagination shared by the list endpoints: a page size within bounds and an opaque
//! cursor (`created_at|id`, base64url) that only this API issues.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};

use super::errors::ApiError;

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

pub fn encode(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}|{id}"))
}

/// The position a `cursor` parameter names; 422 when it is not one of ours.
pub fn decode(cursor: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("cursor", "is not a cursor this API issued");
    let raw =
        String::from_utf8(URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (t, id) = raw.split_once('|').ok_or_else(bad)?;
    Ok(Some((t.parse().map_err(|_| bad())?, id.to_string())))
}

/// Milliseconds since the epoch as a timestamp for the API.
pub fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
