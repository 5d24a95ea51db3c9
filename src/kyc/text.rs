//! Text helpers for reading cards: rows of OCR boxes, fuzzy label matching, and repair of
//! OCR confusions in numeric fields.

/// A recognised text box, as the readers see it (axis-aligned bounds are enough here).
#[derive(Debug, Clone, PartialEq)]
pub struct TextBox {
    pub text: String,
    pub confidence: f32,
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl TextBox {
    pub fn height(&self) -> f32 {
        (self.bottom - self.top).max(1.0)
    }
    pub fn center_y(&self) -> f32 {
        (self.top + self.bottom) / 2.0
    }
}

/// One visual row of the card: boxes side by side, left to right.
#[derive(Debug, Clone)]
pub struct Row {
    pub boxes: Vec<TextBox>,
}

impl Row {
    pub fn text(&self) -> String {
        self.boxes
            .iter()
            .map(|b| b.text.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn confidence(&self) -> f32 {
        let n = self.boxes.len().max(1) as f32;
        self.boxes.iter().map(|b| b.confidence).sum::<f32>() / n
    }
    pub fn height(&self) -> f32 {
        self.boxes.iter().map(TextBox::height).fold(0.0, f32::max)
    }
}

/// Groups boxes into rows: a box joins a row when its vertical centre lies within half a
/// line height of the row's; rows top to bottom, boxes left to right.
pub fn rows(boxes: &[TextBox]) -> Vec<Row> {
    let mut sorted: Vec<TextBox> = boxes
        .iter()
        .map(|b| TextBox {
            text: normalize(&b.text),
            ..b.clone()
        })
        .collect();
    sorted.sort_by(|a, b| a.center_y().total_cmp(&b.center_y()));
    let mut rows: Vec<Row> = Vec::new();
    for b in sorted {
        let fits = rows.last().is_some_and(|r| {
            let cy = r.boxes.iter().map(TextBox::center_y).sum::<f32>() / r.boxes.len() as f32;
            (b.center_y() - cy).abs() < 0.5 * r.height().min(b.height())
        });
        match rows.last_mut() {
            Some(r) if fits => r.boxes.push(b),
            _ => rows.push(Row { boxes: vec![b] }),
        }
    }
    for r in &mut rows {
        r.boxes.sort_by(|a, b| a.left.total_cmp(&b.left));
    }
    rows
}

/// Splits a row where a wide gap follows text that already holds a value (a colon and
/// something after it), so captions beside the fields do not join a field's value.
pub fn segments(row: &Row, gap_factor: f32) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for b in &row.boxes {
        let split = out.last().is_some_and(|seg| {
            let last = seg.boxes.last().expect("segments are never empty");
            let gap = b.left - last.right;
            let text = seg.text();
            let has_value = text
                .split_once(':')
                .is_some_and(|(_, v)| !v.trim().is_empty());
            gap > gap_factor * row.height() && has_value
        });
        if split || out.is_empty() {
            out.push(Row {
                boxes: vec![b.clone()],
            });
        } else {
            out.last_mut().expect("not empty").boxes.push(b.clone());
        }
    }
    out
}

/// Uppercase letters and digits only (and `/`), for comparing labels.
pub fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || *c == '/')
        .flat_map(char::to_uppercase)
        .collect()
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Similarity in [0, 1]: 1 − distance / longer length.
pub fn similarity(a: &str, b: &str) -> f32 {
    let n = a.chars().count().max(b.chars().count());
    if n == 0 {
        return 1.0;
    }
    1.0 - edit_distance(a, b) as f32 / n as f32
}

/// The closest of `choices` to `value` (compared squashed), if similar enough.
pub fn closest<'a>(value: &str, choices: &[&'a str], min_similarity: f32) -> Option<&'a str> {
    let v = squash(value);
    choices
        .iter()
        .map(|c| (*c, similarity(&v, &squash(c))))
        .filter(|(_, s)| *s >= min_similarity)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// The best match of `choices` against any run of consecutive words of `value` (noise words
/// around the value are common on patterned cards).
pub fn closest_span<'a>(value: &str, choices: &[&'a str], min_similarity: f32) -> Option<&'a str> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let mut best: Option<(&'a str, f32)> = None;
    for i in 0..words.len() {
        for j in i + 1..=words.len().min(i + 3) {
            let span = squash(&words[i..j].join(" "));
            for c in choices {
                let s = similarity(&span, &squash(c));
                if s >= min_similarity && best.is_none_or(|(_, b)| s > b) {
                    best = Some((c, s));
                }
            }
        }
    }
    best.map(|(c, _)| c)
}

/// Canonical punctuation: full-width colons and similar read as their ASCII forms.
pub fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '：' | '∶' | '﹕' => ':',
            '，' => ',',
            '．' => '.',
            '－' | '–' | '—' => '-',
            '／' => '/',
            other => other,
        })
        .collect()
}

/// A free-text value: anything up to a colon close to its start is label residue or noise,
/// and leading punctuation goes.
pub fn clean_value(s: &str) -> String {
    let s = match s.split_once(':') {
        Some((before, after)) if squash(before).len() <= 4 => after,
        _ => s,
    };
    s.trim_start_matches(|c: char| !c.is_alphanumeric())
        .trim()
        .to_string()
}

/// Repairs the usual OCR confusions in a field that holds only digits.
pub fn repair_digits(s: &str) -> String {
    s.chars().filter_map(repair_digit).collect()
}

/// The digit a character read where a digit belongs stands for, if any (an O for a 0).
pub fn repair_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        'O' | 'o' | 'D' | 'Q' | 'U' => Some('0'),
        'I' | 'l' | '|' | 'i' | 'L' | 'J' | '!' => Some('1'),
        'Z' | 'z' => Some('2'),
        'S' | 's' => Some('5'),
        'B' => Some('8'),
        'G' | 'b' => Some('6'),
        'T' => Some('7'),
        'A' => Some('4'),
        'g' | 'q' => Some('9'),
        _ => None,
    }
}

/// After the first colon (or the whole text when there is none), trimmed.
pub fn after_colon(s: &str) -> &str {
    s.split_once(':').map_or(s, |(_, v)| v).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str, left: f32, top: f32, right: f32) -> TextBox {
        TextBox {
            text: text.into(),
            confidence: 0.9,
            left,
            top,
            right,
            bottom: top + 20.0,
        }
    }

    #[test]
    fn groups_rows_and_splits_captions_off() {
        let boxes = [
            b("Agama", 30.0, 425.0, 120.0),
            b(":", 245.0, 426.0, 252.0),
            b("KONGHUCU", 265.0, 424.0, 405.0),
            b("YOGYAKARTA", 800.0, 421.0, 915.0),
            b("Alamat", 30.0, 281.0, 115.0),
        ];
        let rows = rows(&boxes);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].text(), "Agama : KONGHUCU YOGYAKARTA");
        let segs = segments(&rows[1], 3.0);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].text(), "Agama : KONGHUCU");
    }

    #[test]
    fn repairs_digits_and_matches_fuzzily() {
        assert_eq!(repair_digits("347IO36BO4644lO8"), "3471036804644108");
        assert_eq!(
            closest("PEREMPUANN", &["LAKI-LAKI", "PEREMPUAN"], 0.6),
            Some("PEREMPUAN")
        );
        assert_eq!(closest("XYZ", &["ISLAM", "HINDU"], 0.6), None);
        assert_eq!(after_colon("Nama : BUDI"), "BUDI");
    }
}
