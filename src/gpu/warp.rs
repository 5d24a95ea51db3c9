//! Plane projective geometry for turning a photographed card into an upright, flat page: the
//! homography between four point pairs, its inverse, and the perspective warp that samples a
//! photo through it. Pure functions over pixels and points.

use image::RgbImage;

/// A 3×3 projective transform, row-major, normalised so that its last entry is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub [f64; 9]);

impl Homography {
    pub const IDENTITY: Self = Self([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);

    /// The transform taking each `from[i]` to `to[i]`, or `None` when three of the points are
    /// collinear (no unique transform).
    pub fn from_points(from: [[f32; 2]; 4], to: [[f32; 2]; 4]) -> Option<Self> {
        // Eight equations in h0..h7 (h8 = 1), solved by Gaussian elimination with pivoting.
        let mut a = [[0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = (from[i][0] as f64, from[i][1] as f64);
            let (u, v) = (to[i][0] as f64, to[i][1] as f64);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        for col in 0..8 {
            let pivot = (col..8).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
            if a[pivot][col].abs() < 1e-9 {
                return None;
            }
            a.swap(col, pivot);
            let pivot_row = a[col];
            for (row, values) in a.iter_mut().enumerate() {
                if row != col {
                    let f = values[col] / pivot_row[col];
                    for (v, p) in values.iter_mut().zip(pivot_row).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
        let mut h = [0f64; 9];
        for (i, v) in h.iter_mut().take(8).enumerate() {
            *v = a[i][8] / a[i][i];
        }
        h[8] = 1.0;
        Some(Self(h))
    }

    /// Where this transform takes `p`.
    #[inline]
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let h = &self.0;
        let (x, y) = (p[0] as f64, p[1] as f64);
        let w = h[6] * x + h[7] * y + h[8];
        let w = if w.abs() < 1e-12 { 1e-12 } else { w };
        [
            ((h[0] * x + h[1] * y + h[2]) / w) as f32,
            ((h[3] * x + h[4] * y + h[5]) / w) as f32,
        ]
    }

    /// `self` after `first`: points go through `first`, then through `self`.
    pub fn after(&self, first: &Self) -> Self {
        let (a, b) = (&self.0, &first.0);
        let mut m = [0f64; 9];
        for r in 0..3 {
            for c in 0..3 {
                m[r * 3 + c] = (0..3).map(|k| a[r * 3 + k] * b[k * 3 + c]).sum();
            }
        }
        Self(m).normalised()
    }

    pub fn inverse(&self) -> Option<Self> {
        let m = &self.0;
        let det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
            + m[2] * (m[3] * m[7] - m[4] * m[6]);
        if det.abs() < 1e-12 {
            return None;
        }
        let inv = [
            m[4] * m[8] - m[5] * m[7],
            m[2] * m[7] - m[1] * m[8],
            m[1] * m[5] - m[2] * m[4],
            m[5] * m[6] - m[3] * m[8],
            m[0] * m[8] - m[2] * m[6],
            m[2] * m[3] - m[0] * m[5],
            m[3] * m[7] - m[4] * m[6],
            m[1] * m[6] - m[0] * m[7],
            m[0] * m[4] - m[1] * m[3],
        ];
        Some(Self(inv.map(|v| v / det)).normalised())
    }

    fn normalised(self) -> Self {
        let s = if self.0[8].abs() < 1e-12 {
            1.0
        } else {
            self.0[8]
        };
        Self(self.0.map(|v| v / s))
    }
}

/// A `width`×`height` image whose pixel (x, y) shows the photo around
/// `page_to_photo((x + ½, y + ½))`, sampled bilinearly (the edge repeats outside the photo).
/// Where a page pixel covers several photo pixels (`photo_per_page` > 1), it averages a grid
/// of samples, so that thin strokes are not lost between samples.
pub fn warp(
    photo: &RgbImage,
    page_to_photo: &Homography,
    width: u32,
    height: u32,
    photo_per_page: f32,
) -> RgbImage {
    use rayon::prelude::*;
    let n = (photo_per_page.ceil() as u32).clamp(1, 4);
    let mut out = RgbImage::new(width, height);
    // Rows in parallel: each output pixel depends on the photo only.
    out.par_chunks_mut(3 * width as usize)
        .enumerate()
        .for_each(|(y, row)| warp_row(photo, page_to_photo, y, n, row));
    out
}

super::vector::vectorised! {
    /// One row of [`warp`]'s page, compiled for the CPU's vector instructions where it has
    /// them (the arithmetic is the same, so is the result).
    fn warp_row(
        photo: &RgbImage,
        page_to_photo: &Homography,
        y: usize,
        n: u32,
        row: &mut [u8],
    ) = warp_row_body;
}

#[inline(always)]
fn warp_row_body(photo: &RgbImage, page_to_photo: &Homography, y: usize, n: u32, row: &mut [u8]) {
    let width = row.len() / 3;
    // One sample position at a time across the whole row: the projective division then runs
    // in vector lanes, apart from the bilinear lookups. Each pixel still sums its samples in
    // the same order, so the result is the same as sample by sample.
    let mut sums = vec![[0f32; 3]; width];
    let mut at = vec![[0f32; 2]; width];
    for j in 0..n {
        for i in 0..n {
            let (dx, ay) = (
                (i as f32 + 0.5) / n as f32,
                y as f32 + (j as f32 + 0.5) / n as f32,
            );
            for (x, p) in at.iter_mut().enumerate() {
                *p = page_to_photo.apply([x as f32 + dx, ay]);
            }
            for (sum, [sx, sy]) in sums.iter_mut().zip(&at) {
                let rgb = bilinear(photo, sx - 0.5, sy - 0.5);
                for c in 0..3 {
                    sum[c] += rgb[c];
                }
            }
        }
    }
    let k = (n * n) as f32;
    for (px, sum) in row.chunks_exact_mut(3).zip(&sums) {
        for c in 0..3 {
            px[c] = (sum[c] / k).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// The photo's colour at (x, y) in pixel-index coordinates, interpolated between the four
/// nearest pixels; the edge repeats outside.
#[inline(always)]
pub fn bilinear(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let raw = img.as_raw();
    let (x0, y0) = (x.floor(), y.floor());
    let (ax, ay) = (x - x0, y - y0);
    let (xi, yi) = (x0 as i64, y0 as i64);
    let (left, right) = (
        xi.clamp(0, w - 1) as usize,
        (xi + 1).clamp(0, w - 1) as usize,
    );
    let (top, bottom) = (
        yi.clamp(0, h - 1) as usize,
        (yi + 1).clamp(0, h - 1) as usize,
    );
    let w = w as usize;
    let px = |xi: usize, yi: usize| {
        let at = 3 * (yi * w + xi);
        [raw[at] as f32, raw[at + 1] as f32, raw[at + 2] as f32]
    };
    let (a, b, c, d) = (
        px(left, top),
        px(right, top),
        px(left, bottom),
        px(right, bottom),
    );
    let mut out = [0f32; 3];
    for i in 0..3 {
        let top = a[i] * (1.0 - ax) + b[i] * ax;
        let bottom = c[i] * (1.0 - ax) + d[i] * ax;
        out[i] = top * (1.0 - ay) + bottom * ay;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-2 && (a[1] - b[1]).abs() < 1e-2
    }

    #[test]
    fn maps_each_corner_and_inverts() {
        let from = [[0.0, 0.0], [100.0, 0.0], [100.0, 60.0], [0.0, 60.0]];
        let to = [[12.0, 30.0], [205.0, 41.0], [190.0, 160.0], [20.0, 140.0]];
        let h = Homography::from_points(from, to).unwrap();
        for i in 0..4 {
            assert!(close(h.apply(from[i]), to[i]), "{:?}", h.apply(from[i]));
        }
        let back = h.inverse().unwrap();
        let p = [37.0, 21.0];
        assert!(close(back.apply(h.apply(p)), p));
        assert!(close(back.after(&h).apply(p), p));
        assert!(
            Homography::from_points(from, [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
                .is_none()
        );
    }

    #[test]
    fn warps_a_rotated_rectangle_upright() {
        // A bright 40×20 rectangle rotated by 90° in the photo comes out as a flat page.
        let mut photo = RgbImage::new(100, 100);
        for y in 30..70 {
            for x in 40..60 {
                photo.put_pixel(x, y, image::Rgb([200, 200, 200]));
            }
        }
        let page = [[0.0, 0.0], [40.0, 0.0], [40.0, 20.0], [0.0, 20.0]];
        let quad = [[60.0, 30.0], [60.0, 70.0], [40.0, 70.0], [40.0, 30.0]];
        let h = Homography::from_points(page, quad).unwrap();
        let out = warp(&photo, &h, 40, 20, 1.0);
        let inside = out.pixels().filter(|p| p.0[0] > 150).count();
        assert!(inside >= 40 * 20 - 8, "{inside}");
    }
}
