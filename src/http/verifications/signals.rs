//! The bodies of the reviewers' signals: a decision (with corrections), a second review, a
//! cancel, a claim and its release. Each carries a client-chosen `signal_id` that makes it
//! idempotent.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use poem_openapi::{Enum, Object, types::Example};

use crate::http::text::Text;

#[derive(Debug, Clone, Copy, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// A reviewer's decision on a case in `pending_manual_review`.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct ReviewDecisionRequest {
    /// Chosen by the client (1–128 visible ASCII characters); sending the same signal again
    /// (or concurrently) applies it once and answers the same result.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
    pub decision: Decision,
    /// Why (kept in the audit trail; 1–1000 characters, at least one of them visible).
    #[oai(validator(
        min_length = 1,
        max_length = 1000,
        pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
    ))]
    pub reason: Text,
    /// Field values the reviewer read differently from the OCR. Stored beside the OCR values;
    /// both are kept.
    #[oai(skip_serializing_if_is_none)]
    pub corrected_fields: Option<Corrections>,
}

/// The fields a reviewer may correct, each checked as the field it is; no others.
#[derive(Debug, Clone, Default, Object, serde::Serialize)]
#[oai(deny_unknown_fields)]
pub struct Corrections {
    /// 16 digits.
    #[oai(skip_serializing_if_is_none, validator(pattern = r"^[0-9]{16}$"))]
    pub nik: Option<Text>,
    /// 15 or 16 digits.
    #[oai(skip_serializing_if_is_none, validator(pattern = r"^[0-9]{15,16}$"))]
    pub npwp: Option<Text>,
    #[oai(skip_serializing_if_is_none)]
    pub birth_date: Option<NaiveDate>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub name: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub birth_place: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub gender: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub blood_type: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub address: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub rt_rw: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub village: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub district: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub religion: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub marital_status: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub occupation: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub nationality: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub valid_until: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub province: Option<Text>,
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub regency: Option<Text>,
    /// The name as printed on the NPWP.
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
        )
    )]
    pub npwp_name: Option<Text>,
}

impl Corrections {
    /// Field name → value, for the corrections given.
    pub fn into_map(self) -> BTreeMap<String, String> {
        let value = serde_json::to_value(self).expect("corrections serialize");
        value
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    }
}

impl Example for ReviewDecisionRequest {
    fn example() -> Self {
        Self {
            signal_id: "7f3c2a10-review-1".into(),
            decision: Decision::Approve,
            reason: "gender on the card matches the photo; NIK read correctly".into(),
            corrected_fields: Some(Corrections {
                name: Some("KARTIKA SUSANTO".into()),
                ..Default::default()
            }),
        }
    }
}

/// A second reviewer's verdict on a proposed decision.
#[derive(Debug, Clone, Copy, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SecondDecision {
    /// Apply the first reviewer's decision, with its corrections.
    Confirm,
    /// Send the case back to `pending_manual_review`, the corrections discarded.
    Reject,
}

/// The second review of a case in `awaiting_second_review`, by a reviewer other than the one
/// who proposed the decision (and not the case's owner).
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct SecondReviewRequest {
    /// Chosen by the client (1–128 visible ASCII characters); the same signal sent again
    /// answers the same result.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
    pub decision: SecondDecision,
    /// Why (kept in the audit trail; 1–1000 characters, at least one of them visible).
    #[oai(validator(
        min_length = 1,
        max_length = 1000,
        pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
    ))]
    pub reason: Text,
}

impl Example for SecondReviewRequest {
    fn example() -> Self {
        Self {
            signal_id: "7f3c2a10-second-1".into(),
            decision: SecondDecision::Confirm,
            reason: "checked the corrected NIK against the card image".into(),
        }
    }
}

/// Cancel a verification that is not decided yet.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct CancelReviewRequest {
    /// Chosen by the client (1–128 visible ASCII characters).
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
    /// Why (kept in the audit trail; 1–1000 characters, at least one of them visible).
    #[oai(validator(
        min_length = 1,
        max_length = 1000,
        pattern = r"[!-~\u00A1-\u167F\u1681-\u1FFF\u200B-\u2027\u202A-\u202E\u2030-\u205E\u2060-\u2FFF\u3001-\uD7FF\uE000-\uFFFD]"
    ))]
    pub reason: Text,
}

impl Example for CancelReviewRequest {
    fn example() -> Self {
        Self {
            signal_id: "7f3c2a10-cancel-1".into(),
            reason: "duplicate application".into(),
        }
    }
}

/// A claim, or its release: nothing but the signal's id.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct ClaimSignal {
    /// Chosen by the client (1–128 visible ASCII characters).
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
}

impl Example for ClaimSignal {
    fn example() -> Self {
        Self {
            signal_id: "claim-2f6c1e".into(),
        }
    }
}
