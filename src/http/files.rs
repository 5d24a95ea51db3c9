//! What `GET /v1/documents/{id}/file` sends back: the stored upload byte for byte, or, with
//! `form=page`, the picture of the card a browser can show (a scanned PDF's page image; a
//! photo as it is), in the same pixels the reading's quads are drawn in.

use super::{errors::ApiError, upload::MediaKind};
use crate::media;
use poem_openapi::{
    ApiResponse, Enum,
    payload::Binary,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};

/// Which form of the stored file to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum FileForm {
    /// The upload byte for byte (JPEG, PNG or PDF).
    #[default]
    Original,
    /// The card's picture: the page image of a scanned PDF, or the photo itself.
    Page,
}

/// The bytes of one stored upload, served as the type they were sniffed as.
pub struct FileResponse {
    bytes: Vec<u8>,
    kind: MediaKind,
    filename: String,
}

impl FileResponse {
    /// The stored `bytes` of the document `stem`, in the `form` asked for. A PDF with no page
    /// image has no `page` form (422 `no_page_image`).
    pub fn new(
        stem: impl std::fmt::Display,
        bytes: Vec<u8>,
        kind: MediaKind,
        form: FileForm,
    ) -> Result<Self, ApiError> {
        let (bytes, kind) = match (form, kind) {
            (FileForm::Page, MediaKind::Pdf) => {
                let page = media::pdf_page_image(&bytes).ok_or(ApiError::Unprocessable {
                    code: "no_page_image",
                    field: Some("form".into()),
                    message: "the PDF holds no page image to show".into(),
                })?;
                (page.to_vec(), MediaKind::Jpeg)
            }
            _ => (bytes, kind),
        };
        Ok(Self {
            filename: format!("{stem}.{}", kind.extension()),
            bytes,
            kind,
        })
    }
}

impl poem::IntoResponse for FileResponse {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(self.kind.mime())
            .header(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.filename),
            )
            .header("Cache-Control", "no-store")
            .header("X-Content-Type-Options", "nosniff")
            .body(self.bytes)
    }
}

impl ApiResponse for FileResponse {
    fn meta() -> MetaResponses {
        let header = |name: &str, description: &str| MetaHeader {
            name: name.into(),
            description: Some(description.into()),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        };
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The upload byte for byte (JPEG, PNG or PDF), or with `form=page` \
                              the card's picture (JPEG or PNG).",
                status: Some(200),
                status_range: None,
                content: ["image/jpeg", "image/png", "application/pdf"]
                    .into_iter()
                    .map(|content_type| MetaMediaType {
                        content_type,
                        schema: <Binary<Vec<u8>> as poem_openapi::payload::Payload>::schema_ref(),
                    })
                    .collect(),
                headers: vec![
                    header(
                        "Content-Disposition",
                        "attachment; the document id as file name",
                    ),
                    header("Cache-Control", "no-store"),
                    header("X-Content-Type-Options", "nosniff"),
                ],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdf() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ktp_000.pdf"
        ))
        .unwrap()
    }

    #[test]
    fn the_page_form_of_a_scanned_pdf_is_its_page_jpeg() {
        let page = FileResponse::new("d", pdf(), MediaKind::Pdf, FileForm::Page).unwrap();
        assert_eq!(page.kind, MediaKind::Jpeg);
        assert_eq!(page.filename, "d.jpg");
        assert!(page.bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
        let original = FileResponse::new("d", pdf(), MediaKind::Pdf, FileForm::Original).unwrap();
        assert_eq!((original.kind, original.bytes), (MediaKind::Pdf, pdf()));
    }

    #[test]
    fn a_pdf_without_a_page_image_has_no_page_form() {
        let bare = b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n".to_vec();
        let err = FileResponse::new("d", bare, MediaKind::Pdf, FileForm::Page)
            .err()
            .unwrap();
        assert!(matches!(
            err,
            ApiError::Unprocessable {
                code: "no_page_image",
                ..
            }
        ));
    }

    #[test]
    fn a_photo_is_its_own_page() {
        let png = vec![0x89, b'P', b'N', b'G'];
        let page = FileResponse::new("d", png.clone(), MediaKind::Png, FileForm::Page).unwrap();
        assert_eq!(
            (page.kind, page.bytes, page.filename),
            (MediaKind::Png, png, "d.png".into())
        );
    }
}
