//! VerificationActor: the single writer for one KYC verification (the review workflow).
//!
//! Every input — creation, documents settled, a reviewer's signal, a timer — is a message in
//! this actor's mailbox, so a verification never handles two at once. The actor rebuilds its
//! state by replaying the verification's events ([`Verification::replay`]), asks the pure
//! workflow functions (`crate::kyc::workflow`) what the input means, and commits the resulting
//! events together with their side rows (signal answer, timer, outbox row) in one transaction
//! before anyone hears the answer (`commit`). Each input's handling is in `inputs`.
//!
//! Every log line of the actor carries the correlation id of the request that started the
//! verification (stored with it), whichever node and whichever restart handles it.

mod commit;
mod inputs;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use crate::kyc::VerificationId;
use crate::{
    actors::keyed::{IdleTracker, Keyed, KeyedArgs, KeyedMsg, Rejection},
    clock::Clock,
    kyc::workflow::{
        Buli2Outcome, Event, Policy, Refused, ReviewDecision, State, Verdict, Verification,
    },
    store::{
        Db, StoreError, blobs::BlobStore, leases::Leases, outbox::OutboxResult, verifications,
    },
};
use inputs::{apply_signal, buli2_callback, documents_settled, outbox_result, timer_due};

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
    /// The reviewer owns the case: nobody reviews their own.
    #[error("a reviewer never decides, confirms, corrects or cancels a case they own")]
    SelfReview,
    /// The second review came from the reviewer who proposed the decision.
    #[error("the second review must come from another reviewer")]
    FourEyesRequired,
    /// Another reviewer holds the case (until the service-clock time, ms).
    #[error("another reviewer holds the case")]
    ClaimedByOther { expires_at: i64 },
    /// A release of a case nobody holds.
    #[error("nobody holds the case")]
    NotClaimed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refused> for VerificationError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::State(current) => Self::State(current),
            Refused::SelfReview => Self::SelfReview,
            Refused::FourEyes => Self::FourEyesRequired,
            Refused::ClaimedByOther { expires_at } => Self::ClaimedByOther { expires_at },
            Refused::NotClaimed => Self::NotClaimed,
        }
    }
}

/// A reviewer's input, with a client-chosen id that makes it idempotent.
#[derive(Debug, Clone)]
pub struct Signal {
    pub signal_id: String,
    /// The subject who sent it (the principal recorded in the audit trail).
    pub principal: String,
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
    /// A second reviewer's verdict on a proposed decision (v3, four-eyes).
    SecondReview { verdict: Verdict, reason: String },
    Cancel {
        reason: String,
        /// Sent by an admin (who may act on a case a reviewer holds).
        admin: bool,
    },
    /// Take the case for `workflow.claim_ttl` (or renew one's own claim).
    Claim,
    /// Give a claim back (an admin may release anyone's).
    Release { admin: bool },
}

impl SignalKind {
    fn name(&self) -> &'static str {
        match self {
            Self::ReviewDecision { .. } => "review-decision",
            Self::SecondReview { .. } => "second-review",
            Self::Cancel { .. } => "cancel-review",
            Self::Claim => "claim",
            Self::Release { .. } => "release",
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
    /// Start a verification (the caller checked the documents), on behalf of the request
    /// with `correlation_id`.
    Create {
        started: Box<Event>,
        correlation_id: Option<String>,
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
    /// How long a reviewer's claim holds.
    pub claim_ttl: Duration,
    pub idle_after: Duration,
    /// Every commit holds the verification's lease and writes with its token.
    pub leases: Leases,
    /// How long a commit waits for a lease another node holds.
    pub lease_wait: Duration,
    /// Verifications one owner may have in progress at once.
    pub max_active_per_owner: u32,
}

pub struct VerificationState {
    id: VerificationId,
    ctx: Arc<VerificationContext>,
    supervisor: ActorRef<KeyedMsg<VerificationActor>>,
    /// `None` until first needed, then the replayed state (dropped after a failed write).
    cached: Option<Verification>,
    /// The correlation id stored with the verification (`None` until read, or for old rows).
    correlation: Option<String>,
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
            correlation: None,
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
        if let VerificationMsg::Create { correlation_id, .. } = &msg {
            state.correlation.clone_from(correlation_id);
        } else if state.correlation.is_none() && VerificationActor::is_work(&msg) {
            state.correlation = verifications::correlation_id(&state.ctx.db, &state.id.to_string())
                .await
                .ok()
                .flatten();
        }
        let span = tracing::info_span!(
            "verification",
            verification_id = %state.id,
            correlation_id = state.correlation.as_deref().unwrap_or(""),
        );
        handle_msg(msg, state).instrument(span).await;
        Ok(())
    }
}

async fn handle_msg(msg: VerificationMsg, state: &mut VerificationState) {
    {
        match msg {
            VerificationMsg::Create {
                started,
                correlation_id,
                reply,
            } => {
                let _ = reply.send(create(state, *started, correlation_id.as_deref()).await);
            }
            VerificationMsg::Signal { signal, reply } => {
                let _ = reply.send(apply_signal(state, *signal).await);
            }
            VerificationMsg::DocumentsSettled => {
                match documents_settled(state).await {
                    Ok(()) => {}
                    // Another node is on it, or Redis is down (reported by readiness).
                    Err(e @ VerificationError::Busy(_)) => {
                        tracing::debug!(error = %e, "verification busy; will retry")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "checking documents failed; will retry")
                    }
                }
            }
            VerificationMsg::TimerDue { timer_id } => match timer_due(state, &timer_id).await {
                Ok(()) => {}
                Err(e @ VerificationError::Busy(_)) => {
                    tracing::debug!(error = %e, "verification busy; will retry")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "timer handling failed; will retry")
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
    }
}

async fn create(
    state: &mut VerificationState,
    started: Event,
    correlation_id: Option<&str>,
) -> Result<Verification, VerificationError> {
    let now = state.ctx.clock.now_millis();
    let v = Verification::start(&state.id.to_string(), &started, now)
        .ok_or_else(|| VerificationError::Corrupt("create needs a `started` event".into()))?;
    let max = state.ctx.max_active_per_owner;
    verifications::insert(&state.ctx.db, &v, &started, correlation_id, max).await?;
    tracing::info!(
        workflow_version = v.workflow_version,
        "verification started"
    );
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
