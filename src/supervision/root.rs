//! RootSupervisor: the top of the actor tree.
//!
//! Policy: a failed keyed supervisor (documents, verifications) is restarted after an
//! exponential back-off (100 ms doubling to 5 s); more failures within the window than
//! `supervisors.max_restarts` allows means the node is unhealthy, so the root stops itself (escalation), which
//! the application treats as fatal and shuts down instead of serving half a tree. A failed
//! workflow driver, outbox lane (decisions or webhooks), reaper or challenger model is restarted after a second:
//! none holds state (the database is their queue). The OCR pool escalates here when its workers keep failing; it is
//! restarted (models reloaded) with the same back-off, and after `ocr.max_restarts` pool
//! failures within `ocr.restart_window` it stays down: uploads are still accepted and wait
//! `queued`, and `/health/ready` says OCR is stopped, rather than the whole node going down
//! with it.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{
    keyed::{KeyedSupervisor, KeyedSupervisorArgs},
    reaper::{Reaper, ReaperArgs, ReaperMsg},
};
use crate::actors::{
    challenger::{Challenger, ChallengerArgs, ChallengerMsg},
    document::{DocumentActor, DocumentContext},
    keyed::{Keyed, KeyedMsg, Slot},
    ocr::{OcrPool, OcrPoolArgs, OcrPoolMsg},
    outbox::{OutboxActor, OutboxArgs, OutboxMsg},
    verification::{VerificationActor, VerificationContext},
    webhook_lane::{WebhookLane, WebhookLaneArgs, WebhookLaneMsg},
    workflow_driver::{DriverArgs, DriverMsg, WorkflowDriver},
};
use crate::resilience::{Backoff, RestartBudget, RestartPolicy};

/// The children the root starts, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    Documents,
    Verifications,
    Driver,
    Ocr,
    Outbox,
    Webhooks,
    Reaper,
    Challenger,
}

pub enum RootMsg {
    /// Start (again) one child.
    Start(Child),
}

impl ractor::Message for RootMsg {}

pub struct RootArgs {
    /// Each keyed supervisor's context, slot, and restart policy for its actors.
    pub documents: (Arc<DocumentContext>, Slot<DocumentActor>, RestartPolicy),
    pub verifications: (
        Arc<VerificationContext>,
        Slot<VerificationActor>,
        RestartPolicy,
    ),
    /// Failures of the keyed supervisors themselves tolerated per window.
    pub supervisors: RestartPolicy,
    /// The OCR pool's arguments; `None` when this node runs no OCR.
    pub ocr: Option<OcrPoolArgs>,
    pub driver: DriverArgs,
    /// The decisions lane's arguments; `None` when BULI2 is not configured (rows wait) or on a
    /// node without the `outbox` role.
    pub outbox: Option<OutboxArgs>,
    /// The webhook lane's arguments; `None` on a node without the `outbox` role.
    pub webhooks: Option<WebhookLaneArgs>,
    pub reaper: ReaperArgs,
    /// The challenger model's arguments; `None` when none is configured or this node reads
    /// nothing itself.
    pub challenger: Option<ChallengerArgs>,
}

pub struct RootState {
    args: RootArgs,
    documents: Option<ActorRef<KeyedMsg<DocumentActor>>>,
    verifications: Option<ActorRef<KeyedMsg<VerificationActor>>>,
    driver: Option<ActorRef<DriverMsg>>,
    ocr: Option<ActorRef<OcrPoolMsg>>,
    outbox: Option<ActorRef<OutboxMsg>>,
    webhooks: Option<ActorRef<WebhookLaneMsg>>,
    reaper: Option<ActorRef<ReaperMsg>>,
    challenger: Option<ActorRef<ChallengerMsg>>,
    failures: RestartBudget,
    ocr_failures: RestartBudget,
}

/// Between restarts of a failed child of the root.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// Before restarting a child that holds no state (its queue is the database).
const STATELESS_RESTART: Duration = Duration::from_secs(1);

pub struct RootSupervisor;

async fn start_keyed<A: Keyed>(
    myself: &ActorRef<RootMsg>,
    ctx: &Arc<A::Context>,
    slot: &Slot<A>,
    restarts: RestartPolicy,
) -> Result<ActorRef<KeyedMsg<A>>, ActorProcessingErr> {
    let args = KeyedSupervisorArgs::<A> {
        ctx: ctx.clone(),
        restarts,
    };
    let (sup, _) = Actor::spawn_linked(
        None,
        KeyedSupervisor::<A>::default(),
        args,
        myself.get_cell(),
    )
    .await?;
    if let Ok(mut s) = slot.write() {
        *s = Some(sup.clone());
    }
    Ok(sup)
}

fn clear<A: Keyed>(slot: &Slot<A>) {
    if let Ok(mut s) = slot.write() {
        *s = None;
    }
}

fn is<M>(child: &Option<ActorRef<M>>, cell: &ActorCell) -> bool {
    child.as_ref().is_some_and(|c| c.get_id() == cell.get_id())
}

impl RootState {
    async fn start(
        &mut self,
        myself: &ActorRef<RootMsg>,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        match child {
            Child::Documents if self.documents.is_none() => {
                let (ctx, slot, restarts) = &self.args.documents;
                self.documents = Some(start_keyed(myself, ctx, slot, *restarts).await?);
            }
            Child::Verifications if self.verifications.is_none() => {
                let (ctx, slot, restarts) = &self.args.verifications;
                self.verifications = Some(start_keyed(myself, ctx, slot, *restarts).await?);
            }
            Child::Driver if self.driver.is_none() => {
                let args = self.args.driver.clone();
                let (d, _) =
                    Actor::spawn_linked(None, WorkflowDriver, args, myself.get_cell()).await?;
                self.driver = Some(d);
            }
            Child::Ocr if self.ocr.is_none() => {
                if let Some(args) = self.args.ocr.clone()
                    && (!args.devices.is_empty() || args.roster.is_some())
                {
                    let (pool, _) =
                        Actor::spawn_linked(None, OcrPool, args, myself.get_cell()).await?;
                    if let Ok(mut slot) = self.args.reaper.pool.write() {
                        *slot = Some(pool.clone());
                    }
                    self.ocr = Some(pool);
                }
            }
            Child::Outbox if self.outbox.is_none() => {
                if let Some(args) = self.args.outbox.clone() {
                    let (o, _) =
                        Actor::spawn_linked(None, OutboxActor, args, myself.get_cell()).await?;
                    self.outbox = Some(o);
                }
            }
            Child::Webhooks if self.webhooks.is_none() => {
                if let Some(args) = self.args.webhooks.clone() {
                    let (w, _) =
                        Actor::spawn_linked(None, WebhookLane, args, myself.get_cell()).await?;
                    self.webhooks = Some(w);
                }
            }
            Child::Reaper if self.reaper.is_none() => {
                let args = self.args.reaper.clone();
                let (r, _) = Actor::spawn_linked(None, Reaper, args, myself.get_cell()).await?;
                self.reaper = Some(r);
            }
            Child::Challenger if self.challenger.is_none() => {
                if let Some(args) = self.args.challenger.clone() {
                    let (c, _) =
                        Actor::spawn_linked(None, Challenger, args, myself.get_cell()).await?;
                    self.challenger = Some(c);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies the policy to a failed `child` (already forgotten): restart it after a
    /// back-off, leave the OCR pool down, or escalate.
    fn failed(&mut self, myself: &ActorRef<RootMsg>, child: Child, err: &str) {
        tracing::error!(child = ?child, error = %err, "child of the root failed");
        metrics::counter!(
            crate::telemetry::metrics::names::ACTOR_RESTART_COUNT,
            "kind" => format!("{child:?}").to_lowercase()
        )
        .increment(1);
        if matches!(
            child,
            Child::Driver | Child::Outbox | Child::Webhooks | Child::Reaper | Child::Challenger
        ) {
            myself.send_after(STATELESS_RESTART, move || RootMsg::Start(child));
            return;
        }
        let budget = match child {
            Child::Ocr => &mut self.ocr_failures,
            _ => &mut self.failures,
        };
        let count = budget.fail();
        if !budget.exhausted() {
            myself.send_after(BACKOFF.after(count), move || RootMsg::Start(child));
        } else if child == Child::Ocr {
            tracing::error!("the OCR pool keeps failing; leaving it stopped (uploads wait queued)");
        } else {
            tracing::error!("supervisors keep failing; escalating (stopping the tree)");
            myself.stop(Some("supervisor restart limit reached".into()));
        }
    }

    /// Which child `cell` is, forgetting it (and emptying its slot).
    fn forget(&mut self, cell: &ActorCell) -> Option<Child> {
        if is(&self.documents, cell) {
            self.documents = None;
            clear(&self.args.documents.1);
            Some(Child::Documents)
        } else if is(&self.verifications, cell) {
            self.verifications = None;
            clear(&self.args.verifications.1);
            Some(Child::Verifications)
        } else if is(&self.driver, cell) {
            self.driver = None;
            Some(Child::Driver)
        } else if is(&self.ocr, cell) {
            self.ocr = None;
            if let Ok(mut slot) = self.args.reaper.pool.write() {
                *slot = None;
            }
            Some(Child::Ocr)
        } else if is(&self.outbox, cell) {
            self.outbox = None;
            Some(Child::Outbox)
        } else if is(&self.webhooks, cell) {
            self.webhooks = None;
            Some(Child::Webhooks)
        } else if is(&self.reaper, cell) {
            self.reaper = None;
            Some(Child::Reaper)
        } else if is(&self.challenger, cell) {
            self.challenger = None;
            Some(Child::Challenger)
        } else {
            None
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let failures = args.supervisors.budget();
        let ocr_failures = args
            .ocr
            .as_ref()
            .map_or(args.supervisors, |o| o.restarts)
            .budget();
        let mut state = RootState {
            args,
            documents: None,
            verifications: None,
            driver: None,
            ocr: None,
            outbox: None,
            webhooks: None,
            reaper: None,
            challenger: None,
            failures,
            ocr_failures,
        };
        for child in [
            Child::Documents,
            Child::Verifications,
            Child::Driver,
            Child::Ocr,
            Child::Outbox,
            Child::Webhooks,
            Child::Reaper,
        ] {
            state.start(&myself, child).await?;
        }
        // A challenger that cannot start (its device, its weights) never takes the node down:
        // it is retried like any stateless child.
        if let Err(e) = state.start(&myself, Child::Challenger).await {
            state.failed(&myself, Child::Challenger, &e.to_string());
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        clear(&state.args.documents.1);
        clear(&state.args.verifications.1);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let RootMsg::Start(child) = msg;
        // A restart that fails (models that no longer load, a database gone) counts as another
        // failure of that child, never as a failure of the root.
        if let Err(e) = state.start(&myself, child).await {
            state.failed(&myself, child, &e.to_string());
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(child) = state.forget(&cell) else {
                    return Ok(());
                };
                state.failed(&myself, child, &err.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(child) = state.forget(&cell) {
                    tracing::info!(child = ?child, reason = ?reason, "child of the root stopped");
                }
            }
            SupervisionEvent::ActorStarted(_) => {}
            SupervisionEvent::ProcessGroupChanged(_) => {}
            SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}
