//! # Supervision
//!
//! The supervision tree and the handle the rest of the service uses to reach it. Every
//! supervisor states its policy for a failing child in its module docs; none ignores an event.
//!
//! ```text
//! RootSupervisor
//! └── DocumentSupervisor   one DocumentActor per active document
//! ```
//! The OCR pool, verification, outbox, reaper and timers join this tree in their own issues.

pub mod documents;
pub mod root;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use ractor::{ActorRef, RpcReplyPort, concurrency::oneshot};

use crate::{
    actors::document::{DocumentContext, DocumentError, DocumentMsg},
    kyc::DocumentId,
    store::documents::{DocumentChange, DocumentRecord, IdempotencyRecord, NewDocument},
};
use documents::{DocumentSupervisorMsg, SupervisorStats};

/// Where the current DocumentSupervisor is; the root replaces it after a restart.
pub type SupervisorSlot = Arc<RwLock<Option<ActorRef<DocumentSupervisorMsg>>>>;

/// The service's way into document actors. Cheap to clone.
#[derive(Clone)]
pub struct Documents {
    slot: SupervisorSlot,
    timeout: Duration,
    ctx: Arc<DocumentContext>,
}

impl Documents {
    pub fn new(slot: SupervisorSlot, timeout: Duration, ctx: Arc<DocumentContext>) -> Self {
        Self { slot, timeout, ctx }
    }

    pub fn context(&self) -> &Arc<DocumentContext> {
        &self.ctx
    }

    pub async fn create(
        &self,
        new: NewDocument,
        idempotency: Option<(IdempotencyRecord, i64)>,
    ) -> Result<DocumentRecord, DocumentError> {
        let id = new.id;
        self.call(id, |reply| DocumentMsg::Create {
            new: Box::new(new),
            idempotency: idempotency.map(Box::new),
            reply,
        })
        .await
    }

    pub async fn apply(
        &self,
        id: DocumentId,
        change: DocumentChange,
        actor: &str,
    ) -> Result<DocumentRecord, DocumentError> {
        let actor = actor.to_string();
        self.call(id, |reply| DocumentMsg::Apply {
            change,
            actor,
            reply,
        })
        .await
    }

    pub async fn stats(&self) -> Option<SupervisorStats> {
        let sup = self.supervisor()?;
        ractor::call_t!(
            sup,
            DocumentSupervisorMsg::Stats,
            self.timeout.as_millis() as u64
        )
        .ok()
    }

    fn supervisor(&self) -> Option<ActorRef<DocumentSupervisorMsg>> {
        self.slot.read().ok()?.clone()
    }

    /// Sends through the supervisor and waits, with the configured timeout, for the actor's
    /// answer. A dropped reply port means the actor died with the message.
    async fn call(
        &self,
        id: DocumentId,
        build: impl FnOnce(RpcReplyPort<Result<DocumentRecord, DocumentError>>) -> DocumentMsg,
    ) -> Result<DocumentRecord, DocumentError> {
        let sup = self.supervisor().ok_or(DocumentError::ShuttingDown)?;
        let (tx, rx) = oneshot();
        let msg = build(RpcReplyPort::from(tx));
        if sup.cast(DocumentSupervisorMsg::Dispatch(id, msg)).is_err() {
            return Err(DocumentError::ShuttingDown);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(DocumentError::ActorFailed),
            Err(_) => Err(DocumentError::Timeout),
        }
    }
}
