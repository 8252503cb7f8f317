//! Relative-path rules shared by the manifest (`component.path`, `static.dir`)
//! and the package (entry names, static file keys).
//!
//! One normal form everywhere: `/`-separated, no empty, `.` or `..` segments, no
//! leading `/`, no backslashes. A path in that form cannot leave the directory it
//! is resolved against, on any OS, which is what makes unpacking and serving safe.

/// Longest relative path accepted; generous for real files, small enough that a
/// hostile package cannot make us juggle megabyte-long names.
pub(crate) const MAX_PATH_LEN: usize = 1024;

/// Checks that `s` is already in normal form. Returns "problem; fix" on error.
pub(crate) fn check_normal(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the path is empty; give a relative path like \"public/index.html\"".into());
    }
    if s.len() > MAX_PATH_LEN {
        return Err(format!(
            "the path is longer than {MAX_PATH_LEN} bytes; use a shorter path"
        ));
    }
    if s.contains('\\') {
        return Err("backslashes are not allowed; separate directories with '/'".into());
    }
    if s.chars().any(char::is_control) {
        return Err("control characters are not allowed in paths; rename the file".into());
    }
    if s.starts_with('/') || is_drive_path(s) {
        return Err(
            "absolute paths are not allowed; use a path relative to the app directory".into(),
        );
    }
    for seg in s.split('/') {
        match seg {
            ".." => {
                return Err(
                    "'..' is not allowed (paths must stay inside the app directory); move the file into the app directory"
                        .into(),
                );
            }
            "" | "." => {
                return Err("empty or '.' path segments are not allowed; write the path like \"css/site.css\"".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Normalises a path written by a person (tolerating `./x`, `x/` and `a//b`)
/// and then applies [`check_normal`]. Returns the normal form.
pub(crate) fn normalize(s: &str) -> Result<String, String> {
    // Check the dangerous forms on the raw input first so that the message talks
    // about what was written (e.g. "/srv/x" is absolute, not "srv/x").
    if s.starts_with('/') || is_drive_path(s) || s.starts_with('\\') {
        return Err(
            "absolute paths are not allowed; use a path relative to the app directory".into(),
        );
    }
    let joined = s
        .split('/')
        .filter(|seg| !seg.is_empty() && *seg != ".")
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() && !s.is_empty() {
        return Err(
            "the path points at the app directory itself; use a subdirectory or file inside it"
                .into(),
        );
    }
    check_normal(&joined)?;
    Ok(joined)
}

/// `C:` / `c:\` style prefixes: harmless on Unix, absolute on Windows.
fn is_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for ok in ["a", "a/b.css", "css/site.css", "a b/c", "x..y"] {
            check_normal(ok).unwrap();
        }
        for bad in [
            "", "/a", "a/../b", "..", "a//b", "./a", "a/", "a\\b", "C:/x", "a\nb",
        ] {
            assert!(check_normal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn normalizes_human_paths() {
        assert_eq!(normalize("./public/").unwrap(), "public");
        assert_eq!(normalize("a//b").unwrap(), "a/b");
        assert!(normalize("/srv/www").unwrap_err().contains("absolute"));
        assert!(normalize("../x").unwrap_err().contains("'..'"));
        assert!(normalize(".").unwrap_err().contains("app directory itself"));
        assert!(normalize("a\\b").is_err());
    }
}
