//! The real OCR model (Burn, CPU backend) on specimen cards copied into tests/fixtures: the
//! fields a lender relies on come out exact, and the checks find what the ground truth says.

use chrono::NaiveDate;
use filot::{
    gpu::{
        OcrEngine, OcrParams, Recogniser, SecondLook,
        report::{ReadOptions, read_file},
    },
    kyc::DocumentType,
};

#[path = "support/mod.rs"]
mod support;

use support::fixture_path as fixture;

fn truth(name: &str) -> serde_json::Value {
    let json = fixture(name).with_extension("json");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
}

/// Fixture `file` read as a KTP.
fn read_ktp(engine: &OcrEngine, file: &str) -> filot::gpu::report::FileReading {
    let options = ReadOptions::new(Some(DocumentType::Ktp), today());
    read_file(engine, &fixture(file), options).unwrap().0
}

/// Asserts that `reading` has each of `keys` exactly as the ground truth `want` says.
fn assert_fields(
    reading: &filot::gpu::report::FileReading,
    want: &serde_json::Value,
    keys: &[&str],
    file: &str,
) {
    for key in keys {
        assert_eq!(
            reading.fields.get(*key).map(String::as_str),
            want[key].as_str(),
            "{file}: {key}"
        );
    }
}

#[test]
fn reads_ktp_cards_in_every_format() {
    let engine = OcrEngine::cpu(OcrParams::default());
    for file in ["ktp_003.jpg", "ktp_001.png", "ktp_000.pdf", "ktp_006.jpg"] {
        let want = truth(file);
        // The type is recognised from the card itself.
        let (reading, _) =
            read_file(&engine, &fixture(file), ReadOptions::new(None, today())).unwrap();
        assert_eq!(reading.doc_type, DocumentType::Ktp, "{file}");
        let keys = ["nik", "name", "birth_date", "gender", "province"];
        assert_fields(&reading, &want, &keys, file);
        let mut expected: Vec<&str> = want["expected_issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut found: Vec<&str> = reading.issues.iter().map(String::as_str).collect();
        expected.sort();
        found.sort();
        assert_eq!(found, expected, "{file}: issues");
        assert!(
            reading.confidence["nik"] > 0.5,
            "{file}: confidence is reported"
        );
    }
}

#[test]
fn reads_every_field_of_a_card_set_in_a_font_the_specimens_do_not_use() {
    // Liberation Sans: narrower word spaces than the specimens' DejaVu Sans.
    let engine = OcrEngine::cpu(OcrParams::default());
    let file = "font_ktp_liberation_sans.png";
    let want = truth(file);
    let reading = read_ktp(&engine, file);
    let keys = [
        "nik",
        "name",
        "birth_place",
        "birth_date",
        "gender",
        "address",
        "village",
        "district",
        "marital_status",
        "province",
        "regency",
    ];
    assert_fields(&reading, &want, &keys, file);
    assert!(reading.issues.is_empty(), "{:?}", reading.issues);
}

#[test]
fn reads_an_npwp_card() {
    let engine = OcrEngine::cpu(OcrParams::default());
    let want = truth("npwp_000.jpg");
    let (reading, _) = read_file(
        &engine,
        &fixture("npwp_000.jpg"),
        ReadOptions::new(None, today()),
    )
    .unwrap();
    assert_eq!(reading.doc_type, DocumentType::Npwp);
    assert_eq!(
        reading.fields.get("npwp").map(String::as_str),
        want["npwp"].as_str()
    );
    assert_eq!(
        reading.fields.get("name").map(String::as_str),
        want["name"].as_str()
    );
    assert!(reading.issues.is_empty(), "{:?}", reading.issues);
}

#[test]
fn unreadable_input_is_an_error_not_a_panic() {
    let engine = OcrEngine::cpu(OcrParams::default());
    assert!(engine.read(b"%PDF-1.4 no page image").is_err());
    assert!(engine.read(b"\\x89PNG\\r\\n\\x1a\\n truncated").is_err());
    // A blank image reads as no lines.
    let blank = image::RgbImage::from_pixel(640, 400, image::Rgb([255, 255, 255]));
    let page = engine.read_image(&blank).unwrap();
    assert!(page.lines.is_empty());
}

/// Hurried phone photos from `shared/specimens/wild`: the card is found, turned upright and
/// flattened before it is read, and the reading says how it lay.
#[test]
fn reads_cards_photographed_sideways_upside_down_and_small() {
    let engine = OcrEngine::cpu(OcrParams::default());
    // (file, its type, how far the card is turned in the photo)
    let cases = [
        ("wild_ktp_016.jpg", DocumentType::Ktp, 90),
        ("wild_ktp_005.jpg", DocumentType::Ktp, 180),
        // A small card (its short side about a third of the photo's), turned three quarters.
        ("wild_npwp_008.jpg", DocumentType::Npwp, 270),
    ];
    for (file, doc_type, orientation) in cases {
        let want = truth(file);
        let (reading, _) = read_file(
            &engine,
            &fixture(file),
            ReadOptions::new(Some(doc_type), today()),
        )
        .unwrap();
        assert_eq!(reading.orientation, orientation, "{file}");
        let quad = reading.card_quad.expect("the card is found in the photo");
        let image = image::open(fixture(file)).unwrap();
        assert!(
            quad.iter().all(|p| p[0] >= 0.0
                && p[1] >= 0.0
                && p[0] <= image.width() as f32
                && p[1] <= image.height() as f32),
            "{file}: {quad:?}"
        );
        let keys: &[&str] = match doc_type {
            DocumentType::Ktp => &["nik", "birth_date", "name"],
            DocumentType::Npwp => &["npwp", "name"],
        };
        assert_fields(&reading, &want, keys, file);
        assert!(
            !reading
                .issues
                .iter()
                .any(|i| filot::kyc::retake::CODES.contains(&i.as_str())),
            "{file}: read with confidence, no retake: {:?}",
            reading.issues
        );
    }
}

/// A card too small and blurred to read with confidence is not guessed at: the reading asks
/// for a new photo with a stable code, and no key field is left standing wrong without it.
#[test]
fn a_photo_beyond_reading_asks_for_a_retake() {
    let engine = OcrEngine::cpu(OcrParams::default());
    let file = "wild_ktp_019.jpg";
    let reading = read_ktp(&engine, file);
    let code = reading.issues.first().map(String::as_str);
    assert!(
        code.is_some_and(|c| filot::kyc::retake::CODES.contains(&c)),
        "{:?}",
        reading.issues
    );
}

/// What a card says twice settles what blur hides: a birth year blurred into a doubtful digit
/// is the one the NIK beside it spells surely (the photo is still retaken), and a NIK whose
/// label was lost is found by its shape.
#[test]
fn a_card_s_sure_reading_settles_what_blur_hides_elsewhere_on_it() {
    let engine = OcrEngine::cpu(OcrParams::default());
    let file = "unseen_ktp_blurred_year.jpg";
    let reading = read_ktp(&engine, file);
    assert_fields(&reading, &truth(file), &["nik", "birth_date"], file);
    assert!(
        !reading
            .issues
            .iter()
            .any(|i| i == "nik_birth_date_mismatch"),
        "{:?}",
        reading.issues
    );
    assert_eq!(
        reading.issues.first().map(String::as_str),
        Some("too_blurry")
    );
    let file = "unseen_ktp_unread_nik_label.jpg";
    let reading = read_ktp(&engine, file);
    assert_fields(&reading, &truth(file), &["nik", "birth_date"], file);
}

/// An engine with threads of its own (`ocr.params.threads`, as each CPU worker of a
/// throughput-sized node has) reads exactly what the shared pool reads.
#[test]
fn an_engine_on_its_own_threads_reads_the_same() {
    let shared = OcrEngine::cpu(OcrParams::default());
    let own = OcrEngine::cpu(OcrParams {
        threads: 1,
        ..OcrParams::default()
    });
    let img = image::open(fixture("ktp_003.jpg")).unwrap().to_rgb8();
    let a = shared.within(|e| e.read_image(&img)).unwrap();
    let b = own.within(|e| e.read_image(&img)).unwrap();
    let text = |p: &filot::gpu::OcrPage| p.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
    assert!(text(&a).iter().any(|t| t.contains("NIK")), "{:?}", text(&a));
    assert_eq!(text(&a), text(&b));
}

/// A small, dim card upside down, whose only legible print is its largest (the NIK and the
/// headings): the half turn is decided on that print, not on lines too small to read either
/// way round, so the NIK is read, and doubted honestly where a digit is unsure.
#[test]
fn a_small_dim_card_upside_down_is_turned_by_its_largest_print() {
    let engine = OcrEngine::cpu(OcrParams::default());
    let file = "wild_ktp_014.jpg";
    let want = truth(file);
    let reading = read_ktp(&engine, file);
    assert_eq!(reading.orientation, 180);
    let nik = reading.fields.get("nik").expect("the NIK is read upright");
    let want_nik = want["nik"].as_str().unwrap();
    let retake = filot::kyc::retake::among(&reading.issues);
    assert!(
        nik == want_nik || retake.is_some(),
        "a wrong NIK without a retake code: {:?}",
        reading.issues
    );
    let same = nik
        .chars()
        .zip(want_nik.chars())
        .filter(|(a, b)| a == b)
        .count();
    assert!(same >= 14, "most of the NIK's digits are read");
}

/// The stronger recogniser (`ocr.params.recogniser = "ppocr_v6_small"`) reads exactly the
/// NIK that PP-OCRv4 misreads on small, blurred wild cards (one of them upside down), and
/// still every key field of a clean card.
#[test]
fn the_ppocr_v6_recogniser_reads_the_nik_v4_misreads() {
    let engine = OcrEngine::cpu(OcrParams {
        recogniser: Recogniser::PpocrV6Small,
        ..OcrParams::default()
    });
    for file in ["wild_ktp_019.jpg", "wild_ktp_014.jpg", "ktp_003.jpg"] {
        let want = truth(file);
        let reading = read_ktp(&engine, file);
        assert_eq!(
            reading.fields.get("nik").map(String::as_str),
            want["nik"].as_str(),
            "{file}"
        );
    }
    let want = truth("ktp_003.jpg");
    let (reading, _) = read_file(
        &engine,
        &fixture("ktp_003.jpg"),
        ReadOptions::new(None, today()),
    )
    .unwrap();
    let keys = ["name", "birth_date", "gender", "province"];
    assert_fields(&reading, &want, &keys, "ktp_003.jpg");
    assert!(reading.issues.is_empty(), "{:?}", reading.issues);
}

/// A card whose first reading leaves a key field or the name in doubt is read again by the
/// second recogniser (`ocr.params.second_look`, PP-OCRv6 small by default), from the same
/// line crops, and the better reading is kept: a shaken NIK and birth date the first
/// reading would have asked a retake for, and a name it misspelt with a doubtful letter.
/// Without the second look the same photos are retaken or misspelt.
#[test]
fn a_doubtful_card_gets_a_second_look() {
    let looks = OcrEngine::cpu(OcrParams::default());
    let once = OcrEngine::cpu(OcrParams {
        second_look: SecondLook::Off,
        ..OcrParams::default()
    });
    for (file, keys) in [
        ("wild_ktp_009.jpg", &["nik", "birth_date"][..]),
        ("wild_ktp_008.jpg", &["nik", "birth_date", "name"][..]),
    ] {
        let want = truth(file);
        let reading = read_ktp(&looks, file);
        assert!(reading.second_look, "{file}: read twice");
        for key in keys {
            assert_eq!(
                reading.fields.get(*key).map(String::as_str),
                want[*key].as_str(),
                "{file}: {key}"
            );
        }
        assert_eq!(filot::kyc::retake::among(&reading.issues), None, "{file}");
        let first = read_ktp(&once, file);
        assert!(!first.second_look);
        let same = keys
            .iter()
            .all(|k| first.fields.get(*k).map(String::as_str) == want[*k].as_str());
        assert!(
            !same || filot::kyc::retake::among(&first.issues).is_some(),
            "{file}: the first reading alone was in doubt"
        );
    }
    // A neat card is read once.
    assert!(!read_ktp(&looks, "ktp_003.jpg").second_look);
}

/// The orientation decision on a scan turned every way: the card fills the photo, so the
/// quarter turn comes from the text boxes' geometry and the half turn from the recogniser.
#[test]
fn a_scan_turned_every_way_is_read_upright() {
    let engine = OcrEngine::cpu(OcrParams::default());
    let want = truth("ktp_003.jpg");
    let scan = image::open(fixture("ktp_003.jpg")).unwrap().to_rgb8();
    let turns = [
        (90, image::imageops::rotate90(&scan)),
        (180, image::imageops::rotate180(&scan)),
        (270, image::imageops::rotate270(&scan)),
    ];
    for (orientation, photo) in turns {
        let page = engine.read_image(&photo).unwrap();
        assert_eq!(page.geometry.orientation, orientation);
        let (_, card) = filot::gpu::reading::read_page(&page, Some(DocumentType::Ktp), today());
        for key in ["nik", "birth_date"] {
            assert_eq!(card.get(key), want[key].as_str(), "{orientation}°: {key}");
        }
    }
}
