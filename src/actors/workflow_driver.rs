//! WorkflowDriver: the durable part of the workflow's waiting. Nothing a verification waits
//! for lives only in memory: every `poll` the driver reads from the database which
//! verifications have all their documents settled and which timers are due (by the service
//! clock), and nudges their actors. After a restart the first poll picks up everything that
//! happened — or fell due — while the node was down. Nudges are idempotent: an actor that has
//! already moved on ignores them.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{
    actors::Verifications,
    actors::verification::{VerificationId, VerificationMsg},
    clock::Clock,
    resilience::Poller,
    store::{Db, verifications},
};

/// Verifications and timers handled per poll (the rest wait for the next one).
const BATCH: u32 = 200;

pub enum DriverMsg {
    Poll,
}

impl ractor::Message for DriverMsg {}

#[derive(Clone)]
pub struct DriverArgs {
    pub db: Db,
    pub clock: Clock,
    pub verifications: Verifications,
    pub poll: Poller,
}

pub struct WorkflowDriver;

impl Actor for WorkflowDriver {
    type Msg = DriverMsg;
    type State = DriverArgs;
    type Arguments = DriverArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DriverArgs,
    ) -> Result<DriverArgs, ActorProcessingErr> {
        args.poll.start(&myself, || DriverMsg::Poll);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: DriverMsg,
        args: &mut DriverArgs,
    ) -> Result<(), ActorProcessingErr> {
        let DriverMsg::Poll = msg;
        let _round = args.poll.round();
        match verifications::ready_to_check(&args.db, BATCH).await {
            Ok(ids) => {
                for id in ids {
                    if let Ok(id) = id.parse::<VerificationId>() {
                        args.verifications
                            .nudge(id, VerificationMsg::DocumentsSettled);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "workflow driver cannot read verifications"),
        }
        match verifications::due_timers(&args.db, args.clock.now_millis(), BATCH).await {
            Ok(timers) => {
                for (timer_id, id) in timers {
                    if let Ok(id) = id.parse::<VerificationId>() {
                        args.verifications
                            .nudge(id, VerificationMsg::TimerDue { timer_id });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "workflow driver cannot read timers"),
        }
        Ok(())
    }
}
