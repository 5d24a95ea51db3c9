//! RootSupervisor: the top of the actor tree.
//!
//! Policy: a failed DocumentSupervisor is restarted after an exponential back-off (100 ms
//! doubling to 5 s); more than `max_restarts` failures within `restart_window` means the
//! node is unhealthy, so the root stops itself (escalation), which the application treats as
//! fatal and shuts down instead of serving half a tree. A failed OCR pool is restarted after
//! a second (it holds no state: the database is its queue).

use std::{collections::VecDeque, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use super::{
    SupervisorSlot,
    documents::{DocumentSupervisor, DocumentSupervisorArgs},
};
use crate::actors::{
    document::DocumentContext,
    ocr::{OcrPool, OcrPoolArgs, OcrPoolMsg},
};

#[derive(RactorMessage)]
pub enum RootMsg {
    /// Start (again) the DocumentSupervisor.
    StartDocuments,
    /// Start (again) the OCR pool.
    StartOcr,
}

pub struct RootArgs {
    pub ctx: Arc<DocumentContext>,
    pub slot: SupervisorSlot,
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// The OCR pool's arguments; `None` when this node runs no OCR.
    pub ocr: Option<OcrPoolArgs>,
}

pub struct RootState {
    args: RootArgs,
    documents: Option<ActorRef<super::documents::DocumentSupervisorMsg>>,
    ocr: Option<ActorRef<OcrPoolMsg>>,
    failures: VecDeque<Instant>,
}

pub struct RootSupervisor;

impl RootState {
    async fn start_documents(
        &mut self,
        myself: &ActorRef<RootMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let args = DocumentSupervisorArgs {
            ctx: self.args.ctx.clone(),
            max_restarts: self.args.max_restarts,
            restart_window: self.args.restart_window,
        };
        let (sup, _) =
            Actor::spawn_linked(None, DocumentSupervisor, args, myself.get_cell()).await?;
        if let Ok(mut slot) = self.args.slot.write() {
            *slot = Some(sup.clone());
        }
        self.documents = Some(sup);
        Ok(())
    }

    async fn start_ocr(&mut self, myself: &ActorRef<RootMsg>) -> Result<(), ActorProcessingErr> {
        if let Some(args) = self.args.ocr.clone()
            && !args.devices.is_empty()
        {
            let (pool, _) = Actor::spawn_linked(None, OcrPool, args, myself.get_cell()).await?;
            self.ocr = Some(pool);
        }
        Ok(())
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
        let mut state = RootState {
            args,
            documents: None,
            ocr: None,
            failures: VecDeque::new(),
        };
        state.start_documents(&myself).await?;
        state.start_ocr(&myself).await?;
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        if let Ok(mut slot) = state.args.slot.write() {
            *slot = None;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::StartDocuments => {
                if state.documents.is_none() {
                    state.start_documents(&myself).await?;
                }
            }
            RootMsg::StartOcr => {
                if state.ocr.is_none() {
                    state.start_ocr(&myself).await?;
                }
            }
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
            SupervisionEvent::ActorFailed(cell, err)
                if state
                    .ocr
                    .as_ref()
                    .is_some_and(|o| o.get_id() == cell.get_id()) =>
            {
                // The pool keeps no state of its own (the database is its queue): restart it.
                tracing::error!(error = %err, "OCR pool failed; restarting it");
                state.ocr = None;
                myself.send_after(Duration::from_secs(1), || RootMsg::StartOcr);
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let is_documents = state
                    .documents
                    .as_ref()
                    .is_some_and(|d| d.get_id() == cell.get_id());
                if !is_documents {
                    return Ok(());
                }
                tracing::error!(error = %err, "document supervisor failed");
                state.documents = None;
                if let Ok(mut slot) = state.args.slot.write() {
                    *slot = None;
                }
                let window = state.args.restart_window;
                state.failures.retain(|t| t.elapsed() <= window);
                state.failures.push_back(Instant::now());
                if state.failures.len() > state.args.max_restarts as usize {
                    tracing::error!(
                        "document supervisor keeps failing; escalating (stopping the tree)"
                    );
                    myself.stop(Some("document supervisor restart limit reached".into()));
                    return Ok(());
                }
                let exp = (state.failures.len() as u32).saturating_sub(1).min(6);
                let backoff =
                    Duration::from_millis(100 * 2u64.pow(exp)).min(Duration::from_secs(5));
                myself.send_after(backoff, || RootMsg::StartDocuments);
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if state
                    .documents
                    .as_ref()
                    .is_some_and(|d| d.get_id() == cell.get_id())
                {
                    tracing::info!(reason = ?reason, "document supervisor stopped");
                    state.documents = None;
                }
            }
            SupervisionEvent::ActorStarted(_) => {}
            SupervisionEvent::ProcessGroupChanged(_) => {}
            SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}
