//! Asking for a new photo instead of guessing: when a key field of a card (the KTP's NIK and
//! birth date, the NPWP's number) could not be read, or was read with a character the
//! recogniser was unsure of, the reading carries one stable code that says what was wrong with
//! the photo, from measurements of it, so that a client app can ask the person to retake it at
//! once. A card whose key fields were read with confidence gets no code, however poor the
//! photo.

use chrono::{Datelike, NaiveDate};

use super::{DocumentType, card::CardReading, nik::Nik};

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
/// A card says some things twice (a KTP's NIK spells the birth date again; a 16-digit NPWP
/// is the NIK printed below it). Where the two readings disagree, the card is taken to really
/// say two things (and the verifier's mismatch stands) only when both were read at least this
/// surely; otherwise one of them is a misreading and the photo is retaken.
pub const MIN_MISMATCH_CONFIDENCE: f32 = 0.97;

/// The key fields of a card type.
pub fn key_fields(doc_type: DocumentType) -> &'static [&'static str] {
    match doc_type {
        DocumentType::Ktp => &["nik", "birth_date"],
        DocumentType::Npwp => &["npwp"],
    }
}

/// A key field's digits in the order the card prints them (a birth date as DDMMYYYY).
pub fn printed_digits(key: &str, value: &str) -> String {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if key == "birth_date" && digits.len() == 8 {
        format!("{}{}{}", &digits[6..], &digits[4..6], &digits[..4])
    } else {
        digits
    }
}

/// The retake code for a reading, or `None` when its key fields were read with confidence
/// (`today` places a NIK's two-digit year in its century). `located` gives, for a key field's
/// printed digits, the recogniser's confidence in each of them on every line that spells
/// them (none found is doubt too).
pub fn code(
    doc_type: DocumentType,
    card: &CardReading,
    located: &dyn Fn(&str) -> Vec<Vec<f32>>,
    m: &PhotoMeasures,
    today: NaiveDate,
) -> Option<&'static str> {
    let read = |key: &str| {
        let printed = printed_digits(key, card.get(key)?);
        let conf = located(&printed).into_iter().next()?;
        (conf.len() == printed.len()).then_some((printed, conf))
    };
    let doubtful = match doc_type {
        DocumentType::Ktp => match (read("nik"), read("birth_date")) {
            (Some(mut nik), Some(mut birth)) => {
                !cross_confirm(&mut nik, &mut birth, today) || doubt(&nik.1) || doubt(&birth.1)
            }
            _ => true,
        },
        DocumentType::Npwp => match read("npwp") {
            Some(mut npwp) => {
                !npwp_confirmed(&mut npwp, card.get("nik"), located) || doubt(&npwp.1)
            }
            None => true,
        },
    };
    doubtful.then(|| photo_code(m))
}

/// The retake code for a photo whose key fields are in doubt: what its measurements say was
/// wrong with it.
pub fn photo_code(m: &PhotoMeasures) -> &'static str {
    if m.lines == 0 || (!m.card_found && m.lines < 3) {
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
    }
}

fn doubt(conf: &[f32]) -> bool {
    conf.iter().any(|&c| c < MIN_KEY_CHAR_CONFIDENCE)
}

/// The confidence in a digit that two independent readings agree on: the chance that not
/// both erred.
fn both(a: f32, b: f32) -> f32 {
    1.0 - (1.0 - a) * (1.0 - b)
}

/// Weighs one digit read twice, with the confidences `a` and `b`: agreeing, both become
/// surer; disagreeing, false when either reading is doubtful (a misreading, not a card that
/// says two things).
fn confirm(a: &mut f32, b: &mut f32, agree: bool) -> bool {
    if agree {
        let sure = both(*a, *b);
        (*a, *b) = (sure, sure);
        true
    } else {
        a.min(*b) >= MIN_MISMATCH_CONFIDENCE
    }
}

/// Compares the NIK's date digits (DDMMYY at 7 to 12) with the birth date's (DDMMYYYY), each
/// with its confidence (see [`confirm`]). The birth year's century, which the NIK does not
/// spell, is confirmed when it is the century the NIK's year is placed in (as the verifier
/// places it). Returns false when a disagreement says the photo is to be retaken.
fn cross_confirm(
    nik: &mut (String, Vec<f32>),
    birth: &mut (String, Vec<f32>),
    today: NaiveDate,
) -> bool {
    let (n, b): (Vec<u8>, Vec<u8>) = (
        nik.0.bytes().map(|c| c - b'0').collect(),
        birth.0.bytes().map(|c| c - b'0').collect(),
    );
    if n.len() != 16 || b.len() != 8 {
        return true;
    }
    // (NIK position, birth position, whether they agree): the day's tens may carry the 40
    // added for a woman.
    let pairs = [
        (6, 0, n[6] == b[0] || n[6] == b[0] + 4),
        (7, 1, n[7] == b[1]),
        (8, 2, n[8] == b[2]),
        (9, 3, n[9] == b[3]),
        (10, 6, n[10] == b[6]),
        (11, 7, n[11] == b[7]),
    ];
    let mut consistent = true;
    for (i, j, agree) in pairs {
        consistent &= confirm(&mut nik.1[i], &mut birth.1[j], agree);
    }
    // The century: agreeing with the one the NIK's year is placed in, it is confirmed by the
    // NIK's year digits; disagreeing (a birth in 2962, or in 1854 for a NIK of '54), it is
    // a misreading unless read surely (see [`confirm`]).
    if let Some(encoded) = nik.0.parse::<Nik>().ok().and_then(|n| n.birth_date(today)) {
        let agree = i32::from(b[4]) * 10 + i32::from(b[5]) == encoded.year() / 100;
        let year = nik.1[10].min(nik.1[11]);
        for c in &mut birth.1[4..6] {
            consistent &= confirm(c, &mut year.clone(), agree);
        }
    }
    // No one is born after today: a birth date in the future is a misreading however surely
    // it was read (a blurred 1988 read 2988), never a card that says two things.
    let number = |digits: &[u8]| digits.iter().fold(0u32, |v, &d| v * 10 + u32::from(d));
    let printed = (number(&b[4..]), number(&b[2..4]), number(&b[..2]));
    consistent && printed <= (today.year() as u32, today.month(), today.day())
}

/// The birth date a KTP's NIK spells (DDMMYY, the century placed as the verifier places it)
/// when the printed birth date was read differing from it only in digits the recogniser
/// doubted (below [`MIN_KEY_CHAR_CONFIDENCE`]), each spelled surely by the NIK (at least
/// [`MIN_MISMATCH_CONFIDENCE`]), on a NIK read without doubt: the card says the date twice
/// and one reading of it is sure. `None` when the two agree, or when either disagreeing
/// reading is not so lopsided (then the photo is retaken, or the mismatch stands). The
/// printed date's own digits are still not found on the page, so such a reading keeps its
/// retake code: the date is right, the photo still asks to be taken again.
pub fn birth_date_from_nik(
    card: &CardReading,
    located: &dyn Fn(&str) -> Vec<Vec<f32>>,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let nik = card.get("nik")?;
    let encoded = nik.parse::<Nik>().ok()?.birth_date(today)?;
    let printed = printed_digits("birth_date", card.get("birth_date")?);
    let nik_conf = located(nik).into_iter().next().filter(|c| c.len() == 16)?;
    let birth_conf = located(&printed)
        .into_iter()
        .next()
        .filter(|c| c.len() == 8)?;
    if printed.len() != 8 || doubt(&nik_conf) {
        return None;
    }
    let spelled = encoded.format("%d%m%Y").to_string();
    // The NIK digit that spells each printed one (DD MM at 6 to 9, YY at 10 and 11); the
    // century is spelled by the year's two digits together.
    let source = |j: usize| match j {
        0..=3 => nik_conf[6 + j],
        4 | 5 => nik_conf[10].min(nik_conf[11]),
        _ => nik_conf[4 + j],
    };
    let mut differs = false;
    for (j, (read, spelled)) in printed.bytes().zip(spelled.bytes()).enumerate() {
        if read != spelled {
            if birth_conf[j] >= MIN_KEY_CHAR_CONFIDENCE || source(j) < MIN_MISMATCH_CONFIDENCE {
                return None;
            }
            differs = true;
        }
    }
    differs.then_some(encoded)
}

/// A random misreading slips past the NPWP's Luhn check digit about once in ten.
const LUHN_MISSES: f32 = 0.1;

/// Confirms an NPWP's digits by what else the card says. A 15-digit NPWP's first nine digits
/// carry a Luhn check: when it holds, the weakest of them is surer than its reading alone;
/// when it fails on a number read with doubt, the number was misread (false), not printed
/// wrong. A 16-digit NPWP is the holder's NIK, printed again on the card: a second line that
/// spells it, or the NIK read there, confirms it digit by digit (see [`confirm`]).
fn npwp_confirmed(
    npwp: &mut (String, Vec<f32>),
    nik: Option<&str>,
    located: &dyn Fn(&str) -> Vec<Vec<f32>>,
) -> bool {
    let (digits, conf) = (npwp.0.as_bytes(), &mut npwp.1);
    let fifteen = match digits.len() {
        15 => 0,
        16 if digits[0] == b'0' => 1,
        16 => {
            let lines = located(&npwp.0);
            let other = match (lines.get(1), nik) {
                (Some(again), _) => Some((npwp.0.clone(), again.clone())),
                (None, Some(nik)) if nik.len() == 16 && nik != npwp.0 => located(nik)
                    .into_iter()
                    .next()
                    .map(|c| (nik.to_string(), c)),
                _ => None,
            };
            let Some((other, mut other_conf)) = other.filter(|(_, c)| c.len() == 16) else {
                return true;
            };
            let mut consistent = true;
            for (i, (a, b)) in digits.iter().zip(other.as_bytes()).enumerate() {
                consistent &= confirm(&mut conf[i], &mut other_conf[i], a == b);
            }
            return consistent;
        }
        _ => return true,
    };
    let checked = &mut conf[fifteen..fifteen + 9];
    if super::npwp::check_digit_holds(&npwp.0[fifteen..]) {
        // One misread digit would have broken the check: the weakest of the nine is
        // confirmed, the others stand on their own reading.
        if let Some(weakest) = checked.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *weakest = both(*weakest, 1.0 - LUHN_MISSES);
        }
        true
    } else {
        checked.iter().all(|&c| c >= MIN_MISMATCH_CONFIDENCE)
    }
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

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

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
        let sure = |printed: &str| vec![vec![0.99; printed.len()]];
        assert_eq!(code(DocumentType::Ktp, &card, &sure, &dark, today()), None);
    }

    #[test]
    fn each_measurement_names_its_own_code() {
        let missing = ktp(&[("nik", "3171024608543401")]);
        let code_for =
            |m: PhotoMeasures| code(DocumentType::Ktp, &missing, &|_| vec![], &m, today());
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

    /// Every field's digits read once with confidence `sure`, but for the digit at `index` of
    /// a field `len` digits long, read with `weak`.
    fn weak_digit(
        len: usize,
        index: usize,
        sure: f32,
        weak: f32,
    ) -> impl Fn(&str) -> Vec<Vec<f32>> {
        move |printed: &str| {
            let mut conf = vec![sure; printed.len()];
            if printed.len() == len {
                conf[index] = weak;
            }
            vec![conf]
        }
    }

    #[test]
    fn a_doubtful_character_in_a_key_field_asks_for_a_retake() {
        let card = ktp(&[("nik", "3171824688543481"), ("birth_date", "1954-08-06")]);
        let located = weak_digit(16, 15, 0.95, 0.48);
        assert_eq!(
            code(DocumentType::Ktp, &card, &located, &measures(), today()),
            Some("too_blurry")
        );
        let npwp = ktp(&[("npwp", "024359010736000")]);
        let fair = |printed: &str| vec![vec![0.9; printed.len()]];
        assert_eq!(
            code(DocumentType::Npwp, &npwp, &fair, &measures(), today()),
            None
        );
        // Digits that can be found on no line are not trusted.
        assert_eq!(
            code(DocumentType::Npwp, &npwp, &|_| vec![], &measures(), today()),
            Some("too_blurry")
        );
        assert!(!any_key_field(DocumentType::Npwp, &ktp(&[])));
    }

    #[test]
    fn a_birth_date_is_checked_as_printed() {
        assert_eq!(printed_digits("birth_date", "1954-08-06"), "06081954");
        assert_eq!(
            printed_digits("nik", "3171024608543401"),
            "3171024608543401"
        );
    }

    /// A NIK whose date digits (46 08 54: a woman born on 6 August 1954) are read with the
    /// given confidence everywhere and `weak` at the month's second digit.
    fn ktp_read(nik: &str, birth: &str, weak: f32) -> Option<&'static str> {
        let card = ktp(&[("nik", nik), ("birth_date", birth)]);
        code(
            DocumentType::Ktp,
            &card,
            &weak_digit(16, 9, 0.97, weak),
            &measures(),
            today(),
        )
    }

    #[test]
    fn the_nik_and_the_birth_date_confirm_each_other() {
        // A doubtful NIK digit that the birth date spells the same is trusted.
        assert_eq!(ktp_read("3171024608543401", "1954-08-06", 0.6), None);
        // One the birth date contradicts is a misreading to retake, not a mismatch to report.
        assert_eq!(
            ktp_read("3171024609543401", "1954-08-06", 0.6),
            Some("too_blurry")
        );
        // Both read surely and still different: the card says two things, and the verifier
        // reports that.
        assert_eq!(ktp_read("3171024609543401", "1954-08-06", 0.99), None);
        // The century, which the NIK does not spell, is confirmed by the NIK's year...
        let card = ktp(&[("nik", "3171024608543401"), ("birth_date", "1954-08-06")]);
        let century_weak = weak_digit(8, 5, 0.97, 0.6);
        let read =
            |card: &CardReading| code(DocumentType::Ktp, card, &century_weak, &measures(), today());
        assert_eq!(read(&card), None);
        // ...and only when it is the century the NIK's year belongs in.
        let card = ktp(&[("nik", "3171024608543401"), ("birth_date", "1854-08-06")]);
        assert_eq!(read(&card), Some("too_blurry"));
        // A century the NIK's year does not belong in is a misreading even when read fairly
        // surely: a card printed with a birth in 2954 says nothing true.
        let card = ktp(&[("nik", "3171024608543401"), ("birth_date", "2954-08-06")]);
        let century_fair = weak_digit(8, 4, 0.97, 0.9);
        let read =
            |card: &CardReading| code(DocumentType::Ktp, card, &century_fair, &measures(), today());
        assert_eq!(read(&card), Some("too_blurry"));
        // A birth after today is a misreading even when every digit was read surely.
        let sure = |printed: &str| vec![vec![0.99; printed.len()]];
        let future = ktp(&[("nik", "3171024608883401"), ("birth_date", "2988-08-06")]);
        assert_eq!(
            code(DocumentType::Ktp, &future, &sure, &measures(), today()),
            Some("too_blurry")
        );
        // A digit outside the date gets no help from the birth date.
        let card = ktp(&[("nik", "3171024608543401"), ("birth_date", "1954-08-06")]);
        let serial_weak = weak_digit(16, 14, 0.97, 0.6);
        assert_eq!(
            code(DocumentType::Ktp, &card, &serial_weak, &measures(), today()),
            Some("too_blurry")
        );
    }

    #[test]
    fn a_birth_date_misread_where_the_nik_spells_it_surely_is_the_nik_s() {
        // A woman born on 6 August 1954: the NIK's day carries the 40 added for a woman.
        let nik = "3171024608543401";
        let born = NaiveDate::from_ymd_opt(1954, 8, 6);
        let from_nik = |birth: &str, located: &dyn Fn(&str) -> Vec<Vec<f32>>| {
            birth_date_from_nik(
                &ktp(&[("nik", nik), ("birth_date", birth)]),
                located,
                today(),
            )
        };
        // The year's third digit read as 1 with doubt (printed 06081914), the NIK sure.
        assert_eq!(from_nik("1914-08-06", &weak_digit(8, 6, 0.99, 0.5)), born);
        // So is an impossible century read with doubt (printed 06082954).
        assert_eq!(from_nik("2954-08-06", &weak_digit(8, 4, 0.99, 0.6)), born);
        // Agreeing, there is nothing to replace.
        assert_eq!(from_nik("1954-08-06", &weak_digit(8, 6, 0.99, 0.5)), None);
        // The disagreeing digit read surely: the card says two things, the mismatch stands.
        assert_eq!(from_nik("1914-08-06", &weak_digit(8, 5, 0.99, 0.5)), None);
        // The NIK's digit that spells it not sure, or any NIK digit doubtful: no one reading
        // is to be believed over the other, and the photo is retaken instead.
        let nik_fair = |printed: &str| {
            let mut conf = vec![0.99; printed.len()];
            if printed.len() == 16 {
                conf[10] = 0.9;
            } else {
                conf[6] = 0.5;
            }
            vec![conf]
        };
        assert_eq!(from_nik("1914-08-06", &nik_fair), None);
        let nik_doubtful = |printed: &str| {
            let mut conf = vec![0.99; printed.len()];
            conf[if printed.len() == 16 { 15 } else { 6 }] = 0.5;
            vec![conf]
        };
        assert_eq!(from_nik("1914-08-06", &nik_doubtful), None);
        // A date found on no line is not weighed at all.
        assert_eq!(from_nik("1914-08-06", &|_| vec![]), None);
        // The replaced date's digits are on no line, so the reading still asks for a retake.
        let mut card = ktp(&[("nik", nik), ("birth_date", "1914-08-06")]);
        let located = |printed: &str| match printed {
            "06081914" => vec![{
                let mut c = vec![0.99; 8];
                c[6] = 0.5;
                c
            }],
            "3171024608543401" => vec![vec![0.99; 16]],
            _ => vec![],
        };
        let date = birth_date_from_nik(&card, &located, today()).unwrap();
        super::super::card::amend_birth_date(&mut card, date, today());
        assert_eq!(card.get("birth_date"), Some("1954-08-06"));
        assert!(!card.issues.iter().any(|i| i == "nik_birth_date_mismatch"));
        assert_eq!(
            code(DocumentType::Ktp, &card, &located, &measures(), today()),
            Some("too_blurry")
        );
    }

    /// An NPWP card read with its digits sure but for those at `weak`, read on each of
    /// `lines` (the digits it spells, the confidence of its weak digits).
    fn npwp_read(
        npwp: &str,
        nik: Option<&str>,
        lines: &[(&str, f32)],
        weak: &[usize],
    ) -> Option<&'static str> {
        let mut card = ktp(&[("npwp", npwp)]);
        if let Some(nik) = nik {
            card.fields.insert("nik".into(), nik.into());
        }
        let located = |printed: &str| {
            lines
                .iter()
                .filter(|(digits, _)| *digits == printed)
                .map(|(_, c)| {
                    (0..printed.len())
                        .map(|i| if weak.contains(&i) { *c } else { 0.99 })
                        .collect()
                })
                .collect()
        };
        code(DocumentType::Npwp, &card, &located, &measures(), today())
    }

    #[test]
    fn an_npwp_is_confirmed_by_its_check_digit_and_the_nik() {
        // 01.234.567.4-...: the Luhn digit holds, so one doubtful digit of it is trusted...
        let good = "012345674000000";
        assert_eq!(super::super::npwp::luhn_digit("01234567"), 4);
        assert_eq!(npwp_read(good, None, &[(good, 0.5)], &[3]), None);
        // ...but not two, nor one in the branch code after it.
        assert_eq!(
            npwp_read(good, None, &[(good, 0.5)], &[3, 5]),
            Some("too_blurry")
        );
        assert_eq!(
            npwp_read(good, None, &[(good, 0.5)], &[12]),
            Some("too_blurry")
        );
        // A check digit that fails on a doubtful reading is a misreading, not a bad number.
        let bad = "012345675000000";
        assert_eq!(
            npwp_read(bad, None, &[(bad, 0.85)], &[3]),
            Some("too_blurry")
        );
        assert_eq!(npwp_read(bad, None, &[(bad, 0.99)], &[3]), None);
        // A 16-digit NPWP and the NIK printed below it: agreeing, they confirm each other...
        let nik = "3171024608543401";
        let twice = [(nik, 0.7), (nik, 0.8)];
        assert_eq!(npwp_read(nik, Some(nik), &twice, &[3]), None);
        assert_eq!(
            npwp_read(nik, Some(nik), &[(nik, 0.7)], &[3]),
            Some("too_blurry")
        );
        // ...and a NIK read differently, with doubt, says one of them was misread.
        let other = "3172024608543401";
        assert_eq!(
            npwp_read(nik, Some(other), &[(nik, 0.8), (other, 0.8)], &[3]),
            Some("too_blurry")
        );
    }
}
