//! Encryption at rest of secret property values.
//!
//! A value is sealed with XChaCha20-Poly1305 under the environment's secrets
//! key (32 random bytes, kept in `secrets.key` or a file given by
//! `--secrets-key-file`), a random 192-bit nonce per value, and the app and
//! property name as associated data (a sealed value cannot be moved to
//! another property). The catalog keeps `hex(nonce ‖ ciphertext)` and the
//! key's id, so a later key rotation can tell which key sealed a value.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::StoreError;

const NONCE_LEN: usize = 24;

/// The key secret property values are sealed with.
pub struct SecretsKey {
    id: String,
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretsKey {
    /// Reads the key file at `path` (64 hex digits). With `create`, a missing
    /// file is created with a new random key, readable only by its owner.
    pub fn load(path: &Path, create: bool) -> Result<SecretsKey, StoreError> {
        let problem = |problem: String| StoreError::SecretsKey {
            path: path.to_path_buf(),
            problem,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        problem(
                            "is not 64 hex digits (32 bytes); restore the environment's key from a backup"
                                .into(),
                        )
                    })?;
                crate::files::make_private_file(path, false)
                    .map_err(|e| problem(format!("cannot make it private (chmod 600): {e}")))?;
                let mut key = [0; 32];
                key.copy_from_slice(&bytes);
                Ok(SecretsKey::from_bytes(key, path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key: [u8; 32] = rand::random();
                crate::files::write_atomically(
                    path,
                    format!("{}\n", hex::encode(key)).as_bytes(),
                    Some(0o600),
                )
                .map_err(|e| problem(format!("cannot create it: {e}")))?;
                tracing::info!(path = %path.display(), "created a new secrets key; back it up: secret property values cannot be read without it");
                Ok(SecretsKey::from_bytes(key, path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(problem(
                "does not exist; give the file the environment's secret values were encrypted \
                 with (64 hex digits), or leave out --secrets-key-file to use <data-dir>/secrets.key"
                    .into(),
            )),
            Err(e) => Err(problem(format!("cannot be read: {e}"))),
        }
    }

    /// A key from its 32 bytes; `path` is where it came from (for messages).
    pub fn from_bytes(key: [u8; 32], path: &Path) -> SecretsKey {
        let mut hash = Sha256::new();
        hash.update(b"runway secrets key id\0");
        hash.update(key);
        let id = format!("k1-{}", &hex::encode(hash.finalize())[..16]);
        SecretsKey {
            id,
            cipher: XChaCha20Poly1305::new(&key.into()),
            path: path.to_path_buf(),
        }
    }

    /// Identifies the key (not secret): recorded next to every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The file the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `hex(nonce ‖ ciphertext)` of `plaintext`, bound to `context`.
    pub(crate) fn seal(&self, context: &[u8], plaintext: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message of a catalog's size");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// The plaintext of a value sealed by [`SecretsKey::seal`] with the same
    /// `context`; `None` if it was sealed with another key, or altered.
    pub(crate) fn open(&self, context: &[u8], sealed: &str) -> Option<String> {
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// The associated data of a property value: app and key.
pub(crate) fn property_context(app: &str, key: &str) -> Vec<u8> {
    let mut context = b"runway property\0".to_vec();
    context.extend_from_slice(app.as_bytes());
    context.push(0);
    context.extend_from_slice(key.as_bytes());
    context
}
