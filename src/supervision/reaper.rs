//! Reaper: finds OCR runs that will not finish on their own and gives their documents back.
//!
//! Every `poll` (and once right after start) it reads the documents `processing` now:
//! - a run of this node past its deadline: the pool stops the worker holding it (the worker is
//!   restarted on reloaded models with back-off) and the document is requeued — or `failed`
//!   with `ocr_timeout` after its last attempt;
//! - a run of this node that this process does not run (left by an earlier process of this
//!   node that died): requeued as soon as its lease has expired (with in-process leases, at
//!   once: they died with that process);
//! - another node's run whose lease has expired (that node died): requeued; one whose node
//!   holds the lease but never reaped it, long past its deadline: requeued too.
//!
//! Every requeue is fenced by the run's token: a run that finished meanwhile, or a newer
//! claim, is left alone. With the lease service down the reaper cannot tell a dead node from a
//! live one and only handles this node's own runs.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{
    actors::{
        DocumentError,
        ocr::{self, Abandon, OcrPoolMsg},
    },
    store::{
        documents::{self, Running},
        leases::{LeaseKind, Leases},
        now_millis,
    },
};
use crate::{
    actors::{Documents, PoolSlot},
    resilience::Poller,
};

pub enum ReaperMsg {
    Tick,
}

impl ractor::Message for ReaperMsg {}

#[derive(Clone)]
pub struct ReaperArgs {
    pub documents: Documents,
    pub leases: Leases,
    /// The OCR pool of this node, when it runs one.
    pub pool: PoolSlot,
    pub poll: Poller,
    pub max_attempts: u32,
}

pub struct Reaper;

const ACTOR: &str = "system:reaper";
/// Rows read per look (runs in the whole cluster at once, plus dead nodes' leftovers).
const BATCH: u32 = 1_000;
/// How long the reaper waits for the pool (which may be reloading models).
const CALL_MS: u64 = 30_000;

impl Actor for Reaper {
    type Msg = ReaperMsg;
    type State = ReaperArgs;
    type Arguments = ReaperArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ReaperArgs,
    ) -> Result<ReaperArgs, ActorProcessingErr> {
        args.poll.start(&myself, || ReaperMsg::Tick);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ReaperMsg,
        args: &mut ReaperArgs,
    ) -> Result<(), ActorProcessingErr> {
        let ReaperMsg::Tick = msg;
        let _round = args.poll.round();
        let db = &args.documents.context().db;
        let rows = match documents::running(db, BATCH).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "reaper cannot read running OCR jobs");
                return Ok(());
            }
        };
        for row in rows {
            if let Some(why) = verdict(args, &row).await {
                let outcome = ocr::abandon(
                    &args.documents,
                    row.id,
                    row.fence,
                    args.max_attempts,
                    why,
                    ACTOR,
                )
                .await;
                match outcome {
                    Ok(()) => {}
                    // Finished or claimed again meanwhile: nothing to do.
                    Err(DocumentError::ClaimLost | DocumentError::Final(_)) => {}
                    Err(e) => {
                        tracing::warn!(document_id = %row.id, error = %e, "reaper could not requeue a run")
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether (and why) the run `row` must be given back.
async fn verdict(args: &ReaperArgs, row: &Running) -> Option<Abandon> {
    let now = now_millis();
    let overdue = row.deadline.is_some_and(|d| d < now);
    let leases = &args.leases;
    let id = row.id.to_string();
    let pool = args.pool.read().ok().and_then(|p| p.clone());
    if row.node.as_deref() == Some(leases.node()) {
        let here = match &pool {
            Some(pool) => {
                ractor::call_t!(pool, OcrPoolMsg::IsRunning, CALL_MS, row.id).unwrap_or(true)
            }
            None => false,
        };
        if here {
            if !overdue {
                return None;
            }
            let pool = pool?;
            // Stop the worker first, so it cannot write after the requeue.
            return match ractor::call_t!(pool, OcrPoolMsg::Reap, CALL_MS, row.id) {
                Ok(_) => Some(Abandon::Timeout),
                Err(_) => None,
            };
        }
        // Not running in this process: an earlier process of this node left it.
        return match leases.holder(LeaseKind::Document, &id).await {
            Ok(None) => Some(Abandon::NodeLost),
            _ => None,
        };
    }
    let long_overdue = row
        .deadline
        .is_some_and(|d| d + 2 * (leases.ttl().as_millis() as i64) < now);
    if !leases.shared() {
        // In-process leases say nothing about other nodes: only their deadline does.
        return long_overdue.then_some(Abandon::Timeout);
    }
    match leases.holder(LeaseKind::Document, &id).await {
        Ok(None) => Some(Abandon::NodeLost),
        Ok(Some(_)) if long_overdue => Some(Abandon::Timeout),
        _ => None,
    }
}
