//! `POST /internal/buli2/callbacks`: BULI2 tells FiLot what it did with a delivered decision.
//! The signature covers the raw body bytes, so this handler reads the bytes itself (outside
//! the JSON extractor) and verifies before parsing: a bad or missing signature, or a
//! timestamp outside the window, is 401; an event id already applied is 200 with no second
//! effect; malformed or schema-invalid JSON is 422.

use std::sync::Arc;

use poem::{Body, Request, Response, handler, web::Data};
use serde::Deserialize;

use super::{AppState, errors::ApiError};
use crate::{
    actors::verification::{CallbackApplied, VerificationId, VerificationMsg},
    buli2::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify},
    kyc::workflow::Buli2Outcome,
    store::verifications,
};

/// The callback body BULI2 sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    event_id: String,
    verification_id: String,
    outcome: Buli2Outcome,
    loan_reference: Option<String>,
    #[allow(dead_code)]
    message: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_callback",
        field: None,
        message: message.into(),
    }
}

#[handler]
pub async fn callback(
    req: &Request,
    body: Body,
    state: Data<&Arc<AppState>>,
) -> Result<Response, ApiError> {
    let Some(secret) = &state.settings.buli2_secret else {
        return Err(ApiError::NotFound);
    };
    let bytes = body
        .into_vec()
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            code: "request_too_large",
            message: "callback body too large or unreadable".into(),
        })?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = verify(
        secret.expose().as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &bytes,
        chrono::Utc::now().timestamp(),
        state.settings.outbox.callback_window.as_secs() as i64,
    ) {
        tracing::warn!(reason = %e, "BULI2 callback refused");
        return Err(ApiError::Unauthorized(
            "invalid BULI2 signature or timestamp",
        ));
    }
    let cb: Callback =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not a callback: {e}")))?;
    if cb.event_id.trim().is_empty() || cb.event_id.len() > 200 {
        return Err(invalid("event_id must be 1–200 characters"));
    }
    if cb.loan_reference.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(invalid("loan_reference must be at most 200 characters"));
    }
    let vid: VerificationId = cb
        .verification_id
        .parse()
        .map_err(|_| invalid("verification_id is not a verification id"))?;
    let Some(row) = verifications::get(&state.db, &cb.verification_id).await? else {
        return Err(ApiError::NotFound);
    };
    let applied = state
        .verifications
        .call(vid, |reply| VerificationMsg::Buli2Callback {
            event_id: cb.event_id.clone(),
            outcome: cb.outcome,
            loan_reference: cb.loan_reference.clone(),
            reply,
        })
        .await?;
    let status = match applied {
        CallbackApplied::Applied => "applied",
        CallbackApplied::Replayed => "replayed",
    };
    // The callback's own request id is on the request span; the verification's originating
    // one ties this line to the upload it started from.
    tracing::info!(
        verification_id = %vid,
        origin_correlation_id = row.correlation_id.as_deref().unwrap_or(""),
        status,
        outcome = cb.outcome.as_str(),
        "BULI2 callback"
    );
    Ok(Response::builder()
        .content_type("application/json")
        .body(serde_json::json!({ "status": status }).to_string()))
}
