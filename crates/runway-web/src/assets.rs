//! Static assets of the web consoles, compiled into the binary.
//!
//! Every file is served under a name that carries its version (htmx) or the
//! first hex digits of its content's SHA-256 (Runway's own), so it can be
//! cached for a year: a change of content is a change of name.
//!
//! Vendored, pinned: `htmx-2.0.4.min.js` (htmx.org 2.0.4 from the npm
//! registry, `dist/htmx.min.js`, SHA-256
//! `e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447`),
//! licence Zero-Clause BSD in `assets/htmx-2.0.4.LICENSE`.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;
use sha2::{Digest as _, Sha256};
use std::sync::LazyLock;

/// The stylesheet.
pub const CSS: &str = include_str!("../assets/runway.css");
/// Runway's script: local and relative times, confirmations, tabs. No
/// framework; the pages read without it.
pub const JS: &str = include_str!("../assets/runway.js");
/// htmx 2.0.4, vendored unmodified.
pub const HTMX: &str = include_str!("../assets/htmx-2.0.4.min.js");
/// htmx's licence, served beside it.
pub const HTMX_LICENSE: &str = include_str!("../assets/htmx-2.0.4.LICENSE");

/// The name every asset is served under, relative to the mount prefix.
pub struct AssetNames {
    pub css: String,
    pub js: String,
    pub htmx: &'static str,
}

fn short_digest(content: &str) -> String {
    hex::encode(&Sha256::digest(content.as_bytes())[..6])
}

/// The content-addressed names, computed once.
pub static NAMES: LazyLock<AssetNames> = LazyLock::new(|| AssetNames {
    css: format!("runway-{}.css", short_digest(CSS)),
    js: format!("runway-{}.js", short_digest(JS)),
    htmx: "htmx-2.0.4.min.js",
});

/// The routes serving the assets under `prefix` (e.g. `/assets` or
/// `/_runway/assets`). Unknown names get 404.
pub fn router<S: Clone + Send + Sync + 'static>(prefix: &str) -> Router<S> {
    let names = &*NAMES;
    Router::new()
        .route(
            &format!("{prefix}/{}", names.css),
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            &format!("{prefix}/{}", names.js),
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            &format!("{prefix}/{}", names.htmx),
            get(|| async { asset("text/javascript; charset=utf-8", HTMX) }),
        )
        .route(
            &format!("{prefix}/htmx-2.0.4.LICENSE"),
            get(|| async { asset("text/plain; charset=utf-8", HTMX_LICENSE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_content() {
        assert!(NAMES.css.starts_with("runway-") && NAMES.css.ends_with(".css"));
        assert_eq!(NAMES.css.len(), "runway-.css".len() + 12);
        assert_ne!(
            NAMES.css.trim_end_matches(".css"),
            NAMES.js.trim_end_matches(".js")
        );
    }

    #[test]
    fn htmx_is_the_pinned_file() {
        assert_eq!(
            hex::encode(Sha256::digest(HTMX.as_bytes())),
            "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447",
            "assets/htmx-2.0.4.min.js is not the pinned htmx 2.0.4"
        );
        assert!(HTMX_LICENSE.contains("Zero-Clause BSD"));
    }
}
