//! Integration tests of `runway-store` against real SQLite files.

mod deployments;
mod kv;
mod logs;
mod persistence;
mod properties;
mod tokens;
mod versions;

use runway_store::{NewVersion, Store};
use tempfile::TempDir;

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub async fn open() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(dir.path()).await.expect("open store");
    (dir, store)
}

pub fn new_version(app: &str, version: &str, digest: &str) -> NewVersion {
    NewVersion {
        app: app.to_string(),
        version: version.to_string(),
        digest: digest.to_string(),
        component_digest: format!("c-{digest}"),
        description: Some(format!("{app} {version}")),
        manifest_toml: format!("[app]\nname = \"{app}\"\nversion = \"{version}\"\n"),
        size_bytes: 1234,
    }
}
