//! NPWP, the tax number: 15 digits `AA.BBB.BBB.C-DDD.EEE` where C is a Luhn check digit over
//! the first 8 digits; the 16-digit form is `0` + a valid 15-digit number, or (individuals,
//! since 2024) the holder's NIK.

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an NPWP is 15 or 16 digits (dots and dashes allowed)")]
pub struct InvalidNpwp;

/// An NPWP as digits only (format checked; validity by [`Npwp::check`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Npwp(String);

impl FromStr for Npwp {
    type Err = InvalidNpwp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s
            .chars()
            .filter(|c| !matches!(c, '.' | '-' | ' '))
            .collect();
        if matches!(digits.len(), 15 | 16) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(InvalidNpwp)
        }
    }
}

impl fmt::Debug for Npwp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Npwp({})", self.masked())
    }
}

/// The Luhn check digit for `payload` digits.
pub fn luhn_digit(payload: &str) -> u32 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let v = u32::from(b - b'0');
            if i % 2 == 0 {
                let d = v * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                v
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Whether the ninth digit of a 15-digit NPWP is the Luhn digit of the eight before it.
pub fn check_digit_holds(fifteen: &str) -> bool {
    fifteen.len() >= 9 && luhn_digit(&fifteen[..8]) == u32::from(fifteen.as_bytes()[8] - b'0')
}

impl Npwp {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        let n = self.0.len();
        format!("{}{}{}", &self.0[..2], "•".repeat(n - 6), &self.0[n - 4..])
    }

    /// Problems with the number, given the holder's NIK when known.
    pub fn check(&self, holder_nik: Option<&str>) -> Vec<&'static str> {
        let fifteen = match self.0.len() {
            15 => self.0.as_str(),
            _ if holder_nik == Some(self.0.as_str()) => return vec![],
            _ if self.0.starts_with('0') => &self.0[1..],
            // A 16-digit NPWP that is not "0" + 15 digits must be the holder's NIK.
            _ => {
                return if holder_nik.is_some() {
                    vec!["npwp_nik_mismatch"]
                } else {
                    vec![]
                };
            }
        };
        if check_digit_holds(fifteen) {
            vec![]
        } else {
            vec!["npwp_check_digit_invalid"]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_luhn_digit_of_specimens() {
        for ok in [
            "09.915.104.5-800.000",
            "051841013234000",
            "0051841013234000",
        ] {
            assert!(ok.parse::<Npwp>().unwrap().check(None).is_empty(), "{ok}");
        }
        // phone/npwp_008: check digit 9, Luhn says 4.
        assert_eq!(
            "02.102.877.9-591.000".parse::<Npwp>().unwrap().check(None),
            ["npwp_check_digit_invalid"]
        );
    }

    #[test]
    fn sixteen_digit_npwp_is_the_holders_nik() {
        let n: Npwp = "3275024612894728".parse().unwrap();
        assert!(n.check(Some("3275024612894728")).is_empty());
        assert_eq!(n.check(Some("3275024612894729")), ["npwp_nik_mismatch"]);
        assert!("12.345".parse::<Npwp>().is_err());
        assert_eq!(format!("{n:?}"), "Npwp(32••••••••••4728)");
    }
}
