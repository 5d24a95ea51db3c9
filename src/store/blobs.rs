//! Encrypted blob storage on the local filesystem.
//!
//! A blob is written to `tmp/`, fsynced, renamed into place and its directory fsynced, so a
//! crash leaves either the whole blob or nothing; every failure path removes the temp file.
//! Contents are sealed with AES-256-GCM (random 96-bit nonce, the blob key as associated
//! data, so a file moved under another name fails to open). It never logs contents.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

const MAGIC: &[u8; 4] = b"FLB1";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob cannot be decrypted (wrong key or tampered)")]
    Decrypt,
    #[error("blob not found")]
    NotFound,
    #[error("invalid blob key")]
    InvalidKey,
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

pub struct BlobStore {
    root: PathBuf,
    key: LessSafeKey,
    /// Blind indexes of what is stored here, keyed from the same secret.
    pub blind: super::blind::BlindIndex,
    rng: SystemRandom,
    #[cfg(feature = "test-hooks")]
    pub faults: crate::testing::BlobFaults,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens (creating) the store under `root` with a 32-byte AES-256 key.
    pub fn open(root: impl Into<PathBuf>, key: &[u8; 32]) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        let blind = super::blind::BlindIndex::from_blob_key(key);
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| BlobError::InvalidKey)?,
        );
        Ok(Self {
            root,
            key,
            blind,
            rng: SystemRandom::new(),
            #[cfg(feature = "test-hooks")]
            faults: Default::default(),
        })
    }

    /// Where temp files live (tests check it is empty after failures).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn path_for(&self, key: &str) -> Result<PathBuf, BlobError> {
        if key.len() < 4 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(BlobError::InvalidKey);
        }
        Ok(self.root.join(&key[..2]).join(format!("{key}.blob")))
    }

    /// AES-256-GCM over `plain` with `aad` bound in: magic, nonce, ciphertext and tag.
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, BlobError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| BlobError::Decrypt)?;
        let mut sealed = Vec::with_capacity(MAGIC.len() + NONCE_LEN + plain.len() + 16);
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| BlobError::Decrypt)?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    fn unseal(&self, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, BlobError> {
        if data.len() < MAGIC.len() + NONCE_LEN + 16 || &data[..4] != MAGIC {
            return Err(BlobError::Decrypt);
        }
        let nonce: [u8; NONCE_LEN] = data[4..4 + NONCE_LEN].try_into().expect("length checked");
        let mut body = data[4 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| BlobError::Decrypt)?;
        Ok(plain.to_vec())
    }

    /// Seals a small text (extracted personal fields) for a database column, bound to `aad`.
    pub fn seal_text(&self, aad: &str, plain: &str) -> Result<String, BlobError> {
        use base64::Engine;
        Ok(base64::engine::general_purpose::STANDARD
            .encode(self.seal(aad.as_bytes(), plain.as_bytes())?))
    }

    pub fn open_text(&self, aad: &str, sealed: &str) -> Result<String, BlobError> {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| BlobError::Decrypt)?;
        String::from_utf8(self.unseal(aad.as_bytes(), &data)?).map_err(|_| BlobError::Decrypt)
    }

    /// Encrypts and stores `plain` under `key` atomically. Blocking: call from `spawn_blocking`.
    pub fn put(&self, key: &str, plain: &[u8]) -> Result<(), BlobError> {
        let target = self.path_for(key)?;
        let sealed = self.seal(key.as_bytes(), plain)?;

        let tmp = self
            .tmp_dir()
            .join(format!("{key}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = self.write_and_rename(&tmp, &target, &sealed);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_and_rename(&self, tmp: &Path, target: &Path, data: &[u8]) -> Result<(), BlobError> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)?;
        file.write_all(data)?;
        #[cfg(feature = "test-hooks")]
        if self
            .faults
            .fail_before_fsync
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(BlobError::Injected("fsync"));
        }
        file.sync_all()?;
        drop(file);
        let dir = target.parent().expect("blob path has a parent");
        std::fs::create_dir_all(dir)?;
        #[cfg(feature = "test-hooks")]
        if self
            .faults
            .fail_before_rename
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(BlobError::Injected("rename"));
        }
        std::fs::rename(tmp, target)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Reads and decrypts the blob stored under `key`. Blocking.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path_for(key)?;
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        self.unseal(key.as_bytes(), &data)
    }

    /// Removes the blob; absent is fine (erasure is idempotent). Blocking.
    pub fn delete(&self, key: &str) -> Result<(), BlobError> {
        match std::fs::remove_file(self.path_for(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes temp files left by a crash (a `put` interrupted before its rename) that are
    /// older than `age`. A `put` lasts milliseconds; the age spares the one another node
    /// sharing this directory is making right now.
    pub fn sweep_tmp(&self, age: std::time::Duration) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.tmp_dir())? {
            let entry = entry?;
            let old = entry
                .metadata()?
                .modified()?
                .elapsed()
                .is_ok_and(|since| since >= age);
            if old {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), &[7u8; 32]).unwrap();
        (dir, s)
    }

    #[test]
    fn sweep_removes_only_old_temp_files() {
        let (_dir, s) = store();
        std::fs::write(s.tmp_dir().join("left-by-a-crash"), b"x").unwrap();
        assert_eq!(s.sweep_tmp(std::time::Duration::from_secs(60)).unwrap(), 0);
        assert_eq!(s.sweep_tmp(std::time::Duration::ZERO).unwrap(), 1);
        assert_eq!(std::fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn round_trip_is_encrypted_at_rest() {
        let (dir, s) = store();
        let plain = b"NIK 3201234567890001 plain card bytes";
        s.put("abcd-1234", plain).unwrap();
        assert_eq!(s.get("abcd-1234").unwrap(), plain);
        let raw = std::fs::read(dir.path().join("ab").join("abcd-1234.blob")).unwrap();
        assert!(!raw.windows(16).any(|w| w == b"3201234567890001"));
        assert!(std::fs::read_dir(s.tmp_dir()).unwrap().next().is_none());
    }

    #[test]
    fn wrong_key_or_moved_file_fails_to_open() {
        let (dir, s) = store();
        s.put("abcd-1", b"x").unwrap();
        let other = BlobStore::open(dir.path(), &[8u8; 32]).unwrap();
        assert!(matches!(other.get("abcd-1"), Err(BlobError::Decrypt)));
        std::fs::copy(
            dir.path().join("ab/abcd-1.blob"),
            dir.path().join("ab/abcd-2.blob"),
        )
        .unwrap();
        assert!(matches!(s.get("abcd-2"), Err(BlobError::Decrypt)));
    }

    #[test]
    fn rejects_path_tricks() {
        let (_dir, s) = store();
        assert!(matches!(
            s.put("../../etc", b"x"),
            Err(BlobError::InvalidKey)
        ));
        assert!(matches!(s.get("a/b"), Err(BlobError::InvalidKey)));
    }
}
