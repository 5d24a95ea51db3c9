//! Correlation ids: one per request, taken from `X-Correlation-Id` when it is a sane id,
//! generated otherwise, echoed on the response and attached to every log line of the request.

use std::fmt;

use super::mask::is_pii_free;

pub const HEADER: &str = "x-correlation-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// Accepts 8–64 characters of `[A-Za-z0-9._:-]` that carry no personal data; anything else
    /// is replaced by a fresh id (a client must not be able to smuggle a NIK into our logs).
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v)
                if (8..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
                    && is_pii_free(v) =>
            {
                Self(v.to_string())
            }
            _ => Self::generate(),
        }
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
}
