//! How a verification's inputs become durable: what the workflow sees of the documents, and
//! the one commit path (events, side rows, the outbox rows of a decision or a state change)
//! under the verification's lease.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{VerificationContext, VerificationError, VerificationState};
use crate::{
    kyc::{
        DocumentId,
        card::CardReading,
        workflow::{DocOutcome, Event, State, Verification},
    },
    store::{
        comparisons::{self, TruthRow},
        documents::{self, DocumentStatus},
        leases::LeaseKind,
        outbox,
        verifications::{self, Extras, NewOutbox},
        webhooks,
    },
    telemetry::metrics::names,
};

/// What the workflow sees of one document.
pub(super) async fn outcome(
    ctx: &VerificationContext,
    id: &str,
) -> Result<DocOutcome, VerificationError> {
    let id: DocumentId = id
        .parse()
        .map_err(|_| VerificationError::Corrupt(format!("document id `{id}`")))?;
    let Some(record) = documents::get(&ctx.db, &id).await? else {
        return Ok(DocOutcome::Failed {
            reason: "missing".into(),
        });
    };
    Ok(match record.status {
        DocumentStatus::Uploaded | DocumentStatus::Queued | DocumentStatus::Processing => {
            DocOutcome::Pending
        }
        DocumentStatus::Failed => DocOutcome::Failed {
            reason: record.failure_reason.unwrap_or_else(|| "failed".into()),
        },
        DocumentStatus::Erased => DocOutcome::Failed {
            reason: "erased".into(),
        },
        DocumentStatus::Extracted => match record
            .fields
            .as_ref()
            .and_then(|sealed| sealed.open(&ctx.blobs, &record.id))
        {
            Some(reading) => DocOutcome::Extracted(CardReading {
                fields: reading.fields,
                confidence: reading.confidence,
                issues: record.issues,
            }),
            None => DocOutcome::Failed {
                reason: "unsealable".into(),
            },
        },
    })
}

pub(super) async fn outcomes(
    ctx: &VerificationContext,
    v: &Verification,
) -> Result<(DocOutcome, Option<DocOutcome>), VerificationError> {
    let ktp = outcome(ctx, &v.ktp_document_id).await?;
    let npwp = match &v.npwp_document_id {
        Some(id) => Some(outcome(ctx, id).await?),
        None => None,
    };
    Ok((ktp, npwp))
}

/// Applies `events` to `before`, writes them with `extras` (plus the outbox row when the
/// verification becomes final) in one transaction, and caches the result.
pub(super) async fn commit(
    state: &mut VerificationState,
    before: &Verification,
    events: Vec<(Event, String)>,
    extras: Extras,
    docs: &(DocOutcome, Option<DocOutcome>),
) -> Result<Verification, VerificationError> {
    let after = advance(before, &events, state.ctx.clock.now_millis())?;
    commit_after(state, before, after, events, extras, docs).await
}

/// `before` with `events` applied at `now`.
pub(super) fn advance(
    before: &Verification,
    events: &[(Event, String)],
    now: i64,
) -> Result<Verification, VerificationError> {
    let mut after = before.clone();
    for (event, _) in events {
        after
            .apply(event, now)
            .map_err(|e| VerificationError::Corrupt(e.to_string()))?;
    }
    Ok(after)
}

/// As [`commit`], for a caller that needed `after` (computed by [`advance`]) beforehand.
pub(super) async fn commit_after(
    state: &mut VerificationState,
    before: &Verification,
    after: Verification,
    events: Vec<(Event, String)>,
    mut extras: Extras,
    docs: &(DocOutcome, Option<DocOutcome>),
) -> Result<Verification, VerificationError> {
    let now = after.updated_at;
    if !before.state.is_final() && after.state.is_final() {
        extras
            .outbox
            .push(decision_outbox(&state.ctx, &after, docs)?);
    }
    if after.state != before.state {
        extras
            .outbox
            .extend(webhook_outbox(&state.ctx, before.state, &after, now).await?);
    }
    if after.sealed_corrections != before.sealed_corrections {
        // Corrections took effect (whichever workflow step applied them).
        extras.ground_truth = ground_truth(&state.ctx, &after)?;
    }
    let ctx = &state.ctx;
    let floor = verifications::fence(&ctx.db, &after.id).await?;
    let lease = match ctx
        .leases
        .acquire(LeaseKind::Verification, &after.id, floor, ctx.lease_wait)
        .await
    {
        Ok(Some(lease)) => lease,
        Ok(None) => {
            return Err(VerificationError::Busy(
                "another node holds its lease".into(),
            ));
        }
        Err(e) => return Err(VerificationError::Busy(e.to_string())),
    };
    let written =
        verifications::append(&ctx.db, before, &after, &events, &extras, lease.token).await;
    ctx.leases.release(&lease).await;
    match written {
        Ok(()) => {
            state.cached = Some(after.clone());
            if !before.state.is_final() && after.state.is_final() {
                let outcome = after.state.as_str();
                metrics::counter!(names::DECISION_COUNT, "outcome" => outcome).increment(1);
                let latency = after.decided_at.unwrap_or(now) - after.created_at;
                metrics::histogram!(names::VERIFICATION_LATENCY_MS, "outcome" => outcome)
                    .record(latency.max(0) as f64);
            }
            if after.state != before.state {
                tracing::info!(verification_id = %after.id, from = before.state.as_str(), to = after.state.as_str(), "verification moved");
            }
            Ok(after)
        }
        Err(e) => {
            // Someone else may have written (another node): replay from the database next time.
            state.cached = None;
            Err(e.into())
        }
    }
}

/// The corrections `v` carries, opened (empty when none).
fn corrections(
    ctx: &VerificationContext,
    v: &Verification,
) -> Result<BTreeMap<String, String>, VerificationError> {
    let Some(sealed) = &v.sealed_corrections else {
        return Ok(BTreeMap::new());
    };
    let opened = ctx
        .blobs
        .open_text(&v.id, sealed)
        .map_err(|e| VerificationError::Corrupt(format!("corrections: {e}")))?;
    serde_json::from_str(&opened)
        .map_err(|e| VerificationError::Corrupt(format!("corrections: {e}")))
}

/// The values `v`'s corrections set, as human ground truth for the challenger comparison:
/// each on the document it belongs to (`npwp` on the NPWP card, the rest on the KTP).
fn ground_truth(
    ctx: &VerificationContext,
    v: &Verification,
) -> Result<Vec<TruthRow>, VerificationError> {
    Ok(corrections(ctx, v)?
        .into_iter()
        .filter_map(|(field, value)| {
            let document_id = match field.as_str() {
                "npwp" => v.npwp_document_id.clone()?,
                _ => v.ktp_document_id.clone(),
            };
            let truth_index =
                comparisons::field_index(&ctx.blobs.blind, &document_id, &field, &value);
            Some(TruthRow {
                document_id,
                field,
                truth_index,
            })
        })
        .collect())
}

/// The decision BULI2 receives, sealed at rest (it carries the checked personal fields).
fn decision_outbox(
    ctx: &VerificationContext,
    v: &Verification,
    (ktp, npwp): &(DocOutcome, Option<DocOutcome>),
) -> Result<NewOutbox, VerificationError> {
    let mut fields = BTreeMap::new();
    if let DocOutcome::Extracted(card) = ktp {
        for key in ["nik", "name", "birth_date", "birth_place", "gender"] {
            if let Some(value) = card.get(key) {
                fields.insert(key.to_string(), value.to_string());
            }
        }
    }
    if let Some(DocOutcome::Extracted(card)) = npwp
        && let Some(value) = card.get("npwp")
    {
        fields.insert("npwp".into(), value.to_string());
    }
    fields.extend(corrections(ctx, v)?);
    let id = Uuid::now_v7().to_string();
    let payload = serde_json::json!({
        "verification_id": v.id,
        "decision": v.state,
        "score": v.score,
        "reasons": v.reasons,
        "workflow_version": v.workflow_version,
        "decided_at": v.decided_at,
        "fields": fields,
    });
    let sealed = ctx
        .blobs
        .seal_text(&id, &payload.to_string())
        .map_err(|e| VerificationError::Corrupt(format!("sealing the outbox payload: {e}")))?;
    Ok(NewOutbox {
        id,
        kind: outbox::Kind::Buli2Decision,
        target: None,
        payload: sealed,
    })
}

/// One delivery per active webhook of the owner: the state change, with a stable delivery id
/// (the outbox row id, also its `Idempotency-Key`). No personal data.
async fn webhook_outbox(
    ctx: &VerificationContext,
    previous: State,
    v: &Verification,
    at: i64,
) -> Result<Vec<NewOutbox>, VerificationError> {
    let hooks = webhooks::active_for(&ctx.db, &v.owner).await?;
    hooks
        .into_iter()
        .map(|hook| {
            let id = Uuid::now_v7().to_string();
            let payload = serde_json::json!({
                "delivery_id": id,
                "type": "verification.state_changed",
                "verification_id": v.id,
                "state": v.state,
                "previous_state": previous,
                "delivery_state": v.delivery,
                "occurred_at": at,
            });
            let sealed = ctx
                .blobs
                .seal_text(&id, &payload.to_string())
                .map_err(|e| {
                    VerificationError::Corrupt(format!("sealing a webhook payload: {e}"))
                })?;
            Ok(NewOutbox {
                id,
                kind: outbox::Kind::Webhook,
                target: Some(hook.id),
                payload: sealed,
            })
        })
        .collect()
}
