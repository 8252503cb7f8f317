//! The page shell every console page shares.

use maud::{DOCTYPE, Markup, html};

use crate::assets::NAMES;

/// A link in the navigation bar.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

/// Who is signed in, and how to sign out.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Shown in the header (name or username).
    pub display: String,
    /// Their role, shown beside the name.
    pub role: String,
    /// Where the sign-out form posts.
    pub sign_out_action: String,
    /// The session's CSRF token (the sign-out form carries it).
    pub csrf_token: String,
}

/// What frames a page: which console, where its assets are, its navigation.
#[derive(Debug, Clone)]
pub struct Shell {
    /// The product name in the header (`Runway LifeTime`, `Service Center · prod`).
    pub product: String,
    /// Where the product name links to.
    pub home: String,
    /// The path the assets are mounted under ([`crate::assets::router`]).
    pub asset_prefix: String,
    pub nav: Vec<NavItem>,
    pub signed_in: Option<SignedIn>,
}

/// A message shown at the top of a page after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Info,
    Success,
    Error,
}

/// A whole HTML page: `title` in the tab and as the page's heading, `body`
/// in `<main>`. With `refresh_secs`, browsers without JavaScript reload the
/// page that often (live pages poll with htmx otherwise).
pub fn page(shell: &Shell, title: &str, refresh_secs: Option<u32>, body: Markup) -> Markup {
    let prefix = shell.asset_prefix.trim_end_matches('/');
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · " (shell.product) }
                link rel="stylesheet" href={ (prefix) "/" (NAMES.css) };
                script src={ (prefix) "/" (NAMES.htmx) } defer {}
                script src={ (prefix) "/" (NAMES.js) } defer {}
                @if let Some(secs) = refresh_secs {
                    noscript { meta http-equiv="refresh" content=(secs); }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.product href=(shell.home) { (shell.product) }
                    nav aria-label="Main" {
                        ul {
                            @for item in &shell.nav {
                                li {
                                    a href=(item.href) aria-current=[item.active.then_some("page")] { (item.label) }
                                }
                            }
                        }
                    }
                    @if let Some(user) = &shell.signed_in {
                        div.who {
                            span { (user.display) } " "
                            span.badge { (user.role) }
                            form method="post" action=(user.sign_out_action) {
                                input type="hidden" name=(crate::csrf::FIELD) value=(user.csrf_token);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A flash message.
pub fn flash(kind: FlashKind, message: &str) -> Markup {
    let (class, role) = match kind {
        FlashKind::Info => ("flash info", "status"),
        FlashKind::Success => ("flash success", "status"),
        FlashKind::Error => ("flash error", "alert"),
    };
    html! { div class=(class) role=(role) { (message) } }
}

/// What a list shows when it has nothing to list.
pub fn empty(message: &str) -> Markup {
    html! { p.empty { (message) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_links_assets() {
        let shell = Shell {
            product: "Runway <LifeTime>".into(),
            home: "/".into(),
            asset_prefix: "/assets/".into(),
            nav: vec![NavItem {
                label: "Apps",
                href: "/apps".into(),
                active: true,
            }],
            signed_in: Some(SignedIn {
                display: "\"Ann\"".into(),
                role: "Administrator".into(),
                sign_out_action: "/logout".into(),
                csrf_token: "t0k".into(),
            }),
        };
        let html = page(&shell, "Apps & <things>", Some(2), html! { p { "hi" } }).into_string();
        assert!(html.contains("Apps &amp; &lt;things&gt;"));
        assert!(html.contains("Runway &lt;LifeTime&gt;"));
        assert!(html.contains(&format!("/assets/{}", NAMES.css)));
        assert!(html.contains(r#"aria-current="page""#));
        assert!(html.contains(r#"name="_csrf" value="t0k""#));
        assert!(html.contains("&quot;Ann&quot;"));
        assert!(html.contains(r#"http-equiv="refresh" content="2""#));
        assert!(!html.contains("style="));
    }
}
