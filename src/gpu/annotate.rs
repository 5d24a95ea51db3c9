//! `filot ocr --annotate`: the photo with the card found in it outlined, every detected box
//! outlined and the text read from it written beside the box, for a person checking what the
//! model saw.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use super::OcrPage;

/// DejaVu Sans Condensed (Bitstream Vera licence, assets/fonts/LICENSE-DejaVu.txt).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed.ttf");

const BOX: Rgb<u8> = Rgb([220, 30, 30]);
const TEXT: Rgb<u8> = Rgb([20, 60, 200]);
const CARD: Rgb<u8> = Rgb([20, 200, 60]);

/// `photo` with the reading drawn on it (the page's lines carried back into the photo).
pub fn annotate(photo: &RgbImage, page: &OcrPage) -> RgbImage {
    let mut out = photo.clone();
    let font = FontRef::try_from_slice(FONT).expect("bundled font parses");
    if let Some(q) = page.geometry.card_quad {
        for i in 0..4 {
            draw_line(&mut out, q[i], q[(i + 1) % 4], CARD);
        }
        // The card's top-left corner, marked so that the orientation shows.
        for r in 0..6 {
            draw_line(
                &mut out,
                [q[0][0] - r as f32, q[0][1]],
                [q[0][0], q[0][1] - r as f32],
                CARD,
            );
        }
    }
    for line in &page.lines {
        let q = line.quad.map(|p| page.geometry.in_photo(p));
        for i in 0..4 {
            draw_line(&mut out, q[i], q[(i + 1) % 4], BOX);
        }
        let height = ((q[3][1] - q[0][1]).abs()).clamp(10.0, 28.0);
        let y = (q[0][1] - 2.0).max(height);
        draw_text(&mut out, &font, &line.text, q[0][0], y, height);
    }
    out
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>, alpha: f32) {
    if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
        return;
    }
    let p = img.get_pixel_mut(x as u32, y as u32);
    for c in 0..3 {
        p.0[c] = (p.0[c] as f32 * (1.0 - alpha) + color.0[c] as f32 * alpha) as u8;
    }
}

/// A 2-pixel line, sampled densely enough to leave no gaps.
fn draw_line(img: &mut RgbImage, a: [f32; 2], b: [f32; 2], color: Rgb<u8>) {
    let steps = ((b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]));
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            put(img, x as i64 + dx, y as i64 + dy, color, 1.0);
        }
    }
}

/// Draws `text` with its baseline at `y`; characters the font lacks are skipped.
fn draw_text(img: &mut RgbImage, font: &FontRef<'_>, text: &str, x: f32, y: f32, size: f32) {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut caret = x;
    let mut previous = None;
    for ch in text.chars() {
        let id = font.glyph_id(ch);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(size, ab_glyph::point(caret, y));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                put(
                    img,
                    bounds.min.x as i64 + gx as i64,
                    bounds.min.y as i64 + gy as i64,
                    TEXT,
                    coverage.min(1.0),
                );
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::OcrLine;

    #[test]
    fn outlines_boxes_and_writes_text() {
        let img = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        let page = OcrPage {
            width: 200,
            height: 100,
            lines: vec![OcrLine {
                text: "NIK".into(),
                confidence: 1.0,
                char_confidence: vec![1.0; 3],
                quad: [[20.0, 40.0], [120.0, 40.0], [120.0, 70.0], [20.0, 70.0]],
            }],
            geometry: Default::default(),
            quality: Default::default(),
            timings: Default::default(),
            det_ms: 0.0,
            rec_ms: 0.0,
            second_look: false,
        };
        let out = annotate(&img, &page);
        assert_eq!(*out.get_pixel(60, 40), BOX, "the box's top edge is drawn");
        let inked = out
            .pixels()
            .filter(|p| p.0[2] > 150 && p.0[0] < 100)
            .count();
        assert!(inked > 20, "the text is drawn ({inked} text pixels)");
    }
}
