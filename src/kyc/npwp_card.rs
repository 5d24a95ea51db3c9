//! Reading an NPWP card from OCR text boxes (the number after "NPWP", the name below it, the
//! NIK printed under that), and the checks between a person's KTP and NPWP readings.

use super::{
    card::{CardReading, after_chars, head, sixteen_digits},
    npwp::Npwp,
    text::{self, TextBox, after_colon, repair_digits, squash},
};

/// The NPWP's digits in `value`. Only the 15-digit form is printed with a hyphen before its
/// last six digits ("01.234.567.8-901.000"); where that shape is read, the number is the 15
/// digits that end it, and a digit before them (a colon read as a "1") is not part of it.
fn npwp_digits(value: &str) -> String {
    let digits = repair_digits(value);
    let fifteen_shape = value
        .rsplit_once('-')
        .is_some_and(|(_, tail)| repair_digits(tail).len() == 6);
    if fifteen_shape && digits.len() > 15 {
        digits[digits.len() - 15..].to_string()
    } else {
        digits
    }
}

/// Reads an NPWP card: the number after "NPWP", the name on the next row, the NIK.
pub fn read_npwp(boxes: &[TextBox]) -> CardReading {
    let mut card = CardReading::default();
    let rows = text::rows(boxes);
    let mut name_next = false;
    for row in &rows {
        let t = row.text();
        let sq = squash(&t);
        let conf = row.confidence();
        if sq.starts_with("NPWP")
            || (sq.chars().count() > 4
                && text::similarity(head(&sq, 4), "NPWP") >= 0.75
                && after_chars(&sq, 4).chars().any(|c| c.is_ascii_digit()))
        {
            let digits = npwp_digits(after_colon(
                &t[t.find(|c: char| c == ':' || c.is_ascii_digit())
                    .unwrap_or(0)..],
            ));
            if matches!(digits.len(), 15 | 16) {
                card.set("npwp", digits, conf);
                name_next = true;
            }
            continue;
        }
        if sq.starts_with("NIK") && !card.fields.contains_key("nik") {
            let rest = match t.to_ascii_uppercase().find("NIK") {
                Some(i) => &t[i + 3..],
                None => after_chars(t.trim_start(), 3),
            };
            if let Some(n) = sixteen_digits(after_colon(rest)) {
                card.set("nik", n, conf);
            }
            continue;
        }
        // The NIK's label misread ("NK", "N1K"): a short word like it before sixteen digits.
        let label: String = sq.chars().take_while(|c| c.is_alphabetic()).collect();
        if !card.fields.contains_key("nik")
            && (2..=4).contains(&label.len())
            && text::similarity(&label, "NIK") >= 0.6
            && let Some(n) = sixteen_digits(&sq[label.len()..])
        {
            card.set("nik", n, conf);
            continue;
        }
        if name_next {
            let name: String = t
                .chars()
                .filter(|c| c.is_alphabetic() || " .,'-".contains(*c))
                .collect();
            card.set(
                "name",
                name.split_whitespace().collect::<Vec<_>>().join(" "),
                conf,
            );
            name_next = false;
        }
    }
    match card.get("npwp").and_then(|n| n.parse::<Npwp>().ok()) {
        Some(npwp) => {
            for issue in npwp.check(card.get("nik")) {
                card.issue(issue);
            }
        }
        None => card.issue("npwp_unreadable"),
    }
    card
}

/// Cross-document checks between a KTP and the same person's NPWP: the NPWP's NIK and name
/// must match the KTP (names tolerant to spacing and small OCR noise, strict otherwise).
pub fn cross_check(ktp: &CardReading, npwp: &CardReading) -> Vec<&'static str> {
    let mut issues = Vec::new();
    if let (Some(a), Some(b)) = (ktp.get("nik"), npwp.get("nik"))
        && a != b
    {
        issues.push("npwp_nik_mismatch");
    }
    if let (Some(a), Some(b)) = (ktp.get("name"), npwp.get("name"))
        && !names_match(a, b)
    {
        issues.push("npwp_name_mismatch");
    }
    issues
}

/// Same person's name as printed on two cards, allowing OCR noise of about one character
/// per eight but not a different word.
pub fn names_match(a: &str, b: &str) -> bool {
    let (sa, sb) = (squash(a), squash(b));
    let budget = sa.len().max(sb.len()) / 8;
    text::edit_distance(&sa, &sb) <= budget.min(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kyc::{
        DocumentType,
        card::{detect_type, tb},
    };

    #[test]
    fn reads_an_npwp_and_cross_checks_it() {
        let boxes = vec![
            tb(
                "KEMENTERIAN KEUANGAN REPUBLIK INDONESIA",
                100.0,
                70.0,
                640.0,
            ),
            tb("DIREKTORAT JENDERAL PAJAK", 100.0, 108.0, 565.0),
            tb("NPWP : 09.915.104.5-800.000", 95.0, 190.0, 585.0),
            tb("EKO RAHAYU", 95.0, 250.0, 295.0),
            tb("NIK : 1871031312996112", 95.0, 300.0, 380.0),
        ];
        assert_eq!(detect_type(&boxes), DocumentType::Npwp);
        let mut misread = boxes.clone();
        misread[4] = tb("NK-1871031312996112", 95.0, 300.0, 380.0);
        assert_eq!(read_npwp(&misread).get("nik"), Some("1871031312996112"));
        let card = read_npwp(&boxes);
        assert_eq!(card.get("npwp"), Some("099151045800000"));
        assert_eq!(card.get("name"), Some("EKO RAHAYU"));
        assert_eq!(card.get("nik"), Some("1871031312996112"));
        assert!(card.issues.is_empty(), "{:?}", card.issues);

        let mut ktp = CardReading::default();
        ktp.set("nik", "1871031312996112", 1.0);
        ktp.set("name", "EKO  RAHAYU", 1.0);
        assert!(cross_check(&ktp, &card).is_empty());
        ktp.fields.insert("name".into(), "EKO PRASETYO".into());
        assert_eq!(cross_check(&ktp, &card), ["npwp_name_mismatch"]);
    }

    #[test]
    fn a_colon_read_as_a_digit_is_not_part_of_a_hyphenated_npwp() {
        assert_eq!(npwp_digits("1 05.139.208.2-445.000"), "051392082445000");
        assert_eq!(npwp_digits("05.139.208.2-445.000"), "051392082445000");
        // The 16-digit form has no hyphen: every digit is the number.
        assert_eq!(npwp_digits("1671025804572457"), "1671025804572457");
    }

    #[test]
    fn names_match_tolerates_noise_but_not_other_names() {
        assert!(names_match("PUTRI FIRMANSYAH", "PUTRIFIRMANSYAH"));
        assert!(names_match("PUTRI FIRMANSYAH", "PUTRI FIRMANSYAI"));
        assert!(!names_match("PUTRI FIRMANSYAH", "PUTRI HIDAYAT"));
        assert!(!names_match("EKO", "EKA"));
    }
}
