//! The content-addressed blob store: `packages/<digest>.rwp` and
//! `artifacts/<digest>.cwasm` under one root (a controller's data
//! directory, a front-end's cache). The only code that knows this layout.
//!
//! A blob's name is its digest: a package's is the digest of its canonical
//! index (verified by decoding it), an artifact's the SHA-256 of its bytes.
//! Writes are atomic and durable ([`crate::files::write_atomically`]), so a
//! name never holds part of a blob; a read that must be trusted goes through
//! [`BlobStore::read_verified`].

use std::path::{Path, PathBuf};

use runway_manifest::Digest;

/// Which kind of content-addressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A published `.rwp` package.
    Package,
    /// A compiled component (`.cwasm`).
    Artifact,
}

impl BlobKind {
    pub const ALL: [BlobKind; 2] = [BlobKind::Package, BlobKind::Artifact];

    /// What it is called in messages.
    pub fn label(self) -> &'static str {
        match self {
            BlobKind::Package => "package",
            BlobKind::Artifact => "compiled artifact",
        }
    }

    /// The directory of this kind under a store's root.
    pub fn dir(self) -> &'static str {
        match self {
            BlobKind::Package => "packages",
            BlobKind::Artifact => "artifacts",
        }
    }

    /// File name of a blob of this kind.
    pub fn file_name(self, digest: &Digest) -> String {
        match self {
            BlobKind::Package => format!("{}.rwp", digest.hex()),
            BlobKind::Artifact => format!("{}.cwasm", digest.hex()),
        }
    }
}

/// Why a blob could not be read as what its name promises.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{path} cannot be read ({source})")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is corrupt (its content has digest {actual})")]
    Mismatch { path: PathBuf, actual: Digest },
}

/// `packages/` and `artifacts/` under one root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// The store at `root`, whose directories may not exist yet.
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    /// The store at `root`, with its directories created. An error names
    /// the directory (`<dir>: <cause>`).
    pub fn create(root: impl Into<PathBuf>) -> std::io::Result<BlobStore> {
        let store = BlobStore::new(root);
        for kind in BlobKind::ALL {
            let dir = store.dir(kind);
            std::fs::create_dir_all(&dir)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `kind` (where uploads are received, so that they are
    /// renamed into place on the same file system).
    pub fn dir(&self, kind: BlobKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    /// Where the blob `digest` of `kind` is (or would be) stored.
    pub fn path(&self, kind: BlobKind, digest: &Digest) -> PathBuf {
        self.dir(kind).join(kind.file_name(digest))
    }

    /// The blob's path relative to the root (`packages/<hex>.rwp`), for
    /// messages.
    pub fn relative_path(kind: BlobKind, digest: &Digest) -> String {
        format!("{}/{}", kind.dir(), kind.file_name(digest))
    }

    /// Whether a blob is stored under this name (not whether it is intact).
    pub fn contains(&self, kind: BlobKind, digest: &Digest) -> bool {
        self.path(kind, digest).exists()
    }

    /// Stores `bytes` as `digest`: atomically and durably (file and directory
    /// fsynced). The caller has verified that `bytes` have that digest.
    pub async fn write(
        &self,
        kind: BlobKind,
        digest: &Digest,
        bytes: Vec<u8>,
    ) -> std::io::Result<()> {
        crate::files::write_atomically_async(&self.path(kind, digest), bytes, None).await
    }

    /// The stored bytes, unverified (for a caller that verifies them, like a
    /// front-end fetching from its controller).
    pub async fn read(&self, kind: BlobKind, digest: &Digest) -> std::io::Result<Vec<u8>> {
        let path = self.path(kind, digest);
        tokio::fs::read(&path).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("failed to read {}: {e}", path.display()))
        })
    }

    /// Opens the stored blob for streaming (unverified, as [`read`](Self::read)).
    pub async fn open(&self, kind: BlobKind, digest: &Digest) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(kind, digest)).await
    }

    /// The stored blob, decoded and checked against its name. `decode`
    /// (run on a blocking thread) turns the bytes into a value and the digest
    /// the content really has, e.g. [`plain_bytes`] for an artifact or a
    /// package decoder. Errors name the blob by its relative path.
    pub async fn read_verified<T: Send + 'static>(
        &self,
        kind: BlobKind,
        digest: &Digest,
        decode: impl FnOnce(Vec<u8>) -> Result<(Digest, T), String> + Send + 'static,
    ) -> Result<T, BlobError> {
        let shown = PathBuf::from(Self::relative_path(kind, digest));
        let bytes = tokio::fs::read(self.path(kind, digest))
            .await
            .map_err(|source| BlobError::Read {
                path: shown.clone(),
                source,
            })?;
        let (actual, value) = tokio::task::spawn_blocking(move || decode(bytes))
            .await
            .map_err(|e| BlobError::Corrupt {
                path: shown.clone(),
                reason: e.to_string(),
            })?
            .map_err(|reason| BlobError::Corrupt {
                path: shown.clone(),
                reason,
            })?;
        if actual != *digest {
            return Err(BlobError::Mismatch {
                path: shown,
                actual,
            });
        }
        Ok(value)
    }

    /// Deletes a blob; a missing one is not an error.
    pub async fn remove(&self, kind: BlobKind, digest: &Digest) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(kind, digest)).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// The decoder of a blob addressed by the SHA-256 of its bytes (an artifact):
/// the bytes themselves and their digest.
pub fn plain_bytes(bytes: Vec<u8>) -> Result<(Digest, Vec<u8>), String> {
    Ok((Digest::of(&bytes), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_is_read_back_only_under_its_own_digest() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        let bytes = b"compiled".to_vec();
        let digest = Digest::of(&bytes);
        assert!(!blobs.contains(BlobKind::Artifact, &digest));
        blobs
            .write(BlobKind::Artifact, &digest, bytes.clone())
            .await
            .unwrap();
        assert!(blobs.contains(BlobKind::Artifact, &digest));
        assert_eq!(
            blobs.path(BlobKind::Artifact, &digest),
            dir.path().join(format!("artifacts/{}.cwasm", digest.hex()))
        );
        let read = blobs
            .read_verified(BlobKind::Artifact, &digest, plain_bytes)
            .await
            .unwrap();
        assert_eq!(read, bytes);

        // Bytes under another blob's name are refused, naming the blob.
        let other = Digest::of(b"other");
        std::fs::copy(
            blobs.path(BlobKind::Artifact, &digest),
            blobs.path(BlobKind::Artifact, &other),
        )
        .unwrap();
        let error = blobs
            .read_verified(BlobKind::Artifact, &other, plain_bytes)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "artifacts/{}.cwasm is corrupt (its content has digest {digest})",
                other.hex()
            )
        );
        blobs.remove(BlobKind::Artifact, &other).await.unwrap();
        blobs.remove(BlobKind::Artifact, &other).await.unwrap();
        assert!(!blobs.contains(BlobKind::Artifact, &other));
    }
}
