//! Reading specimen cards and scoring the readings against their ground truth (the JSON beside
//! each card): what `filot ocr` and `filot ocr-report` print.

use std::{collections::BTreeMap, path::Path};

use chrono::NaiveDate;
use serde::Serialize;

use super::{OcrEngine, OcrError, OcrPage};
use crate::kyc::{self, DocumentType, card::CardReading, text::TextBox};

/// One file's result, as `filot ocr` prints it.
#[derive(Debug, Serialize)]
pub struct FileReading {
    pub file: String,
    pub doc_type: DocumentType,
    pub fields: BTreeMap<String, String>,
    pub confidence: BTreeMap<String, f32>,
    pub issues: Vec<String>,
    /// How far the card was turned in the photo, clockwise in degrees (0, 90, 180 or 270).
    pub orientation: u16,
    /// The card's corners in the photo (top-left, top-right, bottom-right, bottom-left of
    /// the upright card), when a card was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_quad: Option<[[f32; 2]; 4]>,
    pub det_ms: f64,
    pub rec_ms: f64,
    pub lines: usize,
    /// The raw lines with per-character confidence in percent (only with `filot ocr --lines`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw_lines: Vec<String>,
}

/// Words read with less confidence than this are dropped (background patterns read as
/// letters come out around 0.3–0.6; real text above 0.8).
const MIN_WORD_CONFIDENCE: f32 = 0.62;

/// The longest piece of a date that a gap may have split off (a year).
const NUMBER_PIECE: usize = 4;

/// Keeps the words of a line that were read confidently. A number read with gaps in it
/// ("12-1 1 - 1984") is one word: its short pieces are kept or dropped together (a long
/// number stays apart from a stray digit before it).
fn confident_words(text: &str, confidence: &[f32]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let numeric = |span: &(usize, usize)| {
        chars[span.0..span.1]
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '/'))
    };
    let short = |span: &(usize, usize)| span.1 - span.0 <= NUMBER_PIECE;
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut previous: Option<(usize, usize)> = None;
    let mut start = 0;
    for end in (0..=chars.len()).filter(|&i| i == chars.len() || chars[i] == ' ') {
        if end > start {
            let piece = (start, end);
            match (words.last_mut(), previous) {
                (Some(word), Some(before))
                    if numeric(word) && numeric(&piece) && short(&before) && short(&piece) =>
                {
                    word.1 = end
                }
                _ => words.push(piece),
            }
            previous = Some(piece);
        }
        start = end + 1;
    }
    let kept: Vec<String> = words
        .into_iter()
        .filter(|&(start, end)| {
            let conf = &confidence[start.min(confidence.len())..end.min(confidence.len())];
            conf.iter().sum::<f32>() / conf.len().max(1) as f32 >= MIN_WORD_CONFIDENCE
        })
        .map(|(start, end)| chars[start..end].iter().collect())
        .collect();
    kept.join(" ")
}

/// The page's text slant: the median angle of its longer lines' baselines.
fn skew(page: &OcrPage) -> f32 {
    let mut angles: Vec<f32> = page
        .lines
        .iter()
        .filter_map(|l| {
            let [p0, p1, _, p3] = l.quad;
            let (dx, dy) = (p1[0] - p0[0], p1[1] - p0[1]);
            let height = ((p3[0] - p0[0]).powi(2) + (p3[1] - p0[1]).powi(2)).sqrt();
            ((dx * dx + dy * dy).sqrt() > 3.0 * height).then(|| dy.atan2(dx))
        })
        .collect();
    angles.sort_by(f32::total_cmp);
    angles.get(angles.len() / 2).copied().unwrap_or(0.0)
}

/// Text boxes for the card readers, turned upright (a photographed card is rarely level, and
/// rows are found by vertical position).
pub fn boxes(page: &OcrPage) -> Vec<TextBox> {
    let (sin, cos) = (-skew(page)).sin_cos();
    let upright = |p: [f32; 2]| [p[0] * cos - p[1] * sin, p[0] * sin + p[1] * cos];
    page.lines
        .iter()
        .filter_map(|l| {
            let text = confident_words(&l.text, &l.char_confidence);
            (!text.is_empty()).then_some((l, text))
        })
        .map(|(l, text)| {
            let quad = l.quad.map(upright);
            let xs = quad.iter().map(|p| p[0]);
            let ys = quad.iter().map(|p| p[1]);
            TextBox {
                text,
                confidence: l.confidence,
                left: xs.clone().fold(f32::MAX, f32::min),
                right: xs.fold(f32::MIN, f32::max),
                top: ys.clone().fold(f32::MAX, f32::min),
                bottom: ys.fold(f32::MIN, f32::max),
            }
        })
        .collect()
}

/// The card read from a page: its fields and checks, and, when a key field was not read with
/// confidence, the retake code that the photo's measurements call for (see
/// [`kyc::retake`]), as the reading's first issue.
pub fn read_page(
    page: &OcrPage,
    doc_type: Option<DocumentType>,
    today: NaiveDate,
) -> (DocumentType, CardReading) {
    let (doc_type, mut card) = kyc::read_card(&boxes(page), doc_type, today);
    let located = |printed: &str| digit_confidences(page, printed);
    if let Some(code) = kyc::retake::code(doc_type, &card, &located, &measures(page), today) {
        card.issues.insert(0, code.to_string());
    }
    (doc_type, card)
}

/// What a retake decision is based on.
pub fn measures(page: &OcrPage) -> kyc::retake::PhotoMeasures {
    let mut heights: Vec<f32> = page
        .lines
        .iter()
        .map(|l| {
            let quad = super::Quad(l.quad);
            quad.height().min(quad.width())
        })
        .collect();
    heights.sort_by(f32::total_cmp);
    let median = heights.get(heights.len() / 2).copied().unwrap_or(0.0);
    kyc::retake::PhotoMeasures {
        card_found: page.geometry.card_quad.is_some(),
        lines: page.lines.len(),
        text_height_px: median * page.geometry.photo_scale,
        brightness: page.quality.brightness,
        clipped_share: page.quality.clipped_share,
        sharpness: page.quality.sharpness,
    }
}

/// The recogniser's confidence in each of `printed`'s digits, on every line that spells them
/// in that order (other characters between them skipped). A letter that the reading took for
/// a digit (an O for a 0) counts only where no line has the digits themselves, and never with
/// more confidence than a doubtful character.
fn digit_confidences(page: &OcrPage, printed: &str) -> Vec<Vec<f32>> {
    let want: Vec<char> = printed.chars().collect();
    if want.is_empty() {
        return Vec::new();
    }
    let on_line = |l: &super::OcrLine, repair: bool| -> Option<Vec<f32>> {
        let digits: Vec<(char, f32)> = l
            .text
            .chars()
            .zip(l.char_confidence.iter().copied())
            .filter_map(|(c, p)| match c {
                '0'..='9' => Some((c, p)),
                _ if repair => kyc::text::repair_digit(c).map(|d| (d, p.min(LETTER_AS_DIGIT))),
                _ => None,
            })
            .collect();
        let found = digits
            .windows(want.len())
            .find(|w| w.iter().map(|(c, _)| *c).eq(want.iter().copied()))?;
        Some(found.iter().map(|(_, p)| *p).collect())
    };
    [false, true]
        .into_iter()
        .map(|repair| {
            page.lines
                .iter()
                .filter_map(|l| on_line(l, repair))
                .collect::<Vec<_>>()
        })
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// The most a letter read where a digit belongs is trusted as that digit.
const LETTER_AS_DIGIT: f32 = 0.5;

/// How `filot ocr` reads a file.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// The card type, or `None` to recognise it from the card.
    pub doc_type: Option<DocumentType>,
    /// The date age checks are made against.
    pub today: NaiveDate,
    /// Include the raw lines in the reading.
    pub with_lines: bool,
    /// Write `<DIR>/<file stem>.png` with the boxes and text drawn on the page.
    pub annotate: Option<&'a Path>,
}

impl ReadOptions<'_> {
    pub fn new(doc_type: Option<DocumentType>, today: NaiveDate) -> Self {
        Self {
            doc_type,
            today,
            with_lines: false,
            annotate: None,
        }
    }
}

pub fn read_file(
    engine: &OcrEngine,
    path: &Path,
    options: ReadOptions<'_>,
) -> Result<(FileReading, CardReading), OcrError> {
    let ReadOptions {
        doc_type,
        today,
        with_lines,
        annotate,
    } = options;
    let bytes = std::fs::read(path).map_err(|e| OcrError::Decode(e.to_string()))?;
    let img = super::image_ops::decode(&bytes, &Default::default())?;
    let page = engine.read_image(&img)?;
    if let Some(dir) = annotate {
        let stem = path
            .file_stem()
            .map_or("page".into(), |s| s.to_string_lossy().into_owned());
        let target = dir.join(format!("{stem}.png"));
        super::annotate::annotate(&img, &page)
            .save(&target)
            .map_err(|e| OcrError::Decode(format!("{}: {e}", target.display())))?;
    }
    let (doc_type, card) = read_page(&page, doc_type, today);
    Ok((
        FileReading {
            file: path.display().to_string(),
            doc_type,
            fields: card.fields.clone(),
            confidence: card.confidence.clone(),
            issues: card.issues.clone(),
            orientation: page.geometry.orientation,
            card_quad: page.geometry.card_quad,
            det_ms: page.det_ms,
            rec_ms: page.rec_ms,
            lines: page.lines.len(),
            raw_lines: if with_lines {
                page.lines
                    .iter()
                    .map(|l| {
                        let confs: Vec<String> = l
                            .char_confidence
                            .iter()
                            .map(|c| format!("{:.0}", c * 100.0))
                            .collect();
                        format!(
                            "{} [{}] @{:.0},{:.0} h{:.1} w{:.1}",
                            l.text,
                            confs.join(" "),
                            l.quad[0][0],
                            l.quad[0][1],
                            super::Quad(l.quad).height(),
                            super::Quad(l.quad).width()
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        },
        card,
    ))
}

/// Rates over a specimen set.
#[derive(Debug, Default, Serialize)]
pub struct Rates {
    pub cards: usize,
    pub ktp_cards: usize,
    pub npwp_cards: usize,
    pub nik_exact: usize,
    pub name_exact: usize,
    pub birth_date_exact: usize,
    pub npwp_exact: usize,
    pub issues_exact: usize,
    /// Cards whose every key field is exact, or that carry a retake code.
    pub right_or_honest: usize,
    /// Cards with a key field present and wrong, and no retake code.
    pub silently_wrong: usize,
    /// Cards with a retake code.
    pub retake: usize,
    /// Every KTP field, exact, per field name.
    pub fields_exact: BTreeMap<String, usize>,
    pub misses: Vec<String>,
}

impl Rates {
    pub fn summary(&self) -> String {
        let pct = |n: usize, d: usize| {
            if d == 0 {
                0.0
            } else {
                100.0 * n as f64 / d as f64
            }
        };
        let mut s = format!(
            "cards {}: NIK {:.1}% name {:.1}% birth date {:.1}% NPWP {:.1}% issues {:.1}%\n",
            self.cards,
            pct(self.nik_exact, self.ktp_cards),
            pct(self.name_exact, self.cards),
            pct(self.birth_date_exact, self.ktp_cards),
            pct(self.npwp_exact, self.npwp_cards),
            pct(self.issues_exact, self.cards),
        );
        s.push_str(&format!(
            "key fields: right or honest {:.1}%, silently wrong {} of {} ({:.1}%), retake codes {:.1}%\n",
            pct(self.right_or_honest, self.cards),
            self.silently_wrong,
            self.cards,
            pct(self.silently_wrong, self.cards),
            pct(self.retake, self.cards),
        ));
        for (k, v) in &self.fields_exact {
            s.push_str(&format!("  {k}: {:.1}%\n", pct(*v, self.ktp_cards)));
        }
        s
    }
}

/// Scores every card in `dir` (files with a JSON beside them) against its ground truth.
pub fn score_dir(
    engine: &OcrEngine,
    dir: &Path,
    today: NaiveDate,
    rates: &mut Rates,
) -> std::io::Result<()> {
    let mut truths: Vec<(std::path::PathBuf, serde_json::Value)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let truth: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            if let Some(file) = truth["file"].as_str() {
                truths.push((dir.join(file), truth));
            }
        }
    }
    truths.sort_by(|a, b| a.0.cmp(&b.0));
    let mut readings: BTreeMap<String, CardReading> = BTreeMap::new();
    for (path, truth) in &truths {
        let doc_type = if truth["doc_type"] == "NPWP" {
            DocumentType::Npwp
        } else {
            DocumentType::Ktp
        };
        match read_file(engine, path, ReadOptions::new(Some(doc_type), today)) {
            Ok((_, card)) => {
                readings.insert(truth["file"].as_str().unwrap_or_default().to_string(), card);
            }
            Err(e) => rates.misses.push(format!("{}: {e}", path.display())),
        }
    }
    for (path, truth) in &truths {
        let file = truth["file"].as_str().unwrap_or_default();
        let Some(card) = readings.get(file) else {
            continue;
        };
        let mut card = card.clone();
        let npwp = truth["doc_type"] == "NPWP";
        if npwp && let Some(ktp) = truth["pair_ktp"].as_str().and_then(|k| readings.get(k)) {
            for issue in kyc::card::cross_check(ktp, &card) {
                if !card.issues.iter().any(|i| i == issue) {
                    card.issues.push(issue.to_string());
                }
            }
        }
        rates.cards += 1;
        // Retake codes are about the photo, not the card: they are scored apart.
        let retake = kyc::retake::among(&card.issues).is_some();
        card.issues
            .retain(|i| !kyc::retake::CODES.contains(&i.as_str()));
        let exact = |key: &str| card.get(key) == truth[key].as_str();
        let doc = if npwp {
            DocumentType::Npwp
        } else {
            DocumentType::Ktp
        };
        let keys = kyc::retake::key_fields(doc);
        let all_exact = keys.iter().all(|k| exact(k));
        let wrong = keys.iter().any(|k| card.get(k).is_some() && !exact(k));
        rates.retake += usize::from(retake);
        rates.right_or_honest += usize::from(all_exact || retake);
        rates.silently_wrong += usize::from(wrong && !retake);
        if wrong && !retake {
            rates
                .misses
                .push(format!("{}: a key field is silently wrong", path.display()));
        }
        let mut note = |what: &str| rates.misses.push(format!("{}: {what}", path.display()));
        if npwp {
            rates.npwp_cards += 1;
            if exact("npwp") {
                rates.npwp_exact += 1
            } else {
                note(&format!("npwp {:?}", card.get("npwp").map(|_| "wrong")))
            }
        } else {
            rates.ktp_cards += 1;
            if exact("nik") {
                rates.nik_exact += 1
            } else {
                note("nik")
            }
            if exact("birth_date") {
                rates.birth_date_exact += 1
            } else {
                note(&format!("birth_date {:?}", card.get("birth_date")))
            }
            for key in crate::kyc::card::KTP_FIELDS
                .into_iter()
                .filter(|k| !["nik", "name", "birth_date"].contains(k))
            {
                let hit = exact(key);
                *rates.fields_exact.entry(key.to_string()).or_default() += usize::from(hit);
                if !hit {
                    note(&format!(
                        "{key}: read {:?} want {:?}",
                        card.get(key),
                        truth[key].as_str()
                    ));
                }
            }
        }
        if exact("name") {
            rates.name_exact += 1
        } else {
            note(&format!(
                "name: read {:?} want {:?}",
                card.get("name"),
                truth["name"].as_str()
            ))
        }
        let mut want: Vec<String> = truth["expected_issues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut got = card.issues.clone();
        want.sort();
        got.sort();
        if want == got {
            rates.issues_exact += 1
        } else {
            note(&format!("issues: got {got:?} want {want:?}"))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubtful_words_are_dropped_and_a_gapped_number_is_one_word() {
        let text = "Tmpt SURABAYA. 12-1 1 - 1984";
        let mut conf = vec![0.3; 5];
        conf.extend([0.95; 10]);
        // The date's digits, the lone "1" among them read with doubt.
        conf.extend([
            0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9,
        ]);
        assert_eq!(text.chars().count(), conf.len());
        assert_eq!(confident_words(text, &conf), "SURABAYA. 12-1 1 - 1984");
        conf[14..].fill(0.4);
        assert_eq!(confident_words(text, &conf), "SURABAYA.");
        // A colon read as a doubtful "1" stays apart from the NIK after it.
        let mut conf = vec![0.45; 2];
        conf.extend([0.99; 16]);
        assert_eq!(
            confident_words("1 3374010111071555", &conf),
            "3374010111071555"
        );
    }
}
