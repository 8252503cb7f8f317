//! The cross-site check of a form post, as browsers actually send it.
//!
//! Under the pages' `Referrer-Policy: no-referrer` ([`crate::security`]),
//! Chromium sends `Origin: null` with a form posted from the console's own
//! page, which [`crate::csrf::check_origin`] alone refuses. A browser that
//! sends `Sec-Fetch-Site` (a header no page script can set) says where the
//! request came from: `same-origin` is accepted whatever `Origin` says, and
//! anything but `same-origin` or `none` is refused. Without it, the `Origin`
//! check of [`crate::csrf::check_origin`] decides.

use http::HeaderMap;

use crate::csrf::{CsrfError, check_origin};

/// Refuses a request the browser says came from another site.
pub fn check(headers: &HeaderMap) -> Result<(), CsrfError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => Ok(()),
        _ => check_origin(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_same_origin_posts_with_a_null_origin_pass() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        h.insert("origin", "null".parse().unwrap());
        assert!(check(&h).is_err(), "null without Sec-Fetch-Site is refused");
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(check(&h).is_ok());
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(check(&h).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(
            check(&h).is_err(),
            "cross-site is refused whatever Origin says"
        );
    }
}
