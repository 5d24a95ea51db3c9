//! Image preparation for the models: decoding (EXIF orientation applied, the page image of a
//! scanned PDF), the detector's input tensor, and rotated crops of text lines for the
//! recogniser. Pure functions over pixels; no model code here.

use image::RgbImage;

use super::{
    OcrError,
    db::Quad,
    warp::{Homography, bilinear},
};
use crate::media::{self, ImageLimits, MediaError};

/// Decodes a JPEG/PNG (orientation applied) or the page image of a scanned PDF, the decoder
/// held to `limits` (see `crate::media`).
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, OcrError> {
    media::decode(bytes, limits).map_err(|e| match e {
        MediaError::NoPageImage => OcrError::NoPageImage,
        other => OcrError::Decode(other.to_string()),
    })
}

/// The detector's input: the image scaled so its shorter side is `min_side` (never beyond
/// `max_side` on the longer side), each side rounded to a multiple of 32, as BGR planes
/// normalised with ImageNet statistics (PP-OCR's training recipe).
pub struct DetInput {
    pub data: Vec<f32>,
    pub width: usize,
    pub height: usize,
    /// Multiply map coordinates by these to get image coordinates.
    pub scale: (f32, f32),
}

pub fn det_input(img: &RgbImage, min_side: u32, max_side: u32) -> DetInput {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let mut ratio = min_side as f32 / w.min(h);
    if w.max(h) * ratio > max_side as f32 {
        ratio = max_side as f32 / w.max(h);
    }
    let round32 = |v: f32| (((v / 32.0).round() as u32).max(1) * 32) as usize;
    let (tw, th) = (round32(w * ratio), round32(h * ratio));
    let resized = image::imageops::resize(
        img,
        tw as u32,
        th as u32,
        image::imageops::FilterType::Triangle,
    );
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let plane = tw * th;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in resized.pixels().enumerate() {
        // BGR order, as the model was trained on OpenCV images.
        for c in 0..3 {
            let v = px.0[2 - c] as f32 / 255.0;
            data[c * plane + i] = (v - MEAN[c]) / STD[c];
        }
    }
    DetInput {
        data,
        width: tw,
        height: th,
        scale: (w / tw as f32, h / th as f32),
    }
}

/// A text line cut out along its (possibly rotated) box and resampled to `height` pixels,
/// its width following the box's aspect ratio (capped at `max_width`). Tall boxes are read
/// as vertical text turned upright. Returns BGR planes normalised to [-1, 1] and the width.
pub fn rec_crop(img: &RgbImage, quad: &Quad, height: usize, max_width: usize) -> (Vec<f32>, usize) {
    rec_crop_through(img, &Homography::IDENTITY, quad, height, max_width)
}

/// [`rec_crop`] of a box given in page coordinates, sampled from the photo the page was taken
/// from (`page_to_photo`): the recogniser sees the photo's own pixels, at their resolution.
///
/// The box's corners are carried into the photo and the crop is the rectangle there that
/// follows the line's baseline and holds all four: the line is read as the camera saw it,
/// upright along its baseline. A page warped from a card outline that was found a little
/// askew slants the letters on the page; sampling the page's box through the warp would pass
/// that slant on, and the recogniser reads slanted zeros as nines.
pub fn rec_crop_through(
    img: &RgbImage,
    page_to_photo: &Homography,
    quad: &Quad,
    height: usize,
    max_width: usize,
) -> (Vec<f32>, usize) {
    let [p0, p1, p2, p3] = quad.0;
    // Corners in reading order: top-left, top-right, bottom-right, bottom-left of the text.
    let corners = if quad.height() / quad.width().max(1.0) >= 1.5 {
        // Vertical box: read it rotated by 90° (PP-OCR does the same).
        [p3, p0, p1, p2]
    } else {
        [p0, p1, p2, p3]
    }
    .map(|p| page_to_photo.apply(p));
    let [a, b, c, d] = corners;
    let along = add(sub(b, a), sub(c, d));
    let length = along[0].hypot(along[1]).max(1e-3);
    let u = [along[0] / length, along[1] / length];
    // Across the line, pointing from its top to its bottom.
    let mut v = [-u[1], u[0]];
    if dot(sub(d, a), v) < 0.0 {
        v = [-v[0], -v[1]];
    }
    let (mut u_min, mut u_max, mut v_min, mut v_max) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in corners {
        let (pu, pv) = (dot(sub(p, a), u), dot(sub(p, a), v));
        (u_min, u_max) = (u_min.min(pu), u_max.max(pu));
        (v_min, v_max) = (v_min.min(pv), v_max.max(pv));
    }
    let (len_u, len_v) = ((u_max - u_min).max(1.0), (v_max - v_min).max(1.0));
    let origin = add(a, add(scale(u, u_min), scale(v, v_min)));
    let (u, v) = (scale(u, len_u), scale(v, len_v));
    let width = ((height as f32 * len_u / len_v).ceil() as usize).clamp(1, max_width);
    let plane = width * height;
    let mut data = vec![0f32; 3 * plane];
    for y in 0..height {
        let fy = (y as f32 + 0.5) / height as f32;
        for x in 0..width {
            let fx = (x as f32 + 0.5) / width as f32;
            let sx = origin[0] + fx * u[0] + fy * v[0];
            let sy = origin[1] + fx * u[1] + fy * v[1];
            let rgb = bilinear(img, sx - 0.5, sy - 0.5);
            for c in 0..3 {
                data[c * plane + y * width + x] = rgb[2 - c] / 127.5 - 1.0;
            }
        }
    }
    (data, width)
}

fn add(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

fn scale(a: [f32; 2], k: f32) -> [f32; 2] {
    [a[0] * k, a[1] * k]
}

fn dot(a: [f32; 2], b: [f32; 2]) -> f32 {
    a[0] * b[0] + a[1] * b[1]
}

fn sub(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_input_is_a_multiple_of_32_with_the_short_side_at_target() {
        let img = RgbImage::new(1011, 638);
        let d = det_input(&img, 736, 1600);
        assert_eq!((d.width % 32, d.height % 32), (0, 0));
        assert_eq!(d.height, 736);
        assert_eq!(d.data.len(), 3 * d.width * d.height);
        let big = RgbImage::new(4000, 600);
        let d = det_input(&big, 736, 1600);
        assert!(d.width <= 1600);
    }

    /// A black photo, 200 × 100, with a white block over x 50..150, y 40..60.
    fn white_block() -> RgbImage {
        RgbImage::from_fn(200, 100, |x, y| {
            let inside = (50..150).contains(&x) && (40..60).contains(&y);
            image::Rgb([if inside { 255 } else { 0 }; 3])
        })
    }

    #[test]
    fn a_page_warped_askew_passes_no_slant_to_the_crop() {
        // Upright "text" in the photo.
        let img = white_block();
        // A page warped with a shear: its upright box lands askew in the photo.
        let shear = Homography([1.0, 0.3, -15.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let quad = Quad([[50.0, 40.0], [150.0, 40.0], [150.0, 60.0], [50.0, 60.0]]);
        let (data, w) = rec_crop_through(&img, &shear, &quad, 48, 960);
        // The rectangle along the baseline that holds the box's corners: 106 × 20 photo px.
        assert_eq!(w, 255);
        let first_white = |row: usize| (0..w).find(|&x| data[row * w + x] > 0.5).unwrap();
        let (top, bottom) = (first_white(6), first_white(41));
        assert!(
            top.abs_diff(bottom) <= 1,
            "the block's left edge is upright: {top} at the top, {bottom} at the bottom"
        );
    }

    #[test]
    fn rec_crop_follows_the_box_aspect() {
        let img = white_block();
        let quad = Quad([[50.0, 40.0], [150.0, 40.0], [150.0, 60.0], [50.0, 60.0]]);
        let (data, w) = rec_crop(&img, &quad, 48, 960);
        assert_eq!(w, 240);
        // The middle row, away from the edges that blend with the black outside, is white.
        let middle = &data[24 * w..25 * w];
        assert!(
            middle[2..w - 2].iter().all(|&v| v > 0.9),
            "inside the box is white"
        );
    }

    #[test]
    fn decodes_a_scanned_pdf_within_limits() {
        let pdf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ktp_000.pdf"
        ))
        .unwrap();
        let img = decode(&pdf, &ImageLimits::default()).unwrap();
        assert_eq!(img.width(), 1011);
        assert!(matches!(
            decode(b"%PDF-1.4 no images", &ImageLimits::default()),
            Err(OcrError::NoPageImage)
        ));
    }
}
