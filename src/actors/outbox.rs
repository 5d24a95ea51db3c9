//! OutboxActor: delivers the transactional outbox. Every `poll` it takes the pending rows whose
//! time has come, oldest first, and runs one delivery round for each through the BULI2 client
//! (signed POST, `Idempotency-Key` = row id, retries with back-off and jitter, circuit
//! breaker). The result goes back through the verification's actor, which records the
//! delivery state in the audit trail and the row's state in one transaction:
//!
//! - 2xx → `sent`; a 4xx other than 408/429 → dead-lettered at once (retrying a refused
//!   payload is pointless);
//! - anything else → the round failed: `rounds + 1`, the next round scheduled durably
//!   (`next_attempt_at`, doubling delay); after `max_rounds` the row is dead-lettered;
//! - breaker open → nothing sent; rows wait for the next poll.
//!
//! The database is the queue: rows survive restarts and delivery resumes at the first poll. A
//! crash between BULI2's 2xx and our commit re-sends the row with the same key (BULI2 treats
//! it as a repeat), so a decision is never lost and never processed twice by BULI2.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{
    actors::verification::{VerificationId, VerificationMsg},
    buli2::{
        breaker::BreakerState,
        client::{Buli2Client, RoundOutcome},
    },
    clock::Clock,
    store::{
        Db,
        blobs::BlobStore,
        leases::{self, LeaseKind, Leases},
        outbox::{self, OutboxResult, OutboxRow, OutboxState},
        webhooks,
    },
    supervision::Verifications,
    telemetry::metrics::names,
};

/// Rows handled per poll.
const BATCH: u32 = 50;

pub enum OutboxMsg {
    Poll,
}

impl ractor::Message for OutboxMsg {}

#[derive(Clone)]
pub struct OutboxArgs {
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub clock: Clock,
    pub verifications: Verifications,
    pub client: Arc<Buli2Client>,
    /// One node delivers a row at a time: each round holds the row's lease.
    pub leases: Leases,
    /// BULI2 configured: decisions are delivered (otherwise they wait; webhooks still go).
    pub buli2: bool,
    pub poll: Duration,
    pub max_rounds: u32,
    pub round_delay: Duration,
    pub round_delay_max: Duration,
}

pub struct OutboxActor;

impl Actor for OutboxActor {
    type Msg = OutboxMsg;
    /// The arguments, and whether leases were unavailable at the last look (logged once).
    type State = (OutboxArgs, bool);
    type Arguments = OutboxArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OutboxArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(args.poll, || OutboxMsg::Poll);
        let _ = myself.cast(OutboxMsg::Poll);
        Ok((args, false))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: OutboxMsg,
        (args, paused): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let OutboxMsg::Poll = msg;
        let rows = match outbox::due(&args.db, args.clock.now_millis(), BATCH, args.buli2).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "outbox cannot read due rows");
                return Ok(());
            }
        };
        for row in rows {
            let lease = match args.leases.try_acquire(LeaseKind::Outbox, &row.id, 0).await {
                Ok(Some(lease)) => lease,
                // Another node is delivering it.
                Ok(None) => continue,
                Err(e) => {
                    if !*paused {
                        tracing::error!(error = %e, "outbox paused: no leases can be taken");
                        *paused = true;
                    }
                    break;
                }
            };
            if *paused {
                tracing::info!("outbox resumed: leases can be taken again");
                *paused = false;
            }
            // Re-read under the lease: another node may have delivered it since `due`.
            let current = outbox::get(&args.db, &row.id).await;
            let still_due = matches!(&current, Ok(Some(r)) if r.state == OutboxState::Pending
                && r.rounds == row.rounds && r.next_attempt_at <= args.clock.now_millis());
            let go_on =
                !still_due || leases::while_held(&args.leases, &lease, deliver(args, &row)).await;
            args.leases.release(&lease).await;
            if !go_on {
                break;
            }
        }
        Ok(())
    }
}

/// One round for one row. False when the breaker is open (stop this poll).
async fn deliver(args: &OutboxArgs, row: &OutboxRow) -> bool {
    let body = match args.blobs.open_text(&row.id, &row.payload) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(outbox_id = %row.id, error = %e, "outbox payload cannot be unsealed");
            finish(
                args,
                row,
                OutboxState::Dead,
                0,
                Some("payload_unsealable".into()),
            )
            .await;
            return true;
        }
    };
    let outcome = match row.kind.as_str() {
        "buli2_decision" => {
            args.client
                .deliver("/kyc/decisions", &row.id, body.as_bytes())
                .await
        }
        "webhook" => {
            let hook = match row.target.as_deref() {
                Some(id) => webhooks::get(&args.db, id).await.ok().flatten(),
                None => None,
            };
            let secret = hook
                .as_ref()
                .and_then(|h| args.blobs.open_text(&h.id, &h.secret).ok());
            let (Some(hook), Some(secret)) = (hook, secret) else {
                finish(
                    args,
                    row,
                    OutboxState::Dead,
                    0,
                    Some("webhook_missing".into()),
                )
                .await;
                return true;
            };
            args.client
                .deliver_webhook(&hook.url, &row.id, body.as_bytes(), secret.as_bytes())
                .await
        }
        other => {
            tracing::error!(outbox_id = %row.id, kind = other, "unknown outbox kind");
            finish(
                args,
                row,
                OutboxState::Dead,
                0,
                Some(format!("unknown kind {other}")),
            )
            .await;
            return true;
        }
    };
    let breaker = match args.client.breaker_state() {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    metrics::gauge!(names::BULI2_BREAKER_STATE).set(breaker);
    let decision = row.kind == "buli2_decision";
    if decision
        && let RoundOutcome::Delivered { attempts }
        | RoundOutcome::Rejected { attempts, .. }
        | RoundOutcome::Failed { attempts, .. } = &outcome
    {
        // Every call after a row's very first one is a retry.
        let first = u64::from(row.attempts == 0);
        metrics::counter!(names::BULI2_RETRY_COUNT)
            .increment(u64::from(*attempts).saturating_sub(first));
    }
    match outcome {
        RoundOutcome::Delivered { attempts } => {
            if decision {
                metrics::counter!(names::BULI2_FORWARD_COUNT).increment(1);
            }
            tracing::info!(outbox_id = %row.id, verification_id = %row.verification_id, attempts, "decision delivered to BULI2");
            finish(args, row, OutboxState::Sent, attempts, None).await;
        }
        RoundOutcome::Rejected { attempts, reason } => {
            tracing::warn!(outbox_id = %row.id, reason = %reason, "BULI2 refused the decision; dead-lettered");
            finish(args, row, OutboxState::Dead, attempts, Some(reason)).await;
        }
        RoundOutcome::Failed { attempts, reason } => {
            let rounds = row.rounds + 1;
            if rounds >= i64::from(args.max_rounds) {
                tracing::warn!(outbox_id = %row.id, rounds, reason = %reason, "delivery rounds exhausted; dead-lettered");
                finish(args, row, OutboxState::Dead, attempts, Some(reason)).await;
            } else {
                let factor = 2u32.saturating_pow((rounds - 1).clamp(0, 20) as u32);
                let delay = args
                    .round_delay
                    .saturating_mul(factor)
                    .min(args.round_delay_max);
                let now = args.clock.now_millis();
                let next = now + delay.as_millis() as i64;
                tracing::info!(outbox_id = %row.id, rounds, reason = %reason, retry_in_ms = delay.as_millis() as u64, "delivery round failed; rescheduled");
                if let Err(e) =
                    outbox::reschedule(&args.db, &row.id, i64::from(attempts), next, &reason, now)
                        .await
                {
                    tracing::warn!(outbox_id = %row.id, error = %e, "cannot reschedule outbox row");
                }
            }
        }
        // The breaker guards BULI2 only; webhook rounds never report it.
        RoundOutcome::BreakerOpen => return false,
    }
    true
}

/// Records a round's final result: a BULI2 decision's through the verification's actor
/// (delivery state in the audit trail, in the same transaction), a webhook's on the row alone.
async fn finish(
    args: &OutboxArgs,
    row: &OutboxRow,
    state: OutboxState,
    attempts: u32,
    error: Option<String>,
) {
    if state == OutboxState::Dead {
        metrics::counter!(names::OUTBOX_DEAD_LETTER_COUNT, "kind" => row.kind.clone()).increment(1);
    }
    let result = OutboxResult {
        id: row.id.clone(),
        state,
        attempts: i64::from(attempts),
        error,
    };
    let decision = row.kind == "buli2_decision";
    let recorded = match row.verification_id.parse::<VerificationId>() {
        Ok(vid) if decision => args
            .verifications
            .call(vid, |reply| VerificationMsg::OutboxResult {
                result: result.clone(),
                reply,
            })
            .await
            .map_err(|e| e.to_string()),
        _ => outbox::finish(&args.db, &result, args.clock.now_millis())
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = recorded {
        // The row stays pending: the next poll sends it again with the same Idempotency-Key.
        tracing::warn!(outbox_id = %row.id, error = %e, "delivery result not recorded; will resend");
    }
}
