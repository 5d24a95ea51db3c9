//! The multipart upload body of `POST /v1/documents`, parsed as it streams in.
//!
//! Limits hold while bytes arrive, never after buffering an unbounded request: a declared
//! `Content-Length` over the limit is refused before reading; otherwise multer enforces the
//! per-field and whole-request limits chunk by chunk. After a refusal the rest of the body is
//! drained up to a bound (so the client can read our 413 instead of a connection reset) and
//! then the connection is dropped.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use poem::{Request, RequestBody, http::header};
use poem_openapi::{Enum, Multipart, payload::ParsePayload, types::multipart::Upload};

use super::{AppState, errors::ApiError};
pub use crate::media::MediaKind;
use crate::{
    config::Limits,
    kyc::DocumentType,
    media::{self, MediaError},
};

/// Which card the file shows.
#[derive(Debug, Clone, Copy, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename = "DocumentType")]
pub enum DocumentTypeName {
    #[oai(rename = "KTP")]
    #[serde(rename = "KTP")]
    Ktp,
    #[oai(rename = "NPWP")]
    #[serde(rename = "NPWP")]
    Npwp,
}

/// The upload form (documentation only; parsing is [`DocumentUpload`]'s).
#[derive(Debug, Multipart)]
pub struct DocumentUploadForm {
    /// `KTP` or `NPWP`.
    #[oai(rename = "type")]
    pub doc_type: DocumentTypeName,
    /// JPEG, PNG or PDF (recognised by content, not by name or declared type); at most
    /// `limits.max_file_bytes` (2 MB by default).
    pub file: Upload,
}

/// A parsed, size-checked upload (content not yet inspected).
#[derive(Debug)]
pub struct DocumentUpload {
    pub doc_type: DocumentType,
    pub bytes: Bytes,
    /// As the client named it; informational only, never trusted.
    pub declared_name: Option<String>,
}

/// The `Payload` and `ApiExtractor` of a multipart body parsed by hand (`$ty`'s
/// `ParsePayload`), documented in the spec as the form `$form`.
macro_rules! multipart_payload {
    ($ty:ty, $form:ty) => {
        impl poem_openapi::payload::Payload for $ty {
            const CONTENT_TYPE: &'static str = "multipart/form-data";

            fn check_content_type(content_type: &str) -> bool {
                content_type.split(';').next().is_some_and(|essence| {
                    essence.trim().eq_ignore_ascii_case("multipart/form-data")
                })
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <$form as poem_openapi::payload::Payload>::schema_ref()
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$form as poem_openapi::payload::Payload>::register(registry);
            }
        }

        impl<'a> poem_openapi::ApiExtractor<'a> for $ty {
            const TYPES: &'static [poem_openapi::ApiExtractorType] =
                &[poem_openapi::ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <Self as poem_openapi::payload::Payload>::register(registry);
            }

            fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
                use poem_openapi::payload::Payload;
                Some(poem_openapi::registry::MetaRequest {
                    description: None,
                    content: vec![poem_openapi::registry::MetaMediaType {
                        content_type: <Self as Payload>::CONTENT_TYPE,
                        schema: <Self as Payload>::schema_ref(),
                    }],
                    required: true,
                })
            }

            async fn from_request(
                request: &'a poem::Request,
                body: &mut poem::RequestBody,
                _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                use poem_openapi::payload::{ParsePayload, Payload};
                match request.content_type() {
                    Some(ct) if <Self as Payload>::check_content_type(ct) => {
                        <Self as ParsePayload>::from_request(request, body).await
                    }
                    Some(ct) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                        content_type: ct.to_string(),
                    }
                    .into()),
                    None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
                }
            }
        }
    };
}
pub(super) use multipart_payload;

multipart_payload!(DocumentUpload, DocumentUploadForm);

impl ParsePayload for DocumentUpload {
    const IS_REQUIRED: bool = true;

    async fn from_request(req: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<Arc<AppState>>().ok_or(ApiError::Internal)?;
        Ok(parse(req, body, &state.settings.limits).await?)
    }
}

pub(super) fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "malformed_multipart",
        field: Some("body".into()),
        message: message.into(),
    }
}

fn file_too_large(limits: &Limits) -> ApiError {
    ApiError::PayloadTooLarge {
        code: "file_too_large",
        message: format!("file is larger than {} bytes", limits.max_file_bytes),
    }
}

fn request_too_large(limits: &Limits) -> ApiError {
    ApiError::PayloadTooLarge {
        code: "request_too_large",
        message: format!(
            "request body is larger than {} bytes",
            limits.max_request_bytes
        ),
    }
}

/// How much of a refused body we read and discard before hanging up.
fn drain_cap(limits: &Limits) -> u64 {
    limits.max_request_bytes.saturating_mul(4)
}
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses a multipart upload held in memory (`content_type` with its boundary): the same
/// parser, limits and checks as the upload route, for tools and property tests.
pub async fn parse_bytes(
    content_type: &str,
    body: Vec<u8>,
    limits: &Limits,
) -> Result<DocumentUpload, ApiError> {
    let req = Request::builder()
        .method(poem::http::Method::POST)
        .header(header::CONTENT_TYPE, content_type)
        .finish();
    let mut body = RequestBody::new(poem::Body::from(body));
    parse(&req, &mut body, limits).await
}

async fn parse(
    req: &Request,
    body: &mut RequestBody,
    limits: &Limits,
) -> Result<DocumentUpload, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let boundary = multer::parse_boundary(&content_type)
        .map_err(|_| malformed("Content-Type lacks a multipart boundary"))?;
    let mut stream = body
        .take()
        .map_err(|_| malformed("request body already consumed"))?
        .into_bytes_stream();

    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > limits.max_request_bytes) {
        if declared_len.is_some_and(|len| len <= drain_cap(limits)) {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
        return Err(request_too_large(limits));
    }

    // The feeder pulls the body and hands it to the parser; when the parser gives up (a
    // limit, bad framing) the feeder drains a bounded remainder and stops.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let cap = drain_cap(limits);
    let feeder = async move {
        let mut forwarding = true;
        let mut drained = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) if forwarding => {
                    let len = bytes.len() as u64;
                    if tx.send(Ok(bytes)).await.is_err() {
                        forwarding = false;
                        drained += len;
                    }
                }
                Ok(bytes) => {
                    drained += bytes.len() as u64;
                    if drained > cap {
                        break;
                    }
                }
                Err(e) => {
                    if forwarding {
                        let _ = tx.send(Err(e)).await;
                    }
                    break;
                }
            }
        }
    };
    let incoming = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["type", "file"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(limits.max_request_bytes)
                .for_field("type", 64)
                .for_field("file", limits.max_file_bytes),
        );
    let parser = read_fields(
        multer::Multipart::with_constraints(incoming, boundary, constraints),
        limits,
    );
    let deadline = limits.upload_timeout;
    let (_, parsed) = tokio::join!(tokio::time::timeout(deadline, feeder), parser);
    parsed
}

async fn read_fields(
    mut multipart: multer::Multipart<'static>,
    limits: &Limits,
) -> Result<DocumentUpload, ApiError> {
    let mut doc_type: Option<String> = None;
    let mut file: Option<(Vec<u8>, Option<String>)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(map_multer(e, limits)),
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "type" if doc_type.is_none() => {
                doc_type = Some(field.text().await.map_err(|e| map_multer(e, limits))?);
            }
            "file" if file.is_none() => {
                let declared = field.file_name().map(str::to_string);
                let mut field = field;
                let mut data = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| map_multer(e, limits))? {
                    data.extend_from_slice(&chunk);
                }
                file = Some((data, declared));
            }
            other => return Err(ApiError::invalid(other, "appears more than once")),
        }
    }
    let doc_type =
        doc_type.ok_or_else(|| ApiError::invalid("type", "is required (KTP or NPWP)"))?;
    let doc_type = doc_type
        .parse::<DocumentType>()
        .map_err(|_| ApiError::invalid("type", "must be KTP or NPWP"))?;
    let (data, declared_name) = file.ok_or_else(|| ApiError::invalid("file", "is required"))?;
    if data.is_empty() {
        return Err(ApiError::invalid("file", "is empty"));
    }
    Ok(DocumentUpload {
        doc_type,
        bytes: Bytes::from(data),
        declared_name,
    })
}

fn map_multer(e: multer::Error, limits: &Limits) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { field_name, .. } => match field_name.as_deref() {
            Some("file") => file_too_large(limits),
            Some(other) => ApiError::invalid(other, "is too long"),
            None => malformed("a field is too long"),
        },
        multer::Error::StreamSizeExceeded { .. } => request_too_large(limits),
        multer::Error::UnknownField { field_name } => ApiError::invalid(
            field_name.as_deref().unwrap_or("body"),
            "is not a field of this form (type, file)",
        ),
        multer::Error::IncompleteStream | multer::Error::IncompleteFieldData { .. } => {
            malformed("multipart body ends before its closing boundary")
        }
        multer::Error::IncompleteHeaders | multer::Error::ReadHeaderFailed(_) => {
            malformed("a part has malformed headers")
        }
        other => malformed(format!("malformed multipart body: {other}")),
    }
}

/// Sniffs the content and checks every declared image size (an upload's own, or each page
/// image of a PDF) before anything decodes it: `unsupported_media_type`, `invalid_image` or
/// `image_too_large` (see `crate::media`).
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<MediaKind, ApiError> {
    media::inspect(bytes, &limits.image()).map_err(|e| {
        let code = match &e {
            MediaError::Unsupported => return ApiError::UnsupportedMediaType(e.to_string()),
            e if e.is_too_large() => "image_too_large",
            _ => "invalid_image",
        };
        ApiError::Unprocessable {
            code,
            field: Some("file".into()),
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{bomb_pdf, bomb_png};

    #[test]
    fn refusals_have_stable_codes() {
        let limits = Limits::default();
        assert_eq!(
            inspect(&bomb_png(100, 60), &limits).unwrap(),
            MediaKind::Png
        );
        assert!(matches!(
            inspect(b"GIF89a....", &limits),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        for bomb in [bomb_png(100_000, 100_000), bomb_pdf(14_000, 14_000)] {
            assert_eq!(
                inspect(&bomb, &limits).unwrap_err().code(),
                "image_too_large"
            );
        }
        let broken = [&b"\xff\xd8\xff\xe0"[..], &[0u8; 8]].concat();
        assert_eq!(
            inspect(&broken, &limits).unwrap_err().code(),
            "invalid_image"
        );
    }
}
