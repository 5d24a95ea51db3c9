//! The keyed-actor protocol: how a per-entity actor (one per document, one per verification)
//! talks to the supervisor that runs it, and how the rest of the service reaches it.
//!
//! An actor of this kind implements [`Keyed`], counts its work with an [`IdleTracker`], and
//! is reached through a [`Handle`] (every call has a deadline; each failure has its own
//! [`CallFailure`]). The supervisor itself, which spawns, restarts and quarantines these
//! actors, is `crate::supervision::keyed`; this module knows nothing of its policy.

use std::{
    fmt::Display,
    hash::Hash,
    sync::{Arc, RwLock},
    time::Duration,
};

use ractor::{Actor, ActorRef, RpcReplyPort, concurrency::oneshot};
use tokio::time::Instant;

/// Why the supervisor answered instead of the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The key's actor failed too often recently.
    Quarantined,
    /// The actor could not be started or died with the message.
    ActorFailed,
}

/// A per-entity actor run by a keyed supervisor (`crate::supervision::keyed`).
pub trait Keyed: Actor<Arguments = KeyedArgs<Self>> + Default {
    type Key: Copy + Eq + Hash + Display + Send + Sync + 'static;
    /// What all actors of this kind share (database, keys, settings).
    type Context: Send + Sync + 'static;
    /// For logs: `document`, `verification`.
    const KIND: &'static str;

    /// Answers the message's caller, if any, with `why` (the message was not handled).
    fn reject(msg: Self::Msg, why: Rejection);
    /// Housekeeping (ticks) does not count as forwarded work.
    fn is_work(msg: &Self::Msg) -> bool;
}

/// A child's side of the idle handshake: it counts the work it handled and, on a tick after
/// `idle_after` without work, reports that count to its supervisor.
#[derive(Debug)]
pub struct IdleTracker {
    processed: u64,
    last_activity: Instant,
}

impl IdleTracker {
    /// Starts the child's idle ticks (every half `idle_after`, at least 50 ms).
    pub fn start<M: ractor::Message>(
        myself: &ActorRef<M>,
        idle_after: Duration,
        tick: fn() -> M,
    ) -> Self {
        myself.send_interval((idle_after / 2).max(Duration::from_millis(50)), tick);
        Self {
            processed: 0,
            last_activity: Instant::now(),
        }
    }

    /// Call for every work message (not for ticks).
    pub fn worked(&mut self) {
        self.processed += 1;
        self.last_activity = Instant::now();
    }

    /// Call on every tick.
    pub fn tick<A: Keyed>(
        &self,
        id: A::Key,
        idle_after: Duration,
        supervisor: &ActorRef<KeyedMsg<A>>,
    ) {
        if self.last_activity.elapsed() >= idle_after {
            let _ = supervisor.cast(KeyedMsg::ChildIdle {
                id,
                processed: self.processed,
            });
        }
    }
}

pub struct KeyedArgs<A: Keyed> {
    pub id: A::Key,
    pub ctx: Arc<A::Context>,
    pub supervisor: ActorRef<KeyedMsg<A>>,
}

pub enum KeyedMsg<A: Keyed> {
    /// Deliver the message to the key's actor, starting one if needed.
    Dispatch(A::Key, A::Msg),
    /// A child reports it has been idle after handling `processed` work messages.
    ChildIdle {
        id: A::Key,
        processed: u64,
    },
    Stats(RpcReplyPort<SupervisorStats>),
}

impl<A: Keyed> ractor::Message for KeyedMsg<A> {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisorStats {
    pub active: usize,
    pub restarts: u64,
    pub idle_stops: u64,
}

/// Where the current supervisor of one kind is; the root replaces it after a restart.
pub type Slot<A> = Arc<RwLock<Option<ActorRef<KeyedMsg<A>>>>>;

/// Why a call into a keyed actor got no answer from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    ShuttingDown,
    /// The actor died with the message (its reply port was dropped).
    ActorFailed,
    Timeout,
}

/// The service's way into the actors of one kind. Cheap to clone.
pub struct Handle<A: Keyed> {
    slot: Slot<A>,
    timeout: Duration,
    ctx: Arc<A::Context>,
}

impl<A: Keyed> Clone for Handle<A> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            timeout: self.timeout,
            ctx: self.ctx.clone(),
        }
    }
}

impl<A: Keyed> Handle<A> {
    pub fn new(slot: Slot<A>, timeout: Duration, ctx: Arc<A::Context>) -> Self {
        Self { slot, timeout, ctx }
    }

    pub fn context(&self) -> &Arc<A::Context> {
        &self.ctx
    }

    fn supervisor(&self) -> Option<ActorRef<KeyedMsg<A>>> {
        self.slot.read().ok()?.clone()
    }

    /// Sends through the supervisor and waits, with the configured timeout, for the answer.
    pub async fn call<R: Send + 'static>(
        &self,
        id: A::Key,
        build: impl FnOnce(RpcReplyPort<R>) -> A::Msg,
    ) -> Result<R, CallFailure> {
        let sup = self.supervisor().ok_or(CallFailure::ShuttingDown)?;
        let (tx, rx) = oneshot();
        let msg = build(RpcReplyPort::from(tx));
        if sup.cast(KeyedMsg::Dispatch(id, msg)).is_err() {
            return Err(CallFailure::ShuttingDown);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(CallFailure::ActorFailed),
            Err(_) => Err(CallFailure::Timeout),
        }
    }

    /// Delivers a message that needs no answer (a nudge); false when the tree is down.
    pub fn cast(&self, id: A::Key, msg: A::Msg) -> bool {
        self.supervisor()
            .is_some_and(|sup| sup.cast(KeyedMsg::Dispatch(id, msg)).is_ok())
    }

    pub async fn stats(&self) -> Option<SupervisorStats> {
        let sup = self.supervisor()?;
        ractor::call_t!(sup, KeyedMsg::Stats, self.timeout.as_millis() as u64).ok()
    }
}
