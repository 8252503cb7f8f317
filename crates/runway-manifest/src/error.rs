//! [`ManifestError`]: one precise, one-line complaint about a `runway.toml`.
//!
//! The format is fixed because people (and tests) read it:
//! `{file}:{line}: {key} = {value}: {problem}; {fix}`, with `:{line}` left out
//! when there is no place to point at (e.g. a missing key).

use std::fmt;
use std::ops::Range;

/// An error in a manifest. `Display` is a single line naming the file, the line
/// (when known), the key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    file: String,
    line: Option<usize>,
    key: String,
    message: String,
}

impl ManifestError {
    /// `message` is everything after `"{file}:{line}: "`.
    pub(crate) fn new(
        text: &str,
        file: &str,
        span: Option<Range<usize>>,
        key: String,
        message: String,
    ) -> ManifestError {
        let line = span.map(|s| line_of(text, s.start));
        // One line, always: messages from dependencies (toml, semver, croner) may
        // contain newlines, and a log line or CLI error must not be torn apart.
        let message = message
            .lines()
            .map(|l| l.trim().trim_end_matches(';'))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ManifestError {
            file: file.to_owned(),
            line,
            key,
            message,
        }
    }

    /// The file name given to [`crate::Manifest::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The dotted key the error is about (`app.name`, `timers[0].schedule`); empty
    /// for TOML syntax errors.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// 1-based line number, when the error points at a place in the file.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The message without the `file:line: ` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    // Count bytes, not chars: the offset is a byte offset and '\n' is one byte.
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        let text = "a\nb\nc";
        let e = ManifestError::new(
            text,
            "f.toml",
            Some(2..3),
            "k".into(),
            "k: bad;\nfix".into(),
        );
        assert_eq!(e.to_string(), "f.toml:2: k: bad; fix");
        assert_eq!(e.line(), Some(2));
        let e = ManifestError::new(
            text,
            "f.toml",
            None,
            "k".into(),
            "missing key k; add it".into(),
        );
        assert_eq!(e.to_string(), "f.toml: missing key k; add it");
        assert_eq!((e.file(), e.key(), e.line()), ("f.toml", "k", None));
    }
}
