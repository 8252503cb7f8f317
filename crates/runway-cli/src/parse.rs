//! Parsers for positional arguments (`NAME@VERSION`, `KEY=VALUE`).

use anyhow::anyhow;
use runway_manifest::{AppName, Version};

/// `notes@0.1.0` → (`notes`, `0.1.0`).
pub fn parse_app_at_version(s: &str) -> anyhow::Result<(AppName, Version)> {
    let shape = || anyhow!("expected NAME@VERSION, e.g. notes@0.1.0, got {s:?}");
    let (name, version) = s.split_once('@').ok_or_else(shape)?;
    if name.is_empty() || version.is_empty() || version.contains('@') {
        return Err(shape());
    }
    let app =
        AppName::parse(name).map_err(|e| anyhow!("invalid app name {name:?} in {s:?}: {e}"))?;
    let version = Version::parse(version).map_err(|e| {
        anyhow!("invalid version {version:?} in {s:?}: {e}; use a semantic version like 0.1.0")
    })?;
    Ok((app, version))
}

/// `greeting=Hello there` → (`greeting`, `Hello there`). The value may be empty
/// and may contain `=`; the key may not be empty.
pub fn parse_assignment(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(anyhow!(
            "invalid assignment {s:?}: expected KEY=VALUE, e.g. greeting=Hello"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_at_version() {
        let (a, v) = parse_app_at_version("notes@0.1.0").unwrap();
        assert_eq!(a.as_str(), "notes");
        assert_eq!(v, Version::new(0, 1, 0));
        let (_, v) = parse_app_at_version("my-app@1.2.3-beta.1").unwrap();
        assert_eq!(v.to_string(), "1.2.3-beta.1");

        for bad in ["notes", "notes@", "@0.1.0", "", "a@1@2"] {
            let e = parse_app_at_version(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("expected NAME@VERSION, e.g. notes@0.1.0, got {bad:?}")
            );
        }
        let e = parse_app_at_version("Notes@0.1.0").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid app name \"Notes\" in \"Notes@0.1.0\": "),
            "{e}"
        );
        let e = parse_app_at_version("notes@latest")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid version \"latest\" in \"notes@latest\": "),
            "{e}"
        );
        assert!(e.ends_with("use a semantic version like 0.1.0"), "{e}");
    }

    #[test]
    fn assignment() {
        assert_eq!(
            parse_assignment("greeting=Hello").unwrap(),
            ("greeting".into(), "Hello".into())
        );
        assert_eq!(
            parse_assignment("url=http://x/?a=b").unwrap(),
            ("url".into(), "http://x/?a=b".into())
        );
        assert_eq!(parse_assignment("k=").unwrap(), ("k".into(), String::new()));
        for bad in ["greeting", "=x", "", " =x"] {
            let e = parse_assignment(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("invalid assignment {bad:?}: expected KEY=VALUE, e.g. greeting=Hello")
            );
        }
    }
}
