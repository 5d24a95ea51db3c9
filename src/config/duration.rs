//! Durations as people write them: `250ms`, `30s`, `5m`, `12h`, `7d`, or parts together
//! (`1h30m`). Every duration setting is read and shown this way, in files and in `FILOT_*`
//! variables alike; a bare number is refused (is `30` seconds or milliseconds?), except `0`.
//! Owns only the text form: what a duration means is up to the setting that holds it.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses `250ms`, `30s`, `5m`, `12h`, `7d` or a run of them (`1h30m`); `0` alone is zero.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("a duration is empty; write it with a unit, e.g. \"30s\"".into());
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return Err(format!(
                "\"{text}\" is not a duration; write a number and a unit (ms, s, m, h, d), e.g. \"30s\" or \"1h30m\""
            ));
        }
        let unit = &rest[digits..digits + letters];
        let Some((_, per)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "\"{text}\": unknown unit \"{unit}\" (use ms, s, m, h or d)"
            ));
        };
        let part = rest[..digits]
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(*per))
            .and_then(|n| millis.checked_add(n));
        millis = part.ok_or_else(|| format!("\"{text}\" is too long a duration"))?;
        rest = &rest[digits + letters..];
    }
    Ok(Duration::from_millis(millis))
}

/// The shortest exact form: `90s` stays `90s`, `3600s` becomes `1h`, `1500ms` stays `1500ms`.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis() as u64;
    if millis == 0 {
        return "0s".into();
    }
    let (name, per) = UNITS
        .iter()
        .rev()
        .find(|(_, per)| millis.is_multiple_of(*per))
        .expect("every count of milliseconds is a whole number of ms");
    format!("{}{name}", millis / per)
}

/// `#[serde(with = "duration")]`: reads the text form, writes [`format`].
pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*duration))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(text) => parse(&text),
        Raw::Number(0) => Ok(Duration::ZERO),
        Raw::Number(n) => Err(format!("{n} has no unit; write e.g. \"{n}s\" or \"{n}ms\"")),
    }
    .map_err(serde::de::Error::custom)
}

/// One duration setting on its own, for checking a single key.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Setting(#[serde(deserialize_with = "deserialize")] pub Duration);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_runs_of_them_parse() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn numbers_without_units_and_unknown_units_are_refused() {
        for bad in [
            "30",
            "",
            "s",
            "5 m",
            "3w",
            "1.5s",
            "-1s",
            "99999999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("3w").unwrap_err().contains("unknown unit \"w\""));
    }

    #[test]
    fn the_shown_form_reads_back_to_the_same_duration() {
        for millis in [
            0,
            1,
            999,
            1_000,
            1_500,
            60_000,
            90_000,
            3_600_000,
            86_400_000 * 7,
        ] {
            let d = Duration::from_millis(millis);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(3_600)), "1h");
        assert_eq!(format(Duration::from_secs(90)), "90s");
    }
}
