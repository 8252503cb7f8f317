//! Golden tests: every `tests/golden/*.toml` is parsed as `runway.toml`; when a
//! sibling `*.err` exists, the error's `Display` must equal it exactly (trailing
//! newline trimmed); without one, parsing must succeed.
//!
//! `UPDATE_GOLDEN=1 cargo test` rewrites the `.err` files of failing cases from
//! the current output (cases without `.err` stay "must parse").

use std::fs;
use std::path::PathBuf;

use runway_manifest::Manifest;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_manifests() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 25,
        "golden cases went missing: {}",
        cases.len()
    );

    let mut failures = Vec::new();
    for case in &cases {
        let text = fs::read_to_string(case).unwrap();
        let err_path = case.with_extension("err");
        let got = Manifest::parse(&text, "runway.toml");
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match (fs::read_to_string(&err_path).ok(), got) {
            (None, Ok(_)) => {}
            (None, Err(e)) => failures.push(format!("{name}: expected Ok, got: {e}")),
            (Some(want), got) => {
                let want = want.trim_end_matches('\n');
                let got = match got {
                    Ok(m) => format!("<parsed OK: {m:?}>"),
                    Err(e) => {
                        // The contract: one line.
                        assert!(!e.to_string().contains('\n'), "{name}: multi-line error");
                        e.to_string()
                    }
                };
                if got != want {
                    if update {
                        fs::write(&err_path, format!("{got}\n")).unwrap();
                    } else {
                        failures.push(format!("{name}:\n  want: {want}\n  got:  {got}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn valid_manifest_contents() {
    let text = fs::read_to_string(golden_dir().join("valid.toml")).unwrap();
    let m = Manifest::parse(&text, "runway.toml").unwrap();
    assert_eq!(m.app.name.as_str(), "notes");
    assert_eq!(m.app.version.to_string(), "1.2.3");
    assert_eq!(m.component.path, "target/wasm32-wasip2/release/notes.wasm");
    assert_eq!(m.static_files.as_ref().unwrap().dir, "public");
    let port = &m.properties["port"];
    assert_eq!(port.kind, runway_manifest::PropertyKind::Int);
    assert_eq!(port.default.as_deref(), Some("8080"));
    assert_eq!(m.properties["debug"].default.as_deref(), Some("false"));
    assert!(m.properties["api_key"].secret);
    assert!(m.properties["api_key"].required);
    assert_eq!(m.properties["api_key"].default.as_deref(), Some("dev-key"));
    assert_eq!(
        m.properties["greeting"].kind,
        runway_manifest::PropertyKind::String
    );
    assert_eq!(m.timers.len(), 2);
    assert_eq!(m.timers[0].timeout_secs, Some(60));
    assert_eq!(m.timers[1].timeout_secs, None);
    let auth = runway_manifest::AppName::parse("auth").unwrap();
    assert!(m.dependencies[&auth].matches(&"1.4.0".parse().unwrap()));
    assert!(m.outbound.allows("https", "api.example.com", 443));
    assert!(m.outbound.allows("http", "localhost", 8080));
    assert!(!m.outbound.allows("http", "localhost", 8081));
    assert_eq!(m.limits.timeout_ms, Some(30000));
    assert_eq!(m.limits.memory_mib, Some(128));
    assert_eq!(m.limits.max_body_bytes, None);
}

#[test]
fn minimal_manifest_has_empty_defaults() {
    let m = Manifest::parse(
        "[app]\nname = \"hello\"\nversion = \"0.1.0\"\n[component]\npath = \"./hello.wasm\"\n",
        "runway.toml",
    )
    .unwrap();
    assert_eq!(m.component.path, "hello.wasm");
    assert!(m.static_files.is_none() && m.properties.is_empty() && m.timers.is_empty());
    assert!(m.dependencies.is_empty() && m.outbound.allow.is_empty());
    assert_eq!(m.limits, Default::default());
}

#[test]
fn error_accessors() {
    let e = Manifest::parse(
        "[app]\nname = \"My App\"\nversion = \"1.0.0\"\n",
        "x/runway.toml",
    )
    .unwrap_err();
    assert_eq!(e.file(), "x/runway.toml");
    assert_eq!(e.key(), "app.name");
    assert_eq!(e.line(), Some(2));
}

#[test]
fn oversized_manifest_is_refused_before_parsing() {
    // Valid TOML would parse: only the size can refuse it. A syntax error past
    // the limit proves the text was never parsed.
    let limit = runway_manifest::MAX_MANIFEST_BYTES;
    let mut text = String::from("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n");
    while text.len() <= limit {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    text.push_str("this is = = not toml\n");
    let e = Manifest::parse(&text, "runway.toml").unwrap_err();
    assert_eq!(e.line(), None, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "runway.toml: the manifest is {} bytes, more than the limit of {limit} bytes; keep data out of runway.toml (put files under [static])",
            text.len()
        )
    );
    // Exactly at the limit is still parsed (and here fails on content, not size).
    let mut at_limit = String::from(
        "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[component]\npath = \"a.wasm\"\n",
    );
    at_limit.push_str(&"#".repeat(limit - at_limit.len()));
    assert_eq!(at_limit.len(), limit);
    Manifest::parse(&at_limit, "runway.toml").expect("a manifest of exactly the limit parses");
}

#[test]
fn property_count_is_bounded() {
    let mut text = String::from(
        "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[component]\npath = \"a.wasm\"\n",
    );
    for i in 0..runway_manifest::MAX_PROPERTIES {
        text.push_str(&format!("[properties.p{i}]\n"));
    }
    let m = Manifest::parse(&text, "runway.toml").expect("the limit itself is fine");
    assert_eq!(m.properties.len(), runway_manifest::MAX_PROPERTIES);
}
