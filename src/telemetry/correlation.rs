//! Correlation ids: one per request, taken from `X-Correlation-Id` when it is a sane id,
//! generated otherwise, echoed on the response and attached to every log line of the request.
//! The id that created a document or a verification is stored with it, so every later stage
//! (OCR on any node, the workflow, the outbox, callbacks) logs it too, and outbound requests
//! carry it as `X-Correlation-Id` and as the trace id of a W3C `traceparent`.

use std::fmt;

use super::mask::is_pii_free;

pub const HEADER: &str = "x-correlation-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// A stored id read back (the same rules as a header; `None` when it does not pass).
    pub fn parse(value: &str) -> Option<Self> {
        Self::valid(value).then(|| Self(value.to_string()))
    }

    fn valid(v: &str) -> bool {
        (8..=64).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            && is_pii_free(v)
    }

    /// Accepts 8–64 characters of `[A-Za-z0-9._:-]` that carry no personal data; anything else
    /// is replaced by a fresh id (a client must not be able to smuggle a NIK into our logs).
    pub fn from_header(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A W3C trace context header for an outbound request made on behalf of `id`: the trace id
/// is the correlation id itself when it is 32 lower-case hex digits (the ones FiLot makes),
/// otherwise the first 16 bytes of its SHA-256, so the same id always maps to the same trace;
/// the parent id is fresh per request.
pub fn traceparent(id: &CorrelationId) -> String {
    use sha2::{Digest, Sha256};
    let s = id.as_str();
    let trace = if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        s.to_string()
    } else {
        hex::encode(&Sha256::digest(s.as_bytes())[..16])
    };
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace}-{}-01", &span[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(
            CorrelationId::from_header(Some("req-12345678")).as_str(),
            "req-12345678"
        );
        for bad in [
            "short",
            "has space in it",
            "3201234567890001",
            "a@b.example.com",
            &"x".repeat(65),
        ] {
            assert_ne!(CorrelationId::from_header(Some(bad)).as_str(), bad);
        }
        assert_eq!(CorrelationId::from_header(None).as_str().len(), 32);
    }

    #[test]
    fn traceparent_follows_the_correlation_id() {
        let ours = CorrelationId::generate();
        let tp = traceparent(&ours);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", ours.as_str(), "01"));
        assert_eq!(parts[2].len(), 16);
        let theirs = CorrelationId::parse("trace-abc12345").unwrap();
        let (a, b) = (traceparent(&theirs), traceparent(&theirs));
        assert_eq!(a[3..35], b[3..35], "same id, same trace");
        assert_ne!(a, b, "a fresh parent id per request");
        assert!(a[3..35].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
