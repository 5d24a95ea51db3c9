//! Bad input, tried as an attacker would: property tests that throw generated and mangled input
//! at the multipart intake, the file sniffer, the KTP/NPWP readers and the BULI2 callback
//! verifier. Each must answer (a value or a 4xx error), never panic.

use filot::{
    buli2::signature::{sign, verify},
    config::Limits,
    http::upload::{inspect, parse_bytes},
    kyc::{DocumentType, npwp_card, read_card, text::TextBox},
};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn small_limits() -> Limits {
    Limits {
        max_file_bytes: 4_096,
        max_request_bytes: 8_192,
        ..Limits::default()
    }
}

/// Pieces multipart bodies are made of, good and bad.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"--XyZ\r\n".to_vec()),
        Just(b"--XyZ--\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"type\"\r\n\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n".to_vec()),
        Just(b"Content-Type: image/jpeg\r\n\r\n".to_vec()),
        Just(b"KTP\r\n".to_vec()),
        Just(b"NPWP\r\n".to_vec()),
        Just(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec()),
        Just(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x7f\xff\xff\xff\x7f\xff\xff\xff\x08\x02".to_vec()
        ),
        Just(b"%PDF-1.4\n".to_vec()),
        Just(b"\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_multipart_intake_answers_without_panicking(
        pieces in proptest::collection::vec(piece(), 0..24),
        boundary in prop_oneof![Just("XyZ".to_string()), "[a-zA-Z0-9]{0,8}"],
    ) {
        let body: Vec<u8> = pieces.concat();
        let ct = format!("multipart/form-data; boundary={boundary}");
        let result = runtime().block_on(parse_bytes(&ct, body, &small_limits()));
        if let Err(e) = result {
            let status = e.status().as_u16();
            prop_assert!((400..500).contains(&status), "{status} for {e}");
        }
    }

    #[test]
    fn sniffing_any_bytes_answers_without_panicking(
        prefix in prop_oneof![
            Just(b"\xff\xd8\xff".to_vec()),
            Just(b"\x89PNG\r\n\x1a\n".to_vec()),
            Just(b"%PDF-".to_vec()),
            Just(Vec::new()),
        ],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let bytes = [prefix, rest].concat();
        if let Err(e) = inspect(&bytes, &small_limits()) {
            prop_assert!((400..500).contains(&e.status().as_u16()));
        }
    }

    #[test]
    fn the_card_readers_take_any_ocr_output(
        boxes in proptest::collection::vec(
            (
                prop_oneof![
                    "[A-Z0-9 :./,-]{0,40}",
                    Just("NIK : 3275024612894728".to_string()),
                    Just("Tempat/Tgl Lahir : BEKASI, 06-12-1989".to_string()),
                    Just("NPWP : 01.234.567.8-901.234".to_string()),
                    ".{0,20}",
                ],
                0.0f32..1.0,
                -50.0f32..2000.0,
                -50.0f32..2000.0,
                0.0f32..600.0,
                0.0f32..80.0,
            ),
            0..40,
        ),
    ) {
        let boxes: Vec<TextBox> = boxes
            .into_iter()
            .map(|(text, confidence, left, top, w, h)| TextBox {
                text,
                confidence,
                left,
                top,
                right: left + w,
                bottom: top + h,
            })
            .collect();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let (_, ktp) = read_card(&boxes, Some(DocumentType::Ktp), today);
        let (_, npwp) = read_card(&boxes, Some(DocumentType::Npwp), today);
        let _ = read_card(&boxes, None, today);
        let _ = npwp_card::cross_check(&ktp, &npwp);
    }

    #[test]
    fn the_callback_verifier_takes_any_headers_and_body(
        ts in prop_oneof![".{0,24}", "[0-9]{1,12}", Just("1700000000".to_string())],
        sig in prop_oneof![".{0,80}", "sha256=[0-9a-f]{0,70}"],
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
        window in any::<i64>(),
    ) {
        let _ = verify(b"secret", Some(&ts), Some(&sig), &body, now, window);
        let _ = verify(b"secret", None, Some(&sig), &body, now, window);
        // Whatever the body, a correct signature inside the window verifies.
        let good = sign(b"secret", 1_700_000_000, &body);
        prop_assert!(verify(b"secret", Some("1700000000"), Some(&good), &body, 1_700_000_010, 300).is_ok());
    }
}
