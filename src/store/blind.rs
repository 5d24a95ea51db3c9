//! Blind indexes: keyed HMAC-SHA256 of personal values (a card's file, a NIK, an NPWP), so
//! that equal values are found by equality without storing the values or a plain hash of
//! them (a plain hash of a 16-digit NIK is reversed by trying them all). The key is derived
//! from the blob key, so the nodes that can read the data can index it and nobody else can
//! compute an index. Each use has its own domain, so an index from one use never matches
//! another's.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What an index is of; part of every index, so uses never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// A stored file's bytes.
    File,
    /// A reading's cache key: the file, its owner and type, and the reading engine.
    Reading,
    /// A NIK as read from a KTP.
    Nik,
    /// An NPWP (15 or 16 digits) as read from an NPWP card.
    Npwp,
    /// A field's value in a champion/challenger comparison (keyed by document and field).
    Comparison,
}

impl Domain {
    fn label(self) -> &'static [u8] {
        match self {
            Self::File => b"file",
            Self::Reading => b"reading",
            Self::Nik => b"nik",
            Self::Npwp => b"npwp",
            Self::Comparison => b"comparison",
        }
    }
}

/// The index key (never printed).
#[derive(Clone)]
pub struct BlindIndex {
    key: [u8; 32],
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

impl BlindIndex {
    /// The index key derived from the 32-byte blob key (HMAC with a fixed label: knowing
    /// the index key reveals nothing of the blob key).
    pub fn from_blob_key(blob_key: &[u8; 32]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(blob_key).expect("HMAC takes any key length");
        mac.update(b"filot/blind-index/v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// The index of `parts` in `domain`: lowercase hex of HMAC-SHA256 over the domain and
    /// each part, every one length-prefixed (so `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn of(&self, domain: Domain, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in std::iter::once(domain.label()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_meet_and_nothing_else_does() {
        let index = BlindIndex::from_blob_key(&[7u8; 32]);
        let nik = b"3171234567890001".as_slice();
        let a = index.of(Domain::Nik, &[nik]);
        assert_eq!(a, index.of(Domain::Nik, &[nik]));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("3171234567890001"));
        // Another use, another key, or another split of the same bytes: another index.
        assert_ne!(a, index.of(Domain::Npwp, &[nik]));
        assert_ne!(
            a,
            BlindIndex::from_blob_key(&[8u8; 32]).of(Domain::Nik, &[nik])
        );
        assert_ne!(
            index.of(Domain::Reading, &[b"ab", b"c"]),
            index.of(Domain::Reading, &[b"a", b"bc"])
        );
        // Not a plain hash of the value.
        use sha2::Digest;
        assert_ne!(a, hex::encode(Sha256::digest(nik)));
        assert!(!format!("{index:?}").contains('7'));
    }
}
