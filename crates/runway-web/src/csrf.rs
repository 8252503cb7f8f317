//! Cross-site request forgery protection for every state-changing form.
//!
//! A form carries a hidden field [`FIELD`] whose value is an HMAC-SHA256,
//! under a key of the server's, of the session it was rendered for
//! ([`CsrfKey::token`]). A POST is accepted only when
//!
//! 1. the browser does not say it came from another site (`Sec-Fetch-Site`
//!    is absent, `same-origin` or `none`; an `Origin` header, when sent,
//!    names the host the request was sent to) — [`check_origin`]; and
//! 2. its token is the one of the session the cookie carries, compared in
//!    constant time — [`CsrfKey::verify`].
//!
//! The session cookie is also `SameSite=Strict`; the token does not rely on
//! it. A token is worthless without its session, and changes with it.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use maud::{Markup, html};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The form field that carries the token.
pub const FIELD: &str = "_csrf";

/// The server's key for CSRF tokens.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

/// Why a form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrfError {
    /// The browser says the form was posted from another site.
    CrossSite(String),
    /// The form has no token field.
    Missing,
    /// The token is not the one of this session.
    Mismatch,
}

impl std::fmt::Display for CsrfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsrfError::CrossSite(why) => write!(
                f,
                "refused a form posted from another site ({why}): use the console's own pages"
            ),
            CsrfError::Missing => write!(
                f,
                "the form has no `{FIELD}` token: reload the page and submit it again"
            ),
            CsrfError::Mismatch => write!(
                f,
                "the form's `{FIELD}` token does not belong to your session (it expired or you \
                 signed in again): reload the page and submit it again"
            ),
        }
    }
}

impl std::error::Error for CsrfError {}

impl CsrfKey {
    /// A new random key (tokens end with the process).
    pub fn random() -> CsrfKey {
        CsrfKey(rand::random())
    }

    /// A key derived from a secret the server keeps (tokens survive a
    /// restart). `secret` should be at least 32 random bytes.
    pub fn derive(secret: &[u8]) -> CsrfKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
        mac.update(b"runway-web csrf key v1");
        CsrfKey(mac.finalize().into_bytes().into())
    }

    /// The token of the session identified by `session` (its token or the
    /// token's hash: whatever the server can read back from the cookie).
    pub fn token(&self, session: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"runway-web csrf v1\0");
        mac.update(session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `submitted` (the form's [`FIELD`], if any) is this session's.
    pub fn verify(&self, session: &str, submitted: Option<&str>) -> Result<(), CsrfError> {
        let submitted = submitted
            .filter(|s| !s.is_empty())
            .ok_or(CsrfError::Missing)?;
        let expected = self.token(session);
        if expected.as_bytes().ct_eq(submitted.as_bytes()).into() {
            Ok(())
        } else {
            Err(CsrfError::Mismatch)
        }
    }

    /// The hidden input to put in every form of this session.
    pub fn hidden_input(&self, session: &str) -> Markup {
        html! { input type="hidden" name=(FIELD) value=(self.token(session)); }
    }
}

/// Refuses a request the browser says came from another site.
pub fn check_origin(headers: &HeaderMap) -> Result<(), CsrfError> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site
        && !matches!(site, "same-origin" | "none")
    {
        return Err(CsrfError::CrossSite(format!("Sec-Fetch-Site: {site}")));
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    // Pages are served with `Referrer-Policy: no-referrer`, under which
    // Chromium sends `Origin: null` with the page's own form posts; the
    // browser's `Sec-Fetch-Site: same-origin` (a header no page can set)
    // says where the form came from then.
    if origin == "null" && site == Some("same-origin") {
        return Ok(());
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .trim_end_matches('/');
    if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Err(CsrfError::CrossSite(format!(
            "Origin {origin:?} is not this host {host:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_session_and_key() {
        let key = CsrfKey::derive(b"0123456789abcdef0123456789abcdef");
        let t = key.token("session-a");
        assert!(key.verify("session-a", Some(&t)).is_ok());
        assert_eq!(key.verify("session-b", Some(&t)), Err(CsrfError::Mismatch));
        assert_eq!(key.verify("session-a", None), Err(CsrfError::Missing));
        assert_eq!(key.verify("session-a", Some("")), Err(CsrfError::Missing));
        assert_eq!(
            CsrfKey::random().verify("session-a", Some(&t)),
            Err(CsrfError::Mismatch)
        );
        assert_eq!(
            t,
            CsrfKey::derive(b"0123456789abcdef0123456789abcdef").token("session-a")
        );
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert!(check_origin(&h).is_ok());
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(check_origin(&h).is_ok());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(matches!(check_origin(&h), Err(CsrfError::CrossSite(_))));
        h.remove("sec-fetch-site");
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(matches!(check_origin(&h), Err(CsrfError::CrossSite(_))));
        h.insert("origin", "null".parse().unwrap());
        assert!(check_origin(&h).is_err());
        // A same-origin form under `no-referrer`: Chromium's `Origin: null`.
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(check_origin(&h).is_ok());
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(check_origin(&h).is_err());
    }
}
