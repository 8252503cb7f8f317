//! The CLI's side of IT users (issue 9, stage 1): `runway user
//! add|list|show|disable|enable|unlock|passwd` and `runway login --user
//! --password-stdin` / `runway logout` against a real console. (The API's
//! side is tested in runway-console, `users_tests.rs`.)

use std::io::Write as _;
use std::process::{Command, Stdio};

use runway_client::{ClientError, ConsoleClient};
use runway_console::users::IdentityConfig;
use runway_console::{ConsoleConfig, ConsoleServer};

const ADA_PASSWORD: &str = "Tangerine-Viaduct-Osprey-42";

fn api_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

struct IdConsole {
    _server: ConsoleServer,
    _dir: tempfile::TempDir,
    url: String,
    admin_password: String,
}

impl IdConsole {
    async fn start() -> IdConsole {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.identity = IdentityConfig {
            login_delay: std::time::Duration::ZERO,
            ..IdentityConfig::default()
        };
        let server = ConsoleServer::start(config).await.expect("console starts");
        let url = format!("http://{}", server.addr());
        let admin_password = server.admin_password().unwrap().to_string();
        IdConsole {
            _server: server,
            _dir: dir,
            url,
            admin_password,
        }
    }

    fn with(&self, token: &str) -> ConsoleClient {
        ConsoleClient::new(&self.url, Some(token.to_string())).unwrap()
    }

    async fn login(&self, user: &str, password: &str) -> ConsoleClient {
        let s = ConsoleClient::new(&self.url, None)
            .unwrap()
            .login(user, password)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        self.with(&s.token)
    }
}

fn runway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runway"))
}

/// Runs `runway ARGS` logged in through `config`, `stdin` on its stdin.
fn run_cli(config: &std::path::Path, args: &[String], stdin: &str) -> (bool, String, String) {
    let mut child = runway()
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("RUNWAY_CONSOLE")
        .env_remove("RUNWAY_CONSOLE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early may not read its stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `runway user add|list|show|disable|enable|unlock|passwd` and `runway
/// login --user --password-stdin` / `runway logout` against a console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_users_and_logs_them_in() {
    let c = IdConsole::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let run = |args: Vec<String>, stdin: String| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || run_cli(&config, &args, &stdin))
                .await
                .unwrap()
        }
    };
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (ok, out, err) = run(
        v(&[
            "login",
            &c.url,
            "--user",
            "administrator",
            "--password-stdin",
        ]),
        format!("{}\n", c.admin_password),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("as user 'administrator' (role Administrator"),
        "{out}"
    );
    let login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("runway/login.json")).unwrap()).unwrap();
    assert!(login["token"].as_str().unwrap().starts_with("rws_"));
    assert_eq!(login["user"], "administrator");

    let (ok, out, err) = run(
        v(&[
            "user",
            "add",
            "ada",
            "--email",
            "ada@example.com",
            "--role",
            "Developer",
        ]),
        String::new(),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("created user ada (role Developer)"), "{out}");
    assert!(out.contains("password (shown once"), "{out}");
    let generated = out.lines().last().unwrap().trim().to_string();
    c.login("ada", &generated).await;
    let (ok, out, err) = run(
        v(&[
            "user",
            "add",
            "bob",
            "--email",
            "bob@example.com",
            "--role",
            "Operations",
            "--password-stdin",
        ]),
        "short\n".into(),
    )
    .await;
    assert!(!ok, "{out}");
    assert!(err.contains("at least 12"), "{err}");
    let (ok, out, err) = run(
        v(&[
            "user",
            "add",
            "bob",
            "--email",
            "bob@example.com",
            "--role",
            "Operations",
            "--password-stdin",
        ]),
        format!("{ADA_PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(!out.contains("shown once"), "{out}");
    let (ok, out, _) = run(v(&["user", "list"]), String::new()).await;
    assert!(ok);
    for needle in ["administrator", "ada", "bob", "Operations", "active"] {
        assert!(out.contains(needle), "{needle} in {out}");
    }
    let (ok, out, _) = run(v(&["user", "disable", "bob"]), String::new()).await;
    assert!(ok && out.contains("user bob disabled"), "{out}");
    let (ok, out, _) = run(v(&["user", "show", "bob"]), String::new()).await;
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, _) = run(v(&["user", "enable", "bob"]), String::new()).await;
    assert!(ok && out.contains("user bob enabled"), "{out}");
    let (ok, out, _) = run(v(&["user", "unlock", "bob"]), String::new()).await;
    assert!(ok && out.contains("user bob unlocked"), "{out}");
    // An administrator resets bob's password: generated, printed once.
    let (ok, out, err) = run(v(&["user", "passwd", "bob"]), String::new()).await;
    assert!(ok, "{out}{err}");
    let reset = out.lines().last().unwrap().trim().to_string();
    c.login("bob", &reset).await;

    // As bob: change the own password (current, then new, on stdin).
    let (ok, out, err) = run(
        v(&["login", &c.url, "--user", "bob", "--password-stdin"]),
        format!("{reset}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        v(&["user", "passwd", "--password-stdin"]),
        format!("{reset}\nAnother-Lengthy-Passphrase-7\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("password of user bob changed"), "{out}");
    // bob is no administrator.
    let (ok, _, err) = run(v(&["user", "list"]), String::new()).await;
    assert!(!ok && err.contains("manage users and roles"), "{err}");
    // Logging out ends the session on the console.
    let token = {
        let login: serde_json::Value =
            serde_json::from_slice(&std::fs::read(config.join("runway/login.json")).unwrap())
                .unwrap();
        login["token"].as_str().unwrap().to_string()
    };
    let (ok, out, err) = run(v(&["logout"]), String::new()).await;
    assert!(ok, "{out}{err}");
    let (status, _, message) = api_error(c.with(&token).info().await);
    assert_eq!(status, 401);
    assert!(message.contains("logged out"), "{message}");
    // A wrong password: a clear refusal.
    let (ok, _, err) = run(
        v(&["login", &c.url, "--user", "bob", "--password-stdin"]),
        "Wrong-Password-123\n".into(),
    )
    .await;
    assert!(!ok && err.contains("wrong username or password"), "{err}");
}
