//! `infra.toml` (issue 12 part 5): the shipped examples pass `runway infra
//! check` with the seeds' server counts and are drawn; one golden file per
//! rule (`tests/infra/*.toml` → `*.err`: every finding, file, line, rule,
//! fix).
//!
//! `UPDATE_GOLDEN=1` rewrites the `.err` files of failing cases.

use std::fs;
use std::path::PathBuf;

use runway_cli::infra::{self, check::Severity};

use crate::farm_support::run;
use crate::support::repo_root;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/infra")
}

fn check_file(
    path: &std::path::Path,
    name: &str,
) -> (Vec<infra::check::Finding>, infra::Infra, String) {
    let text = fs::read_to_string(path).unwrap();
    let parsed = infra::parse(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (infra::check::check(&parsed, &text), parsed, text)
}

#[test]
fn golden_rules() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    let mut rules_seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = format!("{}", case.file_name().unwrap().to_string_lossy());
        let (findings, _, _) = check_file(case, &name);
        assert!(!findings.is_empty(), "{name}: breaks no rule");
        rules_seen.extend(findings.iter().map(|f| f.rule));
        let got = findings
            .iter()
            .map(|f| f.render(&name))
            .collect::<Vec<_>>()
            .join("\n");
        let err_path = case.with_extension("err");
        let want = fs::read_to_string(&err_path).unwrap_or_default();
        if got != want.trim_end_matches('\n') {
            if update {
                fs::write(&err_path, format!("{got}\n")).unwrap();
            } else {
                failures.push(format!("{name}:\n  want: {want}\n  got:  {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // One golden file (at least) per rule.
    for rule in [
        "reference",
        "console-dedicated",
        "standalone",
        "farm-balancer",
        "zone-address",
        "separate-catalogs",
        "production-database",
        "one-hostname",
        "console-https",
    ] {
        assert!(rules_seen.contains(rule), "no golden case for rule {rule}");
    }
}

#[test]
fn the_seed_examples_pass_with_the_seeds_server_counts() {
    // (file, database servers, front-end servers incl. the console's), seed 003
    // and seed 000 example 4.
    for (file, databases, frontends) in [
        ("basic.toml", 2, 4),
        ("standard.toml", 4, 8),
        ("enterprise.toml", 6, 10),
        ("zones.toml", 2, 7),
    ] {
        let path = repo_root().join("examples/infra").join(file);
        let (findings, parsed, _) = check_file(&path, file);
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.render(file))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        let counts = infra::check::counts(&parsed);
        assert_eq!(
            (counts.database_servers, counts.frontend_servers),
            (databases, frontends),
            "{file}"
        );
    }
    // Three proxies with three hostnames in front of one environment: the
    // scenario 6 consequence is stated.
    let path = repo_root().join("examples/infra/zones.toml");
    let (findings, _, _) = check_file(&path, "zones.toml");
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "one-hostname" && f.severity == Severity::Warning),
        "{findings:?}"
    );
}

#[test]
fn check_and_draw_through_the_cli() {
    let out = tempfile::tempdir().unwrap();
    for file in ["basic", "standard", "enterprise", "zones"] {
        let path = repo_root().join(format!("examples/infra/{file}.toml"));
        let path = path.to_str().unwrap();
        let (ok, stdout, stderr) = run(&["infra", "check", path]);
        assert!(ok, "{file}: {stdout}{stderr}");
        assert!(stdout.contains(": ok ("), "{stdout}");
        let svg = out.path().join(format!("{file}.svg"));
        let (ok, stdout, stderr) = run(&["infra", "draw", path, "-o", svg.to_str().unwrap()]);
        assert!(ok, "{file}: {stdout}{stderr}");
        let drawn = fs::read_to_string(&svg).unwrap();
        assert!(drawn.starts_with("<svg "), "{file}");
        assert!(drawn.trim_end().ends_with("</svg>"), "{file}");
        // Every front-end and database server is in the picture.
        let text =
            fs::read_to_string(repo_root().join(format!("examples/infra/{file}.toml"))).unwrap();
        let parsed = infra::parse(&text, file).unwrap();
        for env in &parsed.environment {
            for zone in &env.get_ref().zone {
                for frontend in zone.get_ref().frontends.get_ref() {
                    assert!(
                        drawn.contains(&format!(">{}<", frontend.get_ref())),
                        "{file}: {}",
                        frontend.get_ref()
                    );
                }
            }
        }
        for db in &parsed.database_server {
            assert!(
                drawn.contains(&format!(">{}<", db.get_ref().name.get_ref())),
                "{file}"
            );
        }
    }
    // A broken file fails `check` with its findings, and is not drawn.
    let broken = golden_dir().join("farm-balancer.toml");
    let (ok, stdout, stderr) = run(&["infra", "check", broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(stdout.contains("error[farm-balancer]"), "{stdout}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");
    let svg = out.path().join("broken.svg");
    let (ok, _, stderr) = run(&[
        "infra",
        "draw",
        broken.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(!ok && !svg.exists(), "{stderr}");
}

/// `runway infra apply FILE --console URL`: a dry run prints the changes and
/// changes nothing; apply registers the file's pipelines and environments
/// (with the admin tokens of `--token-dir`); a second apply changes nothing;
/// an environment registered at another address is refused, nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_registers_pipelines_and_environments_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = runway_console::ConsoleConfig::new(
        dir.path().join("console"),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.poll_interval = std::time::Duration::from_millis(200);
    let server = runway_console::ConsoleServer::start(config)
        .await
        .expect("console starts");
    let console_url = format!("http://{}", server.addr());
    let console_token = server.admin_token().expect("first start").to_string();
    let client =
        runway_client::ConsoleClient::new(&console_url, Some(console_token.clone())).unwrap();
    let dev = crate::support::TestEnv::start().await;
    let test = crate::support::TestEnv::start().await;
    let tokens = dir.path().join("tokens");
    fs::create_dir(&tokens).unwrap();
    fs::write(tokens.join("dev.token"), &dev.token).unwrap();
    fs::write(tokens.join("test.token"), &test.token).unwrap();

    let text = fs::read_to_string(repo_root().join("examples/infra/basic.toml")).unwrap();
    // Two environments, reachable here (loopback), in pipeline main.
    let text = text
        .replace(
            "environments = [\"dev\", \"test\", \"prod\"]",
            "environments = [\"dev\", \"test\"]",
        )
        .replace("https://dev.example.com", &dev.url)
        .replace("https://test.example.com", &test.url);
    let text = text[..text.find("[[environment]]\nname = \"prod\"").unwrap()].to_string();
    let file = dir.path().join("infra.toml");
    fs::write(&file, &text).unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "infra",
            "apply",
            file.to_str().unwrap(),
            "--console",
            &console_url,
            "--console-token",
            &console_token,
            "--token-dir",
            tokens.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    let (ok, out, err) = apply(&["--dry-run"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("+ pipeline main"), "{out}");
    assert!(
        out.contains(&format!(
            "+ environment dev at {} (pipeline main, stage 1)",
            dev.url
        )),
        "{out}"
    );
    assert!(out.contains("+ environment test at"), "{out}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert!(client.pipelines().await.unwrap().is_empty());
    assert!(client.environments().await.unwrap().is_empty());

    let (ok, out, err) = apply(&[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied 3 change(s)"), "{out}");
    let pipeline = client.pipeline("main").await.unwrap();
    let stages: Vec<(i64, &str)> = pipeline
        .environments
        .iter()
        .map(|s| (s.order, s.name.as_str()))
        .collect();
    assert_eq!(stages, [(1, "dev"), (2, "test")]);

    // Idempotent: nothing left to change.
    let (ok, out, err) = apply(&[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("nothing to change"), "{out}");
    let (ok, out, _) = apply(&["--dry-run"]);
    assert!(ok && out.contains("nothing to change"), "{out}");

    // An environment the console has at another address: refused, nothing applied.
    let moved = text.replace(&test.url, "http://127.0.0.1:9");
    fs::write(&file, moved).unwrap();
    let (ok, out, err) = apply(&[]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("environment test is registered on the console at")
            && err.contains("runway env remove test"),
        "{err}"
    );
    assert_eq!(client.environments().await.unwrap().len(), 2);

    // A file that fails `infra check` is not applied.
    fs::write(
        &file,
        text.replace("catalog = \"console\"", "catalog = \"dev\""),
    )
    .unwrap();
    let (ok, _, err) = apply(&[]);
    assert!(!ok);
    assert!(err.contains("nothing was applied"), "{err}");
    server
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
