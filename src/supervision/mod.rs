//! # Supervision
//!
//! The supervision tree and the handles the rest of the service uses to reach it. Every
//! supervisor states its policy for a failing child in its module docs; none ignores an event.
//!
//! ```text
//! RootSupervisor
//! ├── KeyedSupervisor<DocumentActor>       one DocumentActor per active document
//! ├── KeyedSupervisor<VerificationActor>   one VerificationActor per active verification
//! ├── WorkflowDriver                       nudges verifications whose documents settled; fires due timers
//! ├── OcrPool                              one OcrWorker per device
//! ├── OutboxActor                          delivers BULI2's decisions (when BULI2 is configured)
//! ├── WebhookLane                          delivers status webhooks, concurrently, apart from decisions
//! └── Reaper                               gives back OCR runs past their deadline or left by dead nodes
//! ```

pub mod keyed;
pub mod reaper;
pub mod root;

use std::time::Duration;

use crate::{
    actors::{
        document::{DocumentActor, DocumentError, DocumentMsg},
        verification::{VerificationActor, VerificationError, VerificationMsg},
    },
    kyc::DocumentId,
    store::documents::{DocumentChange, DocumentRecord, IdempotencyRecord, NewDocument},
};
use keyed::{CallFailure, Handle, SupervisorStats};

pub use keyed::Slot;

/// The node's OCR pool while it runs (set by the root supervisor; read by the reaper).
pub type PoolSlot =
    std::sync::Arc<std::sync::RwLock<Option<ractor::ActorRef<crate::actors::ocr::OcrPoolMsg>>>>;

/// The service's way into document actors. Cheap to clone.
#[derive(Clone)]
pub struct Documents(Handle<DocumentActor>);

impl Documents {
    pub fn new(
        slot: Slot<DocumentActor>,
        timeout: Duration,
        ctx: std::sync::Arc<crate::actors::DocumentContext>,
    ) -> Self {
        Self(Handle::new(slot, timeout, ctx))
    }

    pub fn context(&self) -> &std::sync::Arc<crate::actors::DocumentContext> {
        self.0.context()
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
        self.0.stats().await
    }

    async fn call(
        &self,
        id: DocumentId,
        build: impl FnOnce(ractor::RpcReplyPort<Result<DocumentRecord, DocumentError>>) -> DocumentMsg,
    ) -> Result<DocumentRecord, DocumentError> {
        match self.0.call(id, build).await {
            Ok(result) => result,
            Err(CallFailure::ShuttingDown) => Err(DocumentError::ShuttingDown),
            Err(CallFailure::ActorFailed) => Err(DocumentError::ActorFailed),
            Err(CallFailure::Timeout) => Err(DocumentError::Timeout),
        }
    }
}

/// The service's way into verification actors. Cheap to clone.
#[derive(Clone)]
pub struct Verifications(Handle<VerificationActor>);

impl Verifications {
    pub fn new(
        slot: Slot<VerificationActor>,
        timeout: Duration,
        ctx: std::sync::Arc<crate::actors::verification::VerificationContext>,
    ) -> Self {
        Self(Handle::new(slot, timeout, ctx))
    }

    pub fn context(&self) -> &std::sync::Arc<crate::actors::verification::VerificationContext> {
        self.0.context()
    }

    /// Sends one message and waits for its answer.
    pub async fn call<R: Send + 'static>(
        &self,
        id: crate::actors::verification::VerificationId,
        build: impl FnOnce(ractor::RpcReplyPort<Result<R, VerificationError>>) -> VerificationMsg,
    ) -> Result<R, VerificationError> {
        match self.0.call(id, build).await {
            Ok(result) => result,
            Err(CallFailure::ShuttingDown) => Err(VerificationError::ShuttingDown),
            Err(CallFailure::ActorFailed) => Err(VerificationError::ActorFailed),
            Err(CallFailure::Timeout) => Err(VerificationError::Timeout),
        }
    }

    /// Nudges a verification (documents settled, timer due); no answer awaited.
    pub fn nudge(
        &self,
        id: crate::actors::verification::VerificationId,
        msg: VerificationMsg,
    ) -> bool {
        self.0.cast(id, msg)
    }

    pub async fn stats(&self) -> Option<SupervisorStats> {
        self.0.stats().await
    }
}
