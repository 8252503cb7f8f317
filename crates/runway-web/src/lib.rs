//! `runway-web`: what Runway's web consoles share, and nothing of either.
//!
//! The infrastructure console's pages (LifeTime, in `runway-console`) and each
//! environment's dashboard (Service Center, in `runway-controller`) are
//! server-rendered HTML from the Runway binary itself: templates are [`maud`]
//! macros compiled into the binary, so every interpolated value is escaped
//! unless it is explicitly [`maud::PreEscaped`]. This crate gives them one
//! look and one set of protections:
//!
//! - [`layout`]: the page shell (header, navigation, who is signed in, the
//!   sign-out form), flash messages, empty states;
//! - [`assets`]: the stylesheet, Runway's small script (local times, relative
//!   times) and the vendored htmx, pinned, served with immutable caching;
//! - [`security`]: the headers every page carries (a strict
//!   Content-Security-Policy with no inline script or style, no framing,
//!   no sniffing, no referrer, no caching of pages);
//! - [`csrf`]: tokens bound to a session for every state-changing form, and
//!   the check that refuses a form without one;
//! - [`cookie`]: the session cookie (`HttpOnly; SameSite=Strict; Path=/`,
//!   `Secure` over HTTPS) and reading it back;
//! - [`chart`]: line charts rendered server-side as SVG (no chart library);
//! - [`time`]: timestamps as `<time>` elements the script shows in the
//!   viewer's time zone, with a UTC text that reads without JavaScript.
//!
//! Everything here is pure or an axum building block: it knows nothing of
//! environments, apps or principals. Pages call the same service functions
//! as the JSON APIs, so a permission is checked in one place.

pub mod assets;
pub mod chart;
pub mod cookie;
pub mod csrf;
pub mod layout;
pub mod security;
pub mod time;

pub use maud::{DOCTYPE, Markup, PreEscaped, html};
