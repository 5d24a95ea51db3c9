//! The multipart body of `POST /v1/batches`: any number of parts named `ktp` or `npwp`. The
//! body guard has already bounded it (`limits.max_batch_bytes`, read within
//! `limits.upload_timeout`), so it is parsed from memory. Each part is judged on its own: one
//! with another name (`unknown_part`), over `limits.max_file_bytes` (`file_too_large`), empty
//! (`empty_file`) or past `limits.max_batch_parts` (`too_many_parts`) is refused with that
//! code and the others go on. Only a body that is not multipart at all is refused whole.

use std::sync::Arc;

use bytes::Bytes;
use poem::{Request, RequestBody};
use poem_openapi::{Multipart, payload::ParsePayload, types::multipart::Upload};

use super::{
    AppState,
    errors::ApiError,
    upload::{malformed, multipart_payload},
};
use crate::{config::Limits, kyc::DocumentType};

/// The batch form (documentation only; parsing is [`BatchUpload`]'s).
#[derive(Debug, Multipart)]
pub struct BatchUploadForm {
    /// KTP cards: JPEG, PNG or PDF, each at most `limits.max_file_bytes`. Repeat the part.
    pub ktp: Vec<Upload>,
    /// NPWP cards, likewise.
    pub npwp: Vec<Upload>,
}

/// One part of a batch, in the order sent.
#[derive(Debug)]
pub enum BatchPart {
    /// A card to take in (its content not yet inspected).
    Card {
        name: String,
        doc_type: DocumentType,
        bytes: Bytes,
    },
    /// Refused before anything was stored, with a stable code.
    Refused { name: String, error: &'static str },
}

/// A parsed batch body: every part, in order.
#[derive(Debug)]
pub struct BatchUpload {
    pub parts: Vec<BatchPart>,
}

multipart_payload!(BatchUpload, BatchUploadForm);

impl ParsePayload for BatchUpload {
    const IS_REQUIRED: bool = true;

    async fn from_request(req: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<Arc<AppState>>().ok_or(ApiError::Internal)?;
        let content_type = req
            .headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let bytes = body
            .take()
            .map_err(|_| malformed("request body already consumed"))?
            .into_bytes()
            .await
            .map_err(|_| malformed("the request body could not be read"))?;
        Ok(parse(content_type, bytes, &state.settings.limits).await?)
    }
}

/// The client's name for a part: its file name (at most 200 characters), or the field
/// name and its position.
fn part_name(field: &multer::Field<'_>, index: usize) -> String {
    match field.file_name().filter(|n| !n.trim().is_empty()) {
        Some(name) => name.chars().take(200).collect(),
        None => format!("{}#{}", field.name().unwrap_or("part"), index + 1),
    }
}

/// Parses a batch body held in memory.
pub async fn parse(
    content_type: &str,
    body: Bytes,
    limits: &Limits,
) -> Result<BatchUpload, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| malformed("Content-Type lacks a multipart boundary"))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_batch_bytes));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut parts = Vec::new();
    let mut cards = 0u32;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(malformed(format!("malformed multipart body: {e}"))),
        };
        let name = part_name(&field, parts.len());
        let doc_type = match field.name().map(str::to_ascii_lowercase).as_deref() {
            Some("ktp") => Some(DocumentType::Ktp),
            Some("npwp") => Some(DocumentType::Npwp),
            _ => None,
        };
        let mut data = Vec::new();
        let mut too_large = false;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) if !too_large => {
                    data.extend_from_slice(&chunk);
                    if data.len() as u64 > limits.max_file_bytes {
                        too_large = true;
                        data = Vec::new();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(malformed(format!("malformed multipart body: {e}"))),
            }
        }
        let refused = |error| BatchPart::Refused {
            name: name.clone(),
            error,
        };
        parts.push(match doc_type {
            None => refused("unknown_part"),
            Some(_) if cards >= limits.max_batch_parts => refused("too_many_parts"),
            Some(_) if too_large => refused("file_too_large"),
            Some(_) if data.is_empty() => refused("empty_file"),
            Some(doc_type) => {
                cards += 1;
                BatchPart::Card {
                    name,
                    doc_type,
                    bytes: Bytes::from(data),
                }
            }
        });
    }
    if parts.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "holds no part (send parts named ktp or npwp)",
        ));
    }
    Ok(BatchUpload { parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (field, file, data) in parts {
            out.extend_from_slice(b"--XyZ\r\n");
            let file = file
                .map(|f| format!("; filename=\"{f}\""))
                .unwrap_or_default();
            out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"{file}\r\n\r\n")
                    .as_bytes(),
            );
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    #[tokio::test]
    async fn each_part_is_judged_alone() {
        let limits = Limits {
            max_file_bytes: 10,
            max_batch_parts: 3,
            ..Limits::default()
        };
        let sent = body(&[
            ("ktp", Some("a.jpg"), b"0123456789"),
            ("passport", Some("p.jpg"), b"x"),
            ("NPWP", None, b"abc"),
            ("ktp", Some("big.jpg"), b"0123456789A"),
            ("ktp", Some("empty.jpg"), b""),
            ("npwp", Some("n.png"), b"def"),
            ("ktp", Some("one-too-many.jpg"), b"ghi"),
        ]);
        let parsed = parse("multipart/form-data; boundary=XyZ", sent, &limits)
            .await
            .unwrap();
        let got: Vec<String> = parsed
            .parts
            .iter()
            .map(|p| match p {
                BatchPart::Card {
                    name,
                    doc_type,
                    bytes,
                } => {
                    format!("{name}:{}:{}", doc_type.as_str(), bytes.len())
                }
                BatchPart::Refused { name, error } => format!("{name}!{error}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "a.jpg:KTP:10",
                "p.jpg!unknown_part",
                "NPWP#3:NPWP:3",
                "big.jpg!file_too_large",
                "empty.jpg!empty_file",
                "n.png:NPWP:3",
                "one-too-many.jpg!too_many_parts",
            ]
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_multipart_is_refused_whole() {
        let limits = Limits::default();
        assert!(
            parse("text/plain", Bytes::from_static(b"x"), &limits)
                .await
                .is_err()
        );
        let empty = body(&[]);
        let err = parse("multipart/form-data; boundary=XyZ", empty, &limits)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }
}
