//! From a photo to an upright page with its text boxes: the card is found
//! ([`super::card`]) and warped flat to the ID-1 proportions at the detector's preferred
//! scale; when no card stands out, the whole photo is the page. Quarter turns are decided by
//! the text boxes' geometry (lines run along a card's long side), and half turns by reading a
//! few of the tallest lines both ways round and keeping the way the recogniser is surer of;
//! on a page left as found, those lines' upright readings are kept ([`ReadAhead`]), so that
//! recognition does not read them again.

use std::{borrow::Cow, time::Instant};

use image::RgbImage;
use serde::Serialize;

use super::{
    Crop, OcrEngine, OcrError, Timings, card,
    ctc::Decoded,
    db::{self, Quad},
    image_ops, ms_since,
    warp::{self, Homography},
};

/// Where the page came from in the photo.
#[derive(Debug, Clone, Serialize)]
pub struct PageGeometry {
    /// How far the card is turned in the photo, clockwise in degrees (0, 90, 180 or 270);
    /// reading turned it back.
    pub orientation: u16,
    /// The card's corners in the photo's pixels (top-left, top-right, bottom-right,
    /// bottom-left of the upright card), when a card was found.
    pub card_quad: Option<[[f32; 2]; 4]>,
    /// Page pixels to photo pixels.
    #[serde(skip)]
    pub to_photo: Homography,
    /// Photo pixels per page pixel, roughly (text heights in the photo).
    pub photo_scale: f32,
}

impl Default for PageGeometry {
    /// The photo itself, upright.
    fn default() -> Self {
        Self {
            orientation: 0,
            card_quad: None,
            to_photo: Homography::IDENTITY,
            photo_scale: 1.0,
        }
    }
}

impl PageGeometry {
    /// A point of the page in the photo.
    pub fn in_photo(&self, p: [f32; 2]) -> [f32; 2] {
        self.to_photo.apply(p)
    }
}

/// An upright page ready for recognition.
pub struct Prepared<'a> {
    pub page: Cow<'a, RgbImage>,
    /// Text boxes on the page, in reading order.
    pub boxes: Vec<(Quad, f32)>,
    pub geometry: PageGeometry,
    pub quality: PageQuality,
    /// Lines already read while deciding the half turn.
    pub read_ahead: ReadAhead,
    /// Time spent so far (finding, detecting, orienting).
    pub timings: Timings,
}

/// Lines read while deciding the half turn, by their box's index, when the page was left
/// the way it was found: their crops are the ones recognition would cut, so they are not
/// read again. (On a page turned upside down the boxes move; nothing is kept.)
#[derive(Debug, Clone, Default)]
pub struct ReadAhead(Vec<(usize, Decoded)>);

impl ReadAhead {
    /// The crops of the lines not read yet, in box order.
    pub fn unread(&self, crops: &[Crop]) -> Vec<Crop> {
        crops
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.0.iter().any(|(read, _)| read == i))
            .map(|(_, crop)| crop.clone())
            .collect()
    }

    /// Every line's reading in box order: those read ahead, and `rest` (the readings of
    /// [`Self::unread`]'s crops) in between.
    pub fn merge(self, rest: Vec<Decoded>) -> Vec<Decoded> {
        let mut ahead = self.0;
        ahead.sort_by_key(|(i, _)| *i);
        let mut ahead = ahead.into_iter().peekable();
        let mut rest = rest.into_iter();
        let mut all = Vec::new();
        loop {
            match ahead.next_if(|(i, _)| *i == all.len()) {
                Some((_, line)) => all.push(line),
                None => match rest.next() {
                    Some(line) => all.push(line),
                    None => break,
                },
            }
        }
        // A line read ahead beyond the rest's end (never, with matching inputs) is kept.
        all.extend(ahead.map(|(_, line)| line));
        all
    }
}

/// Light and focus measured on the page (what a retake request is based on).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PageQuality {
    /// Median luminance, 0 to 255.
    pub brightness: f32,
    /// Share of pixels whose light is clipped (255 or nearly).
    pub clipped_share: f32,
    /// The steepest edges' rise per pixel (99.5th percentile of the luminance gradient) as a
    /// share of the page's contrast (95th minus 5th percentile): near 0.5 or more when paper
    /// turns to ink within a pixel or two, low when every edge is smeared.
    pub sharpness: f32,
}

impl PageQuality {
    pub fn of(page: &RgbImage) -> Self {
        let (w, h) = (page.width() as usize, page.height() as usize);
        if w < 3 || h < 3 {
            return Self::default();
        }
        let lum: Vec<f32> = page
            .pixels()
            .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
            .collect();
        let mut grads = Vec::with_capacity(w * h / 2);
        for y in (1..h - 1).step_by(2) {
            for x in 1..w - 1 {
                let i = y * w + x;
                let gx = (lum[i + 1] - lum[i - 1]) / 2.0;
                let gy = (lum[i + w] - lum[i - w]) / 2.0;
                grads.push(gx.hypot(gy));
            }
        }
        let percentile = |v: &mut Vec<f32>, q: f32| {
            let k = ((v.len() - 1) as f32 * q) as usize;
            *v.select_nth_unstable_by(k, f32::total_cmp).1
        };
        let mut sorted = lum.clone();
        let (p5, median, p95) = (
            percentile(&mut sorted, 0.05),
            percentile(&mut sorted, 0.5),
            percentile(&mut sorted, 0.95),
        );
        let clipped = lum.iter().filter(|&&v| v >= 250.0).count();
        Self {
            brightness: median,
            clipped_share: clipped as f32 / lum.len() as f32,
            sharpness: percentile(&mut grads, 0.995) / (p95 - p5).max(1.0),
        }
    }
}

/// A found card with fewer text lines than this on it was not the card.
const MIN_CARD_LINES: usize = 3;

/// Lines read both ways round, at most, to decide a half turn.
const PROBE_LINES: usize = 3;

/// A lead (in summed character confidence) of this much per character of the lines probed
/// so far settles the half turn without probing further: a legible line read the right way
/// round is near 1 per character, the wrong way round well under half.
const PROBE_LEAD: f32 = 0.4;

/// The margin kept around a found card, as a share of the page's height: text is read up to
/// a little beyond the card's edges, so that an edge found inside the card (a dark band
/// across it, a shadow) cuts no text.
const CARD_MARGIN: f32 = 0.08;

impl OcrEngine {
    /// Finds the card in `photo`, turns it upright and detects its text boxes.
    pub fn prepare<'a>(&self, photo: &'a RgbImage) -> Result<Prepared<'a>, OcrError> {
        let started = Instant::now();
        let found = if self.params.find_card {
            card::find(photo)
        } else {
            None
        };
        let whole = || Prepared {
            page: Cow::Borrowed(photo),
            boxes: Vec::new(),
            geometry: PageGeometry::default(),
            quality: PageQuality::default(),
            read_ahead: ReadAhead::default(),
            timings: Timings::default(),
        };
        let mut prepared = match found {
            Some(found) => self.flatten(photo, &found),
            None => whole(),
        };
        let mut t = Timings {
            find: ms_since(started),
            ..Timings::default()
        };
        let side = |p: &Prepared| match p.geometry.card_quad {
            Some(_) => self.params.det_card_side,
            None => self.params.det_min_side,
        };
        prepared.boxes = self.detect(&prepared.page, side(&prepared), &mut t)?;
        if prepared.geometry.card_quad.is_some() && prepared.boxes.len() < MIN_CARD_LINES {
            // Card-shaped, but with no print on it (a plain label, a screen): the whole
            // photo is read instead.
            prepared = whole();
            prepared.boxes = self.detect(&prepared.page, side(&prepared), &mut t)?;
        }
        if runs_across(&prepared.boxes) {
            prepared = turn(prepared, Turn::Quarter);
            prepared.boxes = self.detect(&prepared.page, side(&prepared), &mut t)?;
        }
        let started = Instant::now();
        match self.upside_down(photo, &prepared.boxes, &prepared.geometry)? {
            Way::Turned => prepared = turn(prepared, Turn::Half),
            Way::Upright(read) => prepared.read_ahead = ReadAhead(read),
        }
        prepared.quality = PageQuality::of(&prepared.page);
        let p = &mut prepared.geometry;
        p.orientation = orientation(&p.to_photo, prepared.page.width(), prepared.page.height());
        // The card's corners, named as on the upright card.
        if let (Some(quad), Some(back)) = (&mut p.card_quad, p.to_photo.inverse()) {
            let on_page = db::order_corners(quad.map(|c| back.apply(c)));
            *quad = on_page.map(|c| p.to_photo.apply(c));
        }
        t.orient = ms_since(started);
        prepared.timings = t;
        Ok(prepared)
    }

    /// The card warped flat, with a margin, as tall as the detector's preferred input. Its
    /// proportions are the ones seen (a quadrilateral found inside a card, such as an NPWP's
    /// white field, is not stretched to the whole card's).
    fn flatten<'a>(&self, photo: &RgbImage, found: &card::CardQuad) -> Prepared<'a> {
        let h = self.params.det_min_side as f32;
        let m = (CARD_MARGIN * h).round();
        let aspect = found.long_side() / found.short_side().max(1.0);
        let w = ((h - 2.0 * m) * aspect + 2.0 * m).round();
        let inner = [[m, m], [w - m, m], [w - m, h - m], [m, h - m]];
        let to_photo =
            Homography::from_points(inner, found.corners).unwrap_or(Homography::IDENTITY);
        let photo_scale = found.short_side() / (h - 2.0 * m);
        let page = warp::warp(photo, &to_photo, w as u32, h as u32, photo_scale);
        Prepared {
            page: Cow::Owned(page),
            boxes: Vec::new(),
            geometry: PageGeometry {
                orientation: 0,
                card_quad: Some(found.corners),
                to_photo,
                photo_scale,
            },
            quality: PageQuality::default(),
            read_ahead: ReadAhead::default(),
            timings: Timings::default(),
        }
    }

    /// Each box cut out of the photo as a recogniser input, through the page's geometry.
    pub fn page_crops(
        &self,
        photo: &RgbImage,
        boxes: &[(Quad, f32)],
        geometry: &PageGeometry,
    ) -> Vec<super::Crop> {
        let p = &self.params;
        boxes
            .iter()
            .map(|(q, _)| {
                image_ops::rec_crop_through(
                    photo,
                    &geometry.to_photo,
                    q,
                    p.rec_height,
                    p.rec_max_width,
                )
            })
            .collect()
    }

    /// Whether the page reads better turned by half a turn: its tallest lines are read both
    /// ways round and the recogniser's confidence compared.
    fn upside_down(
        &self,
        photo: &RgbImage,
        boxes: &[(Quad, f32)],
        geometry: &PageGeometry,
    ) -> Result<Way, OcrError> {
        let aspect = |q: &Quad| q.width() / q.height().max(1.0);
        let mut tallest: Vec<(usize, &Quad)> = boxes
            .iter()
            .map(|(q, _)| q)
            .enumerate()
            .filter(|(_, q)| aspect(q) > 3.0)
            .collect();
        // The largest print first: on a small or blurred card it is the only print legible
        // either way round (a KTP's NIK, an NPWP's number and headings).
        tallest.sort_by(|(_, a), (_, b)| b.height().total_cmp(&a.height()));
        tallest.truncate(PROBE_LINES);
        // Confidence summed over each way's characters, line by line; the probe stops as
        // soon as one way leads by a clear margin (on a legible card, after its first line).
        let (mut upright, mut turned, mut chars) = (0f32, 0f32, 0usize);
        let mut read_upright = Vec::new();
        for (i, q) in tallest {
            let [a, b, c, d] = q.0;
            let both_ways = [(Quad([a, b, c, d]), 1.0), (Quad([c, d, a, b]), 1.0)];
            let mut read = self.recognize_crops(&self.page_crops(photo, &both_ways, geometry))?;
            let sum = |d: &super::ctc::Decoded| d.char_confidence.iter().sum::<f32>();
            (upright, turned) = (upright + sum(&read[0]), turned + sum(&read[1]));
            chars += read[0]
                .char_confidence
                .len()
                .max(read[1].char_confidence.len());
            read.truncate(1);
            read_upright.extend(read.into_iter().map(|line| (i, line)));
            if chars > 0 && (upright - turned).abs() >= PROBE_LEAD * chars as f32 {
                break;
            }
        }
        Ok(if turned > upright {
            Way::Turned
        } else {
            Way::Upright(read_upright)
        })
    }
}

/// Which way round a page reads, and the lines read upright while finding out.
enum Way {
    Upright(Vec<(usize, Decoded)>),
    Turned,
}

enum Turn {
    Quarter,
    Half,
}

/// The page turned clockwise by a quarter or a half turn, its boxes and geometry with it.
fn turn(prepared: Prepared<'_>, by: Turn) -> Prepared<'_> {
    let (w, h) = (prepared.page.width() as f32, prepared.page.height() as f32);
    // New page point → old page point.
    let (page, back) = match by {
        Turn::Quarter => (
            image::imageops::rotate90(prepared.page.as_ref()),
            Homography([0.0, 1.0, 0.0, -1.0, 0.0, h as f64, 0.0, 0.0, 1.0]),
        ),
        Turn::Half => (
            image::imageops::rotate180(prepared.page.as_ref()),
            Homography([-1.0, 0.0, w as f64, 0.0, -1.0, h as f64, 0.0, 0.0, 1.0]),
        ),
    };
    let forward = back.inverse().unwrap_or(Homography::IDENTITY);
    let mut boxes: Vec<(Quad, f32)> = prepared
        .boxes
        .iter()
        .map(|(q, s)| (Quad(db::order_corners(q.0.map(|p| forward.apply(p)))), *s))
        .collect();
    db::reading_order(&mut boxes);
    Prepared {
        page: Cow::Owned(page),
        boxes,
        geometry: PageGeometry {
            to_photo: prepared.geometry.to_photo.after(&back),
            ..prepared.geometry
        },
        quality: prepared.quality,
        read_ahead: ReadAhead::default(),
        timings: prepared.timings,
    }
}

/// Whether the text runs up or down the page rather than across it: most of the length of
/// long boxes lies along the page's height.
fn runs_across(boxes: &[(Quad, f32)]) -> bool {
    let (mut along, mut across) = (0f32, 0f32);
    for (q, _) in boxes {
        let [p0, p1, _, p3] = q.0;
        let u = [p1[0] - p0[0], p1[1] - p0[1]];
        let v = [p3[0] - p0[0], p3[1] - p0[1]];
        let long = if u[0].hypot(u[1]) >= v[0].hypot(v[1]) {
            u
        } else {
            v
        };
        let len = long[0].hypot(long[1]);
        if len < 2.5 * q.width().min(q.height()) {
            continue;
        }
        if long[0].abs() >= long[1].abs() {
            along += len;
        } else {
            across += len;
        }
    }
    across > along
}

/// How far the page's rightward direction is turned in the photo, to the nearest quarter.
fn orientation(to_photo: &Homography, w: u32, h: u32) -> u16 {
    let c = [w as f32 / 2.0, h as f32 / 2.0];
    let (a, b) = (to_photo.apply(c), to_photo.apply([c[0] + 10.0, c[1]]));
    let degrees = (b[1] - a[1]).atan2(b[0] - a[0]).to_degrees();
    (((degrees / 90.0).round() as i32).rem_euclid(4) * 90) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(x: f32, y: f32, w: f32, h: f32) -> (Quad, f32) {
        (Quad([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]), 0.9)
    }

    #[test]
    fn lines_read_ahead_are_not_read_again_and_keep_their_place() {
        let decoded = |text: &str| Decoded {
            text: text.into(),
            char_confidence: vec![0.9; text.len()],
            confidence: 0.9,
        };
        let crops: Vec<Crop> = (0..5).map(|i| (vec![i as f32], i)).collect();
        let ahead = ReadAhead(vec![(3, decoded("NIK 3171")), (0, decoded("PROVINSI"))]);
        let unread = ahead.unread(&crops);
        assert_eq!(unread.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2, 4]);
        let rest = ["a", "b", "c"].map(decoded).to_vec();
        let texts: Vec<String> = ahead.merge(rest).into_iter().map(|d| d.text).collect();
        assert_eq!(texts, ["PROVINSI", "a", "b", "NIK 3171", "c"]);
        // Nothing read ahead: every crop is read, in order.
        assert_eq!(ReadAhead::default().unread(&crops).len(), 5);
        let all = ReadAhead::default().merge(["x", "y"].map(decoded).to_vec());
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn text_running_down_the_page_calls_for_a_quarter_turn() {
        let across = [line(10.0, 10.0, 300.0, 20.0), line(10.0, 40.0, 200.0, 20.0)];
        let down = [line(10.0, 10.0, 20.0, 300.0), line(40.0, 10.0, 20.0, 200.0)];
        assert!(!runs_across(&across));
        assert!(runs_across(&down));
        // Short boxes (single letters) say nothing either way.
        assert!(!runs_across(&[line(0.0, 0.0, 20.0, 25.0)]));
    }

    #[test]
    fn turning_carries_boxes_and_geometry_along() {
        let photo = RgbImage::new(200, 100);
        let prepared = Prepared {
            page: Cow::Borrowed(&photo),
            boxes: vec![line(20.0, 10.0, 100.0, 20.0)],
            geometry: PageGeometry::default(),
            quality: PageQuality::default(),
            read_ahead: ReadAhead::default(),
            timings: Timings::default(),
        };
        let turned = turn(prepared, Turn::Quarter);
        assert_eq!((turned.page.width(), turned.page.height()), (100, 200));
        // The box's top-left corner in the photo is where the turned page says it is.
        let (q, _) = turned.boxes[0];
        let corners: Vec<[f32; 2]> = q.0.iter().map(|&p| turned.geometry.in_photo(p)).collect();
        assert!(
            corners
                .iter()
                .any(|c| (c[0] - 20.0).abs() < 1e-3 && (c[1] - 10.0).abs() < 1e-3)
        );
        assert_eq!(orientation(&turned.geometry.to_photo, 100, 200), 270);
        let half = turn(turned, Turn::Half);
        assert_eq!(orientation(&half.geometry.to_photo, 100, 200), 90);
        let (q, _) = half.boxes[0];
        // Still a box 100 long and 20 across, now upright on the page.
        assert!(
            (q.width() - 20.0).abs() < 1e-3 && (q.height() - 100.0).abs() < 1e-3,
            "{q:?}"
        );
    }

    #[test]
    fn orientation_is_the_nearest_quarter_turn() {
        let page = [[0.0, 0.0], [100.0, 0.0], [100.0, 60.0], [0.0, 60.0]];
        // The card's top edge runs down the photo: turned a quarter clockwise.
        let quarter = [[300.0, 10.0], [310.0, 110.0], [250.0, 115.0], [240.0, 15.0]];
        let h = Homography::from_points(page, quarter).unwrap();
        assert_eq!(orientation(&h, 100, 60), 90);
        let upside = [[100.0, 60.0], [0.0, 60.0], [0.0, 0.0], [100.0, 0.0]];
        let h = Homography::from_points(page, upside).unwrap();
        assert_eq!(orientation(&h, 100, 60), 180);
    }
}

#[cfg(test)]
mod quality_tests {
    use super::*;

    /// Dark text stripes on paper, the step from paper to ink spread over `edge` pixels, lit at
    /// `light`.
    fn page(light: u8, edge: u32) -> RgbImage {
        RgbImage::from_fn(200, 100, |x, _| {
            let phase = (x % 20) as f32 + 0.5;
            // Signed distance to the nearest edge: positive inside a stripe of ink.
            // Ink 6 pixels of every 20: paper is most of the page, as on a card.
            let d = if phase < 6.0 {
                phase.min(6.0 - phase)
            } else {
                -(phase - 6.0).min(20.0 - phase)
            };
            let darkness = (0.5 + d / edge.max(1) as f32).clamp(0.0, 1.0);
            image::Rgb([(light as f32 * (1.0 - 0.8 * darkness)) as u8; 3])
        })
    }

    #[test]
    fn measures_light_glare_and_focus() {
        let sharp = PageQuality::of(&page(200, 1));
        let blurred = PageQuality::of(&page(200, 8));
        assert!(sharp.sharpness > 0.3, "{sharp:?}");
        assert!(blurred.sharpness < 0.2, "{blurred:?}");
        let dark = PageQuality::of(&page(40, 1));
        assert!(
            dark.brightness < crate::kyc::retake::MIN_BRIGHTNESS,
            "{dark:?}"
        );
        assert!(sharp.brightness > 150.0, "{sharp:?}");
        let mut glare = page(200, 1);
        for x in 0..40 {
            for y in 0..40 {
                glare.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        assert!(PageQuality::of(&glare).clipped_share > 0.05);
        assert_eq!(sharp.clipped_share, 0.0);
    }
}
