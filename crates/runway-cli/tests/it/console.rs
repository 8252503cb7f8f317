//! The infrastructure console (issue 8, parts 1–4) as real servers over
//! real sockets: a console and standalone environments on `127.0.0.1:0`,
//! driven through `ConsoleClient` and the `runway` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runway_api::console::{
    AddEnvironment, CreatePipeline, CreateServiceAccount, RemoveEnvironment,
};
use runway_api::v1::Scope;
use runway_client::{ClientError, ConsoleClient};
use runway_console::{ConsoleConfig, ConsoleServer};
use runway_store::console::new_key;
use runway_store::console::plans::{NewPlan, PlanOperation};

use crate::support::{TestEnv, guest, package};

/// A console on a free port with a fast poller, its admin token and a client.
struct TestConsole {
    server: Option<ConsoleServer>,
    dir: tempfile::TempDir,
    url: String,
    token: String,
    client: ConsoleClient,
}

impl TestConsole {
    async fn start() -> TestConsole {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.poll_interval = Duration::from_millis(200);
        let server = ConsoleServer::start(config).await.expect("console starts");
        let token = server.admin_token().expect("first start").to_string();
        let url = format!("http://{}", server.addr());
        let client = ConsoleClient::new(&url, Some(token.clone())).unwrap();
        TestConsole {
            server: Some(server),
            dir,
            url,
            token,
            client,
        }
    }

    fn console(&self) -> &runway_console::Console {
        self.server.as_ref().unwrap().console()
    }

    async fn add(
        &self,
        name: &str,
        env: &TestEnv,
        pipeline: Option<(&str, i64)>,
    ) -> runway_api::console::EnvironmentView {
        self.client
            .add_environment(&AddEnvironment {
                name: name.into(),
                address: env.url.clone(),
                token: env.token.clone(),
                pipeline: pipeline.map(|(p, _)| p.to_string()),
                order: pipeline.map(|(_, n)| n),
                allow_insecure: false,
                two_step: false,
            })
            .await
            .unwrap_or_else(|e| panic!("add {name}: {e}"))
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn environments_pipelines_health_and_apps_across_environments() {
    let console = TestConsole::start().await;
    let dev = TestEnv::start().await;
    let test = TestEnv::start().await;
    console
        .client
        .create_pipeline(&CreatePipeline {
            name: "main".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let d = console.add("dev", &dev, Some(("main", 1))).await;
    // Without --order: after the last stage.
    let t = console
        .client
        .add_environment(&AddEnvironment {
            name: "test".into(),
            address: test.url.clone(),
            token: test.token.clone(),
            pipeline: Some("main".into()),
            order: None,
            allow_insecure: false,
            two_step: false,
        })
        .await
        .unwrap();
    assert_eq!(t.order, Some(2));
    assert!(runway_store::console::is_key(&d.key));
    let health = d.health.as_ref().expect("polled once at registration");
    assert!(health.reachable, "{health:?}");
    assert_eq!(health.frontends.len(), 1);
    assert_eq!(
        health.runway_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );

    let pipeline = console.client.pipeline("main").await.unwrap();
    let names: Vec<_> = pipeline
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["dev", "test"]);

    // The console's credential on the environment: its own token, scope console.
    let info = console.client.info().await.unwrap();
    let tokens = dev.client.tokens().await.unwrap();
    let minted = tokens
        .iter()
        .find(|t| t.name == format!("console:{}", info.key))
        .expect("a console token on the environment");
    assert_eq!(minted.scope, Scope::Console);
    // Neither the admin token nor the minted token is stored in plaintext.
    let raw = std::fs::read(console.dir.path().join("console/catalog/console.db")).unwrap();
    for secret in [dev.token.as_str(), test.token.as_str()] {
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    let wal = std::fs::read(console.dir.path().join("console/catalog/console.db-wal"))
        .unwrap_or_default();
    assert!(
        !wal.windows(4).any(|w| w == b"rwt_"),
        "a token in plaintext in the WAL"
    );

    // An app published to dev appears in the matrix, with dev's digest.
    let published = dev.publish(&package("examples/hello")).await;
    console.console().poll_once(&d.key).await.unwrap();
    console.console().poll_once(&t.key).await.unwrap();
    let apps = console.client.apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    let hello = &apps[0];
    assert_eq!(hello.name, "hello");
    assert_eq!(hello.pipeline.as_deref(), Some("main"));
    let on_dev = hello
        .running
        .iter()
        .find(|r| r.environment == "dev")
        .unwrap();
    assert_eq!(on_dev.version.as_deref(), Some("0.1.0"));
    assert_eq!(on_dev.digest.as_deref(), Some(published.digest.as_str()));
    let version_key = on_dev.version_key.clone().expect("recorded as a version");
    let versions = console.client.app_versions("hello").await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].key, version_key);
    assert_eq!(versions[0].running_in, ["dev"]);
    let by_key = console.client.version(&version_key).await.unwrap();
    assert_eq!(by_key.digest, published.digest);

    // Publish the same bytes to test: the same version key, no new version.
    test.publish(&package("examples/hello")).await;
    console.console().poll_once(&t.key).await.unwrap();
    let versions = console.client.app_versions("hello").await.unwrap();
    assert_eq!(versions.len(), 1, "one digest, one version key");
    let mut running_in = versions[0].running_in.clone();
    running_in.sort();
    assert_eq!(running_in, ["dev", "test"]);

    // env list: both reachable, with generation and front-ends.
    let envs = console.client.environments().await.unwrap();
    assert_eq!(envs.len(), 2);
    for e in &envs {
        let h = e.health.as_ref().unwrap();
        assert!(h.reachable && h.generation.unwrap_or(0) >= 1, "{e:?}");
    }
    // The detail lists the apps it runs.
    let detail = console.client.environment("dev").await.unwrap();
    assert_eq!(detail.apps.len(), 1);

    // The API is documented (OpenAPI), for authenticated callers.
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!("{}/_runway/console/v1/openapi.json", console.url))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/_runway/console/v1/environments",
        "/_runway/console/v1/pipelines/{pipeline}",
        "/_runway/console/v1/apps/{app}/versions",
        "/_runway/console/v1/plans/{key}/status",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every route the console declares is documented, and nothing else.
    let routed = console_routes();
    assert!(routed.len() > 20, "{routed:?}");
    let documented: std::collections::BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    let missing: Vec<_> = routed
        .difference(&documented)
        .filter(|p| p.as_str() != "/_runway/console/v1/openapi.json")
        .collect();
    assert!(
        missing.is_empty(),
        "routed but not in the OpenAPI document: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(
        stale.is_empty(),
        "in the OpenAPI document but not routed: {stale:?}"
    );
    let anonymous = http
        .get(format!("{}/_runway/console/v1/openapi.json", console.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // Unknown routes answer JSON naming the prefix.
    let unknown = http
        .get(format!("{}/_runway/api/v1/apps", console.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: runway_api::ErrorBody = unknown.json().await.unwrap();
    assert!(
        body.message.contains("/_runway/console/v1"),
        "{}",
        body.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_registrations_are_refused_and_store_nothing() {
    let console = TestConsole::start().await;
    let env = TestEnv::start().await;
    let add = |name: &str, address: &str, token: &str, allow_insecure: bool| AddEnvironment {
        name: name.into(),
        address: address.into(),
        token: token.into(),
        pipeline: None,
        order: None,
        allow_insecure,
        two_step: false,
    };

    // A wrong token: refused clearly, nothing stored, no token minted.
    let (status, code, message) = api_error(
        console
            .client
            .add_environment(&add("dev", &env.url, "rwt_0000", false))
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "environment_token_refused"),
        "{message}"
    );
    assert!(
        message.contains("refused the token") && message.contains("Nothing was registered"),
        "{message}"
    );
    // A token that is not an admin token.
    let read = env
        .client
        .create_token(&runway_api::v1::CreateToken {
            name: "reader".into(),
            scope: Scope::Read,
        })
        .await
        .unwrap();
    let (status, code, message) = api_error(
        console
            .client
            .add_environment(&add("dev", &env.url, &read.token, false))
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "environment_token_refused"),
        "{message}"
    );
    assert!(message.contains("not an admin token"), "{message}");

    // Plain http to a host that is not loopback, without --allow-insecure.
    let (status, code, message) = api_error(
        console
            .client
            .add_environment(&add("dev", "http://203.0.113.7:8080", &env.token, false))
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "insecure_address"),
        "{message}"
    );
    assert!(
        message.contains("requires HTTPS") && message.contains("--allow-insecure"),
        "{message}"
    );

    // An address nobody answers at.
    let (status, code, message) = api_error(
        console
            .client
            .add_environment(&add("dev", "http://127.0.0.1:1", &env.token, false))
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (502, "environment_unreachable"),
        "{message}"
    );

    // Bad name, unknown pipeline.
    let (status, code, _) = api_error(
        console
            .client
            .add_environment(&add("Dev!", &env.url, &env.token, false))
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_name"));
    let mut in_pipeline = add("dev", &env.url, &env.token, false);
    in_pipeline.pipeline = Some("nope".into());
    let (status, code, _) = api_error(console.client.add_environment(&in_pipeline).await);
    assert_eq!((status, code.as_str()), (404, "pipeline_not_found"));

    assert!(
        console.client.environments().await.unwrap().is_empty(),
        "nothing stored"
    );
    let tokens = env.client.tokens().await.unwrap();
    assert!(
        tokens.iter().all(|t| !t.name.starts_with("console:")),
        "no token minted on the environment: {tokens:?}"
    );

    // Unknown environment: 404 naming it, on show and remove.
    for r in [
        console.client.environment("nowhere").await.map(drop),
        console
            .client
            .remove_environment("nowhere", &RemoveEnvironment::default())
            .await,
    ] {
        let (status, code, message) = api_error(r);
        assert_eq!((status, code.as_str()), (404, "environment_not_found"));
        assert!(message.contains("\"nowhere\""), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_account_tokens_are_shown_once_and_revocable() {
    let console = TestConsole::start().await;
    let created = console
        .client
        .create_service_account(&CreateServiceAccount {
            name: "ci".into(),
            description: "the pipeline".into(),
            role: Some("Operations".into()),
        })
        .await
        .unwrap();
    assert!(created.token.starts_with("rwc_"));
    let ci = ConsoleClient::new(&console.url, Some(created.token.clone())).unwrap();
    let me = ci.info().await.unwrap();
    assert_eq!(
        (me.principal.kind.as_str(), me.principal.name.as_str()),
        ("service_account", "ci")
    );
    // A service account with a role below Administrator works the console
    // but does not manage accounts.
    ci.environments().await.unwrap();
    let (status, code, _) = api_error(ci.service_accounts().await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    // Listed without secrets.
    let listed = console.client.service_accounts().await.unwrap();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&created.token));

    // Revoked: refused, naming the token.
    console
        .client
        .revoke_account_token("ci", created.info.id)
        .await
        .unwrap();
    let (status, code, message) = api_error(ci.info().await);
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("revoked"), "{message}");
    // Revoking again: 404.
    let (status, _, _) = api_error(
        console
            .client
            .revoke_account_token("ci", created.info.id)
            .await,
    );
    assert_eq!(status, 404);

    // An environment's token is not a console token; no token at all.
    let (status, _, message) = api_error(
        ConsoleClient::new(&console.url, Some("rwt_abc".into()))
            .unwrap()
            .info()
            .await,
    );
    assert_eq!(status, 401);
    assert!(message.contains("rwc_"), "{message}");
    let (status, _, _) = api_error(ConsoleClient::new(&console.url, None).unwrap().info().await);
    assert_eq!(status, 401);

    // Disabling revokes every token.
    let second = console
        .client
        .create_account_token("ci", "second")
        .await
        .unwrap();
    console.client.disable_service_account("ci").await.unwrap();
    let (status, _, _) = api_error(
        ConsoleClient::new(&console.url, Some(second.token))
            .unwrap()
            .info()
            .await,
    );
    assert_eq!(status, 401);
    let _ = &console.token;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_remove_is_refused_while_a_plan_targets_it() {
    let console = TestConsole::start().await;
    let dev = TestEnv::start().await;
    let test = TestEnv::start().await;
    let d = console.add("dev", &dev, None).await;
    let t = console.add("test", &test, None).await;
    dev.publish(&package("examples/hello")).await;
    console.console().poll_once(&d.key).await.unwrap();
    let version = console
        .client
        .app_versions("hello")
        .await
        .unwrap()
        .remove(0);
    let store = console.console().store();
    let plan = store
        .create_plan(&NewPlan {
            id: new_key(),
            source_environment_id: d.key.clone(),
            target_environment_id: t.key.clone(),
            notes: String::new(),
            two_step: false,
            allow_out_of_order: false,
            operations: vec![PlanOperation::Deploy {
                version_id: version.key.clone(),
                rollback: false,
            }],
            properties: vec![],
            created_by: None,
        })
        .await
        .unwrap();
    let (status, code, message) = api_error(
        console
            .client
            .remove_environment("test", &RemoveEnvironment::default())
            .await,
    );
    assert_eq!((status, code.as_str()), (409, "conflict"), "{message}");
    assert!(
        message.contains(&plan.id),
        "the message names the plan: {message}"
    );
    assert!(
        console.client.environment("test").await.is_ok(),
        "nothing changed"
    );
    let console_token = |tokens: Vec<runway_api::v1::TokenInfo>| {
        tokens
            .into_iter()
            .filter(|t| t.name.starts_with("console:") && t.revoked_at_ms.is_none())
            .count()
    };
    assert_eq!(console_token(test.client.tokens().await.unwrap()), 1);
    store.delete_plan(&plan.id).await.unwrap();
    console
        .client
        .remove_environment("test", &RemoveEnvironment::default())
        .await
        .unwrap();
    let (status, _, _) = api_error(console.client.environment("test").await);
    assert_eq!(status, 404);
    assert_eq!(
        console_token(test.client.tokens().await.unwrap()),
        0,
        "the console gave its token on the environment back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_environment_is_marked_not_fatal() {
    let console = TestConsole::start().await;
    let dev = TestEnv::start().await;
    let mut gone = TestEnv::start().await;
    let d = console.add("dev", &dev, None).await;
    let g = console.add("gone", &gone, None).await;
    gone.env
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
    assert!(console.console().poll_once(&g.key).await.is_err());
    console.console().poll_once(&d.key).await.unwrap();
    let envs = console.client.environments().await.unwrap();
    let health = |name: &str| {
        envs.iter()
            .find(|e| e.name == name)
            .unwrap()
            .health
            .clone()
            .unwrap()
    };
    let gone_health = health("gone");
    assert!(!gone_health.reachable);
    assert!(
        gone_health
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach"),
        "{gone_health:?}"
    );
    assert!(
        gone_health.last_seen_at_ms.is_some(),
        "when it was last seen is kept"
    );
    assert!(health("dev").reachable);

    // Removing it needs its token given back: refused while it does not
    // answer, unless forced.
    let (status, code, message) = api_error(
        console
            .client
            .remove_environment("gone", &RemoveEnvironment::default())
            .await,
    );
    assert_eq!((status, code.as_str()), (502, "environment_unreachable"));
    assert!(
        message.contains("--force") && message.contains("Nothing was removed"),
        "{message}"
    );
    assert!(console.client.environment("gone").await.is_ok());
    console
        .client
        .remove_environment("gone", &RemoveEnvironment { force: true })
        .await
        .unwrap();
    assert_eq!(api_error(console.client.environment("gone").await).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_and_environment_refuse_each_others_database() {
    let env = TestEnv::start().await;
    // The environment's SQLite catalogs, given as the console's database.
    let dir = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
    config.database = Some(env.data_dir().join("catalog").display().to_string());
    let err = format!(
        "{:#}",
        ConsoleServer::start(config).await.err().expect("refused")
    );
    assert!(err.contains("holds an environment's catalog"), "{err}");
    // And on PostgreSQL.
    let db = runway_store::testing::TestDatabase::create().await;
    runway_store::Store::open(&db.url)
        .await
        .unwrap()
        .close()
        .await;
    let mut config =
        ConsoleConfig::new(dir.path().join("console2"), "127.0.0.1:0".parse().unwrap());
    config.database = Some(db.url.clone());
    let err = format!(
        "{:#}",
        ConsoleServer::start(config).await.err().expect("refused")
    );
    assert!(err.contains("holds an environment's catalogs"), "{err}");

    // An environment refuses a console's database.
    let console = TestConsole::start().await;
    let console_dir = console.dir.path().join("console");
    let mut config =
        runway_cli::standalone::StandaloneConfig::new(&console_dir, "127.0.0.1:0".parse().unwrap());
    config.environment = "dev".into();
    let err = format!(
        "{:#}",
        runway_cli::standalone::Standalone::start(config)
            .await
            .err()
            .expect("refused")
    );
    assert!(err.contains("infrastructure console"), "{err}");
    assert!(
        !console_dir.join("catalog/platform.db").exists(),
        "nothing created"
    );
    // Nor can a console start on an environment's data directory.
    let config = ConsoleConfig::new(env.data_dir(), "127.0.0.1:0".parse().unwrap());
    let err = format!(
        "{:#}",
        ConsoleServer::start(config).await.err().expect("refused")
    );
    assert!(err.contains("holds an environment's catalog"), "{err}");
}

fn runway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runway"))
}

/// `runway up` (the infrastructure) as a process, the CLI logged in to its
/// console: env list, pipeline show, app publish --env dev, apps, logout.
#[test]
fn up_runs_the_infrastructure_and_the_cli_drives_it() {
    let hello = guest("examples/hello");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".runway");
    let config = dir.path().join("config");
    let mut child = runway()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--console-poll-ms",
            "200",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runway up starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addresses, mut token, mut expect_token) = (Vec::new(), None, false);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" listening on ").nth(1) {
            addresses.push(rest.split_whitespace().next().unwrap().to_string());
        } else if expect_token {
            token = Some(line.trim().to_string());
            expect_token = false;
        } else if line.contains("console admin token (shown once") {
            expect_token = true;
        } else if line.contains("ctrl-c to stop") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(
        addresses.len(),
        4,
        "console, dev, test, prod: {addresses:?}"
    );
    let console_url = addresses[0].clone();
    let token = token.expect("the console admin token is printed once");
    let token_file = data.join("console/admin.token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let cli = |args: &[&str]| {
        let out = runway()
            .args(args)
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", &config)
            .env_remove("RUNWAY_ENV")
            .env_remove("RUNWAY_TOKEN")
            .env_remove("RUNWAY_CONSOLE")
            .env_remove("RUNWAY_CONSOLE_TOKEN")
            .env("CI", "true")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Not logged in yet: one line saying how.
    let (ok, _, err) = cli(&["env", "list"]);
    assert!(!ok && err.contains("runway login"), "{err}");
    let (ok, out, err) = cli(&[
        "login",
        &console_url,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let login = config.join("runway/login.json");
    assert_eq!(
        std::fs::metadata(&login).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (ok, out, err) = cli(&["env", "list", "--json"]);
    assert!(ok, "{err}");
    let envs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<_> = envs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["dev", "test", "prod"]);
    let prod = &envs[2];
    assert_eq!(
        prod["health"]["frontends"].as_array().unwrap().len(),
        2,
        "{prod}"
    );
    let (ok, out, _) = cli(&["env", "list"]);
    assert!(
        ok && out.contains("HEALTH") && out.contains("2/2 ready"),
        "{out}"
    );
    let (ok, out, _) = cli(&["pipeline", "show", "main"]);
    assert!(ok && out.contains("dev → test → prod"), "{out}");

    // Publish by console environment name, with a token the console issues for dev.
    let (ok, out, err) = cli(&["app", "publish", "--env", "dev", hello.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&[
        "app",
        "publish",
        "--env",
        "nowhere",
        hello.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("\"nowhere\"") && err.trim().lines().count() == 1,
        "{err}"
    );
    // The matrix shows it in dev once the poller saw it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out, err) = cli(&["apps"]);
        assert!(ok, "{err}");
        if out.contains("hello") && out.contains("0.1.0") {
            assert!(out.contains("DEV") && out.contains("PROD"), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "hello never appeared: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // `runway env --env dev` still shows one environment directly.
    let (ok, out, err) = cli(&["env", "--env", "dev"]);
    assert!(ok && out.contains("generation"), "{out}{err}");

    let (ok, out, _) = cli(&["logout"]);
    assert!(ok && out.contains("logged out"), "{out}");
    assert!(!login.exists());

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "runway up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `/_runway/console/v1` paths the console's modules route: the literal
/// first argument of every `.route(` in `crates/runway-console/src` (axum's
/// router cannot list its routes).
fn console_routes() -> std::collections::BTreeSet<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runway-console/src");
    let mut out = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in text.split(".route(").skip(1) {
            let call = call.trim_start();
            if let Some(rest) = call.strip_prefix('"')
                && let Some(end) = rest.find('"')
                && rest[..end].starts_with("/_runway/console/v1")
            {
                out.insert(rest[..end].to_string());
            }
        }
    }
    out
}
