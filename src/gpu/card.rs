//! Finding an identity card in a photo: the card's quadrilateral, from the photo's pixels
//! alone, before any model runs. A card is a flat, evenly lit plate that stands out from what
//! it lies on; seen through a camera it is a convex quadrilateral with the ID-1 format's
//! proportions (85.6 × 54 mm), somewhat foreshortened. The search looks at a small copy of
//! the photo, thresholds its brightness at many levels, and keeps the connected region that
//! best fills a card-shaped quadrilateral, whose sides are then fitted to the region's edge.

use image::RgbImage;

use super::db::{Connectivity, components, convex_hull, dist};

/// ID-1 cards (KTP, NPWP): 85.6 mm by 53.98 mm.
pub const CARD_ASPECT: f32 = 85.6 / 53.98;

/// The search works on a copy of the photo whose longer side is this many pixels.
const SEARCH_SIDE: u32 = 320;

/// A region must cover at least this share of the photo to be a card.
const MIN_AREA_SHARE: f32 = 0.015;

/// How well the region must fill its quadrilateral (holes such as the portrait are filled
/// first).
const MIN_FILL: f32 = 0.9;

/// How much of the region's hull the quadrilateral must cover: a card with a corner cut off
/// by a shadow is not a card.
const MIN_HULL_FIT: f32 = 0.94;

/// Side ratios accepted for a card seen at an angle (the flat card is 1.586).
const ASPECT_RANGE: (f32, f32) = (1.2, 2.2);

/// A card found in a photo: corners in photo pixels, in order around the card, the first side
/// (corner 0 to corner 1) along a long edge. Which long edge is the top is not known here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CardQuad {
    pub corners: [[f32; 2]; 4],
    /// How well the region filled the quadrilateral (1 = perfectly).
    pub fill: f32,
}

impl CardQuad {
    /// The longer side's mean length, in photo pixels.
    pub fn long_side(&self) -> f32 {
        let c = &self.corners;
        (dist(c[0], c[1]) + dist(c[2], c[3])) / 2.0
    }
    /// The shorter side's mean length, in photo pixels.
    pub fn short_side(&self) -> f32 {
        let c = &self.corners;
        (dist(c[1], c[2]) + dist(c[3], c[0])) / 2.0
    }
}

/// The card in `photo`, or `None` when no region looks like one (a card filling the whole
/// frame, one cut off by the frame's edge, or one no brighter than what it lies on).
pub fn find(photo: &RgbImage) -> Option<CardQuad> {
    let mut best: Option<(f32, CardQuad)> = None;
    let ([luminance, brightest, palest], scale) = thumbnails(photo, SEARCH_SIDE);
    let detail = Detail::of(&luminance);
    search(&luminance, &detail, &mut best);
    // A card stands out by its brightness, or by its colour where light falls unevenly: the
    // brightest and the palest channel are searched too.
    for channel in [&brightest, &palest] {
        search(channel, &detail, &mut best);
    }
    best.map(|(_, q)| CardQuad {
        corners: q.corners.map(|p| [p[0] * scale, p[1] * scale]),
        fill: q.fill,
    })
}

/// Every region of `small` that is brighter than one of a series of thresholds, judged as a
/// card; the largest good card that carries more detail than its surroundings (print, where
/// the surface it lies on is plain) is kept in `best`.
fn search(small: &Thumbnail, detail: &Detail, best: &mut Option<(f32, CardQuad)>) {
    let (w, h) = (small.width, small.height);
    let mut sorted = small.data.clone();
    sorted.sort_by(f32::total_cmp);
    for step in 4..=19 {
        let t = sorted[sorted.len() * step / 20 - 1];
        let mask: Vec<bool> = small.data.iter().map(|&v| v > t).collect();
        for region in regions(&mask, w, h) {
            let Some((score, quad)) = judge(&region, w, h) else {
                continue;
            };
            if best.as_ref().is_none_or(|(s, _)| score > *s) && detail.stands_out(&quad.corners) {
                *best = Some((score, quad));
            }
        }
    }
}

struct Thumbnail {
    data: Vec<f32>,
    width: usize,
    height: usize,
}

/// The photo box-averaged down to `side` pixels on its longer side, in three channels (its
/// luminance; the largest of red, green and blue, for a coloured card under a shadow; the
/// smallest, for a pale card on a coloured surface), and the factor from thumbnail to photo
/// pixels. One pass over the photo.
fn thumbnails(photo: &RgbImage, side: u32) -> ([Thumbnail; 3], f32) {
    let scale = (photo.width().max(photo.height()) as f32 / side as f32).max(1.0);
    let (w, h) = (
        ((photo.width() as f32 / scale).round() as usize).max(1),
        ((photo.height() as f32 / scale).round() as usize).max(1),
    );
    let mut sums = [vec![0f32; w * h], vec![0f32; w * h], vec![0f32; w * h]];
    let mut count = vec![0u32; w * h];
    let columns: Vec<usize> = (0..photo.width())
        .map(|x| ((x as f32 / scale) as usize).min(w - 1))
        .collect();
    for (y, row) in photo.rows().enumerate() {
        let ty = ((y as f32 / scale) as usize).min(h - 1);
        for (p, &tx) in row.zip(&columns) {
            let [r, g, b] = p.0.map(f32::from);
            let i = ty * w + tx;
            sums[0][i] += 0.299 * r + 0.587 * g + 0.114 * b;
            sums[1][i] += r.max(g).max(b);
            sums[2][i] += r.min(g).min(b);
            count[i] += 1;
        }
    }
    let thumbs = sums.map(|sum| Thumbnail {
        data: sum
            .iter()
            .zip(&count)
            .map(|(s, &n)| s / n.max(1) as f32)
            .collect(),
        width: w,
        height: h,
    });
    (thumbs, photo.width() as f32 / w as f32)
}

/// How much is going on at each pixel of a thumbnail: the luminance gradient's size.
struct Detail {
    grad: Vec<f32>,
    width: usize,
    height: usize,
}

impl Detail {
    fn of(t: &Thumbnail) -> Self {
        let (w, h) = (t.width, t.height);
        let mut grad = vec![0f32; w * h];
        for y in 1..h.saturating_sub(1) {
            for x in 1..w.saturating_sub(1) {
                let i = y * w + x;
                grad[i] =
                    (t.data[i + 1] - t.data[i - 1]).abs() + (t.data[i + w] - t.data[i - w]).abs();
            }
        }
        Self {
            grad,
            width: w,
            height: h,
        }
    }

    /// Whether the quadrilateral holds more detail per pixel than a band around it a fifth of
    /// its size wide: a printed card on a plain surface does, a plain patch inside a printed
    /// card (its portrait) does not.
    fn stands_out(&self, quad: &[[f32; 2]; 4]) -> bool {
        let centre = [
            quad.iter().map(|p| p[0]).sum::<f32>() / 4.0,
            quad.iter().map(|p| p[1]).sum::<f32>() / 4.0,
        ];
        let outer = quad.map(|p| {
            [
                centre[0] + 1.4 * (p[0] - centre[0]),
                centre[1] + 1.4 * (p[1] - centre[1]),
            ]
        });
        let (mut inside, mut n_in, mut around, mut n_around) = (0f32, 0u32, 0f32, 0u32);
        for y in 1..self.height.saturating_sub(1) {
            for x in 1..self.width.saturating_sub(1) {
                let p = [x as f32 + 0.5, y as f32 + 0.5];
                if contains(quad, p) {
                    inside += self.grad[y * self.width + x];
                    n_in += 1;
                } else if contains(&outer, p) {
                    around += self.grad[y * self.width + x];
                    n_around += 1;
                }
            }
        }
        n_around == 0 || inside / n_in.max(1) as f32 > around / n_around as f32
    }
}

fn contains(quad: &[[f32; 2]; 4], p: [f32; 2]) -> bool {
    let side =
        |a: [f32; 2], b: [f32; 2]| (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
    let s: Vec<f32> = (0..4).map(|i| side(quad[i], quad[(i + 1) % 4])).collect();
    s.iter().all(|&v| v >= 0.0) || s.iter().all(|&v| v <= 0.0)
}

/// 4-connected regions of set pixels large enough to be a card, each as its pixel indices.
fn regions(mask: &[bool], w: usize, h: usize) -> Vec<Vec<usize>> {
    let min_area = (MIN_AREA_SHARE * (w * h) as f32) as usize;
    let mut out = components(mask, w, h, Connectivity::Four);
    out.retain(|pixels| pixels.len() >= min_area);
    out
}

/// A region's card quadrilateral and how card-like it is, or `None` when it is not a card.
fn judge(region: &[usize], w: usize, h: usize) -> Option<(f32, CardQuad)> {
    // A region the frame cuts off has the frame's edge for a side.
    let touching = region
        .iter()
        .filter(|&&i| {
            let (x, y) = (i % w, i / w);
            x == 0 || y == 0 || x + 1 == w || y + 1 == h
        })
        .count();
    if touching > 2 {
        return None;
    }
    // Rows filled between their first and last pixel: holes (portrait, text) don't count.
    let mut spans = vec![(usize::MAX, 0usize); h];
    for &i in region {
        let (x, y) = (i % w, i / w);
        spans[y] = (spans[y].0.min(x), spans[y].1.max(x));
    }
    let filled: usize = spans
        .iter()
        .filter(|s| s.0 != usize::MAX)
        .map(|s| s.1 - s.0 + 1)
        .sum();
    // The region's outline: the ends of every row and every column (pixel corners).
    let mut columns = vec![(usize::MAX, 0usize); w];
    for &i in region {
        let (x, y) = (i % w, i / w);
        columns[x] = (columns[x].0.min(y), columns[x].1.max(y));
    }
    let mut edge: Vec<[f32; 2]> = Vec::new();
    for (y, s) in spans.iter().enumerate().filter(|(_, s)| s.0 != usize::MAX) {
        let (y, l, r) = (y as f32 + 0.5, s.0 as f32, s.1 as f32 + 1.0);
        edge.extend([[l, y], [r, y]]);
    }
    for (x, s) in columns
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 != usize::MAX)
    {
        let (x, t, b) = (x as f32 + 0.5, s.0 as f32, s.1 as f32 + 1.0);
        edge.extend([[x, t], [x, b]]);
    }
    let hull = convex_hull(&edge);
    let quad = largest_inscribed_quad(&hull)?;
    let quad_area = polygon_area(&quad);
    let fill = filled as f32 / quad_area.max(1.0);
    let hull_fit = quad_area / polygon_area(&hull).max(1.0);
    if fill.min(1.0 / fill) < MIN_FILL || hull_fit < MIN_HULL_FIT {
        return None;
    }
    let corners = fit_sides(&quad, &edge).unwrap_or(quad);
    let card = CardQuad {
        corners: long_side_first(corners),
        fill,
    };
    let aspect = card.long_side() / card.short_side().max(1.0);
    if !(ASPECT_RANGE.0..=ASPECT_RANGE.1).contains(&aspect) || !is_convex(&card.corners) {
        return None;
    }
    // Of the regions that make a good card, the largest: a brighter patch of a card (glare,
    // uneven light) can be card-shaped too, and lies inside the whole card.
    Some((filled as f32, card))
}

/// The four hull vertices enclosing the largest area (for a photographed card, its corners).
fn largest_inscribed_quad(hull: &[[f32; 2]]) -> Option<[[f32; 2]; 4]> {
    let n = hull.len();
    if n < 4 {
        return None;
    }
    let tri = |a: usize, b: usize, c: usize| {
        let (p, q, r) = (hull[a], hull[b], hull[c]);
        ((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])).abs() / 2.0
    };
    let mut best = (0.0f32, [0usize; 4]);
    for i in 0..n {
        // For the diagonal i–k, the best third and fourth corners are found independently;
        // on a convex polygon each moves forward monotonically as k advances.
        let mut j = i + 1;
        let mut l = i + 2;
        for k in i + 2..n {
            if j >= k {
                j = i + 1;
            }
            while j + 1 < k && tri(i, j + 1, k) >= tri(i, j, k) {
                j += 1;
            }
            if l <= k {
                l = k + 1;
            }
            while l + 1 < n && tri(i, k, l + 1) >= tri(i, k, l) {
                l += 1;
            }
            if l >= n {
                continue;
            }
            let area = tri(i, j, k) + tri(i, k, l);
            if area > best.0 {
                best = (area, [i, j, k, l]);
            }
        }
    }
    (best.0 > 0.0).then(|| best.1.map(|i| hull[i]))
}

/// Each side of `quad` refitted to the region's edge points near it (least squares), the
/// corners being where the fitted sides meet; rounded card corners then don't pull the
/// corners inward.
fn fit_sides(quad: &[[f32; 2]; 4], edge: &[[f32; 2]]) -> Option<[[f32; 2]; 4]> {
    let mut lines = Vec::with_capacity(4);
    for i in 0..4 {
        let (a, b) = (quad[i], quad[(i + 1) % 4]);
        let len = dist(a, b).max(1e-3);
        let u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let near: Vec<[f32; 2]> = edge
            .iter()
            .copied()
            .filter(|p| {
                let (dx, dy) = (p[0] - a[0], p[1] - a[1]);
                let along = (dx * u[0] + dy * u[1]) / len;
                let across = (dx * u[1] - dy * u[0]).abs();
                (0.15..0.85).contains(&along) && across < 2.5
            })
            .collect();
        if near.len() < 4 {
            return None;
        }
        lines.push(fit_line(&near));
    }
    let mut out = [[0f32; 2]; 4];
    for (i, corner) in out.iter_mut().enumerate() {
        *corner = intersect(lines[(i + 3) % 4], lines[i])?;
        if dist(*corner, quad[i]) > 0.1 * dist(quad[i], quad[(i + 2) % 4]) {
            return None;
        }
    }
    Some(out)
}

/// A line through points as (a point on it, its unit direction): total least squares.
fn fit_line(points: &[[f32; 2]]) -> ([f32; 2], [f32; 2]) {
    let n = points.len() as f32;
    let mx = points.iter().map(|p| p[0]).sum::<f32>() / n;
    let my = points.iter().map(|p| p[1]).sum::<f32>() / n;
    let (mut sxx, mut sxy, mut syy) = (0f32, 0f32, 0f32);
    for p in points {
        let (dx, dy) = (p[0] - mx, p[1] - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    let angle = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    ([mx, my], [angle.cos(), angle.sin()])
}

fn intersect(a: ([f32; 2], [f32; 2]), b: ([f32; 2], [f32; 2])) -> Option<[f32; 2]> {
    let ((p, d), (q, e)) = (a, b);
    let denom = d[0] * e[1] - d[1] * e[0];
    if denom.abs() < 1e-4 {
        return None;
    }
    let t = ((q[0] - p[0]) * e[1] - (q[1] - p[1]) * e[0]) / denom;
    Some([p[0] + t * d[0], p[1] + t * d[1]])
}

/// The corners turned so that the first side is a long one, and clockwise on screen.
fn long_side_first(c: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    let signed: f32 = (0..4)
        .map(|i| c[i][0] * c[(i + 1) % 4][1] - c[(i + 1) % 4][0] * c[i][1])
        .sum();
    // Image y grows downwards: a positive shoelace sum runs clockwise on screen.
    let c = if signed < 0.0 {
        [c[0], c[3], c[2], c[1]]
    } else {
        c
    };
    let first = dist(c[0], c[1]) + dist(c[2], c[3]);
    let second = dist(c[1], c[2]) + dist(c[3], c[0]);
    if first >= second {
        c
    } else {
        [c[1], c[2], c[3], c[0]]
    }
}

fn is_convex(c: &[[f32; 2]; 4]) -> bool {
    let signs: Vec<bool> = (0..4)
        .map(|i| {
            let (a, b, d) = (c[i], c[(i + 1) % 4], c[(i + 2) % 4]);
            (b[0] - a[0]) * (d[1] - b[1]) - (b[1] - a[1]) * (d[0] - b[0]) > 0.0
        })
        .collect();
    signs.iter().all(|&s| s) || signs.iter().all(|&s| !s)
}

fn polygon_area(points: &[[f32; 2]]) -> f32 {
    let n = points.len();
    (0..n)
        .map(|i| points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1])
        .sum::<f32>()
        .abs()
        / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::warp::Homography;

    /// A photo of `size` with a printed card (pale, with dark lines of "text") at `corners`
    /// on a dark, slightly lighter-banded surface.
    fn photo_with_card(size: (u32, u32), corners: [[f32; 2]; 4]) -> RgbImage {
        let (w, h) = (600.0, 378.0);
        let to_card =
            Homography::from_points(corners, [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]).unwrap();
        RgbImage::from_fn(size.0, size.1, |x, y| {
            let [u, v] = to_card.apply([x as f32 + 0.5, y as f32 + 0.5]);
            if (0.0..w).contains(&u) && (0.0..h).contains(&v) {
                let line = (v as u32 / 12) % 2 == 1 && (30.0..400.0).contains(&u);
                let letter = !(u as u32 / 7).is_multiple_of(3);
                if line && letter {
                    image::Rgb([40, 40, 50])
                } else {
                    image::Rgb([200, 215, 220])
                }
            } else if x > size.0 * 2 / 3 {
                image::Rgb([90, 80, 75])
            } else {
                image::Rgb([50, 45, 45])
            }
        })
    }

    fn near(a: [f32; 2], b: [f32; 2], tolerance: f32) -> bool {
        dist(a, b) <= tolerance
    }

    #[test]
    fn finds_a_tilted_card_in_perspective_long_side_first() {
        // Portrait photo, card turned by about 80° and foreshortened.
        let corners = [[300.0, 150.0], [320.0, 530.0], [80.0, 520.0], [70.0, 160.0]];
        let found = find(&photo_with_card((480, 800), corners)).expect("a card");
        // Whatever corner it starts at, every true corner is found within a few pixels.
        for c in corners {
            assert!(
                found.corners.iter().any(|f| near(*f, c, 8.0)),
                "{c:?} not in {:?}",
                found.corners
            );
        }
        assert!(found.long_side() > 1.4 * found.short_side(), "{found:?}");
    }

    #[test]
    fn finds_a_small_card_and_no_card_when_it_fills_the_frame() {
        let small = [
            [400.0, 300.0],
            [640.0, 320.0],
            [630.0, 470.0],
            [390.0, 450.0],
        ];
        let found = find(&photo_with_card((960, 720), small)).expect("a small card");
        for c in small {
            assert!(found.corners.iter().any(|f| near(*f, c, 8.0)), "{found:?}");
        }
        // A scan: the card is the whole picture, so there is no card to find in it.
        let full = [[0.0, 0.0], [600.0, 0.0], [600.0, 378.0], [0.0, 378.0]];
        assert_eq!(find(&photo_with_card((600, 378), full)), None);
    }

    #[test]
    fn a_plain_patch_inside_a_printed_card_is_not_a_card() {
        // A full-frame card with a light, plain portrait frame: card-shaped, but it carries
        // less detail than the print around it.
        let mut img = photo_with_card(
            (600, 378),
            [[0.0, 0.0], [600.0, 0.0], [600.0, 378.0], [0.0, 378.0]],
        );
        for y in 120..260 {
            for x in 430..590 {
                img.put_pixel(x, y, image::Rgb([235, 235, 235]));
            }
        }
        assert_eq!(find(&img), None);
    }

    #[test]
    fn the_largest_inscribed_quad_of_a_cut_rectangle_is_the_rectangle() {
        // A rectangle with slightly cut corners (a rounded card seen at low resolution).
        let hull = [
            [1.0, 0.0],
            [99.0, 0.0],
            [100.0, 1.0],
            [100.0, 59.0],
            [99.0, 60.0],
            [1.0, 60.0],
            [0.0, 59.0],
            [0.0, 1.0],
        ];
        let quad = largest_inscribed_quad(&hull).unwrap();
        assert!(polygon_area(&quad) >= 0.97 * 6000.0, "{quad:?}");
        assert!(is_convex(&quad));
    }
}
