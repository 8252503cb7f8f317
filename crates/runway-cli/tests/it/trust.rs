//! Environments trust the console (issue 9 part 6) and the environment's
//! audit log (part 7, environment half), over real sockets: a console and
//! two standalone environments (dev, prod in pipeline `main`), IT users
//! logged in, console-issued tokens presented to the environments' API and
//! through the `runway` binary.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use runway_api::console::identity::CreateUser;
use runway_api::console::{AddEnvironment, CreatePipeline};
use runway_api::trust::{AuditOutcome, AuditQuery, TokenClaims, TrustLevel};
use runway_api::v1::{ConfigPatch, LogQueryParams};
use runway_client::{Client, ClientError, ConsoleClient};
use runway_console::users::IdentityConfig;
use runway_console::{ConsoleConfig, ConsoleServer};

use crate::support::{TestEnv, package, repackage};

const PASSWORD: &str = "Tangerine-Viaduct-Osprey-42";

fn api_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A console with dev (stage 1) and prod (stage 2) registered, `hello`
/// (with a secret property set) running on prod, and users ada
/// (Developer: monitor on prod) and tom (Tester: no access to prod).
struct Infra {
    server: ConsoleServer,
    _dir: tempfile::TempDir,
    url: String,
    admin: ConsoleClient,
    dev: TestEnv,
    prod: TestEnv,
    prod_key: String,
    dev_key: String,
}

impl Infra {
    async fn start() -> Infra {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.poll_interval = Duration::from_millis(200);
        config.identity = IdentityConfig {
            login_delay: Duration::ZERO,
            ..IdentityConfig::default()
        };
        let server = ConsoleServer::start(config).await.expect("console starts");
        let url = format!("http://{}", server.addr());
        let admin = ConsoleClient::new(&url, server.admin_token().map(String::from)).unwrap();
        admin
            .create_pipeline(&CreatePipeline {
                name: "main".into(),
                description: String::new(),
            })
            .await
            .unwrap();
        let (dev, prod) = tokio::join!(TestEnv::start(), TestEnv::start());
        let mut keys = Vec::new();
        for (name, env, order) in [("dev", &dev, 1), ("prod", &prod, 2)] {
            let view = admin
                .add_environment(&AddEnvironment {
                    name: name.into(),
                    address: env.url.clone(),
                    token: env.token.clone(),
                    pipeline: Some("main".into()),
                    order: Some(order),
                    allow_insecure: false,
                    two_step: false,
                })
                .await
                .unwrap_or_else(|e| panic!("add {name}: {e}"));
            keys.push(view.key);
        }
        let hello = repackage(&package("examples/hello"), |m| {
            format!("{m}\n[properties.api_key]\ntype = \"string\"\nsecret = true\n")
        });
        prod.publish(&hello).await;
        let values = BTreeMap::from([("api_key".to_string(), Some("s3cr3t-value".to_string()))]);
        prod.client
            .set_config("hello", &ConfigPatch { values })
            .await
            .unwrap();
        for (user, role) in [("ada", "Developer"), ("tom", "Tester")] {
            admin
                .create_user(&CreateUser {
                    name: user.into(),
                    email: format!("{user}@example.com"),
                    role: role.into(),
                    display_name: String::new(),
                    password: Some(PASSWORD.into()),
                })
                .await
                .unwrap();
        }
        Infra {
            server,
            _dir: dir,
            url,
            admin,
            dev,
            prod,
            dev_key: keys[0].clone(),
            prod_key: keys[1].clone(),
        }
    }

    async fn login(&self, user: &str) -> ConsoleClient {
        let session = ConsoleClient::new(&self.url, None)
            .unwrap()
            .login(user, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        ConsoleClient::new(&self.url, Some(session.token)).unwrap()
    }

    /// A token signed with the console's current key, with `edit` applied
    /// to valid claims for prod (`kid`: the header's key id).
    async fn forge(&self, kid: Option<&str>, edit: impl FnOnce(&mut TokenClaims)) -> String {
        let store = self.server.console().store();
        let current = store.current_signing_key().await.unwrap().unwrap();
        let key = jsonwebtoken::EncodingKey::from_ed_der(
            &hex::decode(&current.private_pkcs8_hex).unwrap(),
        );
        let now = runway_store::now_ms() as u64 / 1000;
        let mut claims = TokenClaims {
            iss: format!("runway-console:{}", store.id()),
            aud: self.prod_key.clone(),
            sub: "ada".into(),
            kind: "user".into(),
            lvl: TrustLevel::Monitor,
            apps: BTreeMap::new(),
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: "forged".into(),
        };
        edit(&mut claims);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = kid
            .map(String::from)
            .or(Some(current.record.kid.clone()))
            .filter(|k| !k.is_empty());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn on_prod(&self, token: &str) -> Client {
        Client::new(&self.prod.url, Some(token.to_string())).unwrap()
    }

    async fn refused_rows(&self) -> Vec<runway_api::trust::AuditEntry> {
        self.prod
            .client
            .audit(&AuditQuery {
                outcome: Some(AuditOutcome::Refused),
                limit: Some(1000),
                ..AuditQuery::default()
            })
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_tokens_carry_levels_and_every_refusal_is_audited() {
    let infra = Infra::start().await;
    let ada = infra.login("ada").await;

    // Registration taught prod the console's key and its audience.
    let trust = infra.prod.client.console_trust().await.unwrap();
    assert_eq!(trust.audience, infra.prod_key);
    assert_eq!(trust.keys.len(), 1);

    // Monitor on prod: reads work, secret values are never returned.
    let issued = ada.environment_token("prod").await.unwrap();
    assert_eq!(issued.level, TrustLevel::Monitor);
    assert!(issued.expires_at_ms - runway_store::now_ms() <= 600_000);
    let as_ada = infra.on_prod(&issued.token);
    as_ada.apps().await.expect("monitor reads apps");
    as_ada
        .logs(&LogQueryParams::default())
        .await
        .expect("monitor reads logs");
    let config = as_ada.config("hello").await.unwrap();
    let secret = config.iter().find(|p| p.name == "api_key").unwrap();
    assert!(secret.secret && secret.value.is_none(), "{secret:?}");
    // Deploying needs change & deploy.
    let (status, message) = api_error(as_ada.deploy("hello", "0.1.0").await);
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("console user 'ada' has monitor")
            && message.contains("needs change & deploy"),
        "{message}"
    );
    // Environment-local tokens keep working.
    let values = BTreeMap::from([("api_key".to_string(), Some("rotated".to_string()))]);
    infra
        .prod
        .client
        .set_config("hello", &ConfigPatch { values })
        .await
        .unwrap();

    // Tester: no access to prod at all, refused by the console.
    let tom = infra.login("tom").await;
    let (status, message) = api_error(tom.environment_token("prod").await);
    assert_eq!(status, 403);
    assert!(
        message.contains("no access to environment prod") && message.contains("monitor"),
        "{message}"
    );

    // Ada's token for dev (change & deploy there) is not one for prod.
    let for_dev = ada.environment_token("dev").await.unwrap();
    assert_eq!(for_dev.level, TrustLevel::ChangeAndDeploy);
    Client::new(&infra.dev.url, Some(for_dev.token.clone()))
        .unwrap()
        .apps()
        .await
        .expect("the dev token works on dev");
    let (status, message) = api_error(infra.on_prod(&for_dev.token).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("another environment"), "{message}");

    // A bad signature.
    let mut tampered: Vec<char> = issued.token.chars().collect();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let (status, message) = api_error(infra.on_prod(&tampered).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("signature"), "{message}");
    // Raised claims under the same signature: the signature no longer verifies.
    let mut parts: Vec<String> = issued.token.split('.').map(String::from).collect();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["lvl"] = "full-control".into();
    parts[1] =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let (status, message) = api_error(
        infra
            .on_prod(&parts.join("."))
            .deploy("hello", "0.1.0")
            .await,
    );
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("signature"), "{message}");

    // Expired (beyond the leeway), not yet valid, too long-lived.
    let expired = infra
        .forge(None, |c| {
            c.iat -= 3600;
            c.nbf -= 3600;
            c.exp -= 3000;
        })
        .await;
    let (status, message) = api_error(infra.on_prod(&expired).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("expired"), "{message}");
    let long = infra.forge(None, |c| c.exp += 3600).await;
    let (status, message) = api_error(infra.on_prod(&long).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("at most 600 s"), "{message}");
    // No kid, an unknown kid.
    let no_kid = infra.forge(Some(""), |_| {}).await;
    let (status, message) = api_error(infra.on_prod(&no_kid).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("no key id"), "{message}");
    let unknown = infra.forge(Some("k-unknown"), |_| {}).await;
    let (status, message) = api_error(infra.on_prod(&unknown).apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("\"k-unknown\""), "{message}");
    // The forging itself is sound: the same claims, the right kid, pass.
    infra
        .on_prod(&infra.forge(None, |_| {}).await)
        .apps()
        .await
        .expect("a well-formed token passes");
    // The console's own scope is never given by a console token.
    let full = infra.forge(None, |c| c.lvl = TrustLevel::FullControl).await;
    infra
        .on_prod(&full)
        .tokens()
        .await
        .expect("full control lists tokens");
    let (status, message) = api_error(infra.on_prod(&full).commit_deployment(1).await);
    assert_eq!(status, 403);
    assert!(message.contains("console's own"), "{message}");

    // Rotation: the old key stays accepted (its tokens live on), new tokens
    // carry the new key.
    let rotated = infra.admin.rotate_signing_key().await.unwrap();
    assert!(rotated.not_pushed.is_empty(), "{rotated:?}");
    assert_eq!(rotated.keys.len(), 2);
    as_ada
        .apps()
        .await
        .expect("a token of the rotated-out key, in its grace");
    let fresh = ada.environment_token("prod").await.unwrap();
    infra.on_prod(&fresh.token).apps().await.unwrap();
    let trust = infra.prod.client.console_trust().await.unwrap();
    assert_eq!(trust.keys.len(), 2);
    // Past its grace (as the console would publish it 10 minutes on): refused.
    let mut past = trust.clone();
    for key in &mut past.keys {
        if key.kid != rotated.current {
            key.not_after_ms = Some(runway_store::now_ms() - 60_000);
        }
    }
    infra.prod.client.set_console_trust(&past).await.unwrap();
    let (status, message) = api_error(as_ada.apps().await);
    assert_eq!(status, 401);
    assert!(message.contains("rotated out"), "{message}");
    infra.on_prod(&fresh.token).apps().await.unwrap();

    // Every refusal left an audit row naming who and why.
    let rows = infra.refused_rows().await;
    let find = |needle: &str| {
        rows.iter()
            .find(|r| r.detail.as_deref().is_some_and(|d| d.contains(needle)))
            .unwrap_or_else(|| panic!("no refused audit row about {needle:?}: {rows:#?}"))
    };
    let deploy = find("needs change & deploy");
    assert_eq!(deploy.actor, "console:ada");
    assert_eq!(deploy.action, "POST /apps/{app}/deployments");
    assert_eq!(deploy.status, 403);
    assert_eq!(deploy.address, "127.0.0.1");
    for needle in [
        "another environment",
        "signature",
        "expired",
        "no key id",
        "k-unknown",
        "rotated out",
        "console's own",
    ] {
        find(needle);
    }
    assert_eq!(find("another environment").actor, "anonymous");
    // Allowed changes are audited too, with the local token's name.
    let done = infra
        .prod
        .client
        .audit(&AuditQuery {
            outcome: Some(AuditOutcome::Done),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        done.iter()
            .any(|r| r.action == "PATCH /apps/{app}/config" && r.actor == "token:admin"),
        "{done:#?}"
    );
    // A configuration change has its before and after, a secret only as
    // set or not: its value is in no row.
    // (The oldest: the change made at the start, by prod's admin token.)
    let patch = done
        .iter()
        .rev()
        .find(|r| r.action == "PATCH /apps/{app}/config")
        .unwrap();
    assert_eq!(
        (patch.before.clone(), patch.after.clone()),
        (
            Some(serde_json::json!({"api_key": {"secret": true, "set": false}})),
            Some(serde_json::json!({"api_key": {"secret": true, "set": true}})),
        ),
        "{patch:#?}"
    );
    let everything = infra
        .prod
        .client
        .audit(&AuditQuery {
            limit: Some(1000),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        !serde_json::to_string(&everything)
            .unwrap()
            .contains("s3cr3t-value"),
        "a secret value is in the audit log"
    );
    // Monitor cannot read the audit log.
    let (status, _) = api_error(
        infra
            .on_prod(&fresh.token)
            .audit(&AuditQuery::default())
            .await,
    );
    assert_eq!(status, 403);
    let _ = &infra.dev_key;
}

/// Pushing keys to an environment is the console's own call, and its input
/// is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_trust_is_checked_and_needs_the_console_scope() {
    let env = TestEnv::start().await;
    let (status, message) = api_error(env.client.console_trust().await);
    assert_eq!(status, 404, "{message}");
    let good = runway_api::trust::ConsoleTrust {
        console: "c".into(),
        audience: "e".into(),
        keys: vec![runway_api::trust::TrustedKey {
            kid: "k1".into(),
            public_key: "A".repeat(43),
            not_after_ms: None,
        }],
    };
    let mut short = good.clone();
    short.keys[0].public_key = "AAAA".into();
    let (status, message) = api_error(env.client.set_console_trust(&short).await);
    assert_eq!(status, 400);
    assert!(message.contains("3 bytes"), "{message}");
    let mut none = good.clone();
    none.keys.clear();
    assert_eq!(api_error(env.client.set_console_trust(&none).await).0, 400);
    // Nothing was recorded by the refusals.
    assert_eq!(api_error(env.client.console_trust().await).0, 404);
    let read = env
        .client
        .create_token(&runway_api::v1::CreateToken {
            name: "reader".into(),
            scope: runway_api::v1::Scope::Read,
        })
        .await
        .unwrap();
    let reader = Client::new(&env.url, Some(read.token)).unwrap();
    let (status, message) = api_error(reader.set_console_trust(&good).await);
    assert_eq!(status, 403, "{message}");
    env.client.set_console_trust(&good).await.unwrap();
    assert_eq!(env.client.console_trust().await.unwrap(), good);
}

fn runway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runway"))
}

/// `runway login --user` then `runway logs --env prod`: the CLI fetches a
/// console-issued token, caches it 0600, and is refused (naming the level)
/// where the user has too little.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_uses_console_issued_tokens_for_named_environments() {
    let infra = Infra::start().await;
    let config = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], stdin: &str| {
        let mut child = runway()
            .args(args)
            .current_dir(work.path())
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("RUNWAY_ENV")
            .env_remove("RUNWAY_TOKEN")
            .env_remove("RUNWAY_TOKEN_FILE")
            .env_remove("RUNWAY_CONSOLE")
            .env_remove("RUNWAY_CONSOLE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let url = infra.url.clone();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &["login", &url, "--user", "ada", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
    });
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&["logs", "hello", "--env", "prod"], ""));
    assert!(ok, "{out}{err}");
    let cache = config.path().join("runway/env-tokens.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&cache).unwrap();
    // Cached: the second command uses the same token.
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&["logs", "hello", "--env", "prod"], ""));
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), first);
    // Deploying on prod needs change & deploy: one line naming it.
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["app", "deploy", "hello@0.1.0", "--env", "prod"], ""));
    assert!(!ok, "{err}");
    assert!(
        err.contains("has monitor") && err.contains("needs change & deploy"),
        "{err}"
    );
    // The audit row names ada.
    let rows = infra.refused_rows().await;
    assert!(
        rows.iter()
            .any(|r| r.actor == "console:ada" && r.status == 403),
        "{rows:#?}"
    );
    // The environment's own audit log needs full control there.
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["audit", "--source", "env", "--env", "prod"], ""));
    assert!(!ok, "{err}");
    assert!(
        err.contains("audit log of environment prod") && err.contains("full control"),
        "{err}"
    );
    // Logging out forgets the issued tokens.
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&["logout"], ""));
    assert!(ok, "{err}");
    assert!(!cache.exists());

    // An administrator reads it with the console's filters: ada's refused
    // deploy of hello, as a table and as JSON lines (the export).
    let admin_password = infra.server.admin_password().unwrap().to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &["login", &url, "--user", "administrator", "--password-stdin"],
            &format!("{admin_password}\n"),
        )
    });
    assert!(ok, "{out}{err}");
    let filters = [
        "audit", "--source", "env", "--env", "prod", "--user", "ada", "--app", "hello", "--action",
        "deploy", "--since", "1h",
    ];
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&filters, ""));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("console:ada") && out.contains("refused 403"),
        "{out}"
    );
    let mut json = filters.to_vec();
    json.push("--json");
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&json, ""));
    assert!(ok, "{out}{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!rows.is_empty(), "{out}");
    for r in &rows {
        assert_eq!(r["actor"], "console:ada", "{r}");
        assert!(r["target"].as_str().unwrap().contains("/apps/hello"), "{r}");
        assert!(r["action"].as_str().unwrap().contains("deploy"), "{r}");
    }
    // Another app's rows are not ada's hello rows.
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &[
                "audit", "--source", "env", "--env", "prod", "--app", "nothere", "--json",
            ],
            "",
        )
    });
    assert!(ok && out.trim().is_empty(), "{out}{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&["audit", "--source", "env"], ""));
    assert!(
        !ok && err.contains("--source env needs --env NAME"),
        "{err}"
    );
}

/// Pushes through a TCP relay that can be told to stall: connections made
/// after `stall` is set are held open and never answered.
async fn stalling_relay(
    to: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stall = Arc::new(AtomicBool::new(false));
    let stalled = stall.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let stalled = stalled.clone();
            tokio::spawn(async move {
                if stalled.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, stall)
}

/// Key rotation pushes the new keys to every environment at once, each
/// with its own time limit: an environment that stops answering neither
/// stalls the others nor the rotation, and is reported by name. (Before,
/// the pushes ran one after another without a limit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_environment_does_not_stall_key_rotation() {
    let infra = Infra::start().await;
    let lab = TestEnv::start().await;
    let lab_addr: std::net::SocketAddr = lab.url.trim_start_matches("http://").parse().unwrap();
    let (relay, stall) = stalling_relay(lab_addr).await;
    infra
        .admin
        .add_environment(&AddEnvironment {
            name: "a-lab".into(),
            address: format!("http://{relay}"),
            token: lab.token.clone(),
            pipeline: None,
            order: None,
            allow_insecure: false,
            two_step: false,
        })
        .await
        .expect("a-lab registers through the relay");
    stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let rotated = infra.admin.rotate_signing_key().await.unwrap();
    let took = started.elapsed();
    assert_eq!(rotated.not_pushed, ["a-lab"], "{rotated:?}");
    assert!(
        took < runway_console::trust::PUSH_TIMEOUT + Duration::from_secs(3),
        "the rotation took {took:?}"
    );
    // The others have the new key.
    for env in [&infra.dev, &infra.prod] {
        let trust = env.client.console_trust().await.unwrap();
        assert!(
            trust.keys.iter().any(|k| k.kid == rotated.current),
            "{trust:?}"
        );
    }
}
