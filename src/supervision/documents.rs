//! DocumentSupervisor: spawns one DocumentActor per active document on demand, forwards work
//! to it in arrival order, stops it when idle, and restarts it when it fails.
//!
//! Policy on a child's failure: restart at once (the new actor reloads from the database); a
//! document whose actor fails more than `max_restarts` times inside `restart_window` is
//! quarantined (callers get `Quarantined`) until the window has passed, so one poisonous
//! document cannot spin the node.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use crate::{
    actors::document::{DocumentActor, DocumentArgs, DocumentContext, DocumentError, DocumentMsg},
    kyc::DocumentId,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisorStats {
    pub active: usize,
    pub restarts: u64,
    pub idle_stops: u64,
}

#[derive(RactorMessage)]
pub enum DocumentSupervisorMsg {
    /// Deliver `msg` to the document's actor, starting one if needed.
    Dispatch(DocumentId, DocumentMsg),
    /// A child reports it has been idle after handling `processed` work messages.
    ChildIdle {
        id: DocumentId,
        processed: u64,
    },
    Stats(RpcReplyPort<SupervisorStats>),
}

pub struct DocumentSupervisorArgs {
    pub ctx: Arc<DocumentContext>,
    pub max_restarts: u32,
    pub restart_window: Duration,
}

struct Child {
    actor: ActorRef<DocumentMsg>,
    forwarded: u64,
}

pub struct DocumentSupervisorState {
    ctx: Arc<DocumentContext>,
    max_restarts: u32,
    restart_window: Duration,
    children: HashMap<DocumentId, Child>,
    by_actor: HashMap<ActorId, DocumentId>,
    failures: HashMap<DocumentId, VecDeque<Instant>>,
    stats: SupervisorStats,
}

pub struct DocumentSupervisor;

impl DocumentSupervisorState {
    fn quarantined(&mut self, id: &DocumentId) -> bool {
        let window = self.restart_window;
        let Some(times) = self.failures.get_mut(id) else {
            return false;
        };
        while times.front().is_some_and(|t| t.elapsed() > window) {
            times.pop_front();
        }
        if times.is_empty() {
            self.failures.remove(id);
            return false;
        }
        times.len() > self.max_restarts as usize
    }

    async fn spawn_child(
        &mut self,
        myself: &ActorRef<DocumentSupervisorMsg>,
        id: DocumentId,
    ) -> Result<(), ActorProcessingErr> {
        let args = DocumentArgs {
            id,
            ctx: self.ctx.clone(),
            supervisor: myself.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, DocumentActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), id);
        self.children.insert(
            id,
            Child {
                actor,
                forwarded: 0,
            },
        );
        Ok(())
    }

    /// Forgets the child behind `cell`, returning its document id when it was current.
    fn forget(&mut self, cell: &ActorCell) -> Option<DocumentId> {
        let id = self.by_actor.remove(&cell.get_id())?;
        match self.children.get(&id) {
            Some(child) if child.actor.get_id() == cell.get_id() => {
                self.children.remove(&id);
                Some(id)
            }
            _ => None,
        }
    }
}

impl Actor for DocumentSupervisor {
    type Msg = DocumentSupervisorMsg;
    type State = DocumentSupervisorState;
    type Arguments = DocumentSupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: DocumentSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DocumentSupervisorState {
            ctx: args.ctx,
            max_restarts: args.max_restarts,
            restart_window: args.restart_window,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            failures: HashMap::new(),
            stats: SupervisorStats::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DocumentSupervisorMsg::Dispatch(id, msg) => {
                if state.quarantined(&id) {
                    msg.reject(DocumentError::Quarantined);
                    return Ok(());
                }
                if !state.children.contains_key(&id)
                    && let Err(e) = state.spawn_child(&myself, id).await
                {
                    tracing::error!(document_id = %id, error = %e, "cannot start document actor");
                    msg.reject(DocumentError::ActorFailed);
                    return Ok(());
                }
                let child = state.children.get_mut(&id).expect("spawned above");
                let counts = msg.is_work();
                if let Err(e) = child.actor.send_message(msg) {
                    // The child is dying; the caller's reply port is dropped with the message,
                    // which the caller sees as ActorFailed. Start afresh for the next one.
                    tracing::warn!(document_id = %id, error = %e, "document actor gone while forwarding");
                    let cell = child.actor.get_cell();
                    state.forget(&cell);
                } else if counts {
                    child.forwarded += 1;
                }
            }
            DocumentSupervisorMsg::ChildIdle { id, processed } => {
                // Only stop a child that has handled everything forwarded to it: no message
                // can be in its mailbox, and no new one can arrive (we are that sender).
                if let Some(child) = state.children.get(&id)
                    && child.forwarded == processed
                {
                    let cell = child.actor.get_cell();
                    state.forget(&cell);
                    cell.stop(Some("idle".into()));
                    state.stats.idle_stops += 1;
                }
            }
            DocumentSupervisorMsg::Stats(reply) => {
                let mut stats = state.stats;
                stats.active = state.children.len();
                let _ = reply.send(stats);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.forget(&cell) else {
                    return Ok(());
                };
                tracing::error!(document_id = %id, error = %err, "document actor failed; restarting from the database");
                state.stats.restarts += 1;
                state
                    .failures
                    .entry(id)
                    .or_default()
                    .push_back(Instant::now());
                if state.quarantined(&id) {
                    tracing::error!(document_id = %id, "document actor failed too often; quarantined for the restart window");
                } else if let Err(e) = state.spawn_child(&myself, id).await {
                    tracing::error!(document_id = %id, error = %e, "document actor restart failed");
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                // Idle stops were forgotten already; anything else stopping on its own is
                // forgotten now so the next message starts a fresh actor.
                state.forget(&cell);
            }
            SupervisionEvent::ActorStarted(_) => {}
            SupervisionEvent::ProcessGroupChanged(_) => {}
            SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}
