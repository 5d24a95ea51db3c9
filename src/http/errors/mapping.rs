//! Every other layer's error as an API error: each mapped by an exhaustive `match`, so a new
//! variant anywhere fails to compile here until it has a status. Causes of 5xx answers go to
//! the log, never into the body.

use super::ApiError;
use crate::{
    actors::{DocumentError, intake::IntakeError, verification::VerificationError},
    store::{Quota, StoreError},
};

impl From<Quota> for ApiError {
    fn from(q: Quota) -> Self {
        let message = q.to_string();
        match q {
            Quota::CardInActiveVerification(id) => ApiError::VerificationActive { id },
            Quota::ActiveVerifications(_) => ApiError::Conflict {
                code: "too_many_active_verifications",
                message: format!("{message}; wait for one to finish or cancel it"),
            },
            Quota::Webhooks(_) => ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!("{message}; delete one first"),
            },
            Quota::Storage(_) => ApiError::Conflict {
                code: "storage_quota_exceeded",
                message: format!("{message}; erase documents you no longer need"),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable {
                code: "unavailable",
                message: "the database is unavailable; retry later".into(),
            }
        } else if let StoreError::Quota(q) = e {
            q.into()
        } else if matches!(e, StoreError::Conflict(_) | StoreError::Fenced(_)) {
            ApiError::Conflict {
                code: "concurrent_update",
                message: "the resource changed meanwhile; read it again and retry".into(),
            }
        } else {
            tracing::error!(error = %e, "store error");
            ApiError::Internal
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::NotFound => ApiError::NotFound,
            DocumentError::Erased => ApiError::Gone,
            DocumentError::Quarantined | DocumentError::ActorFailed | DocumentError::Timeout => {
                tracing::error!(error = %e, "document actor did not complete the request");
                ApiError::Unavailable {
                    code: "document_unavailable",
                    message: "the document could not be processed right now; retry later".into(),
                }
            }
            DocumentError::Final(state) | DocumentError::NotQueued(state) => ApiError::Conflict {
                code: "document_final",
                message: format!("the document is already {state}"),
            },
            DocumentError::ClaimLost => ApiError::Conflict {
                code: "concurrent_update",
                message: "the document changed meanwhile; read it again".into(),
            },
            DocumentError::ShuttingDown => ApiError::Unavailable {
                code: "unavailable",
                message: "the service is shutting down".into(),
            },
            DocumentError::Store(s) => s.into(),
        }
    }
}

impl From<VerificationError> for ApiError {
    fn from(e: VerificationError) -> Self {
        match e {
            VerificationError::NotFound => ApiError::NotFound,
            VerificationError::State(state) => ApiError::StateConflict {
                state: state.as_str(),
            },
            VerificationError::SelfReview => ApiError::Denied {
                code: "self_review_forbidden",
                message: "a reviewer never decides, confirms, corrects or cancels a case they own",
            },
            VerificationError::FourEyesRequired => ApiError::Denied {
                code: "four_eyes_required",
                message: "the second review must come from a reviewer other than the first",
            },
            VerificationError::ClaimedByOther { expires_at } => ApiError::Conflict {
                code: "claimed_by_other",
                message: format!(
                    "another reviewer is working on this case until {}; wait for their claim to end or ask an admin to release it",
                    chrono::DateTime::from_timestamp_millis(expires_at)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_default()
                ),
            },
            VerificationError::NotClaimed => ApiError::Conflict {
                code: "not_claimed",
                message: "nobody holds this case; there is nothing to release".into(),
            },
            VerificationError::SignalReused => ApiError::Conflict {
                code: "signal_id_reused",
                message: "this signal_id was already used with a different request".into(),
            },
            VerificationError::Quarantined
            | VerificationError::ActorFailed
            | VerificationError::Timeout => {
                tracing::error!(error = %e, "verification actor did not complete the request");
                ApiError::Unavailable {
                    code: "verification_unavailable",
                    message: "the verification could not be processed right now; retry later"
                        .into(),
                }
            }
            VerificationError::ShuttingDown => ApiError::Unavailable {
                code: "unavailable",
                message: "the service is shutting down".into(),
            },
            VerificationError::Busy(m) => {
                tracing::warn!(reason = %m, "verification busy");
                ApiError::Unavailable {
                    code: "verification_busy",
                    message: "the verification is being processed elsewhere or leases are unavailable; retry shortly".into(),
                }
            }
            VerificationError::Corrupt(m) => {
                tracing::error!(error = %m, "verification data inconsistent");
                ApiError::Internal
            }
            VerificationError::Store(s) => s.into(),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::KeyReused => ApiError::Conflict {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request".into(),
            },
            IntakeError::Storage(e) => {
                tracing::error!(error = %e, "blob write failed");
                ApiError::Unavailable {
                    code: "storage_unavailable",
                    message: "the file could not be stored; retry later".into(),
                }
            }
            IntakeError::Document(e) => e.into(),
            IntakeError::Store(e) => e.into(),
        }
    }
}
