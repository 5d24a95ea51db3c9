//! CTC greedy decoding with per-character confidence and positions, and recovery of the word
//! gaps PP-OCRv4 tends to drop: where a run of ink-free columns of the line crop, wider than
//! any gap between letters, lies between two decoded characters, there is a space.

/// One recognised line.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Confidence of each character of `text` (spaces included).
    pub char_confidence: Vec<f32>,
    /// Mean character confidence (0 for an empty line).
    pub confidence: f32,
}

/// Decodes one line from `steps`×`classes` probabilities. `dict[i]` is the character of class
/// `i`; class 0 is the CTC blank. `gap(a, b)` is the widest ink-free run (in crop columns)
/// between time steps `a` and `b` (see [`longest_blank_run`]). A gap much wider than this
/// line's typical gap between letters, and at least `min_gap` columns, is a word break; the
/// model's own spaces are kept too.
pub fn greedy_decode(
    probs: &[f32],
    steps: usize,
    classes: usize,
    dict: &[String],
    gap: &dyn Fn(usize, usize) -> usize,
    min_gap: usize,
) -> Decoded {
    // (character, first step, last step, confidence)
    let mut chars: Vec<(usize, usize, usize, f32)> = Vec::new();
    let mut prev = 0usize;
    for t in 0..steps {
        let row = &probs[t * classes..(t + 1) * classes];
        let (best, p) =
            row.iter().enumerate().fold(
                (0, f32::MIN),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != 0 {
            if best == prev {
                if let Some(last) = chars.last_mut() {
                    last.2 = t;
                    last.3 = last.3.max(p);
                }
            } else {
                chars.push((best, t, t, p));
            }
        }
        prev = best;
    }

    // The line's own letter spacing decides what a word gap is.
    let gaps: Vec<usize> = chars.windows(2).map(|w| gap(w[0].2, w[1].1)).collect();
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    let typical = sorted.get(sorted.len() / 2).copied().unwrap_or(0) as f32;
    let threshold = (typical * 2.2 + 2.0).max(min_gap as f32);

    let mut text = String::new();
    let mut conf = Vec::new();
    for (i, &(class, start, _, p)) in chars.iter().enumerate() {
        let ch = dict.get(class).map(String::as_str).unwrap_or("");
        let _ = start;
        if i > 0 && !text.ends_with(' ') && ch != " " && gaps[i - 1] as f32 >= threshold {
            text.push(' ');
            conf.push(p.min(chars[i - 1].3));
        }
        if ch == " " && (text.is_empty() || text.ends_with(' ')) {
            continue;
        }
        text.push_str(ch);
        conf.extend(std::iter::repeat_n(p, ch.chars().count()));
    }
    while text.ends_with(' ') {
        text.pop();
        conf.pop();
    }
    let confidence = if conf.is_empty() {
        0.0
    } else {
        conf.iter().sum::<f32>() / conf.len() as f32
    };
    Decoded {
        text,
        char_confidence: conf,
        confidence,
    }
}

/// Where the ink of a line crop (one luminance plane, `width`×`height`) is. Ink is separated
/// from paper by Otsu's threshold, so faint background patterns (a card's guilloche) count as
/// paper; text may be dark on light or light on dark (whichever side the median pixel is not
/// on).
pub struct Ink {
    /// Per column: no ink within the text's rows.
    pub blank_columns: Vec<bool>,
    /// The text's height in rows: from the first to the last row holding at least a tenth of
    /// the inkiest row's ink. Word gaps scale with it, whatever margin the box left.
    pub height: usize,
}

pub fn ink(lum: &[f32], width: usize, height: usize) -> Ink {
    let threshold = otsu(lum);
    let mut sorted: Vec<f32> = lum.to_vec();
    sorted.sort_by(f32::total_cmp);
    let dark_text = sorted[sorted.len() / 2] > threshold;
    let is_ink = |v: f32| (v <= threshold) == dark_text;
    let rows: Vec<usize> = (0..height)
        .map(|y| {
            lum[y * width..(y + 1) * width]
                .iter()
                .filter(|&&v| is_ink(v))
                .count()
        })
        .collect();
    let most = rows.iter().copied().max().unwrap_or(0);
    let inked = || (0..height).filter(|&y| most > 0 && rows[y] * 10 >= most);
    // The text's rows; a crop with no ink keeps its middle band.
    let (y0, y1) = match (inked().next(), inked().next_back()) {
        (Some(a), Some(b)) => (a, b + 1),
        _ => (height * 15 / 100, height * 85 / 100),
    };
    let blank_columns = (0..width)
        .map(|x| (y0..y1).all(|y| !is_ink(lum[y * width + x])))
        .collect();
    Ink {
        blank_columns,
        height: y1 - y0,
    }
}

/// Otsu's threshold over values in [-1, 1] (64 bins).
fn otsu(values: &[f32]) -> f32 {
    const BINS: usize = 64;
    let bin = |v: f32| (((v + 1.0) / 2.0 * BINS as f32) as usize).min(BINS - 1);
    let mut hist = [0usize; BINS];
    for &v in values {
        hist[bin(v)] += 1;
    }
    let total = values.len() as f64;
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0f64, 0f64, -1f64, 0usize);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n as f64;
        sum0 += t as f64 * n as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    (best_t as f32 + 1.0) / BINS as f32 * 2.0 - 1.0
}

/// The widest ink-free gap between time steps `a` and `b` (each step covers `stride`
/// columns): the longest run of blank columns between the two steps' centres, or, when the
/// point halfway between them is blank, the whole run of blank columns around that point,
/// whichever is longer. A character's step is where the model spoke, not the middle of its
/// glyph: two letters either side of a space are often spoken at neighbouring steps, whose
/// centres span only part of the space between them.
pub fn longest_blank_run(blank: &[bool], a: usize, b: usize, stride: usize) -> usize {
    let from = (a * stride + stride / 2).min(blank.len());
    let to = (b * stride + stride / 2).min(blank.len());
    let (mut run, mut best) = (0, 0);
    for &is_blank in &blank[from..to] {
        run = if is_blank { run + 1 } else { 0 };
        best = best.max(run);
    }
    let middle = (from + to) / 2;
    if middle < blank.len() && blank[middle] {
        let before = (0..middle).rev().take_while(|&i| blank[i]).count();
        let after = (middle..blank.len()).take_while(|&i| blank[i]).count();
        best = best.max(before + after);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Vec<String> {
        ["<blank>", "A", "B", "C", " "]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Builds a probability matrix from a class per step.
    fn steps(classes: &[usize]) -> Vec<f32> {
        let mut m = vec![0.01; classes.len() * 5];
        for (t, &c) in classes.iter().enumerate() {
            m[t * 5 + c] = 0.9;
        }
        m
    }

    #[test]
    fn collapses_repeats_and_blanks() {
        let d = greedy_decode(
            &steps(&[1, 1, 0, 1, 2, 2, 0, 3]),
            8,
            5,
            &dict(),
            &|_, _| 0,
            4,
        );
        assert_eq!(d.text, "AABC");
        assert_eq!(d.char_confidence.len(), 4);
        assert!((d.confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn recovers_a_dropped_word_gap_from_blank_columns() {
        // Thin strokes every 4th column on paper, and a 15-column word gap (stride 4).
        let (w, h) = (44, 10);
        let mut lum = vec![1.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                if x % 4 == 2 && !(18..30).contains(&x) {
                    lum[y * w + x] = -1.0;
                }
            }
        }
        let blank = ink(&lum, w, h).blank_columns;
        assert_eq!(longest_blank_run(&blank, 4, 7, 4), 15);
        assert_eq!(longest_blank_run(&blank, 0, 2, 4), 3);
        // Steps spoken either side of the gap but close together still see all of it, but a
        // window that only touches the gap's edge does not.
        assert_eq!(longest_blank_run(&blank, 4, 5, 4), 15);
        assert_eq!(longest_blank_run(&blank, 6, 7, 4), 15);
        assert_eq!(longest_blank_run(&blank, 2, 4, 4), 3);
        let d = greedy_decode(
            &steps(&[1, 0, 2, 0, 3, 0, 0, 1, 0, 2]),
            10,
            5,
            &dict(),
            &|a, b| longest_blank_run(&blank, a, b, 4),
            4,
        );
        assert_eq!(d.text, "ABC AB");
        // Evenly spaced letters have no word gap, however wide their spacing.
        let d = greedy_decode(
            &steps(&[1, 0, 2, 0, 3, 0, 1, 0, 2]),
            9,
            5,
            &dict(),
            &|_, _| 9,
            4,
        );
        assert_eq!(d.text, "ABCAB");
    }

    #[test]
    fn keeps_model_spaces_without_doubling() {
        let d = greedy_decode(&steps(&[1, 0, 4, 0, 2]), 5, 5, &dict(), &|_, _| 0, 4);
        assert_eq!(d.text, "A B");
        assert_eq!(
            greedy_decode(&steps(&[0, 0, 0]), 3, 5, &dict(), &|_, _| 0, 4).confidence,
            0.0
        );
    }
}
