//! Asking for a new photo instead of guessing: when a key field of a card (the KTP's NIK and
//! birth date, the NPWP's number) could not be read, or was read with a character the
//! recogniser was unsure of, the reading carries one stable code that says what was wrong with
//! the photo, from measurements of it, so that a client app can ask the person to retake it at
//! once. A card whose key fields were read with confidence gets no code, however poor the
//! photo.

use super::{DocumentType, card::CardReading};

/// Every retake code, in the order they are considered.
pub const CODES: [&str; 5] = [
    "no_card_found",
    "card_too_small",
    "too_dark",
    "glare_over_field",
    "too_blurry",
];

/// What was measured on the photo and the page read from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoMeasures {
    /// Whether a card stood out from its background (otherwise the whole photo was read).
    pub card_found: bool,
    /// Text lines found.
    pub lines: usize,
    /// The median text line's height in the photo's own pixels.
    pub text_height_px: f32,
    /// The page's median luminance, 0 to 255.
    pub brightness: f32,
    /// Share of the page's pixels whose light is clipped (blown out by a reflection).
    pub clipped_share: f32,
    /// The steepest edges' rise per pixel as a share of the page's contrast, at the detector's
    /// scale: a sharp photo steps from paper to ink in a pixel or two.
    pub sharpness: f32,
}

/// Lines shorter than this many photo pixels hold too few pixels per character to read.
pub const MIN_TEXT_HEIGHT_PX: f32 = 9.0;
/// A page darker than this (median luminance) leaves too little light between ink and paper.
pub const MIN_BRIGHTNESS: f32 = 55.0;
/// Clipped highlights over more than this share of the card hide what lies under them.
pub const MAX_CLIPPED_SHARE: f32 = 0.004;
/// Edges rising over more than about four pixels at the detector's scale are blurred.
pub const MIN_SHARPNESS: f32 = 0.25;
/// A key field holding a character read with less confidence than this is not trusted.
pub const MIN_KEY_CHAR_CONFIDENCE: f32 = 0.75;

/// The key fields of a card type.
pub fn key_fields(doc_type: DocumentType) -> &'static [&'static str] {
    match doc_type {
        DocumentType::Ktp => &["nik", "birth_date"],
        DocumentType::Npwp => &["npwp"],
    }
}

/// The retake code for a reading, or `None` when its key fields were read with confidence.
/// `weakest` gives, per field, the least confident character read in it.
pub fn code(
    doc_type: DocumentType,
    card: &CardReading,
    weakest: &dyn Fn(&str) -> Option<f32>,
    m: &PhotoMeasures,
) -> Option<&'static str> {
    let doubtful = key_fields(doc_type).iter().any(|key| {
        card.get(key).is_none() || weakest(key).is_some_and(|c| c < MIN_KEY_CHAR_CONFIDENCE)
    });
    if !doubtful {
        return None;
    }
    Some(if m.lines == 0 || (!m.card_found && m.lines < 3) {
        "no_card_found"
    } else if m.text_height_px < MIN_TEXT_HEIGHT_PX {
        "card_too_small"
    } else if m.brightness < MIN_BRIGHTNESS {
        "too_dark"
    } else if m.clipped_share > MAX_CLIPPED_SHARE {
        "glare_over_field"
    } else {
        // Found, large enough, lit and not blown out, yet not read: the letters are not sharp.
        // A low `sharpness` says so directly; above it, the recogniser's doubt does.
        "too_blurry"
    })
}

/// The retake code among a reading's issues, if it carries one.
pub fn among(issues: &[String]) -> Option<&'static str> {
    issues
        .iter()
        .find_map(|i| CODES.into_iter().find(|c| c == i))
}

/// Whether any key field was read at all.
pub fn any_key_field(doc_type: DocumentType, card: &CardReading) -> bool {
    key_fields(doc_type).iter().any(|k| card.get(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures() -> PhotoMeasures {
        PhotoMeasures {
            card_found: true,
            lines: 20,
            text_height_px: 20.0,
            brightness: 150.0,
            clipped_share: 0.0,
            sharpness: 0.5,
        }
    }

    fn ktp(fields: &[(&str, &str)]) -> CardReading {
        CardReading {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_confident_reading_needs_no_retake_however_poor_the_photo() {
        let card = ktp(&[("nik", "3171024608543401"), ("birth_date", "1954-08-06")]);
        let dark = PhotoMeasures {
            brightness: 20.0,
            text_height_px: 5.0,
            ..measures()
        };
        assert_eq!(code(DocumentType::Ktp, &card, &|_| Some(0.99), &dark), None);
    }

    #[test]
    fn each_measurement_names_its_own_code() {
        let missing = ktp(&[("nik", "3171024608543401")]);
        let code_for = |m: PhotoMeasures| code(DocumentType::Ktp, &missing, &|_| None, &m);
        assert_eq!(
            code_for(PhotoMeasures {
                lines: 0,
                ..measures()
            }),
            Some("no_card_found")
        );
        assert_eq!(
            code_for(PhotoMeasures {
                text_height_px: 7.0,
                ..measures()
            }),
            Some("card_too_small")
        );
        assert_eq!(
            code_for(PhotoMeasures {
                brightness: 30.0,
                ..measures()
            }),
            Some("too_dark")
        );
        assert_eq!(
            code_for(PhotoMeasures {
                clipped_share: 0.02,
                ..measures()
            }),
            Some("glare_over_field")
        );
        assert_eq!(code_for(measures()), Some("too_blurry"));
    }

    #[test]
    fn a_doubtful_character_in_a_key_field_asks_for_a_retake() {
        let card = ktp(&[("nik", "3171824688543481"), ("birth_date", "1954-08-06")]);
        let weakest = |key: &str| Some(if key == "nik" { 0.48 } else { 0.95 });
        assert_eq!(
            code(DocumentType::Ktp, &card, &weakest, &measures()),
            Some("too_blurry")
        );
        let npwp = ktp(&[("npwp", "024359010736000")]);
        assert_eq!(
            code(DocumentType::Npwp, &npwp, &|_| Some(0.9), &measures()),
            None
        );
        assert!(!any_key_field(DocumentType::Npwp, &ktp(&[])));
    }
}
