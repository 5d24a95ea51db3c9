//! VerificationActor: the single writer for one KYC verification (the review workflow).
//!
//! Every input — creation, documents settled, a reviewer's signal, a timer — is a message in
//! this actor's mailbox, so a verification never handles two at once. The actor rebuilds its
//! state by replaying the verification's events ([`Verification::replay`]), asks the pure
//! workflow functions (`crate::kyc::workflow`) what the input means, and commits the resulting
//! events together with their side rows (signal answer, timer, outbox row) in one transaction
//! before anyone hears the answer.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::kyc::VerificationId;
use crate::{
    clock::Clock,
    kyc::{
        DocumentId,
        card::CardReading,
        workflow::{
            self, Buli2Outcome, Delivery, DocOutcome, Event, Policy, Refused, ReviewDecision,
            ReviewInput, State, Verification,
        },
    },
    store::{
        Db, StoreError,
        blobs::BlobStore,
        documents::{self, DocumentStatus},
        leases::{LeaseKind, Leases},
        outbox::{self, OutboxResult, OutboxState},
        verifications::{self, Extras, NewOutbox, SignalRecord},
        webhooks,
    },
    supervision::keyed::{IdleTracker, Keyed, KeyedArgs, KeyedMsg, Rejection},
    telemetry::metrics::names,
};

/// Who the workflow itself acts as in the audit trail.
pub const SYSTEM: &str = "system:workflow";
/// BULI2's callbacks in the audit trail.
pub const BULI2: &str = "buli2";

#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error("verification not found")]
    NotFound,
    #[error("the verification is {}", .0.as_str())]
    State(State),
    #[error("this signal id was used with a different request")]
    SignalReused,
    #[error("verification is temporarily unavailable (its actor keeps failing)")]
    Quarantined,
    #[error("verification actor failed while handling the request")]
    ActorFailed,
    #[error("verification actor did not answer in time")]
    Timeout,
    #[error("the actor system is shutting down")]
    ShuttingDown,
    #[error("stored verification is inconsistent: {0}")]
    Corrupt(String),
    /// Another node holds the verification's lease (it is working on it), or leases cannot be
    /// taken (Redis down). Nothing changed; retry.
    #[error("verification is busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A reviewer's input, with a client-chosen id that makes it idempotent.
#[derive(Debug, Clone)]
pub struct Signal {
    pub signal_id: String,
    /// The subject who sent it.
    pub actor: String,
    /// Hash of the request: the same id with another request is refused.
    pub request_hash: String,
    pub kind: SignalKind,
}

#[derive(Debug, Clone)]
pub enum SignalKind {
    ReviewDecision {
        decision: ReviewDecision,
        reason: String,
        corrected: BTreeMap<String, String>,
    },
    Cancel {
        reason: String,
    },
}

impl SignalKind {
    fn name(&self) -> &'static str {
        match self {
            Self::ReviewDecision { .. } => "review-decision",
            Self::Cancel { .. } => "cancel-review",
        }
    }
}

/// Whether a BULI2 callback changed anything (a replayed event id does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackApplied {
    Applied,
    Replayed,
}

/// The answer to a signal, remembered with it: a replay answers exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalReceipt {
    pub verification_id: String,
    pub signal_id: String,
    pub signal: String,
    pub state: State,
    /// The verification's event count after the signal.
    pub version: i64,
    pub applied_at: i64,
}

type Reply<T> = RpcReplyPort<Result<T, VerificationError>>;

pub enum VerificationMsg {
    /// Start a verification (the caller checked the documents).
    Create {
        started: Box<Event>,
        reply: Reply<Verification>,
    },
    /// Apply a reviewer's signal; answers after commit.
    Signal {
        signal: Box<Signal>,
        reply: Reply<SignalReceipt>,
    },
    /// Its documents may have settled: check and decide if so.
    DocumentsSettled,
    /// A durable timer of this verification is due.
    TimerDue {
        timer_id: String,
    },
    /// The outbox finished delivering this verification's decision (sent or dead).
    OutboxResult {
        result: OutboxResult,
        reply: Reply<()>,
    },
    /// BULI2's signed callback (already verified); answers whether it was new.
    Buli2Callback {
        event_id: String,
        outcome: Buli2Outcome,
        loan_reference: Option<String>,
        reply: Reply<CallbackApplied>,
    },
    /// Test and query helper: the state as replayed from the events.
    Replayed {
        reply: Reply<Verification>,
    },
    IdleTick,
}

impl ractor::Message for VerificationMsg {}

impl VerificationMsg {
    fn reject(self, err: VerificationError) {
        match self {
            Self::Create { reply, .. } | Self::Replayed { reply } => {
                let _ = reply.send(Err(err));
            }
            Self::Signal { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::OutboxResult { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Buli2Callback { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::DocumentsSettled | Self::TimerDue { .. } | Self::IdleTick => {}
        }
    }
}

/// What every verification actor shares.
pub struct VerificationContext {
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub clock: Clock,
    pub policy: Policy,
    pub review_sla: Duration,
    pub idle_after: Duration,
    /// Every commit holds the verification's lease and writes with its token.
    pub leases: Leases,
    /// How long a commit waits for a lease another node holds.
    pub lease_wait: Duration,
}

pub struct VerificationState {
    id: VerificationId,
    ctx: Arc<VerificationContext>,
    supervisor: ActorRef<KeyedMsg<VerificationActor>>,
    /// `None` until first needed, then the replayed state (dropped after a failed write).
    cached: Option<Verification>,
    idle: IdleTracker,
}

#[derive(Default)]
pub struct VerificationActor;

impl Keyed for VerificationActor {
    type Key = VerificationId;
    type Context = VerificationContext;
    const KIND: &'static str = "verification";

    fn reject(msg: VerificationMsg, why: Rejection) {
        msg.reject(match why {
            Rejection::Quarantined => VerificationError::Quarantined,
            Rejection::ActorFailed => VerificationError::ActorFailed,
        });
    }

    fn is_work(msg: &VerificationMsg) -> bool {
        !matches!(msg, VerificationMsg::IdleTick)
    }
}

impl Actor for VerificationActor {
    type Msg = VerificationMsg;
    type State = VerificationState;
    type Arguments = KeyedArgs<VerificationActor>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let idle = IdleTracker::start(&myself, args.ctx.idle_after, || VerificationMsg::IdleTick);
        Ok(VerificationState {
            id: args.id,
            ctx: args.ctx,
            supervisor: args.supervisor,
            cached: None,
            idle,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if VerificationActor::is_work(&msg) {
            state.idle.worked();
        }
        match msg {
            VerificationMsg::Create { started, reply } => {
                let _ = reply.send(create(state, *started).await);
            }
            VerificationMsg::Signal { signal, reply } => {
                let _ = reply.send(apply_signal(state, *signal).await);
            }
            VerificationMsg::DocumentsSettled => {
                match documents_settled(state).await {
                    Ok(()) => {}
                    // Another node is on it, or Redis is down (reported by readiness).
                    Err(e @ VerificationError::Busy(_)) => {
                        tracing::debug!(verification_id = %state.id, error = %e, "verification busy; will retry")
                    }
                    Err(e) => {
                        tracing::warn!(verification_id = %state.id, error = %e, "checking documents failed; will retry")
                    }
                }
            }
            VerificationMsg::TimerDue { timer_id } => match timer_due(state, &timer_id).await {
                Ok(()) => {}
                Err(e @ VerificationError::Busy(_)) => {
                    tracing::debug!(verification_id = %state.id, error = %e, "verification busy; will retry")
                }
                Err(e) => {
                    tracing::warn!(verification_id = %state.id, error = %e, "timer handling failed; will retry")
                }
            },
            VerificationMsg::OutboxResult { result, reply } => {
                let _ = reply.send(outbox_result(state, result).await);
            }
            VerificationMsg::Buli2Callback {
                event_id,
                outcome,
                loan_reference,
                reply,
            } => {
                let _ = reply.send(buli2_callback(state, event_id, outcome, loan_reference).await);
            }
            VerificationMsg::Replayed { reply } => {
                state.cached = None;
                let _ = reply.send(load(state).await);
            }
            VerificationMsg::IdleTick => {
                state.idle.tick::<VerificationActor>(
                    state.id,
                    state.ctx.idle_after,
                    &state.supervisor,
                );
            }
        }
        Ok(())
    }
}

async fn create(
    state: &mut VerificationState,
    started: Event,
) -> Result<Verification, VerificationError> {
    let now = state.ctx.clock.now_millis();
    let v = Verification::start(&state.id.to_string(), &started, now)
        .ok_or_else(|| VerificationError::Corrupt("create needs a `started` event".into()))?;
    verifications::insert(&state.ctx.db, &v, &started).await?;
    state.cached = Some(v.clone());
    Ok(v)
}

/// The verification as its events make it (cached after the first replay).
async fn load(state: &mut VerificationState) -> Result<Verification, VerificationError> {
    if let Some(v) = &state.cached {
        return Ok(v.clone());
    }
    let id = state.id.to_string();
    let log = verifications::events(&state.ctx.db, &id).await?;
    if log.is_empty() {
        return Err(VerificationError::NotFound);
    }
    let events: Vec<(Event, i64)> = log.into_iter().map(|e| (e.event, e.created_at)).collect();
    let v = Verification::replay(&id, &events)
        .map_err(|e| VerificationError::Corrupt(e.to_string()))?;
    state.cached = Some(v.clone());
    Ok(v)
}

/// What the workflow sees of one document.
async fn outcome(ctx: &VerificationContext, id: &str) -> Result<DocOutcome, VerificationError> {
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
        DocumentStatus::Extracted => match documents::open_fields(&ctx.blobs, &record) {
            Some(opened) => {
                let fields: BTreeMap<String, String> =
                    serde_json::from_value(opened["fields"].clone()).unwrap_or_default();
                let confidence: BTreeMap<String, f32> =
                    serde_json::from_value(opened["confidence"].clone()).unwrap_or_default();
                DocOutcome::Extracted(CardReading {
                    fields,
                    confidence,
                    issues: record.issues,
                })
            }
            None => DocOutcome::Failed {
                reason: "unsealable".into(),
            },
        },
    })
}

async fn outcomes(
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

/// Events tagged with who caused them, for the audit trail.
fn by(actor: &str, events: Vec<Event>) -> Vec<(Event, String)> {
    events.into_iter().map(|e| (e, actor.to_string())).collect()
}

/// Applies `events` to `before`, writes them with `extras` (plus the outbox row when the
/// verification becomes final) in one transaction, and caches the result.
async fn commit(
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
fn advance(
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
async fn commit_after(
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
    if let Some(sealed) = &v.sealed_corrections {
        let opened = ctx
            .blobs
            .open_text(&v.id, sealed)
            .map_err(|e| VerificationError::Corrupt(format!("corrections: {e}")))?;
        let corrected: BTreeMap<String, String> = serde_json::from_str(&opened)
            .map_err(|e| VerificationError::Corrupt(format!("corrections: {e}")))?;
        fields.extend(corrected);
    }
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
        kind: "buli2_decision".into(),
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
                kind: "webhook".into(),
                target: Some(hook.id),
                payload: sealed,
            })
        })
        .collect()
}

async fn documents_settled(state: &mut VerificationState) -> Result<(), VerificationError> {
    let v = load(state).await?;
    if v.state != State::AwaitingDocuments {
        return Ok(());
    }
    let docs = outcomes(&state.ctx, &v).await?;
    let now = state.ctx.clock.now_millis();
    let sla_ms = state.ctx.review_sla.as_millis() as i64;
    let ids = || (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let Some(events) = workflow::on_documents(
        &v,
        &docs.0,
        docs.1.as_ref(),
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
        ..Default::default()
    };
    let events = by(SYSTEM, events);
    commit(state, &v, events, extras, &docs).await?;
    Ok(())
}

async fn timer_due(state: &mut VerificationState, timer_id: &str) -> Result<(), VerificationError> {
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

async fn apply_signal(
    state: &mut VerificationState,
    signal: Signal,
) -> Result<SignalReceipt, VerificationError> {
    let id = state.id.to_string();
    if let Some(done) = verifications::find_signal(&state.ctx.db, &id, &signal.signal_id).await? {
        return replay_answer(&done, &signal);
    }
    let v = load(state).await?;
    let docs = outcomes(&state.ctx, &v).await?;
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
            workflow::on_review_decision(&v, input, &docs.0, docs.1.as_ref())
        }
        SignalKind::Cancel { reason } => workflow::on_cancel(&v, &signal.signal_id, reason),
    }
    .map_err(|Refused(current)| VerificationError::State(current))?;

    let events: Vec<(Event, String)> = events
        .into_iter()
        .map(|e| {
            let actor = match &e {
                Event::NpwpRechecked { .. } => SYSTEM.to_string(),
                _ => signal.actor.clone(),
            };
            (e, actor)
        })
        .collect();
    let now = state.ctx.clock.now_millis();
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
        spend_timer: v.sla_timer_id.clone(),
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

fn replay_answer(done: &SignalRecord, signal: &Signal) -> Result<SignalReceipt, VerificationError> {
    if done.request_hash != signal.request_hash || done.kind != signal.kind.name() {
        return Err(VerificationError::SignalReused);
    }
    serde_json::from_str(&done.response)
        .map_err(|e| VerificationError::Corrupt(format!("stored signal answer: {e}")))
}

async fn outbox_result(
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

async fn buli2_callback(
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
        .map_err(|Refused(current)| VerificationError::State(current))?;
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
