//! What OCR read on a document, line by line, for reviewers: each line's text, confidence
//! and corners in the uploaded photo (the console draws them over the card). Reviewers and
//! admins only; personal data, so it comes out of the sealed reading only here.

use std::sync::Arc;

use poem_openapi::{Object, param::Path, payload::Json};

use super::{
    ApiTags, AppState,
    auth::{BearerAuth, Role},
    errors::ApiError,
    ids::PathId,
};
use crate::{kyc::DocumentId, store::documents};

pub struct ReadingsApi {
    pub state: Arc<AppState>,
}

/// One line of text as read.
#[derive(Debug, Object)]
pub struct LineView {
    pub text: String,
    /// 0–1: how sure the recogniser was of the whole line.
    pub confidence: f32,
    /// Corners in the uploaded photo's pixels: top-left, top-right, bottom-right,
    /// bottom-left.
    pub quad: Vec<Vec<f32>>,
}

#[derive(Debug, Object)]
pub struct ReadingView {
    pub document_id: String,
    /// How far the card was turned in the photo, clockwise (0, 90, 180, 270).
    #[oai(skip_serializing_if_is_none)]
    pub orientation: Option<u16>,
    /// The card's corners in the photo, when a card was found.
    #[oai(skip_serializing_if_is_none)]
    pub card_quad: Option<Vec<Vec<f32>>>,
    pub lines: Vec<LineView>,
}

#[poem_openapi::OpenApi(tag = "ApiTags::Documents")]
impl ReadingsApi {
    /// What OCR read, line by line
    ///
    /// For an `extracted` document: every line's text, confidence and corners in the
    /// uploaded photo. Reviewers and admins only. 409 `document_not_extracted` before the
    /// document is read; 410 once erased.
    #[oai(
        path = "/v1/documents/:id/reading",
        method = "get",
        operation_id = "getDocumentReading"
    )]
    async fn reading(
        &self,
        auth: BearerAuth,
        id: Path<PathId<DocumentId>>,
    ) -> Result<Json<ReadingView>, ApiError> {
        auth.0.require(&[Role::Reviewer, Role::Admin])?;
        let record = documents::get(&self.state.db, &id.0.0)
            .await?
            .ok_or(ApiError::NotFound)?;
        if record.status == documents::DocumentStatus::Erased {
            return Err(ApiError::Gone);
        }
        let Some(sealed) = &record.fields else {
            return Err(ApiError::Conflict {
                code: "document_not_extracted",
                message: format!(
                    "the document is {}; its reading exists once it is extracted",
                    record.status.as_str()
                ),
            });
        };
        let reading = sealed.open(&self.state.blobs, &record.id).ok_or_else(|| {
            tracing::error!(document_id = %record.id, "reading cannot be unsealed");
            ApiError::Internal
        })?;
        let placement = sealed.placement;
        Ok(Json(ReadingView {
            document_id: record.id.to_string(),
            orientation: placement.map(|p| p.orientation),
            card_quad: placement
                .and_then(|p| p.card_quad)
                .map(|q| q.iter().map(|c| c.to_vec()).collect()),
            lines: reading
                .lines
                .into_iter()
                .map(|l| LineView {
                    text: l.text,
                    confidence: l.confidence,
                    quad: l.quad.iter().map(|c| c.to_vec()).collect(),
                })
                .collect(),
        }))
    }
}
