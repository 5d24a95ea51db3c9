//! The reviewers' queue: the verifications waiting in one review state, oldest first, each
//! with the documents it was started on, one page at a time. Reads only; what a reviewer may
//! see of each document is the API's to decide.

use super::{
    Db, Page, Position, StoreError,
    documents::{self, DocumentRecord},
    verifications::{self, VerificationRow},
};
use crate::kyc::{DocumentId, workflow::State};

/// One case in the queue.
#[derive(Debug)]
pub struct QueuedCase {
    pub verification: VerificationRow,
    /// `None` when the document is gone (erased) or its id does not parse.
    pub ktp: Option<DocumentRecord>,
    pub npwp: Option<DocumentRecord>,
}

/// One page of the cases in `state`, after `cursor`.
pub async fn queue(
    db: &Db,
    state: State,
    cursor: Option<Position>,
    limit: u32,
) -> Result<Page<QueuedCase>, StoreError> {
    let page = verifications::list_by_state(db, state, cursor, limit).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for verification in page.items {
        let ktp = document(db, Some(&verification.ktp_document_id)).await?;
        let npwp = document(db, verification.npwp_document_id.as_deref()).await?;
        items.push(QueuedCase {
            verification,
            ktp,
            npwp,
        });
    }
    Ok(Page {
        items,
        next: page.next,
    })
}

async fn document(db: &Db, id: Option<&str>) -> Result<Option<DocumentRecord>, StoreError> {
    match id.and_then(|id| id.parse::<DocumentId>().ok()) {
        Some(id) => documents::get(db, &id).await,
        None => Ok(None),
    }
}
