//! A signal's request, checked and identified: the field rules, and the hash that makes the
//! same `signal_id` with another request a conflict.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::{Decision, SignalAnswer};
use crate::{
    actors::verification::SignalReceipt,
    http::{errors::ApiError, paging::millis},
    kyc::{card::KTP_FIELDS, nik::Nik, npwp::Npwp},
};

/// Fields a reviewer may correct, and how each must look (identity numbers parse as the
/// domain's own types).
pub(super) fn check_correction(key: &str, value: &str) -> Result<(), String> {
    match key {
        "nik" if value.parse::<Nik>().is_err() => Err("must be a 16-digit NIK".into()),
        "npwp" if !value.bytes().all(|b| b.is_ascii_digit()) || value.parse::<Npwp>().is_err() => {
            Err("must be a 15- or 16-digit NPWP, digits only".into())
        }
        "birth_date" if NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() => {
            Err("must be a date YYYY-MM-DD".into())
        }
        "nik" | "npwp" | "birth_date" => Ok(()),
        k if KTP_FIELDS.contains(&k) || k == "npwp_name" => {
            if value.trim().is_empty() || value.chars().count() > 200 {
                Err("must be 1–200 characters".into())
            } else {
                Ok(())
            }
        }
        _ => Err("is not a field a reviewer can correct".into()),
    }
}

pub(super) fn check_signal_id(id: &str) -> Result<(), ApiError> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "signal_id",
            "must be 1–128 visible ASCII characters",
        ))
    }
}

pub(super) fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() || reason.chars().count() > 1000 {
        Err(ApiError::invalid("reason", "must be 1–1000 characters"))
    } else {
        Ok(())
    }
}

/// A review decision as its request hash sees it.
#[derive(serde::Serialize)]
pub(super) struct HashedDecision<'a> {
    pub(super) signal_id: &'a str,
    pub(super) decision: Decision,
    pub(super) reason: &'a str,
    pub(super) corrected_fields: Option<&'a std::collections::BTreeMap<String, String>>,
}

pub(super) fn request_hash(kind: &str, body: &impl serde::Serialize) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(body).expect("request serializes"));
    hex::encode(h.finalize())
}

pub(super) fn answer(r: SignalReceipt) -> SignalAnswer {
    SignalAnswer {
        verification_id: r.verification_id,
        signal_id: r.signal_id,
        signal: r.signal,
        state: r.state.as_str().into(),
        version: r.version,
        applied_at: millis(r.applied_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_are_checked_per_field() {
        assert!(check_correction("nik", "3275024612894728").is_ok());
        assert!(check_correction("nik", "32750246128947").is_err());
        assert!(check_correction("npwp", "012345678901234").is_ok());
        assert!(check_correction("birth_date", "1989-12-06").is_ok());
        assert!(check_correction("birth_date", "06-12-1989").is_err());
        assert!(check_correction("name", "KARTIKA SUSANTO").is_ok());
        assert!(check_correction("name", "  ").is_err());
        assert!(check_correction("password", "x").is_err());
    }
}
