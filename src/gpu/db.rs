//! DB (differentiable binarization) post-processing: from the detector's probability map to
//! text boxes, following PP-OCR's recipe without OpenCV: threshold, dilate, 8-connected
//! regions, minimum-area rotated rectangle per region, box score, unclip, back to image
//! coordinates.

/// A rotated rectangle as four corners: top-left, top-right, bottom-right, bottom-left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quad(pub [[f32; 2]; 4]);

impl Quad {
    pub fn width(&self) -> f32 {
        dist(self.0[0], self.0[1]).max(dist(self.0[3], self.0[2]))
    }
    pub fn height(&self) -> f32 {
        dist(self.0[0], self.0[3]).max(dist(self.0[1], self.0[2]))
    }
    pub fn center(&self) -> [f32; 2] {
        let xs = self.0.iter().map(|p| p[0]).sum::<f32>() / 4.0;
        let ys = self.0.iter().map(|p| p[1]).sum::<f32>() / 4.0;
        [xs, ys]
    }
    pub fn top(&self) -> f32 {
        self.0.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min)
    }
    pub fn left(&self) -> f32 {
        self.0.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min)
    }
}

pub(crate) fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

#[derive(Debug, Clone)]
pub struct DbParams {
    /// Pixel probability above which a pixel is text.
    pub thresh: f32,
    /// Mean probability inside a box below which the box is dropped.
    pub box_thresh: f32,
    /// How far boxes are grown back (DB shrinks text regions during training).
    pub unclip_ratio: f32,
    pub max_candidates: usize,
    pub min_size: f32,
}

impl Default for DbParams {
    fn default() -> Self {
        Self {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
        }
    }
}

/// Boxes found in a `w`×`h` probability map, scaled by (`sx`, `sy`) into image coordinates
/// and clipped to `img_w`×`img_h`.
pub fn boxes_from_map(
    prob: &[f32],
    w: usize,
    h: usize,
    scale: (f32, f32),
    image: (f32, f32),
    p: &DbParams,
) -> Vec<(Quad, f32)> {
    let mut mask = vec![false; w * h];
    for (m, &v) in mask.iter_mut().zip(prob) {
        *m = v > p.thresh;
    }
    let mask = dilate_2x2(&mask, w, h);
    let mut out = Vec::new();
    for region in components(&mask, w, h, Connectivity::Eight)
        .into_iter()
        .take(p.max_candidates)
    {
        let points: Vec<[f32; 2]> = region
            .iter()
            .map(|&i| [(i % w) as f32, (i / w) as f32])
            .collect();
        let hull = convex_hull(&points);
        let Some(rect) = min_area_rect(&hull) else {
            continue;
        };
        if rect.width().min(rect.height()) < p.min_size {
            continue;
        }
        let score = box_score(prob, w, h, &rect);
        if score < p.box_thresh {
            continue;
        }
        let grown = unclip(&rect, p.unclip_ratio);
        if grown.width().min(grown.height()) < p.min_size + 2.0 {
            continue;
        }
        let mut q = grown.0;
        for pt in &mut q {
            pt[0] = (pt[0] * scale.0).clamp(0.0, image.0 - 1.0);
            pt[1] = (pt[1] * scale.1).clamp(0.0, image.1 - 1.0);
        }
        let quad = Quad(q);
        if quad.width() <= 3.0 || quad.height() <= 3.0 {
            continue;
        }
        out.push((quad, score));
    }
    out
}

/// Dilation with a 2×2 kernel anchored at (1, 1), as PP-OCR does with OpenCV: a pixel is set
/// when it or its left, upper or upper-left neighbour is set.
fn dilate_2x2(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = mask.to_vec();
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] {
                continue;
            }
            let left = x > 0 && mask[y * w + x - 1];
            let up = y > 0 && mask[(y - 1) * w + x];
            let diag = x > 0 && y > 0 && mask[(y - 1) * w + x - 1];
            out[y * w + x] = left || up || diag;
        }
    }
    out
}

/// Which neighbours join pixels into one region.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Connectivity {
    /// Left, right, up, down.
    Four,
    /// The diagonals too.
    Eight,
}

/// Connected regions of set pixels, each as its pixel indices (`y * w + x`), in scan order.
pub(crate) fn components(
    mask: &[bool],
    w: usize,
    h: usize,
    joined: Connectivity,
) -> Vec<Vec<usize>> {
    // The mask framed by a row and a column of unset pixels, so that a neighbour is always
    // one fixed step away in the framed image and in the mask alike, with no edge tests.
    let fw = w + 2;
    let mut open = vec![false; fw * (h + 2)];
    for (y, row) in mask.chunks_exact(w.max(1)).take(h).enumerate() {
        open[(y + 1) * fw + 1..(y + 1) * fw + 1 + w].copy_from_slice(row);
    }
    let (f, m) = (fw as isize, w as isize);
    let four = [(-f, -m), (-1, -1), (1, 1), (f, m)];
    let eight = [
        (-f - 1, -m - 1),
        (-f, -m),
        (-f + 1, -m + 1),
        (-1, -1),
        (1, 1),
        (f - 1, m - 1),
        (f, m),
        (f + 1, m + 1),
    ];
    let steps: &[(isize, isize)] = match joined {
        Connectivity::Four => &four,
        Connectivity::Eight => &eight,
    };
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let start = (y + 1) * fw + x + 1;
            if !open[start] {
                continue;
            }
            open[start] = false;
            stack.push((start, y * w + x));
            let mut pixels = Vec::new();
            while let Some((at, i)) = stack.pop() {
                pixels.push(i);
                for &(df, dm) in steps {
                    let next = at.wrapping_add_signed(df);
                    if open[next] {
                        open[next] = false;
                        stack.push((next, i.wrapping_add_signed(dm)));
                    }
                }
            }
            out.push(pixels);
        }
    }
    out
}

fn cross(o: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Andrew's monotone chain; points in counter-clockwise order (image y grows down).
pub(crate) fn convex_hull(points: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<[f32; 2]> = Vec::with_capacity(pts.len() * 2);
    for &p in pts.iter().chain(pts.iter().rev().skip(1)) {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

/// Minimum-area enclosing rectangle of a convex polygon (rotating calipers over its edges).
fn min_area_rect(hull: &[[f32; 2]]) -> Option<Quad> {
    if hull.is_empty() {
        return None;
    }
    if hull.len() < 3 {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in hull {
            x0 = x0.min(p[0]);
            y0 = y0.min(p[1]);
            x1 = x1.max(p[0]);
            y1 = y1.max(p[1]);
        }
        return Some(Quad([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]));
    }
    let mut best: Option<(f32, [[f32; 2]; 4])> = None;
    for i in 0..hull.len() {
        let a = hull[i];
        let b = hull[(i + 1) % hull.len()];
        let len = dist(a, b);
        if len < 1e-6 {
            continue;
        }
        let u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let v = [-u[1], u[0]];
        let (mut umin, mut umax, mut vmin, mut vmax) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in hull {
            let pu = p[0] * u[0] + p[1] * u[1];
            let pv = p[0] * v[0] + p[1] * v[1];
            umin = umin.min(pu);
            umax = umax.max(pu);
            vmin = vmin.min(pv);
            vmax = vmax.max(pv);
        }
        let area = (umax - umin) * (vmax - vmin);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let corner = |pu: f32, pv: f32| [pu * u[0] + pv * v[0], pu * u[1] + pv * v[1]];
            best = Some((
                area,
                [
                    corner(umin, vmin),
                    corner(umax, vmin),
                    corner(umax, vmax),
                    corner(umin, vmax),
                ],
            ));
        }
    }
    best.map(|(_, c)| Quad(order_corners(c)))
}

/// Orders corners as top-left, top-right, bottom-right, bottom-left.
pub fn order_corners(mut c: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    c.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (l, r) = c.split_at_mut(2);
    l.sort_by(|a, b| a[1].total_cmp(&b[1]));
    r.sort_by(|a, b| a[1].total_cmp(&b[1]));
    [l[0], r[0], r[1], l[1]]
}

/// Mean probability of the map inside the quad.
fn box_score(prob: &[f32], w: usize, h: usize, q: &Quad) -> f32 {
    let xs = q.0.iter().map(|p| p[0]);
    let ys = q.0.iter().map(|p| p[1]);
    let x0 = xs.clone().fold(f32::MAX, f32::min).floor().max(0.0) as usize;
    let x1 = (xs.fold(f32::MIN, f32::max).ceil() as usize).min(w - 1);
    let y0 = ys.clone().fold(f32::MAX, f32::min).floor().max(0.0) as usize;
    let y1 = (ys.fold(f32::MIN, f32::max).ceil() as usize).min(h - 1);
    let (mut sum, mut n) = (0.0f32, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside(q, [x as f32, y as f32]) {
                sum += prob[y * w + x];
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f32 }
}

fn inside(q: &Quad, p: [f32; 2]) -> bool {
    let c = &q.0;
    let signs: Vec<f32> = (0..4).map(|i| cross(c[i], c[(i + 1) % 4], p)).collect();
    signs.iter().all(|&s| s >= -0.5) || signs.iter().all(|&s| s <= 0.5)
}

/// Grows a rectangle by `area × ratio / perimeter` on every side (what pyclipper's round
/// offset of a rectangle amounts to, once its minimum-area rectangle is taken again).
fn unclip(q: &Quad, ratio: f32) -> Quad {
    let (w, h) = (q.width(), q.height());
    let d = w * h * ratio / (2.0 * (w + h)).max(1e-6);
    let c = q.0;
    let u = unit(c[0], c[1]);
    let v = unit(c[0], c[3]);
    let grow = |p: [f32; 2], su: f32, sv: f32| {
        [
            p[0] + d * (su * u[0] + sv * v[0]),
            p[1] + d * (su * u[1] + sv * v[1]),
        ]
    };
    Quad(order_corners([
        grow(c[0], -1.0, -1.0),
        grow(c[1], 1.0, -1.0),
        grow(c[2], 1.0, 1.0),
        grow(c[3], -1.0, 1.0),
    ]))
}

fn unit(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    let l = dist(a, b).max(1e-6);
    [(b[0] - a[0]) / l, (b[1] - a[1]) / l]
}

/// Reading order: top to bottom, and left to right among boxes on the same line.
pub fn reading_order(boxes: &mut [(Quad, f32)]) {
    boxes.sort_by(|a, b| {
        a.0.top()
            .total_cmp(&b.0.top())
            .then(a.0.left().total_cmp(&b.0.left()))
    });
    // Boxes whose tops differ by less than half a line height belong to one line.
    for i in 1..boxes.len() {
        let mut j = i;
        while j > 0 {
            let (prev, cur) = (&boxes[j - 1].0, &boxes[j].0);
            let line = prev.height().min(cur.height()) * 0.5;
            if (cur.top() - prev.top()).abs() < line && cur.left() < prev.left() {
                boxes.swap(j - 1, j);
                j -= 1;
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(w: usize, h: usize, rects: &[(usize, usize, usize, usize)]) -> Vec<f32> {
        let mut m = vec![0.0; w * h];
        for &(x0, y0, x1, y1) in rects {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = 0.9;
                }
            }
        }
        m
    }

    #[test]
    fn finds_each_text_region_and_grows_it_back() {
        let prob = map_with(100, 60, &[(10, 10, 60, 18), (10, 30, 40, 38)]);
        let mut boxes = boxes_from_map(
            &prob,
            100,
            60,
            (2.0, 2.0),
            (200.0, 120.0),
            &DbParams::default(),
        );
        reading_order(&mut boxes);
        assert_eq!(boxes.len(), 2);
        let (first, score) = boxes[0];
        assert!(score > 0.7, "{score}");
        // 50×8 region grown by ~4.3 px each side, then scaled ×2.
        assert!(
            (first.width() - 2.0 * (50.0 + 2.0 * 4.3)).abs() < 6.0,
            "{first:?}"
        );
        assert!(first.top() < 20.0 && boxes[1].0.top() > 40.0);
    }

    #[test]
    fn drops_faint_and_tiny_regions() {
        let mut prob = map_with(50, 50, &[(5, 5, 7, 7)]);
        for v in prob.iter_mut().skip(20 * 50).take(50) {
            *v = 0.35; // above the pixel threshold, below the box threshold
        }
        assert!(
            boxes_from_map(
                &prob,
                50,
                50,
                (1.0, 1.0),
                (50.0, 50.0),
                &DbParams::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn min_area_rect_of_a_rotated_square() {
        let pts = [[5.0, 0.0], [10.0, 5.0], [5.0, 10.0], [0.0, 5.0]];
        let r = min_area_rect(&convex_hull(&pts)).unwrap();
        assert!(
            (r.width() - 50f32.sqrt()).abs() < 1e-3 && (r.height() - 50f32.sqrt()).abs() < 1e-3
        );
    }

    #[test]
    fn reading_order_is_line_by_line() {
        let q = |x: f32, y: f32| {
            (
                Quad([[x, y], [x + 10.0, y], [x + 10.0, y + 10.0], [x, y + 10.0]]),
                1.0,
            )
        };
        let mut boxes = vec![q(50.0, 2.0), q(0.0, 0.0), q(0.0, 30.0)];
        reading_order(&mut boxes);
        let lefts: Vec<_> = boxes.iter().map(|b| (b.0.left(), b.0.top())).collect();
        assert_eq!(lefts, [(0.0, 0.0), (50.0, 2.0), (0.0, 30.0)]);
    }
}
