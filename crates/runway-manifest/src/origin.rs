//! [`AllowedOrigin`]: one entry of an app's outbound allow-list.
//!
//! The runtime grants outbound HTTP only to origins (scheme, host, port) listed
//! in `[outbound] allow`. Entries are origins, nothing more: a path, query or
//! credentials in an entry would suggest a finer-grained rule than the runtime
//! enforces, so they are refused rather than silently ignored. Wildcards are
//! refused for the same reason: a guest must not get more reach than was written.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An origin an app may call: `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowedOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host name or IP literal (IPv6 in brackets, as in URLs).
    pub host: String,
    /// Explicit port, or the scheme's default (80 / 443).
    pub port: u16,
}

const EXAMPLE: &str = "\"https://api.example.com\"";

impl AllowedOrigin {
    /// Parses `https://host[:port]` (a trailing `/` is tolerated). The error is
    /// "problem; fix" without the input, which the caller names.
    pub fn parse(s: &str) -> Result<AllowedOrigin, String> {
        if s.contains('*') {
            return Err(format!(
                "wildcards are not supported; list each origin the app calls, like {EXAMPLE}"
            ));
        }
        let Some((scheme, _)) = s.split_once("://") else {
            return Err(format!(
                "not an origin (scheme://host[:port]); use something like {EXAMPLE}"
            ));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "scheme {scheme:?} is not allowed, only http and https; use something like {EXAMPLE}"
            ));
        }
        let url = url::Url::parse(s)
            .map_err(|e| format!("not a valid origin ({e}); use something like {EXAMPLE}"))?;
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
            _ => {
                return Err(format!(
                    "the origin has no host; use something like {EXAMPLE}"
                ));
            }
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("the origin has no port; use something like {EXAMPLE}"))?;
        // For "use …" hints: the origin as a person would write it.
        let origin = match url.port() {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "an origin cannot contain credentials; use \"{origin}\" and pass secrets through a secret property"
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "an origin has no path, query or fragment (access is granted per origin); use \"{origin}\""
            ));
        }
        Ok(AllowedOrigin { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is covered by this origin.
    /// Scheme and host compare case-insensitively; IPv6 brackets and a trailing
    /// dot on the host are ignored so callers need not normalise first.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        fn norm(h: &str) -> &str {
            let h = h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h);
            h.strip_suffix('.').unwrap_or(h)
        }
        self.port == port
            && self.scheme.eq_ignore_ascii_case(scheme)
            && norm(&self.host).eq_ignore_ascii_case(norm(host))
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl std::str::FromStr for AllowedOrigin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowedOrigin::parse(s)
    }
}

impl Serialize for AllowedOrigin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AllowedOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        AllowedOrigin::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("outbound origin {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> AllowedOrigin {
        AllowedOrigin::parse(s).unwrap()
    }

    #[test]
    fn parses_origins() {
        assert_eq!(
            o("https://api.example.com").to_string(),
            "https://api.example.com:443"
        );
        assert_eq!(
            o("HTTP://LocalHost:8080/").to_string(),
            "http://localhost:8080"
        );
        assert_eq!(o("http://127.0.0.1").port, 80);
        assert_eq!(o("https://[::1]:8443").host, "[::1]");
        assert_eq!(
            o("https://api.example.com:443"),
            o("https://api.example.com")
        );
    }

    #[test]
    fn refuses_non_origins() {
        let cases = [
            ("*", "wildcards are not supported"),
            ("https://*.example.com", "wildcards are not supported"),
            ("api.example.com", "not an origin"),
            ("ftp://example.com", "scheme \"ftp\" is not allowed"),
            ("https://example.com/v1", "no path"),
            ("https://example.com?x=1", "no path, query"),
            ("https://example.com#f", "no path, query"),
            ("https://user:pw@example.com", "credentials"),
            ("https://", "not a valid origin"),
            ("https://example.com:99999", "not a valid origin"),
        ];
        for (input, want) in cases {
            let err = AllowedOrigin::parse(input).unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn allows_exact_origin_only() {
        let a = o("https://api.example.com");
        assert!(a.allows("https", "api.example.com", 443));
        assert!(a.allows("HTTPS", "API.example.com.", 443));
        assert!(!a.allows("http", "api.example.com", 443));
        assert!(!a.allows("https", "api.example.com", 8443));
        assert!(!a.allows("https", "evil.example.com", 443));
        assert!(!a.allows("https", "api.example.com.evil.net", 443));
        let v6 = o("http://[::1]:8080");
        assert!(v6.allows("http", "::1", 8080));
        assert!(v6.allows("http", "[::1]", 8080));
    }
}
