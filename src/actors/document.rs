//! DocumentActor: the single writer for one document.
//!
//! Every change to a document is a message in this actor's mailbox, so two changes to the same
//! document never run at once and no lock is needed on one node. The actor loads its record
//! from the database on first use (so a restarted actor resumes from the truth), writes each
//! change and its event in one transaction, and asks its supervisor to stop it when idle.

use std::{sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use crate::{
    actors::keyed::{IdleTracker, Keyed, KeyedArgs, KeyedMsg, Rejection},
    kyc::DocumentId,
    store::{
        Db, StoreError,
        blobs::BlobStore,
        documents::{
            self, DocumentChange, DocumentRecord, DocumentStatus, IdempotencyRecord, NewDocument,
        },
    },
};

/// Why a document operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document not found")]
    NotFound,
    #[error("document has been erased")]
    Erased,
    #[error("document is temporarily unavailable (its actor keeps failing)")]
    Quarantined,
    #[error("document actor failed while handling the request")]
    ActorFailed,
    #[error("document actor did not answer in time")]
    Timeout,
    #[error("the actor system is shutting down")]
    ShuttingDown,
    #[error("the document is already {0}")]
    Final(&'static str),
    /// An OCR claim found the document no longer queued (another run took or finished it).
    #[error("the document is {0}, not queued")]
    NotQueued(&'static str),
    /// An OCR result or requeue whose claim is gone (reaped, or a newer lease wrote since).
    #[error("the OCR claim on this document is no longer current")]
    ClaimLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type DocumentReply = RpcReplyPort<Result<DocumentRecord, DocumentError>>;

#[derive(RactorMessage)]
pub enum DocumentMsg {
    /// Persist a freshly uploaded document (its blob is already stored).
    Create {
        new: Box<NewDocument>,
        idempotency: Option<Box<(IdempotencyRecord, i64)>>,
        reply: DocumentReply,
    },
    /// Apply one change on behalf of `principal` (the subject, or the system part, who asked).
    Apply {
        change: DocumentChange,
        principal: String,
        reply: DocumentReply,
    },
    /// Periodic check whether this actor has been idle long enough to stop.
    IdleTick,
}

impl DocumentMsg {
    /// Answers the caller with `err` without handling the message (used by the supervisor
    /// when it cannot deliver).
    pub fn reject(self, err: DocumentError) {
        match self {
            Self::Create { reply, .. } | Self::Apply { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::IdleTick => {}
        }
    }

    /// Ticks are housekeeping; they don't count as work the supervisor forwarded.
    pub fn is_work(&self) -> bool {
        !matches!(self, Self::IdleTick)
    }
}

/// What every document actor shares.
pub struct DocumentContext {
    pub db: Db,
    pub blobs: Arc<BlobStore>,
    pub idle_after: Duration,
    /// Test-only: the next `Apply` panics inside the actor.
    #[cfg(feature = "test-hooks")]
    pub panic_next_apply: std::sync::atomic::AtomicBool,
    /// Test-only: faults the OCR backend injects (hang, panic, slow, error on the N-th run).
    #[cfg(feature = "test-hooks")]
    pub ocr_faults: Arc<crate::testing::OcrFaults>,
}

impl DocumentContext {
    pub fn new(db: Db, blobs: Arc<BlobStore>, idle_after: Duration) -> Self {
        Self {
            db,
            blobs,
            idle_after,
            #[cfg(feature = "test-hooks")]
            panic_next_apply: Default::default(),
            #[cfg(feature = "test-hooks")]
            ocr_faults: Default::default(),
        }
    }
}

pub struct DocumentState {
    id: DocumentId,
    ctx: Arc<DocumentContext>,
    supervisor: ActorRef<KeyedMsg<DocumentActor>>,
    /// `None` until first needed, then the latest stored version.
    record: Option<DocumentRecord>,
    /// Work handled, for the idle handshake with the supervisor.
    idle: IdleTracker,
}

#[derive(Default)]
pub struct DocumentActor;

impl Keyed for DocumentActor {
    type Key = DocumentId;
    type Context = DocumentContext;
    const KIND: &'static str = "document";

    fn reject(msg: DocumentMsg, why: Rejection) {
        msg.reject(match why {
            Rejection::Quarantined => DocumentError::Quarantined,
            Rejection::ActorFailed => DocumentError::ActorFailed,
        });
    }

    fn is_work(msg: &DocumentMsg) -> bool {
        msg.is_work()
    }
}

impl Actor for DocumentActor {
    type Msg = DocumentMsg;
    type State = DocumentState;
    type Arguments = KeyedArgs<DocumentActor>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: KeyedArgs<DocumentActor>,
    ) -> Result<DocumentState, ActorProcessingErr> {
        // Cheap on purpose: the supervisor awaits this. The record loads on the first message.
        let idle = IdleTracker::start(&myself, args.ctx.idle_after, || DocumentMsg::IdleTick);
        Ok(DocumentState {
            id: args.id,
            ctx: args.ctx,
            supervisor: args.supervisor,
            record: None,
            idle,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: DocumentMsg,
        state: &mut DocumentState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_work() {
            state.idle.worked();
        }
        match msg {
            DocumentMsg::Create {
                new,
                idempotency,
                reply,
            } => {
                let result = create(state, new, idempotency).await;
                let _ = reply.send(result);
            }
            DocumentMsg::Apply {
                change,
                principal,
                reply,
            } => {
                #[cfg(feature = "test-hooks")]
                if state
                    .ctx
                    .panic_next_apply
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
                {
                    panic!("injected fault: document actor panics while applying a change");
                }
                let result = apply(state, change, &principal).await;
                let _ = reply.send(result);
            }
            DocumentMsg::IdleTick => {
                state
                    .idle
                    .tick::<DocumentActor>(state.id, state.ctx.idle_after, &state.supervisor);
            }
        }
        Ok(())
    }
}

async fn create(
    state: &mut DocumentState,
    new: Box<NewDocument>,
    idempotency: Option<Box<(IdempotencyRecord, i64)>>,
) -> Result<DocumentRecord, DocumentError> {
    let idem = idempotency.as_deref().map(|(r, t)| (r, *t));
    let record = documents::insert(&state.ctx.db, &new, idem).await?;
    state.record = Some(record.clone());
    Ok(record)
}

async fn load(state: &mut DocumentState) -> Result<DocumentRecord, DocumentError> {
    if let Some(r) = &state.record {
        return Ok(r.clone());
    }
    let record = documents::get(&state.ctx.db, &state.id)
        .await?
        .ok_or(DocumentError::NotFound)?;
    state.record = Some(record.clone());
    Ok(record)
}

async fn apply(
    state: &mut DocumentState,
    change: DocumentChange,
    principal: &str,
) -> Result<DocumentRecord, DocumentError> {
    match apply_once(state, &change, principal).await {
        // This actor's cache was stale (another node wrote since): a user's change is tried
        // once more on the stored truth. (OCR changes already decide on it.)
        Err(DocumentError::Store(StoreError::Conflict(_))) if change.token().is_none() => {
            apply_once(state, &change, principal).await
        }
        other => other,
    }
}

async fn apply_once(
    state: &mut DocumentState,
    change: &DocumentChange,
    principal: &str,
) -> Result<DocumentRecord, DocumentError> {
    if change.token().is_some() {
        // OCR changes decide on the stored truth, not this actor's cache: another node (or
        // the reaper) may have moved the document since.
        state.record = None;
    }
    let before = load(state).await?;
    if before.status == DocumentStatus::Erased {
        return match change {
            // Erasing twice is a no-op, not an error: the caller's intent already holds.
            DocumentChange::Erased => Ok(before),
            _ => Err(DocumentError::Erased),
        };
    }
    match change {
        DocumentChange::Processing(_) if before.status != DocumentStatus::Queued => {
            return Err(DocumentError::NotQueued(before.status.as_str()));
        }
        DocumentChange::Extracted { token, .. }
        | DocumentChange::Failed { token, .. }
        | DocumentChange::Requeued { token, .. } => {
            if matches!(
                before.status,
                DocumentStatus::Extracted | DocumentStatus::Failed
            ) {
                // A final state never moves back, whatever arrives late or twice.
                return Err(DocumentError::Final(before.status.as_str()));
            }
            if before.status != DocumentStatus::Processing || before.fence != *token {
                return Err(DocumentError::ClaimLost);
            }
        }
        _ => {}
    }
    let result = documents::apply(&state.ctx.db, &before, change, principal).await;
    let after = match result {
        Ok(after) => after,
        Err(e) => {
            // The cache may be stale (e.g. a write from another node): reload next time.
            state.record = None;
            return Err(e.into());
        }
    };
    state.record = Some(after.clone());
    if *change == DocumentChange::Erased
        && let Some(key) = before.blob_key.clone()
    {
        // The row no longer points at the file, so the file must go too. A failure here leaves
        // an encrypted orphan nothing points at (never a readable copy); the error is logged.
        let blobs = state.ctx.blobs.clone();
        match tokio::task::spawn_blocking(move || blobs.delete(&key)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(document_id = %state.id, error = %e, "erased document's blob could not be deleted")
            }
            Err(e) => {
                tracing::error!(document_id = %state.id, error = %e, "blob deletion task failed")
            }
        }
    }
    Ok(after)
}
