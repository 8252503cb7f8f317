//! A real headless Chromium driven through WebDriver, for the web consoles'
//! tests.
//!
//! [`with_browser`] starts Debian's `chromedriver` (or `$CHROMEDRIVER`) on a
//! free loopback port, opens one headless Chromium (`/usr/bin/chromium`, or
//! `$CHROMIUM`) at 1280×800, runs the test body with a
//! [`fantoccini::Client`], and closes both. When the body panics, the page
//! the browser was on is saved first, as
//! `target/browser-failures/<name>.png` and `<name>.html`, then the panic
//! goes on. A machine without Chromium fails the test with how to install
//! it: browser tests are never skipped silently.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;

/// Where a failing browser test leaves its screenshot and HTML.
pub fn failure_dir() -> PathBuf {
    super::support::repo_root().join("target/browser-failures")
}

fn program(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: the browser tests need Debian's chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`, as .ci/run does), or ${env} naming it",
        path.display()
    );
    path
}

/// Runs `body` in a fresh headless Chromium; saves the page on a panic.
pub async fn with_browser<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let chromium = program("CHROMIUM", "/usr/bin/chromium");
    let driver_bin = program("CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port for chromedriver")
        .port();
    let mut driver = tokio::process::Command::new(driver_bin)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let client = loop {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("could not open Chromium through chromedriver at {url}: {e}"),
        }
    };
    let outcome = AssertUnwindSafe(body(client.clone())).catch_unwind().await;
    if outcome.is_err() {
        save_page(&client, name).await;
    }
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn save_page(client: &Client, name: &str) {
    let dir = failure_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
    if let Ok(html) = client.source().await {
        let _ = std::fs::write(dir.join(format!("{name}.html")), html);
    }
    eprintln!(
        "browser test {name} failed: the page is saved in {}/{name}.png and .html",
        dir.display()
    );
}

/// Waits (at most 15 s) for an element matching `css` and returns it.
pub async fn wait_css(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css:?} appeared within 15 s: {e}"))
}

/// Waits (at most `secs`) until the page's text contains `needle`.
pub async fn wait_text(client: &Client, needle: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        // Between a form's post and the next page (or during a reload) there
        // is briefly no body: that is "not yet", not a failure.
        let text = match client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {needle:?} within {secs} s; it shows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A failing browser test leaves its page behind: the harness's own promise.
#[tokio::test]
async fn a_failing_browser_test_saves_its_page() {
    let name = "harness-self-check";
    let dir = failure_dir();
    let _ = std::fs::remove_file(dir.join(format!("{name}.png")));
    let _ = std::fs::remove_file(dir.join(format!("{name}.html")));
    let outcome = AssertUnwindSafe(with_browser(name, |client| async move {
        client
            .goto("data:text/html,<title>t</title><p id=x>left for inspection</p>")
            .await
            .expect("open a data: page");
        wait_css(&client, "#x").await;
        wait_text(&client, "left for inspection", 5).await;
        panic!("failing on purpose");
    }))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "the body's panic must reach the test");
    let html = std::fs::read_to_string(dir.join(format!("{name}.html"))).expect("saved HTML");
    assert!(html.contains("left for inspection"), "{html}");
    let png = std::fs::read(dir.join(format!("{name}.png"))).expect("saved screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
}
