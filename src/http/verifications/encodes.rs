//! What a KTP's NIK itself encodes (province, regency, birth date, gender), shown to
//! reviewers beside the printed values so a mismatch stands out.

use poem_openapi::Object;

use crate::kyc::nik::{Gender, Nik, province_name};

/// Read from the NIK's digits, not from the card's print.
#[derive(Debug, Object)]
pub struct NikEncodes {
    /// The first two digits.
    pub province_code: String,
    /// The province they name, when it exists.
    #[oai(skip_serializing_if_is_none)]
    pub province: Option<String>,
    /// Digits 3–4.
    pub regency_code: String,
    /// From digits 7–12 (`YYYY-MM-DD`), when they make a date.
    #[oai(skip_serializing_if_is_none)]
    pub birth_date: Option<String>,
    /// `LAKI-LAKI` or `PEREMPUAN`, as a KTP prints it (day of birth + 40 for women).
    pub gender: String,
}

/// What the `nik` among a document's `fields` encodes (`None` without a well-formed NIK).
pub fn of(fields: Option<&serde_json::Value>) -> Option<NikEncodes> {
    let nik: Nik = fields?.get("nik")?.as_str()?.parse().ok()?;
    let today = chrono::Utc::now().date_naive();
    let digits = nik.as_str();
    Some(NikEncodes {
        province_code: digits[..2].to_string(),
        province: province_name(nik.province_code()).map(str::to_string),
        regency_code: digits[2..4].to_string(),
        birth_date: nik.birth_date(today).map(|d| d.to_string()),
        gender: match nik.gender() {
            Gender::Male => "LAKI-LAKI",
            Gender::Female => "PEREMPUAN",
        }
        .into(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nik_says_where_when_and_who() {
        let fields = serde_json::json!({ "nik": "3275024612894728" });
        let e = super::of(Some(&fields)).unwrap();
        assert_eq!(e.province_code, "32");
        assert_eq!(e.regency_code, "75");
        assert_eq!(e.birth_date.as_deref(), Some("1989-12-06"));
        assert_eq!(e.gender, "PEREMPUAN");
        assert!(e.province.is_some());
        assert!(super::of(Some(&serde_json::json!({ "nik": "32•••" }))).is_none());
        assert!(super::of(None).is_none());
    }
}
