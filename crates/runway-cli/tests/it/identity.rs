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

/// `runway role list|show|create|delete`, `runway user role` and `runway
/// team create|list|show|delete|add-app|remove-app|add-member|remove-member`
/// against a console, as its first administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_roles_and_teams() {
    let c = IdConsole::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let run = |args: &[&str]| {
        let config = config.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = if args[0] == "login" || args.iter().any(|a| a == "--password-stdin") {
            format!(
                "{}\n",
                if args[0] == "login" {
                    &c.admin_password
                } else {
                    ADA_PASSWORD
                }
            )
        } else {
            String::new()
        };
        async move {
            tokio::task::spawn_blocking(move || run_cli(&config, &args, &stdin))
                .await
                .unwrap()
        }
    };
    let (ok, out, err) = run(&[
        "login",
        &c.url,
        "--user",
        "administrator",
        "--password-stdin",
    ])
    .await;
    assert!(ok, "{out}{err}");

    let steps: &[(&[&str], &str)] = &[
        (
            &[
                "role",
                "create",
                "Ops",
                "--level",
                "*=monitor",
                "--level",
                "prod=full-control",
                "--manage-infrastructure",
            ],
            "created role Ops: prod=full-control *=monitor",
        ),
        (&["role", "list"], "Ops"),
        (&["role", "show", "ops"], "manage infrastructure"),
        (
            &[
                "user",
                "add",
                "ada",
                "--email",
                "ada@example.com",
                "--role",
                "Ops",
                "--password-stdin",
            ],
            "created user ada (role Ops)",
        ),
        (
            &["user", "role", "ada", "developer"],
            "user ada now has role Developer",
        ),
        (
            &[
                "team",
                "create",
                "payments",
                "--app",
                "billing",
                "--member",
                "ada=Operations",
            ],
            "created team payments (apps: billing; members: ada=Operations)",
        ),
        (
            &["team", "add-app", "payments", "notes"],
            "apps: billing notes",
        ),
        (
            &["team", "remove-app", "payments", "billing"],
            "apps: notes",
        ),
        (
            &["team", "add-member", "payments", "ada=Ops"],
            "members: ada=Ops",
        ),
        (&["team", "show", "payments"], "created by"),
        (&["team", "list"], "payments"),
        (&["team", "remove-member", "payments", "ada"], "members: -"),
        (&["role", "delete", "Ops"], "deleted role Ops"),
        (&["team", "delete", "payments"], "deleted team payments"),
        (
            &["service-account", "create", "ci", "--role", "Developer"],
            "created service account ci (role Developer)",
        ),
        (&["service-account", "list"], "Developer"),
        (
            &["service-account", "rotate", "ci", "--grace", "10m"],
            "the old tokens of ci keep working for 10m",
        ),
        (
            &["service-account", "role", "ci", "Tester"],
            "now has role Tester",
        ),
        (
            &["service-account", "revoke", "ci"],
            "every token of it is refused",
        ),
        (
            &["audit", "--action", "roles", "--since", "1h"],
            "POST /roles",
        ),
    ];
    for (args, needle) in steps {
        let (ok, out, err) = run(args).await;
        assert!(ok, "{args:?}: {out}{err}");
        assert!(out.contains(needle), "{args:?}: {needle:?} in {out}");
    }
    let (ok, out, _) = run(&["role", "list"]).await;
    assert!(ok && !out.contains("Ops"), "{out}");
    // The export: one JSON object per line, newest first, refusals included.
    let (ok, out, err) = run(&["audit", "--json"]).await;
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(rows.iter().any(|r| r["action"] == "POST /teams"
        && r["principal"] == "administrator"
        && r["outcome"] == "done"));

    // Bad input, each refused with a precise message.
    let refusals: &[(&[&str], &str)] = &[
        (
            &["role", "create", "Bad", "--level", "prod"],
            "expected SCOPE=LEVEL",
        ),
        (
            &["role", "create", "Bad", "--level", "prod=admin"],
            "unknown level \"admin\"",
        ),
        (
            &["role", "delete", "Developer"],
            "built-in roles cannot be deleted",
        ),
        (&["user", "role", "ada", "Janitor"], "no role \"Janitor\""),
        (
            &["user", "role", "administrator", "Tester"],
            "your own role",
        ),
        (
            &["team", "create", "t", "--member", "ada"],
            "expected USER=ROLE",
        ),
        (&["team", "show", "payments"], "no team \"payments\""),
        (
            &["service-account", "rotate", "ci", "--grace", "soon"],
            "invalid value 'soon'",
        ),
        (
            &["audit", "--since", "yesterday"],
            "expected an age like 30s",
        ),
    ];
    for (args, needle) in refusals {
        let (ok, out, err) = run(args).await;
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(err.contains(needle), "{args:?}: {needle:?} in {err}");
    }
}

/// Levels enforced over real processes: a console and dev → test → prod
/// (standalone environments), hello 0.1.0 in dev, users of the built-in
/// roles. Each refusal is a 403 naming the user, the level, the
/// environment and the app, leaves nothing behind, and is an audit row;
/// allowed changes are audit rows too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_are_enforced_and_audited_across_environments() {
    use runway_api::console::identity::{AuditQuery, CreateTeam, CreateUser, TeamMember};
    use runway_api::console::plans::{CreatePlan, PlanOperationRequest};
    use runway_api::console::{AddEnvironment, CreatePipeline};

    use crate::support::{TestEnv, package};

    let c = IdConsole::start().await;
    let admin = c.login("administrator", &c.admin_password).await;
    admin
        .create_pipeline(&CreatePipeline {
            name: "main".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let envs = [
        TestEnv::start().await,
        TestEnv::start().await,
        TestEnv::start().await,
    ];
    envs[0].publish(&package("examples/hello")).await;
    for (i, name) in ["dev", "test", "prod"].into_iter().enumerate() {
        admin
            .add_environment(&AddEnvironment {
                name: name.into(),
                address: envs[i].url.clone(),
                token: envs[i].token.clone(),
                pipeline: Some("main".into()),
                order: Some(i as i64 + 1),
                allow_insecure: false,
                two_step: false,
            })
            .await
            .unwrap_or_else(|e| panic!("add {name}: {e}"));
    }
    for (name, role) in [
        ("ada", "Developer"),
        ("tess", "Tester"),
        ("olga", "Operations"),
    ] {
        admin
            .create_user(&CreateUser {
                name: name.into(),
                email: format!("{name}@example.com"),
                role: role.into(),
                display_name: String::new(),
                password: Some(ADA_PASSWORD.into()),
            })
            .await
            .unwrap();
    }
    let ada = c.login("ada", ADA_PASSWORD).await;
    let tess = c.login("tess", ADA_PASSWORD).await;
    let olga = c.login("olga", ADA_PASSWORD).await;
    let plan = |from: &str, to: &str| CreatePlan {
        source: from.into(),
        target: to.into(),
        operations: vec![PlanOperationRequest::Deploy {
            app: "hello".into(),
            version: "0.1.0".into(),
            rollback: false,
        }],
        properties: Default::default(),
        notes: String::new(),
        two_step: None,
        allow_out_of_order: true,
    };
    let names = |envs: Vec<runway_api::console::EnvironmentView>| {
        envs.into_iter().map(|e| e.name).collect::<Vec<_>>()
    };

    // Listings show what each may see: a Tester has no access to prod.
    assert_eq!(
        names(ada.environments().await.unwrap()),
        ["dev", "test", "prod"]
    );
    assert_eq!(names(tess.environments().await.unwrap()), ["dev", "test"]);
    let main = tess.pipeline("main").await.unwrap();
    assert_eq!(main.environments.len(), 2, "{main:?}");
    let (s, _, message) = api_error(tess.environment("prod").await);
    assert_eq!(s, 403, "{message}");
    assert!(
        message.contains("user 'tess' (role Tester) cannot see this environment: that needs monitor on environment prod, and it has no access there"),
        "{message}"
    );

    // A Developer deploying to prod; a Tester planning into prod.
    let refusals = [
        (
            ada.create_plan(&plan("dev", "prod")).await.map(drop),
            "user 'ada' (role Developer) cannot create a deployment plan: that needs change & \
             deploy on app hello in environment prod, and it has monitor there",
        ),
        (
            tess.create_plan(&plan("test", "prod")).await.map(drop),
            "user 'tess' (role Tester) cannot create a deployment plan: that needs change & \
             deploy on app hello in environment prod, and it has no access there",
        ),
        // Managing users, and infrastructure.
        (
            ada.users().await.map(drop),
            "user 'ada' (role Developer) cannot manage users, roles, teams and service \
             accounts: that needs the right to manage users and roles",
        ),
        (
            olga.create_pipeline(&CreatePipeline {
                name: "other".into(),
                description: String::new(),
            })
            .await
            .map(drop),
            "user 'olga' (role Operations) cannot create a pipeline: that needs the right to \
             manage infrastructure",
        ),
        // Escalation: a team role of one's own.
        (
            ada.set_team_member(
                "anything",
                &TeamMember {
                    member: "ada".into(),
                    role: "Administrator".into(),
                },
            )
            .await
            .map(drop),
            "needs the right to manage users and roles",
        ),
    ];
    for (result, needle) in refusals {
        let (s, code, message) = api_error(result);
        assert_eq!((s, code.as_str()), (403, "forbidden"), "{message}");
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    assert!(
        admin.plans(None).await.unwrap().is_empty(),
        "no plan was saved"
    );
    assert!(
        admin.pipeline("other").await.is_err(),
        "no pipeline was made"
    );

    // Operations deploy to prod; a team gives ada change & deploy on hello there.
    let saved = olga.create_plan(&plan("test", "prod")).await.unwrap();
    admin
        .create_team(&CreateTeam {
            name: "hello-team".into(),
            apps: vec!["hello".into()],
            members: vec![TeamMember {
                member: "ada".into(),
                role: "Operations".into(),
            }],
        })
        .await
        .unwrap();
    ada.create_plan(&plan("dev", "prod")).await.unwrap();
    // Tess sees no plan into prod; ada does, and may delete olga's.
    assert!(tess.plans(None).await.unwrap().is_empty());
    assert_eq!(ada.plans(None).await.unwrap().len(), 2);
    let (s, _, message) = api_error(tess.delete_plan(&saved.key).await);
    assert_eq!(s, 403, "{message}");
    ada.delete_plan(&saved.key).await.unwrap();

    // The audit log has the refusals (where, why) and the changes done.
    let audit = |q: AuditQuery| {
        let admin = admin.clone();
        async move { admin.audit(&q).await.unwrap() }
    };
    let tess_rows = audit(AuditQuery {
        user: Some("tess".into()),
        ..Default::default()
    })
    .await;
    let refused: Vec<_> = tess_rows
        .iter()
        .filter(|r| r.outcome == "refused")
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.action == "create a deployment plan"
                && r.environment.as_deref() == Some("prod")
                && r.app.as_deref() == Some("hello")
                && r.status == 403
                && r.reason.contains("change & deploy")
                && r.credential.starts_with("session #")
                && r.address == "127.0.0.1"),
        "{tess_rows:#?}"
    );
    assert!(
        refused
            .iter()
            .any(|r| r.action == "delete a deployment plan"),
        "{tess_rows:#?}"
    );
    let prod_rows = audit(AuditQuery {
        env: Some("prod".into()),
        action: Some("POST /plans".into()),
        ..Default::default()
    })
    .await;
    let done: Vec<_> = prod_rows
        .iter()
        .filter(|r| r.outcome == "done")
        .map(|r| (r.principal.as_str(), r.app.as_deref(), r.status))
        .collect();
    assert_eq!(
        done,
        [("ada", Some("hello"), 201), ("olga", Some("hello"), 201)],
        "{prod_rows:#?}"
    );
    let (s, _, _) = api_error(ada.audit(&AuditQuery::default()).await);
    assert_eq!(
        s, 403,
        "reading the audit log needs the right to manage users"
    );
    // A request without a valid credential is recorded as anonymous.
    let stranger = c.with("rws_0000000000000000000000000000000000000000000000000000000000000000");
    assert_eq!(api_error(stranger.environments().await).0, 401);
    let anonymous = audit(AuditQuery {
        user: Some("-".into()),
        ..Default::default()
    })
    .await;
    assert!(
        anonymous.iter().any(|r| r.principal_kind == "anonymous"
            && r.status == 401
            && r.action == "GET /environments"),
        "{anonymous:#?}"
    );
}
