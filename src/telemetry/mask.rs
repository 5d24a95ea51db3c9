//! Masking of personal data in free text (log lines, error messages).
//!
//! Indonesian identifiers and contact data: NIK (16 digits), NPWP (15 or 16 digits, with or
//! without `.`/`-` separators), e-mail addresses and phone numbers (`+62…`, `62…`, `08…`).
//! Masking is deliberately greedy: a false positive costs a less useful log line, a false
//! negative leaks a citizen's identity.

use std::{borrow::Cow, sync::LazyLock};

use regex::Regex;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("static regex")
});

/// NPWP in its printed form: `12.345.678.9-012.345` (and a leading `0` for 16 digits), also
/// with spaces or no separators at all.
static NPWP_FORMATTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{2,3}[.\- ]\d{3}[.\- ]\d{3}[.\- ]\d[.\- ]\d{3}[.\- ]\d{3}")
        .expect("static regex")
});

/// Phone numbers: +62 / 62 / 0 followed by 8 and 7–12 more digits, optional separators.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+62|\b62|\b0)[\s\-.]?8\d{1,3}(?:[\s\-.]?\d{2,5}){2,4}").expect("static regex")
});

/// Any run of 15 or more digits, also when single separators split it into groups (a NIK
/// written `3201-2345-6789-0001`, `3201 2345 6789 0001` or `3201.2345.6789.0001`; NPWPs and
/// card numbers likewise).
static LONG_DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d(?:[ .\-/]?\d){14,}").expect("static regex"));

/// Replaces personal data in `text` with a redaction marker.
pub fn mask_pii(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return Cow::Borrowed(text);
    }
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    for (re, marker) in [
        (&*EMAIL, "[email]"),
        (&*NPWP_FORMATTED, "[npwp]"),
        (&*LONG_DIGITS, "[id]"),
        (&*PHONE, "[phone]"),
    ] {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, marker).into_owned());
        }
    }
    out
}

/// True when `text` carries nothing [`mask_pii`] would remove.
pub fn is_pii_free(text: &str) -> bool {
    matches!(mask_pii(text), Cow::Borrowed(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_nik_npwp_email_and_phones() {
        let cases = [
            "nik=3201234567890001 ok",
            "npwp 01.234.567.8-901.234",
            "npwp 0012345678901234",
            "npwp 012345678901234",
            "npwp 12 345 678 9 012 345",
            "mail budi.santoso@example.co.id now",
            "call +6281234567890",
            "call +62 812-3456-7890",
            "call 081234567890",
            "call 0812 3456 7890",
            "call 6281234567890",
            "nik 3201-2345-6789-0001 given",
            "nik 3201 2345 6789 0001 given",
            "nik 3201.2345.6789.0001 given",
            "nik 320123 456789 0001 given",
        ];
        for case in cases {
            let masked = mask_pii(case);
            assert!(!is_pii_free(case), "{case} not detected");
            assert!(
                !masked
                    .chars()
                    .collect::<Vec<_>>()
                    .windows(7)
                    .any(|w| w.iter().all(|c| c.is_ascii_digit())),
                "{case} -> {masked}"
            );
            assert!(!masked.contains('@'), "{case} -> {masked}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "GET /v1/documents/0193a5b2-7c1e-7d2a-9f00-0123456789ab 200 12ms",
            "latency_ms=1234 status=202",
            "2026-11-27T20:38:03.123456Z INFO filot: started",
        ] {
            assert_eq!(mask_pii(text), text);
        }
    }
}
