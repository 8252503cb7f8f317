//! [`AppName`]: the URL-safe name of an app.
//!
//! App names appear as the first path segment of every app URL (`/{app}/…`), as
//! catalog keys and in file names, so they are restricted to a conservative,
//! DNS-label-like alphabet. Names starting with `_` can never pass, which keeps
//! `/_runway/…` (the controller) out of reach of any app without a reserved list.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest allowed app name; the same as a DNS label, so a name can later become
/// a subdomain without renaming.
pub const MAX_APP_NAME_LEN: usize = 63;

/// A valid app name: 1..=63 characters, lowercase ASCII letters, digits and `-`,
/// starting with a letter and not ending with `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(String);

/// Why a string is not an [`AppName`].
///
/// `Display` gives the problem and a fix ("…; use something like \"my-app\"")
/// but not the rejected input: callers know where the input came from and name it
/// themselves (e.g. `app.name = "My App": …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an app name cannot be empty; use something like \"my-app\"")]
    Empty,
    #[error(
        "app names may contain only lowercase letters, digits and '-'; use something like \"{suggestion}\""
    )]
    InvalidChar { ch: char, suggestion: String },
    #[error("app names must start with a lowercase letter; use something like \"{suggestion}\"")]
    BadStart { suggestion: String },
    #[error("app names cannot end with '-'; use something like \"{suggestion}\"")]
    TrailingHyphen { suggestion: String },
    #[error(
        "app names are at most 63 characters long (this one has {len}); use something like \"{suggestion}\""
    )]
    TooLong { len: usize, suggestion: String },
}

impl AppName {
    /// Parses `s` as an app name.
    pub fn parse(s: &str) -> Result<AppName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(NameError::InvalidChar {
                ch,
                suggestion: suggest(s),
            });
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(NameError::BadStart {
                suggestion: suggest(s),
            });
        }
        if s.ends_with('-') {
            return Err(NameError::TrailingHyphen {
                suggestion: suggest(s),
            });
        }
        // Checked last: the other errors are more useful to someone who typed a
        // long, otherwise wrong name.
        if s.len() > MAX_APP_NAME_LEN {
            return Err(NameError::TooLong {
                len: s.len(),
                suggestion: suggest(s),
            });
        }
        Ok(AppName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Turns an arbitrary string into a valid app name, for "use something like" hints.
fn suggest(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let start = out
        .find(|c: char| c.is_ascii_lowercase())
        .unwrap_or(out.len());
    let mut out = out[start..].to_owned();
    out.truncate(MAX_APP_NAME_LEN);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "my-app".to_owned()
    } else {
        out
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for AppName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AppName::parse(s)
    }
}

impl Serialize for AppName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        AppName::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid app name {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for s in [
            "a",
            "notes",
            "my-app",
            "app2",
            "a-b-c",
            "x1-2",
            &"a".repeat(63),
        ] {
            assert_eq!(AppName::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn bad_names() {
        type Check = fn(&NameError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, NameError::Empty)),
            ("a/b", |e| {
                matches!(e, NameError::InvalidChar { ch: '/', .. })
            }),
            ("..", |e| {
                matches!(e, NameError::InvalidChar { ch: '.', .. })
            }),
            ("Notes", |e| {
                matches!(e, NameError::InvalidChar { ch: 'N', .. })
            }),
            ("my app", |e| {
                matches!(e, NameError::InvalidChar { ch: ' ', .. })
            }),
            ("_runway", |e| {
                matches!(e, NameError::InvalidChar { ch: '_', .. })
            }),
            ("-x", |e| matches!(e, NameError::BadStart { .. })),
            ("1x", |e| matches!(e, NameError::BadStart { .. })),
            ("x-", |e| matches!(e, NameError::TrailingHyphen { .. })),
            ("é", |e| {
                matches!(e, NameError::InvalidChar { ch: 'é', .. })
            }),
        ];
        for (s, check) in cases {
            let e = AppName::parse(s).unwrap_err();
            assert!(check(&e), "{s:?} gave {e:?}");
        }
        let long = "a".repeat(64);
        assert!(matches!(
            AppName::parse(&long),
            Err(NameError::TooLong { len: 64, .. })
        ));
    }

    #[test]
    fn suggestions_are_valid_names() {
        for s in [
            "My App",
            "..",
            "a/b",
            "-x",
            "x-",
            "1x",
            "__",
            &"b".repeat(80),
        ] {
            let e = AppName::parse(s).unwrap_err();
            let msg = e.to_string();
            let sugg = msg.rsplit_once("like \"").unwrap().1.trim_end_matches('"');
            assert!(AppName::parse(sugg).is_ok(), "{s:?} -> {sugg:?}");
        }
        assert_eq!(
            AppName::parse("My App").unwrap_err().to_string(),
            "app names may contain only lowercase letters, digits and '-'; use something like \"my-app\""
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let n: AppName = serde_json::from_str("\"notes\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"notes\"");
        assert!(serde_json::from_str::<AppName>("\"Notes\"").is_err());
    }
}
