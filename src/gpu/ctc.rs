//! CTC greedy decoding with per-character confidence and positions, and recovery of the word
//! gaps PP-OCRv4 tends to drop: a gap between two characters' time steps much wider than the
//! line's typical character pitch is a space.

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
/// `i`; class 0 is the CTC blank.
pub fn greedy_decode(probs: &[f32], steps: usize, classes: usize, dict: &[String], gap_factor: f32) -> Decoded {
    // (character, first step, last step, confidence)
    let mut chars: Vec<(usize, usize, usize, f32)> = Vec::new();
    let mut prev = 0usize;
    for t in 0..steps {
        let row = &probs[t * classes..(t + 1) * classes];
        let (best, p) = row
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
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

    // Typical pitch between character starts, for gap detection.
    let mut pitches: Vec<usize> = chars.windows(2).map(|w| w[1].1 - w[0].1).collect();
    pitches.sort_unstable();
    let median = pitches.get(pitches.len() / 2).copied().unwrap_or(0) as f32;

    let mut text = String::new();
    let mut conf = Vec::new();
    for (i, &(class, start, _, p)) in chars.iter().enumerate() {
        let ch = dict.get(class).map(String::as_str).unwrap_or("");
        if i > 0 && median > 0.0 && !text.ends_with(' ') && ch != " " {
            let gap = (start - chars[i - 1].2) as f32;
            if gap >= (median * gap_factor).max(median + 2.0) {
                text.push(' ');
                conf.push(p.min(chars[i - 1].3));
            }
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
    let confidence = if conf.is_empty() { 0.0 } else { conf.iter().sum::<f32>() / conf.len() as f32 };
    Decoded {
        text,
        char_confidence: conf,
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Vec<String> {
        ["<blank>", "A", "B", "C", " "].iter().map(|s| s.to_string()).collect()
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
        let d = greedy_decode(&steps(&[1, 1, 0, 1, 2, 2, 0, 3]), 8, 5, &dict(), 2.5);
        assert_eq!(d.text, "AABC");
        assert_eq!(d.char_confidence.len(), 4);
        assert!((d.confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn recovers_a_dropped_word_gap_from_positions() {
        // A, B, C at a 2-step pitch, then a long silence, then A B.
        let d = greedy_decode(&steps(&[1, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]), 15, 5, &dict(), 2.5);
        assert_eq!(d.text, "ABC AB");
    }

    #[test]
    fn keeps_model_spaces_without_doubling() {
        let d = greedy_decode(&steps(&[1, 0, 4, 0, 2]), 5, 5, &dict(), 2.5);
        assert_eq!(d.text, "A B");
        assert_eq!(greedy_decode(&steps(&[0, 0, 0]), 3, 5, &dict(), 2.5).confidence, 0.0);
    }
}
