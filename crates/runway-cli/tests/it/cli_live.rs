//! The `runway` binary end to end, as the README uses it: `runway up` as a
//! process, the CLI publishing to it, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::guest;

fn runway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runway"))
}

/// Starts `runway up` on a free port; returns the child, its URL and the
/// admin token if this start printed one.
fn start(data_dir: &std::path::Path) -> (Child, String, Option<String>) {
    start_with(data_dir, &[])
}

pub(crate) fn start_with(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (Child, String, Option<String>) {
    let mut child = runway()
        .args(["up", "--single", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runway up starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (String::new(), None);
    let mut expect_token = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" listening on ").nth(1) {
            url = rest.trim().to_string();
        } else if expect_token {
            token = Some(line.trim().to_string());
            expect_token = false;
        } else if line.contains("admin token (shown once") {
            expect_token = true;
        } else if line.contains("ctrl-c to stop") {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "bound address printed"
    );
    (child, url, token)
}

pub(crate) fn cli(url: &str, token: &str, args: &[&str]) -> std::process::Output {
    runway()
        .args(args)
        .env("RUNWAY_ENV", url)
        .env("RUNWAY_TOKEN", token)
        .env("CI", "true")
        .output()
        .expect("runway runs")
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "runway up did not stop within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_publish_serve_and_stop_gracefully() {
    let hello = guest("examples/hello");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".runway");
    let (mut child, url, token) = start(&data);
    let token = token.expect("the first start prints the admin token");
    assert!(token.starts_with("rwt_"));
    let on_disk = std::fs::read_to_string(data.join("admin.token")).unwrap();
    assert_eq!(on_disk.trim(), token);

    let out = cli(&url, &token, &["app", "publish", hello.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "publish failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hello") && stdout.contains("0.1.0") && stdout.contains("sha256:"),
        "{stdout}"
    );
    for step in ["upload", "validate", "compile", "deploy"] {
        assert!(stdout.contains(step), "step {step} missing from: {stdout}");
    }

    let body = get_text(&format!("{url}/hello/"));
    assert_eq!(body, "Hello from Runway!\n");

    let out = cli(&url, &token, &["app", "list", "--json"]);
    assert!(out.status.success());
    let apps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(apps[0]["name"], "hello");
    assert_eq!(apps[0]["running_version"], "0.1.0");

    // A bad request: non-zero exit and one line saying what and where.
    let out = cli(&url, &token, &["app", "deploy", "hello@9.9.9"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("9.9.9"), "{stderr}");

    // SIGTERM: a graceful stop with exit code 0.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());

    // Started again on the same data: the app is still there, no new token.
    let (mut child, url, token) = start(&data);
    assert!(token.is_none(), "a restart must not print a new token");
    assert_eq!(get_text(&format!("{url}/hello/")), "Hello from Runway!\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A plain GET on a fresh runtime (the test itself is synchronous).
fn get_text(url: &str) -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

#[test]
fn up_farm_serves_from_every_frontend_behind_one_address() {
    let hello = guest("examples/hello");
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, token) = start_with(&dir.path().join(".runway"), &["--farm", "3"]);
    let token = token.expect("the first start prints the admin token");

    // The API answers at the environment's address (the balancer passes it on).
    let out = cli(&url, &token, &["app", "publish", hello.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&url, &token, &["frontend", "list", "--json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["frontends"].as_array().unwrap().len(), 3, "{list}");

    let seen = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let r = reqwest::get(format!("{url}/hello/")).await.unwrap();
            assert_eq!(r.status(), 200);
            seen.insert(
                r.headers()["x-runway-frontend"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
        seen
    });
    assert_eq!(
        seen.len(),
        3,
        "requests spread over the front-ends: {seen:?}"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}
