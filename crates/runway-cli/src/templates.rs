//! The `runway app new` template (`templates/rust/`), embedded in the binary.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use runway_manifest::AppName;

/// `templates/rust/FILES.txt`: the template's file list, one relative path a line.
pub const RUST_FILES_TXT: &str = include_str!("../templates/rust/FILES.txt");

macro_rules! template_files {
    ($($path:literal),* $(,)?) => {
        /// Every file of the Rust template: (relative path, content with placeholders).
        pub const RUST_TEMPLATE: &[(&str, &str)] = &[
            $(($path, include_str!(concat!("../templates/rust/", $path)))),*
        ];
    };
}

// Keep in step with FILES.txt (a unit test checks it).
template_files!(
    ".gitignore",
    "Cargo.toml",
    "README.md",
    "runway.toml",
    "src/lib.rs",
    "wit/deps/config/store.wit",
    "wit/deps/config/world.wit",
    "wit/deps/email/outbox.wit",
    "wit/deps/jobs/queue.wit",
    "wit/deps/keyvalue/atomic.wit",
    "wit/deps/keyvalue/batch.wit",
    "wit/deps/keyvalue/store.wit",
    "wit/deps/keyvalue/watch.wit",
    "wit/deps/keyvalue/world.wit",
    "wit/world.wit",
);

/// Replaces `{{name}}` and `{{crate_name}}` (the name with `-` → `_`).
pub fn render(text: &str, name: &AppName) -> String {
    text.replace("{{name}}", name.as_str())
        .replace("{{crate_name}}", &name.as_str().replace('-', "_"))
}

/// Writes the rendered template into `dir` (created if missing); returns the
/// written paths.
pub fn write_app(dir: &Path, name: &AppName) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(RUST_TEMPLATE.len());
    for (rel, text) in RUST_TEMPLATE {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create directory {}", parent.display()))?;
        }
        std::fs::write(&path, render(text, name))
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_match_files_txt() {
        let listed: Vec<&str> = RUST_FILES_TXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let embedded: Vec<&str> = RUST_TEMPLATE.iter().map(|(p, _)| *p).collect();
        let mut a = listed.clone();
        let mut b = embedded.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "templates.rs and templates/rust/FILES.txt disagree");
    }

    #[test]
    fn placeholders_are_substituted() {
        let name = AppName::parse("my-shop").unwrap();
        let mut saw_name = false;
        let mut saw_crate = false;
        for (rel, text) in RUST_TEMPLATE {
            saw_name |= text.contains("{{name}}");
            saw_crate |= text.contains("{{crate_name}}");
            let out = render(text, &name);
            assert!(
                !out.contains("{{name}}") && !out.contains("{{crate_name}}"),
                "{rel}"
            );
            assert!(!out.contains("{{"), "{rel} still has a placeholder");
        }
        assert!(saw_name && saw_crate, "the template uses both placeholders");
        let manifest = RUST_TEMPLATE
            .iter()
            .find(|(p, _)| *p == "runway.toml")
            .unwrap()
            .1;
        let out = render(manifest, &name);
        assert!(out.contains("name = \"my-shop\""), "{out}");
        assert!(out.contains("release/my_shop.wasm"), "{out}");
    }

    #[test]
    fn write_app_writes_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let name = AppName::parse("demo").unwrap();
        let written = write_app(&dir, &name).unwrap();
        assert_eq!(written.len(), RUST_TEMPLATE.len());
        for (rel, _) in RUST_TEMPLATE {
            let text = std::fs::read_to_string(dir.join(rel)).unwrap();
            assert!(!text.contains("{{"), "{rel}");
        }
        // The result is a valid manifest.
        let toml = std::fs::read_to_string(dir.join("runway.toml")).unwrap();
        let m = runway_manifest::Manifest::parse(&toml, "runway.toml").unwrap();
        assert_eq!(m.app.name.as_str(), "demo");
    }
}
