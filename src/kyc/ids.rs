//! Identifier newtypes. Each one is parsed once, at the edge, with `parse()`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("not a valid document id")]
    DocumentId,
    #[error("not a valid verification id")]
    VerificationId,
    #[error("not a valid delivery id")]
    OutboxId,
    #[error("not a valid webhook id")]
    WebhookId,
    #[error("not a valid batch id")]
    BatchId,
    #[error("document type must be KTP or NPWP")]
    DocumentType,
}

/// Declares a UUIDv7 id newtype (ids sort by creation time) that parses only the canonical
/// hyphenated lowercase form: one spelling per entity.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $err:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err($err);
                }
                let id = Uuid::parse_str(s).map_err(|_| $err)?;
                if id.hyphenated().to_string() != s {
                    return Err($err);
                }
                Ok(Self(id))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseIdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A document's id.
    DocumentId,
    ParseIdError::DocumentId
);
uuid_id!(
    /// A KYC verification's id.
    VerificationId,
    ParseIdError::VerificationId
);
uuid_id!(
    /// An outbox row's id: one delivery (to BULI2 or a webhook), also its `Idempotency-Key`.
    OutboxId,
    ParseIdError::OutboxId
);
uuid_id!(
    /// A registered status webhook's id.
    WebhookId,
    ParseIdError::WebhookId
);

uuid_id!(
    /// A batch upload's id.
    BatchId,
    ParseIdError::BatchId
);

/// Which card a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DocumentType {
    /// Kartu Tanda Penduduk: the national identity card (16-digit NIK).
    #[serde(rename = "KTP")]
    Ktp,
    /// Nomor Pokok Wajib Pajak: the tax card.
    #[serde(rename = "NPWP")]
    Npwp,
}

impl DocumentType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ktp => "KTP",
            Self::Npwp => "NPWP",
        }
    }
}

impl FromStr for DocumentType {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "KTP" | "ktp" => Ok(Self::Ktp),
            "NPWP" | "npwp" => Ok(Self::Npwp),
            _ => Err(ParseIdError::DocumentType),
        }
    }
}

impl fmt::Display for DocumentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_id_round_trips_and_rejects_other_spellings() {
        let id = DocumentId::new();
        assert_eq!(id.to_string().parse::<DocumentId>(), Ok(id));
        assert!(id.to_string().to_uppercase().parse::<DocumentId>().is_err());
        assert!("3201234567890001".parse::<DocumentId>().is_err());
        assert!("".parse::<DocumentId>().is_err());
    }

    #[test]
    fn document_type_parses_only_known_cards() {
        assert_eq!("KTP".parse(), Ok(DocumentType::Ktp));
        assert_eq!("npwp".parse(), Ok(DocumentType::Npwp));
        assert!("SIM".parse::<DocumentType>().is_err());
        assert!("".parse::<DocumentType>().is_err());
    }
}
