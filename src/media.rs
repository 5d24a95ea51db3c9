//! What an uploaded file really is, and how far it may be decoded.
//!
//! Content is recognised by its magic bytes (never by a declared type or name). Before any
//! pixel is decoded, the declared dimensions are read from the header and held against the
//! configured limits, for a JPEG or PNG upload and for every page image inside a PDF, so a
//! small file that would expand to gigabytes of pixels (a decompression bomb) is refused at
//! upload. Every decode then runs with explicit decoder limits (sides, pixels, allocation), so
//! no file reaching any decode path, the OCR worker included, can make FiLot allocate beyond
//! them. Pure functions over bytes: no I/O, no knowledge of HTTP or the models.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// What the content is, after sniffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Jpeg,
    Png,
    Pdf,
}

impl MediaKind {
    pub fn mime(&self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Pdf => "application/pdf",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/jpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "application/pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    pub fn extension(&self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Pdf => "pdf",
        }
    }
}

/// The largest image FiLot agrees to decode (`limits.max_image_side`, `max_image_pixels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_side: u32,
    pub max_pixels: u64,
}

/// The defaults of `limits.max_image_side` and `limits.max_image_pixels`.
impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_side: 12_000,
            max_pixels: 48_000_000,
        }
    }
}

impl ImageLimits {
    /// The same limits in the decoder's terms: sides, and the bytes of the decoded RGBA
    /// buffer (the widest a decoder may allocate for one image).
    fn decoder(&self) -> image::Limits {
        let mut l = image::Limits::default();
        l.max_image_width = Some(self.max_side);
        l.max_image_height = Some(self.max_side);
        l.max_alloc = Some(self.max_pixels.saturating_mul(4));
        l
    }

    fn check(&self, w: u32, h: u32) -> Result<(), MediaError> {
        if w == 0 || h == 0 {
            return Err(MediaError::ZeroDimension);
        }
        if w > self.max_side || h > self.max_side {
            return Err(MediaError::SideTooLong {
                w,
                h,
                max: self.max_side,
            });
        }
        if u64::from(w) * u64::from(h) > self.max_pixels {
            return Err(MediaError::TooManyPixels {
                w,
                h,
                max: self.max_pixels,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("file content is not JPEG, PNG or PDF")]
    Unsupported,
    #[error("image header cannot be read")]
    Unreadable,
    #[error("image declares a zero dimension")]
    ZeroDimension,
    #[error("image declares {w}×{h} pixels; each side must be at most {max}")]
    SideTooLong { w: u32, h: u32, max: u32 },
    #[error("image declares {w}×{h} pixels; at most {max} pixels are accepted")]
    TooManyPixels { w: u32, h: u32, max: u64 },
    #[error("the PDF has no page image to read")]
    NoPageImage,
    #[error("image cannot be decoded: {0}")]
    Decode(String),
}

impl MediaError {
    /// True for the refusals that protect the decoder (too large, in any way).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::ZeroDimension | Self::SideTooLong { .. } | Self::TooManyPixels { .. }
        )
    }
}

/// The content's kind from its magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
    infer::get(bytes).and_then(|t| MediaKind::from_mime(t.mime_type()))
}

/// Sniffs the content and reads only headers: an image's declared size, and every page image
/// of a PDF, must be within `limits` before anything decodes them. A PDF without a page image
/// passes (OCR reports it as unreadable).
pub fn inspect(bytes: &[u8], limits: &ImageLimits) -> Result<MediaKind, MediaError> {
    let kind = sniff(bytes).ok_or(MediaError::Unsupported)?;
    match kind {
        MediaKind::Jpeg => check_header(bytes, ImageFormat::Jpeg, limits)?,
        MediaKind::Png => check_header(bytes, ImageFormat::Png, limits)?,
        MediaKind::Pdf => {
            for image in pdf_jpegs(bytes) {
                check_header(image, ImageFormat::Jpeg, limits)?;
            }
        }
    }
    Ok(kind)
}

fn check_header(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<(), MediaError> {
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| MediaError::Unreadable)?;
    limits.check(w, h)
}

/// Decodes a JPEG/PNG (EXIF orientation applied) or the page image of a scanned PDF, with the
/// decoder held to `limits`.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, MediaError> {
    if bytes.starts_with(b"%PDF-") {
        let jpeg = pdf_page_image(bytes).ok_or(MediaError::NoPageImage)?;
        return decode(jpeg, limits);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::Decode(e.to_string()))?;
    reader.limits(limits.decoder());
    let mut decoder = reader.into_decoder().map_err(limit_or_decode)?;
    let (w, h) = decoder.dimensions();
    limits.check(w, h)?;
    let orientation = decoder
        .orientation()
        .map_err(|e| MediaError::Decode(e.to_string()))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(limit_or_decode)?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

fn limit_or_decode(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::Limits(l) => MediaError::Decode(format!("over the decoder limits: {l}")),
        other => MediaError::Decode(other.to_string()),
    }
}

/// Every JPEG stream (`/DCTDecode`) of a PDF, in file order.
fn pdf_jpegs(pdf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while let Some(off) = find(&pdf[pos..], b"stream") {
            let mut start = pos + off + b"stream".len();
            if pdf.get(start) == Some(&b'\r') {
                start += 1;
            }
            if pdf.get(start) == Some(&b'\n') {
                start += 1;
            }
            let len = find(&pdf[start..], b"endstream")?;
            let body = &pdf[start..start + len];
            pos = start + len + b"endstream".len();
            if body.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return Some(body);
            }
        }
        None
    })
}

/// The largest JPEG stream of a PDF: the page image of a scanned card.
pub fn pdf_page_image(pdf: &[u8]) -> Option<&[u8]> {
    pdf_jpegs(pdf).max_by_key(|b| b.len())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Test support: a PNG that declares `w`×`h` pixels with a tiny (invalid) IDAT — what a
/// decompression bomb looks like to a header reader.
#[cfg(any(test, feature = "test-hooks"))]
pub fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [
        (&b"IHDR"[..], ihdr),
        (&b"IDAT"[..], vec![0x78, 0x9c, 0x03, 0x00]),
        (&b"IEND"[..], vec![]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// Test support: a one-page PDF whose page image is a JPEG declaring `w`×`h` pixels (a real
/// baseline JPEG of 16×16 pixels with its frame header rewritten): a PDF decompression bomb.
#[cfg(any(test, feature = "test-hooks"))]
pub fn bomb_pdf(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode(&[128u8; 16 * 16], 16, 16, image::ExtendedColorType::L8)
        .expect("encoding a small JPEG");
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    let mut pdf =
        b"%PDF-1.4\n1 0 obj\n<< /Type /XObject /Subtype /Image /Filter /DCTDecode >>\nstream\n"
            .to_vec();
    pdf.extend_from_slice(&jpeg);
    pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_content_not_names() {
        let limits = ImageLimits::default();
        assert_eq!(inspect(&bomb_png(100, 60), &limits), Ok(MediaKind::Png));
        assert_eq!(inspect(b"%PDF-1.7\n...", &limits), Ok(MediaKind::Pdf));
        assert_eq!(
            inspect(b"GIF89a....", &limits),
            Err(MediaError::Unsupported)
        );
        assert_eq!(inspect(b"hello", &limits), Err(MediaError::Unsupported));
    }

    #[test]
    fn refuses_decompression_bombs_from_the_header() {
        let limits = ImageLimits::default();
        assert!(
            inspect(&bomb_png(100_000, 100_000), &limits)
                .unwrap_err()
                .is_too_large()
        );
        assert!(
            inspect(&bomb_png(10_000, 10_000), &limits)
                .unwrap_err()
                .is_too_large()
        );
    }

    #[test]
    fn refuses_a_bomb_inside_a_pdf_and_the_decoder_never_allocates_it() {
        let limits = ImageLimits::default();
        let pdf = bomb_pdf(14_000, 14_000);
        assert!(inspect(&pdf, &limits).unwrap_err().is_too_large());
        assert!(inspect(&bomb_pdf(800, 500), &limits).is_ok());
        // Had it got past intake, the decoder stops at the header.
        let err = decode(&pdf, &limits).unwrap_err();
        assert!(
            err.is_too_large() || matches!(err, MediaError::Decode(_)),
            "{err}"
        );
        let small = ImageLimits {
            max_side: 64,
            max_pixels: 4_096,
        };
        let png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ktp_001.png"
        ))
        .unwrap();
        assert!(decode(&png, &ImageLimits::default()).is_ok());
        let err = decode(&png, &small).unwrap_err();
        assert!(
            matches!(err, MediaError::Decode(_)) || err.is_too_large(),
            "{err}"
        );
    }

    #[test]
    fn finds_the_page_image_of_a_scanned_pdf() {
        let pdf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ktp_000.pdf"
        ))
        .unwrap();
        assert_eq!(inspect(&pdf, &ImageLimits::default()), Ok(MediaKind::Pdf));
        let img = decode(&pdf, &ImageLimits::default()).unwrap();
        assert!(img.width() > 500 && img.height() > 300);
        assert_eq!(
            decode(b"%PDF-1.4 no images", &ImageLimits::default()),
            Err(MediaError::NoPageImage)
        );
    }
}
