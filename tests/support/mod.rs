//! What every test binary shares: the fixture cards, a throwaway `redis-server`, a fresh
//! Postgres database. Each binary includes it with `#[path = ".../support/mod.rs"] mod support;`
//! and uses what it needs.

#![allow(dead_code)]

pub mod postgres;
pub mod redis;
pub mod webdriver;

use std::path::PathBuf;

/// A file in `tests/fixtures`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A BULI2 simulator on a free loopback port sharing `secret`, calling back (once told where)
/// after 50 ms.
pub async fn buli2_sim(secret: &str) -> filot::buli2::sim::Sim {
    filot::buli2::sim::start(
        "127.0.0.1:0",
        filot::buli2::sim::SimConfig {
            secret: secret.as_bytes().to_vec(),
            callback_url: None,
            callback_delay: std::time::Duration::from_millis(50),
        },
    )
    .await
    .expect("simulator listening")
}

/// The bytes of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
