//! NIK (Nomor Induk Kependudukan), the 16-digit number on a KTP: `PP RR DD ddmmyy ssss` —
//! province, regency/city, district, birth date (day + 40 for women), serial. There is no
//! check digit. This module parses the number and checks what it encodes.

use std::{fmt, str::FromStr};

use chrono::{Datelike, NaiveDate};

/// Province codes in use (Kemendagri), including the Papua provinces created in 2022.
const PROVINCES: &[(u8, &str)] = &[
    (11, "ACEH"),
    (12, "SUMATERA UTARA"),
    (13, "SUMATERA BARAT"),
    (14, "RIAU"),
    (15, "JAMBI"),
    (16, "SUMATERA SELATAN"),
    (17, "BENGKULU"),
    (18, "LAMPUNG"),
    (19, "KEPULAUAN BANGKA BELITUNG"),
    (21, "KEPULAUAN RIAU"),
    (31, "DKI JAKARTA"),
    (32, "JAWA BARAT"),
    (33, "JAWA TENGAH"),
    (34, "DI YOGYAKARTA"),
    (35, "JAWA TIMUR"),
    (36, "BANTEN"),
    (51, "BALI"),
    (52, "NUSA TENGGARA BARAT"),
    (53, "NUSA TENGGARA TIMUR"),
    (61, "KALIMANTAN BARAT"),
    (62, "KALIMANTAN TENGAH"),
    (63, "KALIMANTAN SELATAN"),
    (64, "KALIMANTAN TIMUR"),
    (65, "KALIMANTAN UTARA"),
    (71, "SULAWESI UTARA"),
    (72, "SULAWESI TENGAH"),
    (73, "SULAWESI SELATAN"),
    (74, "SULAWESI TENGGARA"),
    (75, "GORONTALO"),
    (76, "SULAWESI BARAT"),
    (81, "MALUKU"),
    (82, "MALUKU UTARA"),
    (91, "PAPUA"),
    (92, "PAPUA BARAT"),
    (93, "PAPUA SELATAN"),
    (94, "PAPUA TENGAH"),
    (95, "PAPUA PEGUNUNGAN"),
    (96, "PAPUA BARAT DAYA"),
];

/// Every province name, as printed on cards.
pub static PROVINCE_NAMES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| PROVINCES.iter().map(|(_, name)| *name).collect());

/// The province named by a code, if the code is in use.
pub fn province_name(code: u8) -> Option<&'static str> {
    PROVINCES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a NIK is exactly 16 digits")]
pub struct InvalidNik;

/// A 16-digit NIK (format only; what it encodes is checked by [`Nik::check`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nik(String);

impl FromStr for Nik {
    type Err = InvalidNik;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidNik)
        }
    }
}

/// Never prints the number: only its masked form.
impl fmt::Debug for Nik {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nik({})", self.masked())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

impl Nik {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `3201••••••••0001`: enough for a person to recognise their own card, no more.
    pub fn masked(&self) -> String {
        format!("{}••••••••{}", &self.0[..4], &self.0[12..])
    }

    fn two(&self, at: usize) -> u32 {
        self.0[at..at + 2].parse().expect("digits checked at parse")
    }

    pub fn province_code(&self) -> u8 {
        self.two(0) as u8
    }

    pub fn gender(&self) -> Gender {
        if self.two(6) > 40 {
            Gender::Female
        } else {
            Gender::Male
        }
    }

    /// The encoded birth date; the two-digit year is placed in the century that makes the
    /// holder between 0 and 100 years old on `today`.
    pub fn birth_date(&self, today: NaiveDate) -> Option<NaiveDate> {
        let day = self.two(6) % 40;
        let month = self.two(8);
        let yy = self.two(10) as i32;
        let century = today.year() / 100 * 100;
        let year = if century + yy > today.year() {
            century - 100 + yy
        } else {
            century + yy
        };
        NaiveDate::from_ymd_opt(year, month, day)
    }

    /// Problems with the number itself and against the printed fields, as stable codes.
    pub fn check(
        &self,
        printed_birth: Option<NaiveDate>,
        printed_gender: Option<Gender>,
        today: NaiveDate,
    ) -> Vec<&'static str> {
        let mut issues = Vec::new();
        if province_name(self.province_code()).is_none() {
            issues.push("nik_unknown_province");
        }
        if self.two(2) == 0 || self.two(4) == 0 {
            issues.push("nik_region_invalid");
        }
        if self.0[12..] == *"0000" {
            issues.push("nik_serial_invalid");
        }
        let encoded = self.birth_date(today);
        match (encoded, printed_birth) {
            (None, _) => issues.push("nik_birth_date_invalid"),
            (Some(e), Some(p)) if e != p => issues.push("nik_birth_date_mismatch"),
            _ => {}
        }
        if let Some(g) = printed_gender
            && g != self.gender()
        {
            issues.push("nik_gender_mismatch");
        }
        if let Some(born) = printed_birth.or(encoded)
            && age_on(born, today) < 17
        {
            issues.push("holder_under_17");
        }
        issues
    }
}

/// Completed years between `born` and `today`.
pub fn age_on(born: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }
    const TODAY: (i32, u32, u32) = (2026, 11, 27);
    fn today() -> NaiveDate {
        d(TODAY.0, TODAY.1, TODAY.2)
    }
    fn nik(s: &str) -> Nik {
        s.parse().unwrap()
    }

    #[test]
    fn parses_only_sixteen_digits_and_never_prints_them() {
        assert!("123".parse::<Nik>().is_err());
        assert!("13710165068369a8".parse::<Nik>().is_err());
        let n = nik("1371016506836968");
        assert_eq!(format!("{n:?}"), "Nik(1371••••••••6968)");
    }

    #[test]
    fn decodes_birth_date_and_gender() {
        // Specimen clean/ktp_003: a woman born 1983-06-25.
        let n = nik("1371016506836968");
        assert_eq!(n.gender(), Gender::Female);
        assert_eq!(n.birth_date(today()), Some(d(1983, 6, 25)));
        assert!(
            n.check(Some(d(1983, 6, 25)), Some(Gender::Female), today())
                .is_empty()
        );
        // A 2005 birth stays in this century.
        assert_eq!(
            nik("9971014301056599").birth_date(today()),
            Some(d(2005, 1, 3))
        );
    }

    #[test]
    fn finds_the_specimen_issues() {
        // clean/ktp_006: printed PEREMPUAN, NIK day 11 (male).
        assert_eq!(
            nik("1871031106903523").check(Some(d(1990, 6, 11)), Some(Gender::Female), today()),
            ["nik_gender_mismatch"]
        );
        // clean/ktp_007: province 99.
        assert_eq!(
            nik("9971014301056599").check(Some(d(2005, 1, 3)), Some(Gender::Female), today()),
            ["nik_unknown_province"]
        );
        // hard/ktp_003: NIK says 1991-12-09, card says 1990-11-04.
        assert_eq!(
            nik("1371010912913236").check(Some(d(1990, 11, 4)), Some(Gender::Male), today()),
            ["nik_birth_date_mismatch"]
        );
    }

    #[test]
    fn holders_under_17_are_flagged() {
        let n = nik("3201011512120001"); // born 2012-12-15
        assert_eq!(
            n.check(Some(d(2012, 12, 15)), Some(Gender::Male), today()),
            ["holder_under_17"]
        );
        assert_eq!(age_on(d(2009, 11, 28), today()), 16);
        assert_eq!(age_on(d(2009, 11, 27), today()), 17);
    }
}
