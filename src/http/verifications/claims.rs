//! The bodies of the claim signals: a reviewer takes a case, or gives it back.

use poem_openapi::{Object, types::Example};

use crate::http::text::Text;

/// Take a case (or renew one's claim on it).
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct ClaimRequest {
    /// Chosen by the client (1–128 visible ASCII characters).
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
}

impl Example for ClaimRequest {
    fn example() -> Self {
        Self {
            signal_id: "claim-2f6c1e".into(),
        }
    }
}

/// Give a claimed case back.
#[derive(Debug, Object, serde::Serialize)]
#[oai(example)]
pub struct ReleaseRequest {
    /// Chosen by the client (1–128 visible ASCII characters).
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub signal_id: Text,
}

impl Example for ReleaseRequest {
    fn example() -> Self {
        Self {
            signal_id: "release-2f6c1e".into(),
        }
    }
}
