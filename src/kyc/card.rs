//! Reading a KTP from OCR text boxes into the specimen field names, and the checks on what
//! was read; telling a KTP from an NPWP (read in `npwp_card`); the reading both share.
//! Tolerant to OCR noise in labels (fuzzy match) and to labels and values split across
//! boxes; digits are repaired only in numeric fields.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{
    DocumentType,
    nik::{Gender, Nik},
    text::{self, TextBox, after_colon, clean_value, closest, closest_span, repair_digits, squash},
};

/// What was read off one card.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CardReading {
    pub fields: BTreeMap<String, String>,
    pub confidence: BTreeMap<String, f32>,
    pub issues: Vec<String>,
}

impl CardReading {
    pub(super) fn set(&mut self, key: &str, value: impl Into<String>, confidence: f32) {
        let value = value.into();
        if !value.trim().is_empty() && !self.fields.contains_key(key) {
            self.fields
                .insert(key.to_string(), value.trim().to_string());
            self.confidence.insert(key.to_string(), confidence);
        }
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
    pub(super) fn issue(&mut self, code: &str) {
        if !self.issues.iter().any(|i| i == code) {
            self.issues.push(code.to_string());
        }
    }
}

/// Every field a KTP reading may hold, named as in the specimens and the API.
pub const KTP_FIELDS: [&str; 17] = [
    "nik",
    "name",
    "birth_place",
    "birth_date",
    "gender",
    "blood_type",
    "address",
    "rt_rw",
    "village",
    "district",
    "religion",
    "marital_status",
    "occupation",
    "nationality",
    "valid_until",
    "province",
    "regency",
];

const KTP_LABELS: &[(&str, &str)] = &[
    ("nik", "NIK"),
    ("name", "NAMA"),
    ("birth", "TEMPAT/TGLLAHIR"),
    ("gender", "JENISKELAMIN"),
    ("blood_type", "GOLDARAH"),
    ("address", "ALAMAT"),
    ("rt_rw", "RT/RW"),
    ("village", "KEL/DESA"),
    ("district", "KECAMATAN"),
    ("religion", "AGAMA"),
    ("marital_status", "STATUSPERKAWINAN"),
    ("occupation", "PEKERJAAN"),
    ("nationality", "KEWARGANEGARAAN"),
    ("valid_until", "BERLAKUHINGGA"),
];

/// Guesses the card type from its text.
pub fn detect_type(boxes: &[TextBox]) -> DocumentType {
    let all = squash(
        &boxes
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    let npwp = [
        "NPWP",
        "DIREKTORATJENDERALPAJAK",
        "KEMENTERIANKEUANGAN",
        "TERDAFTAR",
    ]
    .iter()
    .filter(|k| all.contains(*k))
    .count();
    let ktp = [
        "PROVINSI",
        "NAMA",
        "AGAMA",
        "KEWARGANEGARAAN",
        "BERLAKUHINGGA",
        "KECAMATAN",
    ]
    .iter()
    .filter(|k| all.contains(*k))
    .count();
    if npwp > ktp {
        DocumentType::Npwp
    } else {
        DocumentType::Ktp
    }
}

/// Splits a segment's text into (label key, value) when it starts with a known label.
fn labelled(segment: &str) -> Option<(&'static str, String, bool)> {
    let accept = |label: &str, candidate: &str| {
        let c = squash(candidate);
        if c.is_empty() {
            return false;
        }
        let max = if label.len() <= 5 {
            1
        } else {
            (label.len() as f32 * 0.3) as usize
        };
        text::edit_distance(&c, label) <= max
    };
    if let Some((before, after)) = segment.split_once(':') {
        let before = before.trim();
        // "Jenis Kelamin" glued to its value without a colon is handled below.
        for (key, label) in KTP_LABELS {
            if accept(label, before) {
                return Some((key, after.trim().to_string(), true));
            }
        }
    }
    let words: Vec<&str> = segment.split_whitespace().collect();
    let mut best: Option<(usize, &'static str, usize)> = None;
    for k in 1..=words.len().min(3) {
        let candidate = words[..k].join(" ");
        for (key, label) in KTP_LABELS {
            let c = squash(&candidate);
            if accept(label, &candidate) {
                let d = text::edit_distance(&c, label);
                if best.is_none_or(|(bd, _, _)| d < bd) {
                    best = Some((d, key, k));
                }
            }
        }
    }
    if let Some((_, key, k)) = best {
        return Some((
            key,
            words[k..]
                .join(" ")
                .trim_start_matches(':')
                .trim()
                .to_string(),
            false,
        ));
    }
    // "NIK3471…" with the label glued to the number.
    let sq = squash(segment);
    if sq.chars().count() > 16 && text::similarity(head(&sq, 3), "NIK") >= 0.6 {
        return Some(("nik", after_chars(segment.trim(), 3).to_string(), false));
    }
    None
}

/// The first `n` characters of `s` (OCR text may hold any script: never slice by bytes).
pub(super) fn head(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// `s` without its first `n` characters.
pub(super) fn after_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or("", |(i, _)| &s[i..])
}

/// The first run of 16 digits after repairing confusions, if any.
pub(super) fn sixteen_digits(s: &str) -> Option<String> {
    let repaired = repair_digits(&s.replace(' ', ""));
    (repaired.len() == 16).then_some(repaired)
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let digits = repair_digits(s);
    if digits.len() != 8 {
        return None;
    }
    let (d, m, y) = (&digits[..2], &digits[2..4], &digits[4..]);
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// Splits "PLACE, DD-MM-YYYY" into the place and the date. The date is taken from the end:
/// its last eight digits (OCR confusions repaired, spaces and separators skipped), so a comma
/// read as a full stop, or digits read with gaps between them, still give the date.
fn split_birth(value: &str) -> (&str, Option<NaiveDate>) {
    let mut digits = Vec::with_capacity(8);
    let mut start = value.len();
    for (i, c) in value.char_indices().rev() {
        if digits.len() == 8 {
            break;
        }
        if let Some(d) = text::repair_digit(c) {
            digits.push(d);
        } else if !matches!(c, '-' | ' ' | '.' | '/') {
            break;
        }
        start = i;
    }
    let date = (digits.len() == 8)
        .then(|| digits.iter().rev().collect::<String>())
        .and_then(|d| parse_date(&d));
    match date {
        Some(date) => {
            let place = value[..start].trim_end_matches(|c: char| ",. ".contains(c));
            (place, Some(date))
        }
        None => match value.rsplit_once(',') {
            Some((place, _)) => (place.trim(), None),
            None => (value, None),
        },
    }
}

/// Reads a KTP: header (province, regency), then labelled rows.
pub fn read_ktp(boxes: &[TextBox], today: NaiveDate) -> CardReading {
    let mut card = CardReading::default();
    let rows = text::rows(boxes);
    let mut seen_province = false;
    // The rows that held the NIK and the name: on every KTP the name follows the NIK and the
    // birth row follows the name.
    let (mut nik_row, mut name_row) = (None, None);
    for (index, row) in rows.iter().enumerate() {
        let row_text = row.text();
        let sq = squash(&row_text);
        if !seen_province
            && (sq.starts_with("PROVINSI")
                || (sq.chars().count() > 8 && text::similarity(head(&sq, 8), "PROVINSI") > 0.7))
        {
            let value = after_letters(row_text.trim(), 8);
            let canonical = closest(value, &super::nik::PROVINCE_NAMES, 0.8);
            card.set("province", canonical.unwrap_or(value), row.confidence());
            seen_province = true;
            continue;
        }
        if seen_province
            && !card.fields.contains_key("regency")
            && !card.fields.contains_key("nik")
            && labelled(&row_text).is_none()
        {
            card.set("regency", clean_value(&row_text), row.confidence());
            continue;
        }
        for seg in text::segments(row, 2.5) {
            let seg_text = seg.text();
            let Some((key, value, _)) = labelled(&seg_text) else {
                continue;
            };
            let conf = seg.confidence();
            match key {
                "nik" => {
                    nik_row = Some(index);
                    if let Some(n) = sixteen_digits(&value) {
                        card.set("nik", n, conf);
                    }
                }
                "birth" => {
                    let (place, date) = split_birth(&value);
                    set_birth(&mut card, place, date, conf);
                }
                "gender" => {
                    // The blood type often sits on the same row after a wide gap or not.
                    let (g, blood) = match value.to_uppercase().find("GOL") {
                        Some(i) => (value[..i].to_string(), Some(value[i..].to_string())),
                        None => (value.clone(), None),
                    };
                    if let Some(v) = closest_span(&g, &["LAKI-LAKI", "PEREMPUAN"], 0.5) {
                        card.set("gender", v, conf);
                    }
                    if let Some(b) = blood {
                        set_blood(&mut card, after_colon(&b), conf);
                    }
                }
                "blood_type" => set_blood(&mut card, &value, conf),
                "name" => {
                    name_row = Some(index);
                    card.set("name", clean_value(&value), conf);
                }
                "rt_rw" => {
                    let digits = repair_digits(&value);
                    if digits.len() == 6 {
                        card.set("rt_rw", format!("{}/{}", &digits[..3], &digits[3..]), conf);
                    }
                }
                "religion" => {
                    if let Some(v) = closest_span(
                        &value,
                        &[
                            "ISLAM", "KRISTEN", "KATHOLIK", "KATOLIK", "HINDU", "BUDDHA",
                            "KONGHUCU",
                        ],
                        0.6,
                    ) {
                        card.set("religion", v, conf);
                    }
                }
                "marital_status" => {
                    if let Some(v) = closest_span(
                        &value,
                        &["BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI"],
                        0.6,
                    ) {
                        card.set("marital_status", v, conf);
                    }
                }
                "nationality" => {
                    if let Some(v) = closest_span(&value, &["WNI", "WNA"], 0.6) {
                        card.set("nationality", v, conf);
                    }
                }
                "valid_until" => {
                    if let Some(d) = parse_date(&value) {
                        card.set("valid_until", d.format("%Y-%m-%d").to_string(), conf);
                    } else if let Some(v) = closest_span(&value, &["SEUMUR HIDUP"], 0.6) {
                        card.set("valid_until", v, conf);
                    }
                }
                other => card.set(other, clean_value(&value), conf),
            }
        }
    }
    if nik_row.is_none()
        && let Some((index, nik, conf)) = nik_by_shape(&rows)
    {
        nik_row = Some(index);
        card.set("nik", nik, conf);
    }
    if !card.fields.contains_key("birth_date")
        && let Some(row) = name_row
            .map(|i| i + 1)
            .or(nik_row.map(|i| i + 2))
            .and_then(|i| rows.get(i))
    {
        birth_by_position(&mut card, row);
    }
    check_ktp(&mut card, today);
    card
}

/// The NIK found by its shape when its label was not read: the one value on the card that is
/// sixteen digits and nothing else (after a colon), with the row it is on. No letter is
/// repaired into a digit here: without the label, only a clean run of digits is a NIK.
fn nik_by_shape(rows: &[text::Row]) -> Option<(usize, String, f32)> {
    let mut found = None;
    for (index, row) in rows.iter().enumerate() {
        for seg in text::segments(row, 2.5) {
            let seg_text = seg.text();
            let value: String = seg_text
                .trim()
                .trim_start_matches([':', '\u{ff1a}'])
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if value.len() == 16 && value.bytes().all(|b| b.is_ascii_digit()) {
                if found.is_some() {
                    return None;
                }
                found = Some((index, value, seg.confidence()));
            }
        }
    }
    found
}

/// The birth row read by its place on the card when its label was not recognised: the row
/// after the name, one of whose segments (the value, after the unread label) ends in a date.
fn birth_by_position(card: &mut CardReading, row: &text::Row) {
    for seg in text::segments(row, 2.5) {
        let seg_text = seg.text();
        if let (place, Some(date)) = split_birth(after_colon(&seg_text)) {
            set_birth(card, place, Some(date), seg.confidence());
            return;
        }
    }
}

/// Sets the birth place and, when one was read, the birth date.
fn set_birth(card: &mut CardReading, place: &str, date: Option<NaiveDate>, conf: f32) {
    card.set("birth_place", clean_value(place), conf);
    if let Some(date) = date {
        card.set("birth_date", date.format("%Y-%m-%d").to_string(), conf);
    }
}

/// `text` after its first `n` letters (a label whose following space may be missing).
fn after_letters(text: &str, n: usize) -> &str {
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            seen += 1;
            if seen == n {
                return text[i + c.len_utf8()..].trim();
            }
        }
    }
    ""
}

fn set_blood(card: &mut CardReading, value: &str, conf: f32) {
    let v = value.trim().to_uppercase().replace('0', "O");
    let v = v.trim_start_matches(':').trim();
    if ["A", "B", "AB", "O", "-"].contains(&v) {
        card.set("blood_type", v, conf);
    }
}

/// Replaces a KTP reading's birth date with `date` (one the card spells elsewhere, see
/// [`super::retake::birth_date_from_nik`]) and checks the card again.
pub fn amend_birth_date(card: &mut CardReading, date: NaiveDate, today: NaiveDate) {
    card.fields.insert(
        "birth_date".to_string(),
        date.format("%Y-%m-%d").to_string(),
    );
    card.issues.clear();
    check_ktp(card, today);
}

fn check_ktp(card: &mut CardReading, today: NaiveDate) {
    let Some(nik) = card.get("nik").and_then(|n| n.parse::<Nik>().ok()) else {
        card.issue("nik_unreadable");
        return;
    };
    let birth = card
        .get("birth_date")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let gender = card.get("gender").map(|g| {
        if g == "PEREMPUAN" {
            Gender::Female
        } else {
            Gender::Male
        }
    });
    for issue in nik.check(birth, gender, today) {
        card.issue(issue);
    }
}

/// A text box as the detector gives one, for the card readers' tests.
#[cfg(test)]
pub(super) fn tb(text: &str, left: f32, top: f32, right: f32) -> TextBox {
    TextBox {
        text: text.into(),
        confidence: 0.95,
        left,
        top,
        right,
        bottom: top + 24.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_place_and_date_read_with_noise() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(
            split_birth("BANDA ACEH, 03-06-1954"),
            ("BANDA ACEH", date(1954, 6, 3))
        );
        assert_eq!(
            split_birth("PA0AG. 08-06- 1955"),
            ("PA0AG", date(1955, 6, 8))
        );
        assert_eq!(
            split_birth("BADAACE H . 0 3 0 6 -1 9 5 4"),
            ("BADAACE H", date(1954, 6, 3))
        );
        // Too few digits: no date, and the place is what stands before the comma.
        assert_eq!(split_birth("JAKARTA, 12-1984"), ("JAKARTA", None));
        // A day that does not exist is no date.
        assert_eq!(split_birth("JAKARTA, 32-01-1984").1, None);
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    /// The lines of specimen clean/ktp_001 as a detector splits them, with typical noise.
    fn ktp_001() -> Vec<TextBox> {
        vec![
            tb("PROVINSI DI YOGYAKARTA", 175.0, 20.0, 615.0),
            tb("KOTA YOGYAKARTA", 235.0, 60.0, 555.0),
            tb("NIK", 30.0, 115.0, 100.0),
            tb(":347IO363O4644108", 170.0, 114.0, 560.0),
            tb("Nama", 30.0, 172.0, 100.0),
            tb(":", 245.0, 172.0, 252.0),
            tb("PUTRI FIRMANSYAH SETIAWAN", 265.0, 171.0, 630.0),
            tb("Tempat/Tgl Lahir", 30.0, 208.0, 230.0),
            tb(": YOGYAKARTA, 23-04-1964", 245.0, 207.0, 575.0),
            tb("Jenis Kelamin", 30.0, 244.0, 190.0),
            tb(":PEREMPUAN", 245.0, 244.0, 415.0),
            tb("Gol. Darah : A", 520.0, 244.0, 690.0),
            tb("Alamat", 30.0, 280.0, 115.0),
            tb(": JL. DIPONEGORO NO. 70", 245.0, 280.0, 555.0),
            tb("RT/RW", 53.0, 316.0, 130.0),
            tb(": 015/004", 245.0, 316.0, 365.0),
            tb("Kel/Desa", 53.0, 352.0, 158.0),
            tb(": CIPETE UTARA", 245.0, 352.0, 435.0),
            tb("Kecamatan", 53.0, 388.0, 187.0),
            tb(": KOTAGEDE", 245.0, 388.0, 395.0),
            tb("Agama", 30.0, 424.0, 115.0),
            tb(": KONGHUCU", 245.0, 424.0, 405.0),
            tb("YOGYAKARTA", 800.0, 420.0, 915.0),
            tb("Status Perkawinan KAWIN", 30.0, 460.0, 345.0),
            tb("23-04-1984", 815.0, 446.0, 920.0),
            tb("Pekerjaan", 30.0, 496.0, 147.0),
            tb(": PETANI/PEKEBUN", 245.0, 496.0, 470.0),
            tb("Kewarganegaraan: WNI", 30.0, 532.0, 315.0),
            tb("Berlaku Hingga", 30.0, 568.0, 215.0),
            tb(": SEUMUR HIDUP", 245.0, 568.0, 452.0),
        ]
    }

    #[test]
    fn a_nik_whose_label_was_not_read_is_found_by_its_shape() {
        let unlabelled = |nik_box: TextBox| {
            let mut boxes = ktp_001();
            boxes.remove(2); // the "NIK" label
            boxes[2] = nik_box;
            read_ktp(&boxes, today())
        };
        let card = unlabelled(tb(":3471036304644108", 170.0, 114.0, 560.0));
        assert_eq!(card.get("nik"), Some("3471036304644108"));
        assert_eq!(card.get("birth_date"), Some("1964-04-23"));
        assert!(card.issues.is_empty(), "{:?}", card.issues);
        // Letters standing for digits, or a colon read as a seventeenth digit: without the
        // label that is no NIK.
        let card = unlabelled(tb(":347IO363O4644108", 170.0, 114.0, 560.0));
        assert_eq!(card.get("nik"), None);
        let card = unlabelled(tb("13471036304644108", 170.0, 114.0, 560.0));
        assert_eq!(card.get("nik"), None);
        assert_eq!(card.issues, ["nik_unreadable"]);
    }

    #[test]
    fn reads_every_ktp_field_through_noise() {
        let card = read_ktp(&ktp_001(), today());
        let f = |k: &str| card.get(k).unwrap_or("<missing>").to_string();
        assert_eq!(f("province"), "DI YOGYAKARTA");
        assert_eq!(f("regency"), "KOTA YOGYAKARTA");
        assert_eq!(f("nik"), "3471036304644108");
        assert_eq!(f("name"), "PUTRI FIRMANSYAH SETIAWAN");
        assert_eq!(f("birth_place"), "YOGYAKARTA");
        assert_eq!(f("birth_date"), "1964-04-23");
        assert_eq!(f("gender"), "PEREMPUAN");
        assert_eq!(f("blood_type"), "A");
        assert_eq!(f("address"), "JL. DIPONEGORO NO. 70");
        assert_eq!(f("rt_rw"), "015/004");
        assert_eq!(f("village"), "CIPETE UTARA");
        assert_eq!(f("district"), "KOTAGEDE");
        assert_eq!(f("religion"), "KONGHUCU");
        assert_eq!(f("marital_status"), "KAWIN");
        assert_eq!(f("occupation"), "PETANI/PEKEBUN");
        assert_eq!(f("nationality"), "WNI");
        assert_eq!(f("valid_until"), "SEUMUR HIDUP");
        assert!(card.issues.is_empty(), "{:?}", card.issues);
        assert_eq!(detect_type(&ktp_001()), DocumentType::Ktp);
    }
}
