//! KeyedSupervisor: one child actor per key (a document, a verification), spawned on demand,
//! fed in arrival order, stopped when idle, restarted when it fails. The same policy serves
//! every per-entity actor; [`Keyed`] (the protocol, in `crate::actors::keyed`) is what such
//! an actor tells it.
//!
//! Policy on a child's failure: restart at once (the new actor reloads from the database); a
//! key whose actor fails more than `max_restarts` times inside `restart_window` is
//! quarantined (callers get [`Rejection::Quarantined`]) until the window has passed, so one
//! poisonous entity cannot spin the node.
//!
//! Idle stop without losing a message: a child reports `ChildIdle { processed }` and the
//! supervisor stops it only when that equals the number of work messages it forwarded — it is
//! the only sender, so nothing can be in flight.

use std::{collections::HashMap, marker::PhantomData, sync::Arc};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::{
    actors::keyed::{Keyed, KeyedArgs, KeyedMsg, Rejection, SupervisorStats},
    resilience::{RestartBudget, RestartPolicy},
};

pub struct KeyedSupervisorArgs<A: Keyed> {
    pub ctx: Arc<A::Context>,
    /// Failures of one key's actor tolerated per window before it is quarantined.
    pub restarts: RestartPolicy,
}

struct Child<A: Keyed> {
    actor: ActorRef<A::Msg>,
    forwarded: u64,
}

pub struct KeyedState<A: Keyed> {
    ctx: Arc<A::Context>,
    restarts: RestartPolicy,
    children: HashMap<A::Key, Child<A>>,
    by_actor: HashMap<ActorId, A::Key>,
    failures: HashMap<A::Key, RestartBudget>,
    stats: SupervisorStats,
}

pub struct KeyedSupervisor<A>(PhantomData<fn() -> A>);

impl<A> Default for KeyedSupervisor<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<A: Keyed> KeyedState<A> {
    fn quarantined(&mut self, id: &A::Key) -> bool {
        let Some(budget) = self.failures.get_mut(id) else {
            return false;
        };
        if budget.recent() == 0 {
            self.failures.remove(id);
            return false;
        }
        budget.exhausted()
    }

    async fn spawn_child(
        &mut self,
        myself: &ActorRef<KeyedMsg<A>>,
        id: A::Key,
    ) -> Result<(), ActorProcessingErr> {
        let args = KeyedArgs {
            id,
            ctx: self.ctx.clone(),
            supervisor: myself.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, A::default(), args, myself.get_cell()).await?;
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

    /// Forgets the child behind `cell`, returning its key when it was current.
    fn forget(&mut self, cell: &ActorCell) -> Option<A::Key> {
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

impl<A: Keyed> Actor for KeyedSupervisor<A> {
    type Msg = KeyedMsg<A>;
    type State = KeyedState<A>;
    type Arguments = KeyedSupervisorArgs<A>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(KeyedState {
            ctx: args.ctx,
            restarts: args.restarts,
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
            KeyedMsg::Dispatch(id, msg) => {
                if state.quarantined(&id) {
                    A::reject(msg, Rejection::Quarantined);
                    return Ok(());
                }
                if !state.children.contains_key(&id)
                    && let Err(e) = state.spawn_child(&myself, id).await
                {
                    tracing::error!(kind = A::KIND, id = %id, error = %e, "cannot start actor");
                    A::reject(msg, Rejection::ActorFailed);
                    return Ok(());
                }
                let child = state.children.get_mut(&id).expect("spawned above");
                let counts = A::is_work(&msg);
                if let Err(e) = child.actor.send_message(msg) {
                    // The child is dying; the caller's reply port is dropped with the message,
                    // which the caller sees as a failed actor. Start afresh for the next one.
                    tracing::warn!(kind = A::KIND, id = %id, error = %e, "actor gone while forwarding");
                    let cell = child.actor.get_cell();
                    state.forget(&cell);
                } else if counts {
                    child.forwarded += 1;
                }
            }
            KeyedMsg::ChildIdle { id, processed } => {
                if let Some(child) = state.children.get(&id)
                    && child.forwarded == processed
                {
                    let cell = child.actor.get_cell();
                    state.forget(&cell);
                    cell.stop(Some("idle".into()));
                    state.stats.idle_stops += 1;
                }
            }
            KeyedMsg::Stats(reply) => {
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
                tracing::error!(kind = A::KIND, id = %id, error = %err, "actor failed; restarting from the database");
                state.stats.restarts += 1;
                metrics::counter!(crate::telemetry::metrics::names::ACTOR_RESTART_COUNT, "kind" => A::KIND)
                    .increment(1);
                let restarts = state.restarts;
                state
                    .failures
                    .entry(id)
                    .or_insert_with(|| restarts.budget())
                    .fail();
                if state.quarantined(&id) {
                    tracing::error!(kind = A::KIND, id = %id, "actor failed too often; quarantined for the restart window");
                } else if let Err(e) = state.spawn_child(&myself, id).await {
                    tracing::error!(kind = A::KIND, id = %id, error = %e, "actor restart failed");
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
