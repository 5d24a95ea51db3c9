//! Reading specimen cards and scoring the readings against their ground truth (the JSON beside
//! each card): what `filot ocr` and `filot ocr-report` print.

use std::{collections::BTreeMap, path::Path};

use chrono::NaiveDate;
use serde::Serialize;

use super::{OcrEngine, OcrError, reading::CardRead};
use crate::kyc::{self, DocumentType, card::CardReading};

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
    /// Whether the first reading was doubtful and the second recogniser's was kept.
    pub second_look: bool,
    pub lines: usize,
    /// The raw lines with per-character confidence in percent (only with `filot ocr --lines`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw_lines: Vec<String>,
}

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
    let CardRead {
        page,
        doc_type,
        card,
    } = engine.read_card(&img, doc_type, today)?;
    if let Some(dir) = annotate {
        let stem = path
            .file_stem()
            .map_or("page".into(), |s| s.to_string_lossy().into_owned());
        let target = dir.join(format!("{stem}.png"));
        super::annotate::annotate(&img, &page)
            .save(&target)
            .map_err(|e| OcrError::Decode(format!("{}: {e}", target.display())))?;
    }
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
            rec_ms: page.rec_ms + page.timings.second,
            second_look: page.second_look,
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
            for issue in kyc::npwp_card::cross_check(ktp, &card) {
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
