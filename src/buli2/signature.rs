//! The BULI2 wire signature, both directions: `X-Buli2-Timestamp: <unix seconds>` and
//! `X-Buli2-Signature: sha256=<lowercase hex of HMAC-SHA256(secret, "<timestamp>.<raw body>")>`.
//! Verification is constant-time and bounded in time (a replay window).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "X-Buli2-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Buli2-Signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Buli2-Timestamp or X-Buli2-Signature")]
    Missing,
    #[error("the timestamp is not unix seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the accepted window")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Buli2-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// The two headers of a body signed now: `(timestamp header, value), (signature header, value)`
/// under the given header names.
pub fn signed_headers<'a>(
    names: (&'a str, &'a str),
    secret: &[u8],
    body: &[u8],
) -> [(&'a str, String); 2] {
    let ts = chrono::Utc::now().timestamp();
    [(names.0, ts.to_string()), (names.1, sign(secret, ts, body))]
}

/// Checks a received signature over the raw body bytes, and that `timestamp` is within
/// `window_secs` of `now_secs` either way.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    window_secs: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now_secs - ts).abs() > window_secs {
        return Err(SignatureError::Stale);
    }
    let hex_tag = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Mismatch)?;
    let tag = hex::decode(hex_tag).map_err(|_| SignatureError::Mismatch)?;
    // verify_slice compares in constant time.
    mac(secret, timestamp.trim(), body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_the_raw_bytes_within_the_window() {
        let body = br#"{"event_id":"e1"}"#;
        let sig = sign(b"secret", 1_700_000_000, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let ok = |ts: &str, sig: &str, body: &[u8], now| {
            verify(b"secret", Some(ts), Some(sig), body, now, 300)
        };
        assert_eq!(ok("1700000000", &sig, body, 1_700_000_100), Ok(()));
        assert_eq!(
            ok("1700000000", &sig, body, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            ok("1700000000", &sig, body, 1_699_999_699),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            ok("1700000000", &sig, br#"{"event_id":"e2"}"#, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok("1700000001", &sig, body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok("soon", &sig, body, 1_700_000_000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            ok("1700000000", "sha256=zz", body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"other",
                Some("1700000000"),
                Some(&sig),
                body,
                1_700_000_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", None, Some(&sig), body, 1_700_000_000, 300),
            Err(SignatureError::Missing)
        );
        // Known answer: HMAC-SHA256("key", "1.abc").
        assert_eq!(
            sign(b"key", 1, b"abc"),
            format!("sha256={}", {
                let mut m = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
                m.update(b"1.abc");
                hex::encode(m.finalize().into_bytes())
            })
        );
    }
}
