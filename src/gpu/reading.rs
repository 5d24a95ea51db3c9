//! From a read page to a card: the lines' confident words laid out upright for the card
//! readers (`crate::kyc`), the retake code the photo's measurements call for when a key field
//! is in doubt, and the **second look**: a card whose first reading would be retaken is read
//! again, from the same line crops, by the second recogniser (`ocr.params.second_look`), and
//! the better reading kept; a sure card with a key digit read only just surely enough has
//! that digit's line read again, and the whole card only if the second recogniser spells it
//! otherwise. Neat cards are read once; only doubtful ones pay for the slower model.

use chrono::NaiveDate;

use super::{Crop, OcrEngine, OcrError, OcrPage, Quad};
use crate::kyc::{self, DocumentType, card::CardReading, text::TextBox};

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
    if doc_type == DocumentType::Ktp
        && let Some(date) = kyc::retake::birth_date_from_nik(&card, &located, today)
    {
        kyc::card::amend_birth_date(&mut card, date, today);
    }
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
            let quad = Quad(l.quad);
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
    digit_lines(page, printed)
        .into_iter()
        .map(|(_, conf)| conf)
        .collect()
}

/// [`digit_confidences`], each with the index of its line on the page.
fn digit_lines(page: &OcrPage, printed: &str) -> Vec<(usize, Vec<f32>)> {
    let want: Vec<char> = printed.chars().collect();
    if want.is_empty() {
        return Vec::new();
    }
    [false, true]
        .into_iter()
        .map(|repair| {
            page.lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    spelled_digits(&l.text, &l.char_confidence, &want, repair).map(|c| (i, c))
                })
                .collect::<Vec<_>>()
        })
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// The confidence in each of `want`'s digits where `text` spells them in that order (other
/// characters between them skipped); with `repair`, a letter taken for a digit counts too.
fn spelled_digits(text: &str, confidence: &[f32], want: &[char], repair: bool) -> Option<Vec<f32>> {
    let digits: Vec<(char, f32)> = text
        .chars()
        .zip(confidence.iter().copied())
        .filter_map(|(c, p)| match c {
            '0'..='9' => Some((c, p)),
            _ if repair => kyc::text::repair_digit(c).map(|d| (d, p.min(LETTER_AS_DIGIT))),
            _ => None,
        })
        .collect();
    run_confidences(&digits, want)
}

/// The confidences of the first run of `read` (characters with their confidence) that spells
/// `want`.
fn run_confidences(read: &[(char, f32)], want: &[char]) -> Option<Vec<f32>> {
    read.windows(want.len().max(1))
        .find(|w| w.iter().map(|(c, _)| *c).eq(want.iter().copied()))
        .map(|w| w.iter().map(|(_, p)| *p).collect())
}

/// The most a letter read where a digit belongs is trusted as that digit.
const LETTER_AS_DIGIT: f32 = 0.5;

/// A key field's digit read with less confidence than this (yet enough to be trusted, see
/// [`kyc::retake::MIN_KEY_CHAR_CONFIDENCE`]) is confirmed by the second recogniser before the
/// reading stands: the first recogniser misreads a blurred digit (a dotted zero as a nine)
/// with confidence around 0.8 at times, and nothing else on a card catches it where the
/// digit has no second printing.
const CONFIRM_BELOW: f32 = 0.95;

/// A card read from a photo: the page its reading came from, its type and its reading.
pub struct CardRead {
    pub page: OcrPage,
    pub doc_type: DocumentType,
    pub card: CardReading,
}

impl CardRead {
    /// Whether a key field is in doubt: the reading asks for the photo to be retaken.
    pub fn retake(&self) -> bool {
        kyc::retake::among(&self.card.issues).is_some()
    }

    /// Whether the holder's name was read, every letter of it with confidence (as sure as
    /// a key field's digits must be).
    fn name_sure(&self) -> bool {
        self.card.get("name").is_some_and(|name| {
            spelled(&self.page, name).is_some_and(|conf| {
                conf.iter()
                    .all(|&c| c >= kyc::retake::MIN_KEY_CHAR_CONFIDENCE)
            })
        })
    }

    /// Whether the reading is worth a second look: a key field or the name is in doubt, on
    /// a photo whose text is large enough to read. A card too small in the frame (or none
    /// found) is retaken whatever a stronger recogniser makes of it: no model reads pixels
    /// that are not there, and on such photos it reads a dotted zero as a nine with as much
    /// confidence as it reads the other digits.
    pub fn doubtful(&self) -> bool {
        match kyc::retake::among(&self.card.issues) {
            Some("card_too_small" | "no_card_found") => false,
            Some(_) => true,
            None => !self.name_sure(),
        }
    }

    /// Whether a card read with confidence still wants its key digits confirmed: one of them
    /// was read less surely than [`CONFIRM_BELOW`].
    pub fn unconfirmed(&self) -> bool {
        !self.retake() && !self.unsure_key_lines().is_empty()
    }

    /// The lines that spell a key field with a digit read less surely than
    /// [`CONFIRM_BELOW`], each with the digits it spells.
    fn unsure_key_lines(&self) -> Vec<(usize, String)> {
        let mut unsure: Vec<(usize, String)> = Vec::new();
        for key in kyc::retake::key_fields(self.doc_type) {
            let Some(value) = self.card.get(key) else {
                continue;
            };
            let printed = kyc::retake::printed_digits(key, value);
            if let Some((line, conf)) = digit_lines(&self.page, &printed).into_iter().next()
                && conf.iter().any(|&c| c < CONFIRM_BELOW)
            {
                unsure.push((line, printed));
            }
        }
        unsure
    }

    /// Whether `other`, a reading of the same card, reads one of its key fields otherwise
    /// (a field that `other` could not read at all is no contradiction).
    fn contradicted_by(&self, other: &CardRead) -> bool {
        self.key_values()
            .into_iter()
            .zip(other.key_values())
            .any(|(a, b)| a.is_some() && b.is_some() && a != b)
    }

    /// The key fields are in doubt after all: the reading asks for the retake its photo's
    /// measurements call for.
    fn doubt_key_fields(&mut self) {
        let code = kyc::retake::photo_code(&measures(&self.page));
        self.card.issues.insert(0, code.to_string());
    }

    fn key_values(&self) -> Vec<Option<&str>> {
        kyc::retake::key_fields(self.doc_type)
            .iter()
            .map(|k| self.card.get(k))
            .collect()
    }
}

/// The recogniser's confidence in each letter of `text` (spaces aside) on the first line
/// that spells it; `None` when no line does.
fn spelled(page: &OcrPage, text: &str) -> Option<Vec<f32>> {
    let want: Vec<char> = text.chars().filter(|c| *c != ' ').collect();
    page.lines.iter().find_map(|line| {
        let letters: Vec<(char, f32)> = line
            .text
            .chars()
            .zip(line.char_confidence.iter().copied())
            .filter(|(c, _)| *c != ' ')
            .collect();
        run_confidences(&letters, &want)
    })
}

/// Whether the second look's reading replaces the first. When the first asked for a
/// retake, the second does unless it asks too and reads fewer key fields (a card for review
/// is worth more than a retake). When the first read its key fields with confidence and
/// only the name was in doubt, the second replaces it only if it reads the same key fields,
/// with confidence, and the name no worse. (Where the two read a key field otherwise, the
/// first was marked for a retake before this is asked: two readers that disagree on a key
/// field leave it in doubt.)
fn second_is_better(first: &CardRead, second: &CardRead) -> bool {
    if first.retake() {
        let keys = |read: &CardRead| read.key_values().iter().flatten().count();
        !second.retake() || keys(second) >= keys(first)
    } else {
        !second.retake()
            && second.key_values() == first.key_values()
            && (second.name_sure() || !first.name_sure())
    }
}

impl OcrEngine {
    /// Reads a photo's card: every line, then the card's fields; a doubtful reading gets a
    /// second look ([`Self::look_again`]).
    pub fn read_card(
        &self,
        img: &image::RgbImage,
        doc_type: Option<DocumentType>,
        today: NaiveDate,
    ) -> Result<CardRead, OcrError> {
        let (page, boxes, crops) = self.read_lines(img)?;
        let first = CardRead::of(page, doc_type, today);
        if first.doubtful() || first.unconfirmed() {
            self.look_again(first, &boxes, &crops, doc_type, today)
        } else {
            Ok(first)
        }
    }

    /// Whether this engine has a second recogniser to look again with.
    pub fn can_look_again(&self) -> bool {
        self.second.is_some()
    }

    /// Reads a doubtful `first` reading's line `crops` (cut for its page's `boxes`) again
    /// with the second recogniser, and returns the better reading, its page's `second` stage
    /// saying how long that took (`first` as it is without a second recogniser).
    pub fn look_again(
        &self,
        mut first: CardRead,
        boxes: &[(Quad, f32)],
        crops: &[Crop],
        doc_type: Option<DocumentType>,
        today: NaiveDate,
    ) -> Result<CardRead, OcrError> {
        let Some((model, dict)) = &self.second else {
            return Ok(first);
        };
        let started = std::time::Instant::now();
        // Sure, but for a key digit or two: the whole card is read again only if the second
        // recogniser spells them otherwise.
        if !first.doubtful() && self.confirms(&first, boxes, crops, model, dict)? {
            first.page.timings.second = super::ms_since(started);
            return Ok(first);
        }
        let lines = super::lines_from(boxes, self.recognize_with(model, dict, crops)?);
        let mut page = OcrPage {
            lines,
            ..first.page.clone()
        };
        page.second_look = true;
        let mut second = CardRead::of(page, doc_type, today);
        if !first.retake() && first.contradicted_by(&second) {
            first.doubt_key_fields();
        }
        let ms = super::ms_since(started);
        if second_is_better(&first, &second) {
            second.page.timings.second = ms;
            Ok(second)
        } else {
            first.page.timings.second = ms;
            Ok(first)
        }
    }
}

impl OcrEngine {
    /// Whether the second recogniser (`model`, `dict`) spells a sure reading's unsure key
    /// digits alike, reading only their lines again.
    fn confirms(
        &self,
        first: &CardRead,
        boxes: &[(Quad, f32)],
        crops: &[Crop],
        model: &super::models::RecModel,
        dict: &[String],
    ) -> Result<bool, OcrError> {
        let unsure = first.unsure_key_lines();
        // A page's lines are its boxes less those where nothing was read: found by the box.
        let picked: Vec<(usize, Vec<char>)> = unsure
            .iter()
            .filter_map(|(line, printed)| {
                let quad = first.page.lines[*line].quad;
                let crop = boxes.iter().position(|(q, _)| q.0 == quad)?;
                Some((crop, printed.chars().collect()))
            })
            .collect();
        if picked.len() < unsure.len() {
            return Ok(false);
        }
        let again: Vec<Crop> = picked.iter().map(|(i, _)| crops[*i].clone()).collect();
        let read = self.recognize_with(model, dict, &again)?;
        Ok(read.iter().zip(&picked).all(|(d, (_, want))| {
            spelled_digits(&d.text, &d.char_confidence, want, false).is_some()
        }))
    }
}

impl CardRead {
    /// The card read from `page` ([`read_page`]).
    pub fn of(page: OcrPage, doc_type: Option<DocumentType>, today: NaiveDate) -> Self {
        let (doc_type, card) = read_page(&page, doc_type, today);
        Self {
            page,
            doc_type,
            card,
        }
    }
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

#[cfg(test)]
mod second_look_tests {
    use super::*;
    use crate::gpu::OcrLine;

    /// A KTP reading of `nik` and `name`, with `issues`, from a page of one line per value
    /// whose letters were read with `sure` confidence (the name's last letter with `last`).
    fn ktp(nik: &str, name: &str, last: f32, issues: &[&str]) -> CardRead {
        let line = |text: &str, conf: Vec<f32>| OcrLine {
            text: text.into(),
            confidence: 0.9,
            char_confidence: conf,
            quad: [[0.0, 0.0], [100.0, 0.0], [100.0, 10.0], [0.0, 10.0]],
        };
        let mut name_conf = vec![0.99; name.chars().count()];
        if let Some(c) = name_conf.last_mut() {
            *c = last;
        }
        let page = OcrPage {
            width: 100,
            height: 100,
            lines: vec![
                line(&format!("NIK : {nik}"), vec![0.99; nik.len() + 6]),
                line(
                    &format!("Nama : {name}"),
                    [vec![0.99; 7], name_conf].concat(),
                ),
            ],
            geometry: Default::default(),
            quality: Default::default(),
            det_ms: 0.0,
            rec_ms: 0.0,
            second_look: false,
            timings: Default::default(),
        };
        let mut card = CardReading::default();
        for (k, v) in [("nik", nik), ("birth_date", "1990-01-02"), ("name", name)] {
            if !v.is_empty() {
                card.fields.insert(k.into(), v.into());
            }
        }
        card.issues = issues.iter().map(|i| i.to_string()).collect();
        CardRead {
            page,
            doc_type: DocumentType::Ktp,
            card,
        }
    }

    const NIK: &str = "3471030401084647";

    #[test]
    fn a_name_is_spelled_on_a_line_with_each_letters_confidence() {
        let read = ktp(NIK, "YOGA SIREGAR", 0.5, &[]);
        let conf = spelled(&read.page, "YOGA SIREGAR").unwrap();
        assert_eq!(conf.len(), 11, "spaces aside");
        assert_eq!(conf.last(), Some(&0.5));
        assert_eq!(spelled(&read.page, "YOGA SIREGAN"), None);
    }

    #[test]
    fn doubt_over_a_key_field_or_the_name_earns_a_second_look_unless_the_card_is_too_small() {
        assert!(!ktp(NIK, "YOGA SIREGAR", 0.99, &[]).doubtful());
        assert!(
            ktp(NIK, "YOGA SIREGAR", 0.5, &[]).doubtful(),
            "a doubtful letter"
        );
        assert!(ktp(NIK, "", 0.99, &[]).doubtful(), "no name read");
        assert!(ktp(NIK, "YOGA SIREGAR", 0.99, &["too_blurry"]).doubtful());
        assert!(ktp(NIK, "YOGA SIREGAR", 0.99, &["too_dark"]).doubtful());
        for beyond in ["card_too_small", "no_card_found"] {
            assert!(!ktp(NIK, "YOGA", 0.5, &[beyond]).doubtful(), "{beyond}");
        }
    }

    #[test]
    fn a_key_digit_read_only_just_surely_enough_wants_confirming() {
        let sure = ktp(NIK, "YOGA SIREGAR", 0.99, &[]);
        assert!(!sure.unconfirmed());
        let mut unsure = ktp(NIK, "YOGA SIREGAR", 0.99, &[]);
        // The NIK's last digit, on the first line, read at 0.8.
        *unsure.page.lines[0].char_confidence.last_mut().unwrap() = 0.8;
        assert!(unsure.unconfirmed());
        assert_eq!(unsure.unsure_key_lines(), vec![(0, NIK.to_string())]);
        let retaken = ktp(NIK, "YOGA SIREGAR", 0.99, &["too_blurry"]);
        assert!(!retaken.unconfirmed(), "a retake is read again anyway");
    }

    #[test]
    fn two_readers_that_disagree_on_a_key_field_leave_it_in_doubt() {
        let mut first = ktp(NIK, "YOGA SIREGAR", 0.99, &[]);
        let same = ktp(NIK, "YOGA SIREGAN", 0.99, &[]);
        assert!(!first.contradicted_by(&same), "the name is no key field");
        let mut unread = ktp(NIK, "YOGA SIREGAR", 0.99, &["too_blurry"]);
        unread.card.fields.remove("nik");
        assert!(
            !first.contradicted_by(&unread),
            "no reading, no contradiction"
        );
        let other = ktp("3471030401084641", "YOGA SIREGAR", 0.99, &[]);
        assert!(first.contradicted_by(&other));
        first.doubt_key_fields();
        assert!(first.retake());
        assert!(second_is_better(&first, &other), "the sure second stands");
    }

    #[test]
    fn the_second_reading_is_kept_only_when_it_is_better() {
        let blurred = ktp(NIK, "YOGA SIREGAR", 0.99, &["too_blurry"]);
        let sure = ktp(NIK, "YOGA SIREGAR", 0.99, &[]);
        assert!(second_is_better(&blurred, &sure), "a retake settled");
        assert!(
            second_is_better(&blurred, &ktp(NIK, "", 0.99, &["too_blurry"])),
            "still in doubt, as many key fields: the second recogniser's"
        );
        let mut fewer = ktp("", "YOGA SIREGAR", 0.99, &["too_blurry"]);
        fewer.card.fields.remove("nik");
        assert!(!second_is_better(&blurred, &fewer), "fewer key fields");

        let misspelt = ktp(NIK, "YOGA SIREGAN", 0.5, &[]);
        assert!(second_is_better(&misspelt, &sure), "the name settled");
        let other_nik = ktp("3471030401084641", "YOGA SIREGAR", 0.99, &[]);
        assert!(
            !second_is_better(&misspelt, &other_nik),
            "two confident readings of the NIK disagree: the first stands"
        );
        assert!(
            !second_is_better(&misspelt, &blurred),
            "the second doubts a key field the first was sure of"
        );
    }
}
