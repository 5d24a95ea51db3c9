//! What each input means for the verification: documents settled, a timer, a reviewer's
//! signal, the outbox's result, BULI2's callback. Each asks the pure workflow functions and
//! commits what they return.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{
    BULI2, CallbackApplied, SYSTEM, Signal, SignalKind, SignalReceipt, VerificationError,
    VerificationState,
    commit::{advance, commit, commit_after, outcomes},
    load,
};
use crate::{
    kyc::workflow::{self, Buli2Outcome, Delivery, DocOutcome, Event, ReviewInput, State},
    store::{
        blind::Domain,
        identity::{self, IdentityKind, IdentityRow},
        outbox::{self, OutboxResult, OutboxState},
        verifications::{self, Extras, SignalRecord},
    },
    telemetry::metrics::names,
};

/// Events tagged with who caused them, for the audit trail.
fn by(principal: &str, events: Vec<Event>) -> Vec<(Event, String)> {
    events
        .into_iter()
        .map(|e| (e, principal.to_string()))
        .collect()
}

/// The documents may have settled: check the case and decide it.
pub(super) async fn documents_settled(
    state: &mut VerificationState,
) -> Result<(), VerificationError> {
    let v = load(state).await?;
    if v.state != State::AwaitingDocuments {
        return Ok(());
    }
    let docs = outcomes(&state.ctx, &v).await?;
    if docs.0 == DocOutcome::Pending || docs.1 == Some(DocOutcome::Pending) {
        return Ok(());
    }
    let now = state.ctx.clock.now_millis();
    let sla_ms = state.ctx.review_sla.as_millis() as i64;
    let ids = || (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let identity = identity_rows(state, &v, &docs);
    let collisions = identity::collisions(&state.ctx.db, &v.owner, &identity).await?;
    let mut flags: Vec<String> = Vec::new();
    for c in &collisions {
        let reason = c.kind.reuse_reason();
        if !flags.iter().any(|f| f == reason) {
            metrics::counter!(names::IDENTITY_REUSE_COUNT, "kind" => c.kind.as_str()).increment(1);
            tracing::warn!(verification_id = %v.id, kind = c.kind.as_str(), other = %c.verification_id, "number used by another account");
            flags.push(reason.to_string());
        }
    }
    let Some(events) = workflow::on_documents_flagged(
        &v,
        &docs.0,
        docs.1.as_ref(),
        &flags,
        &state.ctx.policy,
        ids,
        now,
        sla_ms,
    ) else {
        return Ok(());
    };
    let arm_timer = events.iter().find_map(|e| match e {
        Event::Checked {
            sla_timer_id: Some(t),
            sla_due_at: Some(due),
            ..
        } => Some((t.clone(), *due)),
        _ => None,
    });
    let extras = Extras {
        arm_timer,
        identity,
        ..Default::default()
    };
    let events = by(SYSTEM, events);
    commit(state, &v, events, extras, &docs).await?;
    Ok(())
}

/// The blind indexes of the NIK on the KTP and the NPWP on the NPWP card, when read whole.
fn identity_rows(
    state: &VerificationState,
    v: &workflow::Verification,
    docs: &(DocOutcome, Option<DocOutcome>),
) -> Vec<IdentityRow> {
    let blind = &state.ctx.blobs.blind;
    let mut rows = Vec::new();
    let mut add = |doc: &DocOutcome, document_id: &str, field, kind, domain, lengths: &[usize]| {
        let DocOutcome::Extracted(card) = doc else {
            return;
        };
        let digits: String = card
            .fields
            .get(field)
            .map(|n| n.chars().filter(char::is_ascii_digit).collect())
            .unwrap_or_default();
        if lengths.contains(&digits.len()) {
            rows.push(IdentityRow {
                kind,
                value_index: blind.of(domain, &[digits.as_bytes()]),
                document_id: document_id.to_string(),
            });
        }
    };
    add(
        &docs.0,
        &v.ktp_document_id,
        "nik",
        IdentityKind::Nik,
        Domain::Nik,
        &[16],
    );
    if let (Some(doc), Some(id)) = (&docs.1, &v.npwp_document_id) {
        add(doc, id, "npwp", IdentityKind::Npwp, Domain::Npwp, &[15, 16]);
    }
    rows
}

pub(super) async fn timer_due(
    state: &mut VerificationState,
    timer_id: &str,
) -> Result<(), VerificationError> {
    let v = load(state).await?;
    match workflow::on_timer(&v, timer_id) {
        Some(events) => {
            let docs = outcomes(&state.ctx, &v).await?;
            let extras = Extras {
                spend_timer: Some(timer_id.to_string()),
                ..Default::default()
            };
            let events = by(SYSTEM, events);
            commit(state, &v, events, extras, &docs).await?;
        }
        // The case moved on (decided, cancelled): the timer is simply spent.
        None => {
            verifications::spend_timer(&state.ctx.db, timer_id, state.ctx.clock.now_millis())
                .await?
        }
    }
    Ok(())
}

pub(super) async fn apply_signal(
    state: &mut VerificationState,
    signal: Signal,
) -> Result<SignalReceipt, VerificationError> {
    let id = state.id.to_string();
    if let Some(done) = verifications::find_signal(&state.ctx.db, &id, &signal.signal_id).await? {
        return replay_answer(&done, &signal);
    }
    let v = load(state).await?;
    let docs = outcomes(&state.ctx, &v).await?;
    let by = signal.principal.as_str();
    let now = state.ctx.clock.now_millis();
    // Nobody acts on a case another reviewer holds (an admin may cancel it).
    match &signal.kind {
        SignalKind::ReviewDecision { .. }
        | SignalKind::SecondReview { .. }
        | SignalKind::Cancel { admin: false, .. } => {
            workflow::check_claim(&v, by, now).map_err(VerificationError::from)?
        }
        SignalKind::Cancel { admin: true, .. } | SignalKind::Claim | SignalKind::Release { .. } => {
        }
    }
    let events = match &signal.kind {
        SignalKind::ReviewDecision {
            decision,
            reason,
            corrected,
        } => {
            let sealed =
                if corrected.is_empty() {
                    None
                } else {
                    let plain = serde_json::to_string(corrected).expect("strings serialize");
                    Some(state.ctx.blobs.seal_text(&id, &plain).map_err(|e| {
                        VerificationError::Corrupt(format!("sealing corrections: {e}"))
                    })?)
                };
            let input = ReviewInput {
                signal_id: signal.signal_id.clone(),
                decision: *decision,
                reason: reason.clone(),
                corrected: corrected.clone(),
                sealed_corrections: sealed,
            };
            let policy = &state.ctx.policy;
            workflow::on_review_decision(&v, input, by, policy, &docs.0, docs.1.as_ref())
        }
        SignalKind::SecondReview { verdict, reason } => {
            let corrections = proposal_corrections(state, &v)?;
            let docs = (&docs.0, docs.1.as_ref());
            workflow::on_second_review(
                &v,
                &signal.signal_id,
                *verdict,
                reason,
                by,
                &corrections,
                docs,
            )
        }
        SignalKind::Cancel { reason, .. } => workflow::on_cancel(&v, &signal.signal_id, reason, by),
        SignalKind::Claim => {
            let ttl = state.ctx.claim_ttl.as_millis() as i64;
            workflow::on_claim(&v, &signal.signal_id, by, now, ttl)
        }
        SignalKind::Release { admin } => {
            workflow::on_release(&v, &signal.signal_id, by, *admin, now)
        }
    }
    .map_err(VerificationError::from)?;

    let events: Vec<(Event, String)> = events
        .into_iter()
        .map(|e| {
            let principal = match &e {
                Event::NpwpRechecked { .. } => SYSTEM.to_string(),
                _ => signal.principal.clone(),
            };
            (e, principal)
        })
        .collect();
    let after = advance(&v, &events, now)?;
    let receipt = SignalReceipt {
        verification_id: id.clone(),
        signal_id: signal.signal_id.clone(),
        signal: signal.kind.name().into(),
        state: after.state,
        version: after.seq,
        applied_at: now,
    };
    let extras = Extras {
        signal: Some(SignalRecord {
            signal_id: signal.signal_id.clone(),
            kind: signal.kind.name().into(),
            request_hash: signal.request_hash.clone(),
            response: serde_json::to_string(&receipt).expect("receipt serializes"),
        }),
        // The review SLA keeps running while the case still waits for a person.
        spend_timer: v.sla_timer_id.clone().filter(|_| after.state.is_final()),
        ..Default::default()
    };
    match commit_after(state, &v, after, events, extras, &docs).await {
        Ok(_) => Ok(receipt),
        Err(VerificationError::Store(e)) if e.is_unique_violation() => {
            // The same signal won the race on another node: answer as it did.
            let done = verifications::find_signal(&state.ctx.db, &id, &signal.signal_id)
                .await?
                .ok_or(VerificationError::Store(e))?;
            replay_answer(&done, &signal)
        }
        Err(e) => Err(e),
    }
}

/// The pending proposal's corrected values, opened (empty when it corrected nothing).
fn proposal_corrections(
    state: &VerificationState,
    v: &workflow::Verification,
) -> Result<BTreeMap<String, String>, VerificationError> {
    let Some(sealed) = v
        .proposal
        .as_ref()
        .and_then(|p| p.sealed_corrections.as_ref())
    else {
        return Ok(BTreeMap::new());
    };
    let plain = state
        .ctx
        .blobs
        .open_text(&v.id, sealed)
        .map_err(|e| VerificationError::Corrupt(format!("proposal corrections: {e}")))?;
    serde_json::from_str(&plain)
        .map_err(|e| VerificationError::Corrupt(format!("proposal corrections: {e}")))
}

fn replay_answer(done: &SignalRecord, signal: &Signal) -> Result<SignalReceipt, VerificationError> {
    if done.request_hash != signal.request_hash || done.kind != signal.kind.name() {
        return Err(VerificationError::SignalReused);
    }
    serde_json::from_str(&done.response)
        .map_err(|e| VerificationError::Corrupt(format!("stored signal answer: {e}")))
}

pub(super) async fn outbox_result(
    state: &mut VerificationState,
    result: OutboxResult,
) -> Result<(), VerificationError> {
    let v = load(state).await?;
    let delivery = match result.state {
        OutboxState::Sent => Delivery::Sent,
        OutboxState::Dead => Delivery::DeadLettered,
        OutboxState::Pending => return Ok(()),
    };
    let now = state.ctx.clock.now_millis();
    match workflow::on_delivery(&v, delivery) {
        Some(event) => {
            let extras = Extras {
                outbox_result: Some(result),
                ..Default::default()
            };
            let docs = (DocOutcome::Pending, None);
            commit(state, &v, vec![(event, SYSTEM.to_string())], extras, &docs).await?;
        }
        // BULI2's callback got here first (or the state is already further on): only the
        // row's own record changes.
        None => outbox::finish(&state.ctx.db, &result, now).await?,
    }
    Ok(())
}

pub(super) async fn buli2_callback(
    state: &mut VerificationState,
    event_id: String,
    outcome: Buli2Outcome,
    loan_reference: Option<String>,
) -> Result<CallbackApplied, VerificationError> {
    if verifications::callback_seen(&state.ctx.db, &event_id)
        .await?
        .is_some()
    {
        return Ok(CallbackApplied::Replayed);
    }
    let v = load(state).await?;
    let events = workflow::on_buli2_callback(&v, &event_id, outcome, loan_reference)
        .map_err(VerificationError::from)?;
    let extras = Extras {
        callback: Some((event_id, outcome.as_str().to_string())),
        ..Default::default()
    };
    let events = by(BULI2, events);
    let docs = (DocOutcome::Pending, None);
    match commit(state, &v, events, extras, &docs).await {
        Ok(_) => Ok(CallbackApplied::Applied),
        Err(VerificationError::Store(e)) if e.is_unique_violation() => {
            Ok(CallbackApplied::Replayed)
        }
        Err(e) => Err(e),
    }
}
