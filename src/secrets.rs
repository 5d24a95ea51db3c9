//! Secrets generated on first start and kept in the data directory (`secrets/`, mode 0600),
//! so the embedded default runs with no configuration and keeps its keys across restarts.
//! Configured values always win over generated ones.

use std::{io::Write, path::Path};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not valid base64 of the expected length")]
    Invalid(String),
    #[error("random number generator failed")]
    Rng,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| SecretError::Rng)?;
    Ok(buf)
}

/// Reads `data_dir/secrets/<name>` or creates it with `N` fresh random bytes (base64).
fn load_or_create<const N: usize>(data_dir: &Path, name: &str) -> Result<[u8; N], SecretError> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| SecretError::Invalid(path.display().to_string()))?;
            bytes
                .try_into()
                .map_err(|_| SecretError::Invalid(path.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(io)?;
            let bytes = random_bytes::<N>()?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            match opts.open(&path) {
                Ok(mut f) => {
                    f.write_all(STANDARD.encode(bytes).as_bytes()).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    Ok(bytes)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(data_dir, name)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// The HS256 secret: configured, or generated into the data directory.
pub fn jwt_secret(settings: &Settings) -> Result<Vec<u8>, SecretError> {
    match &settings.auth.jwt_secret {
        Some(s) => Ok(s.expose().as_bytes().to_vec()),
        None => Ok(load_or_create::<48>(&settings.data_dir, "jwt-hs256.key")?.to_vec()),
    }
}

/// The AES-256-GCM blob key: configured, or generated into the data directory.
pub fn blob_key(settings: &Settings) -> Result<[u8; 32], SecretError> {
    match &settings.blobs.encryption_key {
        Some(k) => STANDARD
            .decode(k.expose().trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SecretError::Invalid("blobs.encryption_key".into())),
        None => load_or_create::<32>(&settings.data_dir, "blob-aes256.key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create::<32>(dir.path(), "k").unwrap();
        let b = load_or_create::<32>(dir.path(), "k").unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets/k"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
