//! OutboxActor: delivers BULI2's decisions from the transactional outbox. Every `poll` it takes
//! the pending decision rows whose time has come, oldest first, and runs one delivery round for
//! each through the BULI2 client (signed POST, `Idempotency-Key` = row id, retries with back-off
//! and jitter, circuit breaker). Webhooks have a lane of their own
//! (`crate::actors::webhook_lane`), so a client's slow endpoint never holds a decision back;
//! both lanes share the bookkeeping here:
//!
//! - 2xx → `sent`; a 4xx other than 408/429 → dead-lettered at once (retrying a refused
//!   payload is pointless);
//! - anything else → the round failed: `rounds + 1`, the next round scheduled durably
//!   (`next_attempt_at`, doubling delay); after `max_rounds` the row is dead-lettered;
//! - breaker open → nothing sent; rows wait for the next poll.
//!
//! A decision's result goes back through the verification's actor, which records the delivery
//! state in the audit trail and the row's state in one transaction. The database is the queue:
//! rows survive restarts and delivery resumes at the first poll. A crash between BULI2's 2xx
//! and our commit re-sends the row with the same key (BULI2 treats it as a repeat), so a
//! decision is never lost and never processed twice by BULI2. Each round holds the row's lease,
//! so one node delivers a row at a time.

use std::{future::Future, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::{
    actors::Verifications,
    actors::verification::{VerificationId, VerificationMsg},
    buli2::{
        breaker::BreakerState,
        client::{Buli2Client, RoundOutcome},
    },
    clock::Clock,
    resilience::{Backoff, Outage, Poller},
    store::{
        Db,
        blobs::BlobStore,
        leases::{self, LeaseKind, Leases},
        outbox::{self, Kind, OutboxResult, OutboxRow, OutboxState},
    },
    telemetry::{correlation::CorrelationId, metrics::names},
};

/// Rows handled per poll.
pub(crate) const BATCH: u32 = 50;

pub enum OutboxMsg {
    Poll,
}

impl ractor::Message for OutboxMsg {}

/// What both delivery lanes need: the queue, the leases and the round schedule.
#[derive(Clone)]
pub struct OutboxCommon {
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub clock: Clock,
    pub verifications: Verifications,
    /// One node delivers a row at a time: each round holds the row's lease.
    pub leases: Leases,
    pub poll: Poller,
    pub max_rounds: u32,
    pub round_delay: Duration,
    pub round_delay_max: Duration,
}

#[derive(Clone)]
pub struct OutboxArgs {
    pub common: OutboxCommon,
    pub client: Arc<Buli2Client>,
}

pub struct OutboxActor;

impl Actor for OutboxActor {
    type Msg = OutboxMsg;
    /// The arguments, and the lease service's outages (each logged once).
    type State = (OutboxArgs, Outage);
    type Arguments = OutboxArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OutboxArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.common.poll.start(&myself, || OutboxMsg::Poll);
        Ok((args, Outage::new("outbox")))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: OutboxMsg,
        (args, outage): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let OutboxMsg::Poll = msg;
        let _round = args.common.poll.round();
        let c = &args.common;
        let rows = match outbox::due(&c.db, c.clock.now_millis(), BATCH, Kind::Buli2Decision).await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "outbox cannot read due rows");
                return Ok(());
            }
        };
        for row in rows {
            let span = delivery_span(&row);
            let go_on = under_lease(c, &row, outage, deliver(args, &row))
                .instrument(span)
                .await;
            if go_on != Some(true) {
                break;
            }
        }
        Ok(())
    }
}

/// The span every log line of one row's delivery is written in: the row, its verification and
/// the correlation id of the request that started it.
pub(crate) fn delivery_span(row: &OutboxRow) -> tracing::Span {
    tracing::info_span!(
        "delivery",
        outbox_id = %row.id,
        kind = row.kind.as_str(),
        verification_id = %row.verification_id,
        correlation_id = row.correlation_id.as_deref().unwrap_or(""),
    )
}

/// Runs `work` while holding `row`'s lease, after re-reading the row (another node may have
/// delivered it since it was listed). `None`: leases are unavailable (stop this poll);
/// `Some(true)` when the row was skipped or `work` said go on.
pub(crate) async fn under_lease(
    c: &OutboxCommon,
    row: &OutboxRow,
    outage: &Outage,
    work: impl Future<Output = bool>,
) -> Option<bool> {
    let lease = match c.leases.try_acquire(LeaseKind::Outbox, &row.id, 0).await {
        Ok(Some(lease)) => lease,
        // Another node is delivering it.
        Ok(None) => return Some(true),
        Err(e) => {
            outage.record(false, &e);
            return None;
        }
    };
    outage.record(true, &"ok");
    let current = outbox::get(&c.db, &row.id).await;
    let still_due = matches!(&current, Ok(Some(r)) if r.state == OutboxState::Pending
        && r.rounds == row.rounds && r.next_attempt_at <= c.clock.now_millis());
    let go_on = !still_due || leases::while_held(&c.leases, &lease, work).await;
    c.leases.release(&lease).await;
    Some(go_on)
}

/// The row's sealed payload, or `None` after dead-lettering a row that cannot be unsealed.
pub(crate) async fn open_payload(c: &OutboxCommon, row: &OutboxRow) -> Option<String> {
    match c.blobs.open_text(&row.id, &row.payload) {
        Ok(body) => Some(body),
        Err(e) => {
            tracing::error!(error = %e, "outbox payload cannot be unsealed");
            let reason = "payload_unsealable".to_string();
            finish(c, row, OutboxState::Dead, 0, Some(reason)).await;
            None
        }
    }
}

/// One round for one decision row. False when the breaker is open (stop this poll).
async fn deliver(args: &OutboxArgs, row: &OutboxRow) -> bool {
    let c = &args.common;
    let Some(body) = open_payload(c, row).await else {
        return true;
    };
    let correlation = row.correlation_id.as_deref().and_then(CorrelationId::parse);
    let outcome = args
        .client
        .deliver(
            "/kyc/decisions",
            &row.id,
            body.as_bytes(),
            correlation.as_ref(),
        )
        .await;
    let breaker = match args.client.breaker_state() {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    metrics::gauge!(names::BULI2_BREAKER_STATE).set(breaker);
    if let RoundOutcome::Delivered { attempts }
    | RoundOutcome::Rejected { attempts, .. }
    | RoundOutcome::Failed { attempts, .. } = &outcome
    {
        // Every call after a row's very first one is a retry.
        let first = u64::from(row.attempts == 0);
        metrics::counter!(names::BULI2_RETRY_COUNT)
            .increment(u64::from(*attempts).saturating_sub(first));
    }
    if matches!(outcome, RoundOutcome::Delivered { .. }) {
        metrics::counter!(names::BULI2_FORWARD_COUNT).increment(1);
    }
    record_round(c, row, outcome).await
}

/// Records how a round ended: sent, dead-lettered, or rescheduled with a doubling delay.
/// False when the breaker was open (nothing was sent).
pub(crate) async fn record_round(c: &OutboxCommon, row: &OutboxRow, outcome: RoundOutcome) -> bool {
    match outcome {
        RoundOutcome::Delivered { attempts } => {
            tracing::info!(attempts, "delivered");
            finish(c, row, OutboxState::Sent, attempts, None).await;
        }
        RoundOutcome::Rejected { attempts, reason } => {
            tracing::warn!(reason = %reason, "refused by the receiver; dead-lettered");
            finish(c, row, OutboxState::Dead, attempts, Some(reason)).await;
        }
        RoundOutcome::Failed { attempts, reason } => {
            let rounds = row.rounds + 1;
            if rounds >= i64::from(c.max_rounds) {
                tracing::warn!(rounds, reason = %reason, "delivery rounds exhausted; dead-lettered");
                finish(c, row, OutboxState::Dead, attempts, Some(reason)).await;
            } else {
                let rounds_delay = Backoff::new(c.round_delay, c.round_delay_max);
                let delay = rounds_delay.after(u32::try_from(rounds).unwrap_or(u32::MAX));
                let now = c.clock.now_millis();
                let next = now + delay.as_millis() as i64;
                tracing::info!(rounds, reason = %reason, retry_in_ms = delay.as_millis() as u64, "delivery round failed; rescheduled");
                if let Err(e) =
                    outbox::reschedule(&c.db, &row.id, i64::from(attempts), next, &reason, now)
                        .await
                {
                    tracing::warn!(error = %e, "cannot reschedule outbox row");
                }
            }
        }
        RoundOutcome::BreakerOpen => return false,
    }
    true
}

/// Records a round's final result: a BULI2 decision's through the verification's actor
/// (delivery state in the audit trail, in the same transaction), a webhook's on the row alone.
async fn finish(
    c: &OutboxCommon,
    row: &OutboxRow,
    state: OutboxState,
    attempts: u32,
    error: Option<String>,
) {
    if state == OutboxState::Dead {
        metrics::counter!(names::OUTBOX_DEAD_LETTER_COUNT, "kind" => row.kind.as_str())
            .increment(1);
    }
    let result = OutboxResult {
        id: row.id.clone(),
        state,
        attempts: i64::from(attempts),
        error,
    };
    let recorded = match (row.kind, row.verification_id.parse::<VerificationId>()) {
        (Kind::Buli2Decision, Ok(vid)) => c
            .verifications
            .call(vid, |reply| VerificationMsg::OutboxResult {
                result: result.clone(),
                reply,
            })
            .await
            .map_err(|e| e.to_string()),
        _ => outbox::finish(&c.db, &result, c.clock.now_millis())
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = recorded {
        // The row stays pending: the next poll sends it again with the same Idempotency-Key.
        tracing::warn!(error = %e, "delivery result not recorded; will resend");
    }
}
