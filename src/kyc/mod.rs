//! # KYC domain
//!
//! Pure domain types and rules: identifiers and document kinds parsed at the edge, so that
//! anything inside the system is valid by construction. Nothing here does I/O.

mod ids;

pub use ids::{DocumentId, DocumentType, ParseIdError};
