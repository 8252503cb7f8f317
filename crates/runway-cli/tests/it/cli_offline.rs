//! The `runway` binary without an environment: help, argument errors, `app new`,
//! local file errors and an unreachable environment.

use std::path::Path;
use std::process::{Command, Output};

fn runway(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUNWAY_ENV")
        .env_remove("RUNWAY_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the runway binary")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 1 and exactly one non-empty stderr line starting with `error: `.
fn assert_one_line_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    lines[0].to_owned()
}

#[test]
fn help_lists_the_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["--help"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["up", "app", "logs", "token", "env"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} missing from:\n{out}"
        );
    }
    let o = runway(&["app", "--help"], tmp.path());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "new", "build", "publish", "list", "show", "versions", "deploy", "delete", "config",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["app", "frobnicate"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = runway(&["token", "create", "ci", "--scope", "root"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn app_new_rejects_a_bad_name() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["app", "new", "Bad Name"], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(line.contains("\"Bad Name\""), "{line}");
    assert!(line.contains("lowercase"), "{line}");
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}

#[test]
fn app_new_creates_the_template() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().to_str().unwrap();
    let o = runway(&["app", "new", "demo-app", "--dir", parent], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tmp.path().join("demo-app");
    let files_txt = include_str!("../../templates/rust/FILES.txt");
    for rel in files_txt.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(!text.contains("{{"), "{rel} has a placeholder left");
    }
    let manifest = std::fs::read_to_string(dir.join("runway.toml")).unwrap();
    assert!(manifest.contains("name = \"demo-app\""), "{manifest}");
    assert!(manifest.contains("release/demo_app.wasm"), "{manifest}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("runway app build"), "{out}");

    // A second time the directory is not empty: refused, nothing overwritten.
    std::fs::write(dir.join("runway.toml"), "edited").unwrap();
    let o = runway(&["app", "new", "demo-app", "--dir", parent], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(line.contains("not empty"), "{line}");
    assert_eq!(
        std::fs::read_to_string(dir.join("runway.toml")).unwrap(),
        "edited"
    );
}

#[test]
fn publish_of_a_missing_file_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["app", "publish", "/nonexistent.rwp"], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(line.contains("/nonexistent.rwp"), "{line}");
}

#[test]
fn publish_of_an_unbuilt_app_says_to_build() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().to_str().unwrap();
    assert!(
        runway(&["app", "new", "demo", "--dir", parent], tmp.path())
            .status
            .success()
    );
    let o = runway(&["app", "publish", "demo"], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(line.contains("demo.wasm"), "{line}");
    assert!(line.contains("runway app build"), "{line}");
}

#[test]
fn unreachable_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(
        &["app", "list", "--env", "http://127.0.0.1:1", "--token", "x"],
        tmp.path(),
    );
    let line = assert_one_line_error(&o);
    assert!(
        line.contains("cannot reach the environment at http://127.0.0.1:1"),
        "{line}"
    );
}

#[test]
fn missing_token_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["app", "list", "--env", "http://127.0.0.1:1"], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(line.contains("no API token"), "{line}");
}

#[test]
fn invalid_environment_url() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(
        &["env", "--env", "127.0.0.1:8080/x", "--token", "x"],
        tmp.path(),
    );
    let line = assert_one_line_error(&o);
    assert!(line.contains("invalid environment URL"), "{line}");
}

#[test]
fn deploy_argument_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let o = runway(&["app", "deploy", "notes", "--token", "x"], tmp.path());
    let line = assert_one_line_error(&o);
    assert!(
        line.contains("expected NAME@VERSION, e.g. notes@0.1.0, got \"notes\""),
        "{line}"
    );
}
