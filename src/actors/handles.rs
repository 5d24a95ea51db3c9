//! The service's ways into the keyed actors: [`Documents`] and [`Verifications`] (every call
//! with a deadline, each failure mapped to the actor's own error), and the OCR pool's slot.
//! The supervisors behind them (`crate::supervision`) keep the slots current.

use std::time::Duration;

use super::keyed::{CallFailure, Handle, Slot, SupervisorStats};
use super::{
    document::{DocumentActor, DocumentError, DocumentMsg},
    verification::{VerificationActor, VerificationError, VerificationMsg},
};
use crate::{
    kyc::DocumentId,
    store::documents::{DocumentChange, DocumentRecord, IdempotencyRecord, NewDocument},
};

/// The node's OCR pool while it runs (set by the root supervisor; read by the reaper).
pub type PoolSlot =
    std::sync::Arc<std::sync::RwLock<Option<ractor::ActorRef<super::ocr::OcrPoolMsg>>>>;

/// The service's way into document actors. Cheap to clone.
#[derive(Clone)]
pub struct Documents(Handle<DocumentActor>);

impl Documents {
    pub fn new(
        slot: Slot<DocumentActor>,
        timeout: Duration,
        ctx: std::sync::Arc<super::DocumentContext>,
    ) -> Self {
        Self(Handle::new(slot, timeout, ctx))
    }

    pub fn context(&self) -> &std::sync::Arc<super::DocumentContext> {
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
        principal: &str,
    ) -> Result<DocumentRecord, DocumentError> {
        let principal = principal.to_string();
        self.call(id, |reply| DocumentMsg::Apply {
            change,
            principal,
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
        ctx: std::sync::Arc<super::verification::VerificationContext>,
    ) -> Self {
        Self(Handle::new(slot, timeout, ctx))
    }

    pub fn context(&self) -> &std::sync::Arc<super::verification::VerificationContext> {
        self.0.context()
    }

    /// Sends one message and waits for its answer.
    pub async fn call<R: Send + 'static>(
        &self,
        id: super::verification::VerificationId,
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
    pub fn nudge(&self, id: super::verification::VerificationId, msg: VerificationMsg) -> bool {
        self.0.cast(id, msg)
    }

    pub async fn stats(&self) -> Option<SupervisorStats> {
        self.0.stats().await
    }
}
