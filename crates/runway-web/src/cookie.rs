//! The session cookie of a web console.
//!
//! A console sets one cookie holding its session token (the same secret a
//! JSON client sends as `Authorization: Bearer`). It is `HttpOnly` (no
//! script reads it), `SameSite=Strict` (no other site's page sends it),
//! `Path=/`, and `Secure` when the console is reached over HTTPS.

use http::HeaderMap;
use http::header;

/// How a cookie is set.
#[derive(Debug, Clone, Copy)]
pub struct CookieOptions {
    /// Add `Secure` (the console is served over HTTPS).
    pub secure: bool,
    /// `Max-Age` in seconds; `None` is a cookie for the browser's session.
    pub max_age_secs: Option<u64>,
}

/// The `Set-Cookie` value that stores `value` under `name`.
///
/// # Panics
/// If `name` or `value` hold characters a cookie cannot carry (callers
/// pass their own prefixes and hex tokens).
pub fn set(name: &str, value: &str, options: CookieOptions) -> String {
    assert!(
        is_token(name) && value.bytes().all(is_cookie_octet),
        "cookie {name:?} cannot carry this value"
    );
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = options.max_age_secs {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if options.secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that removes the cookie `name`.
pub fn clear(name: &str, secure: bool) -> String {
    let mut cookie = format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_read_back() {
        let c = set(
            "runway_session",
            "rws_abc",
            CookieOptions {
                secure: true,
                max_age_secs: Some(3600),
            },
        );
        assert_eq!(
            c,
            "runway_session=rws_abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600; Secure"
        );
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; runway_session=rws_abc".parse().unwrap(),
        );
        assert_eq!(get(&h, "runway_session"), Some("rws_abc"));
        assert_eq!(get(&h, "runway"), None);
        assert!(clear("runway_session", false).contains("Max-Age=0"));
    }

    #[test]
    #[should_panic]
    fn a_value_with_a_semicolon_is_refused() {
        set(
            "s",
            "a;b",
            CookieOptions {
                secure: false,
                max_age_secs: None,
            },
        );
    }
}
