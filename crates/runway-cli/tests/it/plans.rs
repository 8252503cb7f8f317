//! Deployment plans (issue 8, part 6) and the LifeTime Deployment API v2
//! surface (part 7): a console and standalone environments as real servers
//! over real sockets, driven through `ConsoleClient`, raw HTTP and the
//! `runway` binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use runway_api::console::plans::{CreatePlan, PlanOperationRequest, PlanStatus, PlanView};
use runway_api::console::{AddEnvironment, CreatePipeline, CreateServiceAccount};
use runway_cli::standalone::{Standalone, StandaloneConfig};
use runway_client::{ClientError, ConsoleClient};
use runway_console::{ConsoleConfig, ConsoleServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestEnv, package, repackage, with_version};

struct Infra {
    _console: ConsoleServer,
    url: String,
    token: String,
    client: ConsoleClient,
    dev: TestEnv,
    test: TestEnv,
    prod: TestEnv,
    _dir: tempfile::TempDir,
}

async fn add(client: &ConsoleClient, name: &str, url: &str, token: &str, order: i64) {
    client
        .add_environment(&AddEnvironment {
            name: name.into(),
            address: url.into(),
            token: token.into(),
            pipeline: Some("main".into()),
            order: Some(order),
            allow_insecure: false,
            two_step: false,
        })
        .await
        .unwrap_or_else(|e| panic!("add {name}: {e}"));
}

impl Infra {
    /// A console, and dev → test → prod in pipeline `main`; hello 0.1.0
    /// published to dev.
    async fn start() -> Infra {
        Infra::launch(None, Duration::from_millis(200)).await
    }

    /// `dev_as`: register dev at this (address, admin token) instead.
    async fn start_with_dev_address(dev_as: Option<(String, String)>) -> Infra {
        Infra::launch(dev_as, Duration::from_millis(200)).await
    }

    /// A console whose periodic poll never comes during the test: what it
    /// knows of the targets it learns from registration and from plans.
    async fn start_without_polling() -> Infra {
        Infra::launch(None, Duration::from_secs(3600)).await
    }

    async fn launch(dev_as: Option<(String, String)>, poll_interval: Duration) -> Infra {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.poll_interval = poll_interval;
        let console = ConsoleServer::start(config).await.expect("console starts");
        let token = console.admin_token().unwrap().to_string();
        let url = format!("http://{}", console.addr());
        let client = ConsoleClient::new(&url, Some(token.clone())).unwrap();
        client
            .create_pipeline(&CreatePipeline {
                name: "main".into(),
                description: String::new(),
            })
            .await
            .unwrap();
        let (dev, test, prod) = (
            TestEnv::start().await,
            TestEnv::start().await,
            TestEnv::start().await,
        );
        dev.publish(&package("examples/hello")).await;
        let (dev_url, dev_token) = dev_as.unwrap_or_else(|| (dev.url.clone(), dev.token.clone()));
        add(&client, "dev", &dev_url, &dev_token, 1).await;
        add(&client, "test", &test.url, &test.token, 2).await;
        add(&client, "prod", &prod.url, &prod.token, 3).await;
        Infra {
            _console: console,
            url,
            token,
            client,
            dev,
            test,
            prod,
            _dir: dir,
        }
    }

    async fn poll(&self) {
        let console = self._console.console();
        for env in self.client.environments().await.unwrap() {
            let _ = console.poll_once(&env.key).await;
        }
    }

    async fn plan(&self, from: &str, to: &str, ops: Vec<PlanOperationRequest>) -> PlanView {
        self.plan_with(CreatePlan {
            source: from.into(),
            target: to.into(),
            operations: ops,
            properties: Default::default(),
            notes: "test".into(),
            two_step: None,
            allow_out_of_order: false,
        })
        .await
    }

    async fn plan_with(&self, req: CreatePlan) -> PlanView {
        self.client.create_plan(&req).await.expect("plan is saved")
    }

    /// Waits until the plan leaves `running`/`aborting`.
    async fn settle(&self, key: &str) -> PlanStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.client.plan_status(key, 0).await.unwrap();
            if s.status.is_finished() || s.status == PlanStatus::NeedsUserIntervention {
                return s.status;
            }
            assert!(Instant::now() < deadline, "plan {key} never settled: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn deploy(app: &str, version: &str) -> PlanOperationRequest {
    PlanOperationRequest::Deploy {
        app: app.into(),
        version: version.into(),
        rollback: false,
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

async fn running(env: &TestEnv, app: &str) -> (Option<String>, Option<String>) {
    let apps = env.client.apps().await.unwrap();
    apps.into_iter()
        .find(|a| a.name == app)
        .map(|a| (a.running_version, a.running_digest))
        .unwrap_or((None, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plans_promote_the_same_bytes_through_the_pipeline_one_and_two_step() {
    let infra = Infra::start().await;
    let dev_digest = running(&infra.dev, "hello").await.1.unwrap();

    // One step: dev → test.
    let plan = infra
        .plan("dev", "test", vec![deploy("hello", "0.1.0")])
        .await;
    assert_eq!(plan.status, PlanStatus::Saved);
    assert_eq!(plan.created_by.as_deref(), Some("admin"));
    let v = infra.client.validate_plan(&plan.key).await.unwrap();
    assert!(v.ok, "{v:?}");
    infra.client.start_plan(&plan.key).await.unwrap();
    assert_eq!(
        infra.settle(&plan.key).await,
        PlanStatus::FinishedSuccessful
    );
    assert_eq!(
        running(&infra.test, "hello").await,
        (Some("0.1.0".into()), Some(dev_digest.clone())),
        "the same bytes run in test"
    );
    let log = infra.client.plan_status(&plan.key, 0).await.unwrap().log;
    let text: Vec<&str> = log.iter().map(|r| r.message.as_str()).collect();
    assert!(
        text.iter()
            .any(|m| m.contains("digest verified, imported into test")),
        "{text:#?}"
    );
    assert!(text.iter().any(|m| m.contains("succeeded")), "{text:#?}");
    // The log only grows: rows after the last id are none.
    let last = log.last().unwrap().id;
    assert!(
        infra
            .client
            .plan_status(&plan.key, last)
            .await
            .unwrap()
            .log
            .is_empty()
    );

    // Two steps: test → prod stops prepared; prod serves nothing new yet.
    let plan = infra
        .plan_with(CreatePlan {
            source: "test".into(),
            target: "prod".into(),
            operations: vec![deploy("hello", "0.1.0")],
            properties: Default::default(),
            notes: String::new(),
            two_step: Some(true),
            allow_out_of_order: false,
        })
        .await;
    infra.client.start_plan(&plan.key).await.unwrap();
    assert_eq!(
        infra.settle(&plan.key).await,
        PlanStatus::NeedsUserIntervention
    );
    let status = infra.client.plan_status(&plan.key, 0).await.unwrap();
    assert!(status.info.starts_with("prepared"), "{}", status.info);
    assert_eq!(
        running(&infra.prod, "hello").await.0,
        None,
        "nothing switched"
    );
    // Delete of a plan that holds its target: refused.
    let (s, code, m) = api_error(infra.client.delete_plan(&plan.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_running"), "{m}");
    infra.client.continue_plan(&plan.key).await.unwrap();
    assert_eq!(
        infra.settle(&plan.key).await,
        PlanStatus::FinishedSuccessful
    );
    assert_eq!(
        running(&infra.prod, "hello").await,
        (Some("0.1.0".into()), Some(dev_digest.clone())),
        "the same digest runs in prod"
    );
    // Continue on a plan that is not prepared; abort after the switch.
    let (s, code, m) = api_error(infra.client.continue_plan(&plan.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_not_prepared"), "{m}");
    let (s, code, m) = api_error(infra.client.abort_plan(&plan.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_not_abortable"), "{m}");
    assert!(m.contains("already switched"), "{m}");
    // A finished plan can be deleted; its key is then unknown.
    infra.client.delete_plan(&plan.key).await.unwrap();
    let (s, code, _) = api_error(infra.client.plan(&plan.key).await);
    assert_eq!((s, code.as_str()), (404, "plan_not_found"));

    // A two-step plan aborted: the target stays exactly as it was.
    let v2 = repackage(&package("examples/hello"), |m| with_version(m, "0.2.0"));
    infra.dev.publish(&v2).await;
    infra.poll().await;
    let plan = infra
        .plan("dev", "test", vec![deploy("hello", "0.2.0")])
        .await;
    let plan2 = infra
        .plan_with(CreatePlan {
            source: "dev".into(),
            target: "test".into(),
            operations: vec![deploy("hello", "0.2.0")],
            properties: Default::default(),
            notes: String::new(),
            two_step: Some(true),
            allow_out_of_order: false,
        })
        .await;
    infra.client.start_plan(&plan2.key).await.unwrap();
    assert_eq!(
        infra.settle(&plan2.key).await,
        PlanStatus::NeedsUserIntervention
    );
    // A second plan to the busy target is refused with the running plan's key.
    let (s, code, m) = api_error(infra.client.start_plan(&plan.key).await);
    assert_eq!((s, code.as_str()), (409, "target_busy"), "{m}");
    assert!(m.contains(&plan2.key), "{m}");
    infra.client.abort_plan(&plan2.key).await.unwrap();
    assert_eq!(infra.settle(&plan2.key).await, PlanStatus::Aborted);
    assert_eq!(
        running(&infra.test, "hello").await,
        (Some("0.1.0".into()), Some(dev_digest)),
        "abort leaves the target as it was"
    );
    // Now the first one runs.
    infra.client.start_plan(&plan.key).await.unwrap();
    assert_eq!(
        infra.settle(&plan.key).await,
        PlanStatus::FinishedSuccessful
    );
    assert_eq!(
        running(&infra.test, "hello").await.0.as_deref(),
        Some("0.2.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_plan_to_a_busy_target_is_refused_with_the_running_key() {
    let infra = Infra::start().await;
    let two_step = |target: &str| CreatePlan {
        source: "dev".into(),
        target: target.into(),
        operations: vec![deploy("hello", "0.1.0")],
        properties: Default::default(),
        notes: String::new(),
        two_step: Some(true),
        allow_out_of_order: true,
    };
    let first = infra.plan_with(two_step("test")).await;
    infra.client.start_plan(&first.key).await.unwrap();
    assert_eq!(
        infra.settle(&first.key).await,
        PlanStatus::NeedsUserIntervention
    );
    // A second plan to the same target: validation passes on the console's
    // side except for the target's own lock, which the catalog also holds.
    let second = infra.plan_with(two_step("test")).await;
    let r = infra.client.start_plan(&second.key).await;
    let (s, code, m) = api_error(r);
    assert_eq!((s, code.as_str()), (409, "target_busy"), "{m}");
    assert!(m.contains(&first.key), "{m}");
    assert_eq!(
        infra.client.plan(&second.key).await.unwrap().status,
        PlanStatus::Saved,
        "nothing changed"
    );
    infra.client.abort_plan(&first.key).await.unwrap();
    assert_eq!(infra.settle(&first.key).await, PlanStatus::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_plans_are_refused_with_the_app_the_cause_and_the_fix() {
    let infra = Infra::start().await;
    // Unknown environment, app, version, plan key.
    let bad = |source: &str, ops| CreatePlan {
        source: source.into(),
        target: "test".into(),
        operations: ops,
        properties: Default::default(),
        notes: String::new(),
        two_step: None,
        allow_out_of_order: false,
    };
    let (s, code, _) = api_error(
        infra
            .client
            .create_plan(&bad("nope", vec![deploy("hello", "0.1.0")]))
            .await,
    );
    assert_eq!((s, code.as_str()), (404, "environment_not_found"));
    let (s, code, _) = api_error(
        infra
            .client
            .create_plan(&bad("dev", vec![deploy("ghost", "0.1.0")]))
            .await,
    );
    assert_eq!((s, code.as_str()), (404, "app_not_found"));
    let (s, code, m) = api_error(
        infra
            .client
            .create_plan(&bad("dev", vec![deploy("hello", "9.9.9")]))
            .await,
    );
    assert_eq!((s, code.as_str()), (404, "version_not_found"), "{m}");
    for key in ["not-a-key", "00000000-0000-4000-8000-000000000000"] {
        let (s, code, _) = api_error(infra.client.start_plan(key).await);
        assert_eq!((s, code.as_str()), (404, "plan_not_found"));
    }
    assert!(
        infra.client.plans(None).await.unwrap().is_empty(),
        "nothing saved"
    );

    // Promote to test so that prod → dev and downgrades can be tried.
    let p = infra
        .plan("dev", "test", vec![deploy("hello", "0.1.0")])
        .await;
    infra.client.start_plan(&p.key).await.unwrap();
    assert_eq!(infra.settle(&p.key).await, PlanStatus::FinishedSuccessful);

    // prod → dev without the flag (backwards): a conflict, nothing started.
    let back = infra
        .plan("test", "dev", vec![deploy("hello", "0.1.0")])
        .await;
    let v = infra.client.validate_plan(&back.key).await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.conflicts[0].code, "out_of_order");
    assert!(
        v.conflicts[0].message.contains("backwards")
            && v.conflicts[0].message.contains("--allow-out-of-order")
    );
    let (s, code, m) = api_error(infra.client.start_plan(&back.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_conflicts"), "{m}");
    assert_eq!(
        infra.client.plan(&back.key).await.unwrap().status,
        PlanStatus::Saved
    );
    // Skipping a stage with the flag: accepted, and said.
    let skip = infra
        .plan_with(CreatePlan {
            source: "dev".into(),
            target: "prod".into(),
            allow_out_of_order: true,
            ..bad("dev", vec![deploy("hello", "0.1.0")])
        })
        .await;
    let v = infra.client.validate_plan(&skip.key).await.unwrap();
    assert!(v.ok && v.warnings[0].contains("skips 1 stage"), "{v:?}");

    // A downgrade without rollback.
    let v2 = repackage(&package("examples/hello"), |m| with_version(m, "0.2.0"));
    infra.test.publish(&v2).await;
    infra.poll().await;
    let down = infra
        .plan("dev", "test", vec![deploy("hello", "0.1.0")])
        .await;
    let v = infra.client.validate_plan(&down.key).await.unwrap();
    let c = v
        .conflicts
        .iter()
        .find(|c| c.code == "downgrade")
        .expect("downgrade");
    assert_eq!(c.app, "hello");
    assert!(
        c.message.contains("older than the 0.2.0") && c.message.contains("rollback"),
        "{}",
        c.message
    );
    let rollback = infra
        .plan(
            "dev",
            "test",
            vec![PlanOperationRequest::Deploy {
                app: "hello".into(),
                version: "0.1.0".into(),
                rollback: true,
            }],
        )
        .await;
    let v = infra.client.validate_plan(&rollback.key).await.unwrap();
    assert!(v.ok, "{v:?}");

    // A missing dependency and a required property with no value.
    let needy = repackage(&package("examples/hello"), |m| {
        format!(
            "{}\n[properties.api_url]\nrequired = true\n\n[dependencies]\nbilling = \"^1\"\n",
            with_version(m, "0.3.0")
        )
    });
    // Published (not deployed: dev lacks the property too) and tagged: a
    // version the console knows that runs nowhere.
    infra
        .dev
        .client
        .publish(needy.to_bytes(), false, None)
        .await
        .unwrap();
    infra
        .client
        .tag_version(
            "hello",
            &runway_api::console::TagVersion {
                environment: "dev".into(),
                version: Some("0.3.0".into()),
                changelog: "needs billing".into(),
            },
        )
        .await
        .unwrap();
    let before = running(&infra.test, "hello").await;
    let p = infra
        .plan("dev", "test", vec![deploy("hello", "0.3.0")])
        .await;
    let v = infra.client.validate_plan(&p.key).await.unwrap();
    let codes: Vec<&str> = v.conflicts.iter().map(|c| c.code.as_str()).collect();
    assert!(
        codes.contains(&"unmet_dependency") && codes.contains(&"missing_property"),
        "{v:?}"
    );
    let dep = v
        .conflicts
        .iter()
        .find(|c| c.code == "unmet_dependency")
        .unwrap();
    assert!(
        dep.message.contains("billing ^1") && dep.message.contains("add a matching billing"),
        "{}",
        dep.message
    );
    let prop = v
        .conflicts
        .iter()
        .find(|c| c.code == "missing_property")
        .unwrap();
    assert!(
        prop.message.contains("api_url") && prop.message.contains("--set hello.api_url"),
        "{}",
        prop.message
    );
    let (s, code, _) = api_error(infra.client.start_plan(&p.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_conflicts"));
    assert_eq!(
        running(&infra.test, "hello").await,
        before,
        "nothing changed"
    );
    // The property given in the plan clears that conflict (the dependency stays).
    let mut props = std::collections::BTreeMap::new();
    props.insert(
        "hello".to_string(),
        [("api_url".to_string(), Some("https://x".to_string()))].into(),
    );
    let p = infra
        .plan_with(CreatePlan {
            properties: props,
            ..bad("dev", vec![deploy("hello", "0.3.0")])
        })
        .await;
    let v = infra.client.validate_plan(&p.key).await.unwrap();
    let codes: Vec<&str> = v.conflicts.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["unmet_dependency"], "{v:?}");
}

/// Stops a test environment (the process and its port).
async fn stop(env: &mut TestEnv) {
    env.env
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(10))
        .await
        .unwrap();
}

/// Starts a stopped test environment again on the same address.
async fn restart_at(env: &mut TestEnv) {
    let addr: SocketAddr = env.url.trim_start_matches("http://").parse().unwrap();
    let config = StandaloneConfig::new(env.data_dir(), addr);
    env.env = Some(Standalone::start(config).await.expect("restarts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_target_and_a_target_that_dies_mid_plan() {
    let mut infra = Infra::start().await;
    // Unreachable at start: a conflict naming it, the plan stays saved.
    stop(&mut infra.test).await;
    let p = infra
        .plan("dev", "test", vec![deploy("hello", "0.1.0")])
        .await;
    let (s, code, m) = api_error(infra.client.start_plan(&p.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_conflicts"), "{m}");
    assert!(
        m.contains("target environment \"test\"") && m.contains("does not answer"),
        "{m}"
    );
    assert_eq!(
        infra.client.plan(&p.key).await.unwrap().status,
        PlanStatus::Saved
    );
    restart_at(&mut infra.test).await;
    infra.client.start_plan(&p.key).await.unwrap();
    assert_eq!(infra.settle(&p.key).await, PlanStatus::FinishedSuccessful);

    // Dies mid-plan: prepared in test, then test stops; continue cannot
    // commit. Test comes back (and aborts what was staged): the plan ends
    // aborted and test serves exactly what it served.
    let v2 = repackage(&package("examples/hello"), |m| with_version(m, "0.2.0"));
    infra.dev.publish(&v2).await;
    infra.poll().await;
    let p = infra
        .plan_with(CreatePlan {
            source: "dev".into(),
            target: "test".into(),
            operations: vec![deploy("hello", "0.2.0")],
            properties: Default::default(),
            notes: String::new(),
            two_step: Some(true),
            allow_out_of_order: false,
        })
        .await;
    infra.client.start_plan(&p.key).await.unwrap();
    assert_eq!(
        infra.settle(&p.key).await,
        PlanStatus::NeedsUserIntervention
    );
    stop(&mut infra.test).await;
    infra.client.continue_plan(&p.key).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        infra.client.plan(&p.key).await.unwrap().status,
        PlanStatus::Running,
        "the outcome is unknown while test is down"
    );
    restart_at(&mut infra.test).await;
    let end = infra.settle(&p.key).await;
    assert!(
        matches!(end, PlanStatus::Aborted | PlanStatus::FinishedWithErrors),
        "{end:?}"
    );
    assert_eq!(
        running(&infra.test, "hello").await.0.as_deref(),
        Some("0.1.0")
    );
}

/// A TCP proxy to `upstream` that flips one byte in the body of every
/// `application/octet-stream` response (a package in transit).
async fn corrupting_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    // Bytes of a package body to skip before the flip.
                    let mut flip_in: Option<usize> = None;
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &mut buf[..n];
                        let text = String::from_utf8_lossy(chunk).to_ascii_lowercase();
                        if flip_in.is_none()
                            && let Some(at) = text.find("application/octet-stream")
                            && let Some(end) = text[at..].find("\r\n\r\n")
                        {
                            flip_in = Some(at + end + 4 + 200);
                        }
                        if let Some(k) = flip_in {
                            if k < n {
                                chunk[k] ^= 0x5a;
                                flip_in = None;
                            } else {
                                flip_in = Some(k - n);
                            }
                        }
                        if cw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_corrupted_in_transit_is_never_imported() {
    // The console reaches dev through a proxy that corrupts package bytes.
    let real_dev = TestEnv::start().await;
    let upstream: SocketAddr = real_dev.url.trim_start_matches("http://").parse().unwrap();
    let proxy = corrupting_proxy(upstream).await;
    real_dev.publish(&package("examples/hello")).await;
    let infra =
        Infra::start_with_dev_address(Some((format!("http://{proxy}"), real_dev.token.clone())))
            .await;
    infra.poll().await;
    let p = infra
        .plan("dev", "test", vec![deploy("hello", "0.1.0")])
        .await;
    let v = infra.client.validate_plan(&p.key).await.unwrap();
    let c = v
        .conflicts
        .iter()
        .find(|c| c.code == "digest_mismatch")
        .unwrap_or_else(|| panic!("{v:?}"));
    assert!(
        c.message.contains("does not match its digest")
            && c.message.contains("nothing was imported"),
        "{}",
        c.message
    );
    let (s, code, _) = api_error(infra.client.start_plan(&p.key).await);
    assert_eq!((s, code.as_str()), (409, "plan_conflicts"));
    let digest = infra.client.plan(&p.key).await.unwrap().operations[0]
        .digest
        .clone()
        .unwrap();
    assert!(
        !infra.test.client.has_package(&digest).await.unwrap(),
        "nothing imported"
    );
    assert_eq!(running(&infra.test, "hello").await.0, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_deploys_follows_and_manages_plans() {
    // No periodic poll: a finished plan must itself leave the console knowing
    // what the target now runs, so `deploy hello --from test` right after
    // `deploy hello --to test --wait` finds it (CI once raced the poller).
    let infra = Infra::start_without_polling().await;
    let runway = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
            .args(args)
            .env("RUNWAY_CONSOLE", &infra.url)
            .env("RUNWAY_CONSOLE_TOKEN", &infra.token)
            .env("HOME", infra._dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| {
        runway(&["deploy", "hello", "--from", "dev", "--to", "test", "--wait"])
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported into test"),
        "the log is printed: {stderr}"
    );
    assert_eq!(
        running(&infra.test, "hello").await.0.as_deref(),
        Some("0.1.0")
    );

    // A refused plan: one line, non-zero.
    let out = tokio::task::block_in_place(|| {
        runway(&[
            "deploy",
            "hello@0.1.0",
            "--from",
            "prod",
            "--to",
            "dev",
            "--wait",
        ])
    });
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conflict") && stderr.contains("backwards"),
        "{stderr}"
    );

    // deploy plan --two-step, then start / continue with --wait.
    let out = tokio::task::block_in_place(|| {
        runway(&[
            "deploy",
            "plan",
            "--from",
            "test",
            "--to",
            "prod",
            "hello",
            "--two-step",
            "--json",
        ])
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = saved["plan"]["key"].as_str().unwrap().to_string();
    assert_eq!(saved["validation"]["ok"], true);
    let out = tokio::task::block_in_place(|| runway(&["deploy", "start", &key, "--wait"]));
    assert!(!out.status.success(), "prepared is not finished");
    assert!(String::from_utf8_lossy(&out.stderr).contains("deploy continue"));
    let out = tokio::task::block_in_place(|| runway(&["deploy", "continue", &key, "--wait"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| runway(&["deploy", "list", "--json"]));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let out = tokio::task::block_in_place(|| runway(&["deploy", "show", &key]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished_successful"));
    let out = tokio::task::block_in_place(|| runway(&["deploy", "abort", &key]));
    assert!(!out.status.success());
    let out = tokio::task::block_in_place(|| runway(&["deploy", "delete", &key]));
    assert!(out.status.success());
    let out = tokio::task::block_in_place(|| runway(&["deploy", "validate", &key]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no deployment plan"));
}

// ---------------------------------------------------------------- LifeTime v2

struct Lt {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Lt {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/lifetimeapi/rest/v2{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn assert_exception(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["StatusCode"], expected, "{body}");
    assert!(
        body["Errors"][0].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifetime_v2_surface() {
    let infra = Infra::start().await;
    let account = infra
        .client
        .create_service_account(&CreateServiceAccount {
            name: "ci".into(),
            description: "pipeline".into(),
            role: Some("Administrator".into()),
        })
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let lt = Lt {
        http: http.clone(),
        base: infra.url.clone(),
        token: account.token.clone(),
    };
    infra.poll().await;

    // Environments, with and without the trailing slash, never redirected.
    let (s, envs) = lt.get("/environments").await;
    assert_eq!(s, 200);
    assert_eq!(lt.get("/environments/").await.1, envs);
    let envs = envs.as_array().unwrap().clone();
    assert_eq!(envs.len(), 3);
    let key_of = |name: &str| {
        envs.iter().find(|e| e["Name"] == name).unwrap()["Key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (dev, test) = (key_of("dev"), key_of("test"));
    let devj = envs.iter().find(|e| e["Name"] == "dev").unwrap();
    for field in [
        "Key",
        "Name",
        "OSVersion",
        "Order",
        "HostName",
        "UseHTTPS",
        "EnvironmentType",
        "NumberOfFrontEnds",
        "ApplicationServerType",
        "IsCloudEnvironment",
    ] {
        assert!(devj.get(field).is_some(), "{field} in {devj}");
    }
    assert_eq!(devj["EnvironmentType"], "Development");
    assert_eq!(devj["Order"], 1);
    assert_eq!(
        lt.get(&format!("/environments/{dev}/")).await.1["Name"],
        "dev"
    );
    let (s, body) = lt
        .get("/environments/00000000-0000-4000-8000-000000000000")
        .await;
    assert_exception(s, &body, 404);

    // Deployment zones: one default per environment.
    let (s, zones) = lt
        .get(&format!("/environments/{dev}/deploymentzones/"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(zones.as_array().unwrap().len(), 1);
    assert_eq!(zones[0]["IsDefault"], true);
    let zone = zones[0]["Key"].as_str().unwrap().to_string();

    // Applications with their status per environment (case-insensitive flags).
    let (s, apps) = lt
        .get("/applications?IncludeEnvStatus=TRUE&IncludeModules=True")
        .await;
    assert_eq!(s, 200, "{apps}");
    let hello = &apps[0];
    assert_eq!(hello["Name"], "hello");
    let app = hello["Key"].as_str().unwrap().to_string();
    let st = &hello["AppStatusInEnvs"][0];
    assert_eq!(st["EnvironmentKey"], dev.as_str());
    assert_eq!(st["IsModified"], false);
    let version_key = st["BaseApplicationVersionKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        st["ModuleStatusInEnvs"][0]["ModuleVersionKey"],
        version_key.as_str()
    );
    let (s, plain) = lt.get("/applications").await;
    assert_eq!(s, 200);
    assert!(plain[0].get("AppStatusInEnvs").is_none());
    let (s, body) = lt.get("/applications?IncludeModules=true").await;
    assert_exception(s, &body, 400);
    let (s, body) = lt.get("/applications?IncludeEnvStatus=yes").await;
    assert_exception(s, &body, 400);
    assert_eq!(
        lt.get(&format!("/applications/{app}/")).await.1["Name"],
        "hello"
    );

    // Environment applications: 404 when the app is not in that environment.
    let (s, in_dev) = lt
        .get(&format!(
            "/environments/{dev}/applications?IncludeEnvStatus=true"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(in_dev.as_array().unwrap().len(), 1);
    assert_eq!(
        lt.get(&format!("/environments/{dev}/applications/{app}"))
            .await
            .0,
        200
    );
    let (s, body) = lt
        .get(&format!("/environments/{test}/applications/{app}/"))
        .await;
    assert_exception(s, &body, 404);

    // Versions, and tagging the running version (never new bytes).
    let (s, versions) = lt.get(&format!("/applications/{app}/versions")).await;
    assert_eq!(s, 200);
    let v = &versions[0];
    assert_eq!(
        (v["Key"].as_str().unwrap(), v["Version"].as_str().unwrap()),
        (version_key.as_str(), "0.1.0")
    );
    assert!(v["ChangeLog"].is_string() && v["CreatedOn"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        lt.get(&format!("/applications/{app}/versions/{version_key}"))
            .await
            .0,
        200
    );
    let (s, tagged) = lt
        .call(
            reqwest::Method::POST,
            &format!("/environments/{dev}/applications/{app}/versions"),
            Some(serde_json::json!({"ChangeLog": "first", "Version": "0.1.0"})),
        )
        .await;
    assert_eq!(s, 201, "{tagged}");
    assert_eq!(
        tagged["ApplicationVersionKey"],
        version_key.as_str(),
        "same digest, same key"
    );
    let (s, body) = lt
        .call(
            reqwest::Method::POST,
            &format!("/environments/{dev}/applications/{app}/versions/"),
            Some(serde_json::json!({"ChangeLog": "", "Version": "7.0.0"})),
        )
        .await;
    assert_exception(s, &body, 400);

    // Deployments: create → 201 with the key; get with conflicts; start; status.
    let (_, test_zones) = lt
        .get(&format!("/environments/{test}/deploymentzones"))
        .await;
    let create = serde_json::json!({
        "ApplicationOperations": [{"ApplicationVersionKey": version_key, "DeploymentZoneKey": test_zones[0]["Key"]}],
        "Notes": "from CI",
        "SourceEnvironmentKey": dev,
        "TargetEnvironmentKey": test,
    });
    // A zone of another environment is refused.
    let mut wrong_zone = create.clone();
    wrong_zone["ApplicationOperations"][0]["DeploymentZoneKey"] = Value::String(zone.clone());
    let (s, body) = lt
        .call(reqwest::Method::POST, "/deployments", Some(wrong_zone))
        .await;
    assert_exception(s, &body, 400);
    let (s, key) = lt
        .call(reqwest::Method::POST, "/deployments/", Some(create.clone()))
        .await;
    assert_eq!(s, 201, "{key}");
    let key = key.as_str().unwrap().to_string();
    let (s, detail) = lt.get(&format!("/deployments/{key}")).await;
    assert_eq!(s, 200);
    assert_eq!(detail["Deployment"]["Key"], key.as_str());
    assert_eq!(detail["Deployment"]["Notes"], "from CI");
    assert_eq!(
        detail["Deployment"]["ApplicationOperations"][0]["ApplicationVersionKey"],
        version_key.as_str()
    );
    assert!(
        detail["ApplicationConflicts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (s, status) = lt.get(&format!("/deployments/{key}/status/")).await;
    assert_eq!(s, 200);
    assert_eq!(status["DeploymentStatus"], "saved");
    let (s, _) = lt
        .call(
            reqwest::Method::POST,
            &format!("/deployments/{key}/start?RedeployOutdated=False"),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (_, st) = lt.get(&format!("/deployments/{key}/status")).await;
        if st["DeploymentStatus"] != "running" {
            break st;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["DeploymentStatus"], "finished_successful",
        "{status}"
    );
    assert!(status["Info"].is_string());
    let log = status["DeploymentLog"].as_array().unwrap();
    assert!(
        log.iter()
            .all(|m| m["Instant"].as_str().unwrap().ends_with('Z') && m["Message"].is_string())
    );
    // Continue / abort of a finished deployment, delete of a non-saved one: 400.
    for cmd in ["continue", "abort"] {
        let (s, body) = lt
            .call(
                reqwest::Method::POST,
                &format!("/deployments/{key}/{cmd}/"),
                None,
            )
            .await;
        assert_exception(s, &body, 400);
    }
    let (s, body) = lt
        .call(
            reqwest::Method::DELETE,
            &format!("/deployments/{key}"),
            None,
        )
        .await;
    assert_exception(s, &body, 400);
    let (s, body) = lt
        .call(
            reqwest::Method::POST,
            &format!("/deployments/{key}/explode"),
            None,
        )
        .await;
    assert_exception(s, &body, 400);

    // List with filters.
    let (s, all) = lt.get("/deployments").await;
    assert_eq!((s, all.as_array().unwrap().len()), (200, 1));
    let (_, to_test) = lt
        .get(&format!("/deployments?TargetEnvironmentKey={test}"))
        .await;
    assert_eq!(to_test.as_array().unwrap().len(), 1);
    let (_, to_dev) = lt
        .get(&format!("/deployments/?TargetEnvironmentKey={dev}"))
        .await;
    assert!(to_dev.as_array().unwrap().is_empty());
    let (_, old) = lt.get("/deployments?MaxDate=2000-01-01").await;
    assert!(old.as_array().unwrap().is_empty());
    let (_, recent) = lt.get("/deployments?MinDate=2000-01-01T00:00:00Z").await;
    assert_eq!(recent.as_array().unwrap().len(), 1);
    let (s, body) = lt.get("/deployments?MinDate=yesterday").await;
    assert_exception(s, &body, 400);

    // A saved deployment can be deleted (204); then it is unknown (404).
    let (_, key2) = lt
        .call(reqwest::Method::POST, "/deployments", Some(create))
        .await;
    let key2 = key2.as_str().unwrap();
    let (s, _) = lt
        .call(
            reqwest::Method::DELETE,
            &format!("/deployments/{key2}/"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, body) = lt.get(&format!("/deployments/{key2}")).await;
    assert_exception(s, &body, 404);
    // Bad keys in a create: 400.
    let (s, body) = lt
        .call(
            reqwest::Method::POST,
            "/deployments",
            Some(serde_json::json!({"ApplicationOperations": [{"ApplicationVersionKey": "nope"}], "Notes": "", "SourceEnvironmentKey": dev, "TargetEnvironmentKey": test})),
        )
        .await;
    assert_exception(s, &body, 400);
    let (s, body) = lt.get("/nothing-here").await;
    assert_exception(s, &body, 404);

    // A revoked service-account token: 401, JSON.
    infra
        .client
        .revoke_account_token("ci", account.info.id)
        .await
        .unwrap();
    let (s, body) = lt.get("/environments").await;
    assert_exception(s, &body, 401);
    assert!(
        body["Errors"][0].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let resp = http
        .get(format!("{}/lifetimeapi/rest/v2/environments", infra.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_restarted_mid_plan_settles_it_from_the_targets_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("console");
    let config = ConsoleConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    let server = ConsoleServer::start(config).await.unwrap();
    let token = server.admin_token().unwrap().to_string();
    let client =
        ConsoleClient::new(&format!("http://{}", server.addr()), Some(token.clone())).unwrap();
    client
        .create_pipeline(&CreatePipeline {
            name: "main".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let (dev, test) = (TestEnv::start().await, TestEnv::start().await);
    dev.publish(&package("examples/hello")).await;
    add(&client, "dev", &dev.url, &dev.token, 1).await;
    add(&client, "test", &test.url, &test.token, 2).await;
    let create = || CreatePlan {
        source: "dev".into(),
        target: "test".into(),
        operations: vec![deploy("hello", "0.1.0")],
        properties: Default::default(),
        notes: String::new(),
        two_step: None,
        allow_out_of_order: false,
    };
    // Plan A: the console "died" after taking the target, before deploying.
    let a = client.create_plan(&create()).await.unwrap();
    let store = server.console().store().clone();
    use runway_store::console::plans::PlanStatus as Stored;
    assert!(
        store
            .set_plan_status(&a.key, Stored::Saved, Stored::Running, None)
            .await
            .unwrap()
    );
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    let server = ConsoleServer::start(ConsoleConfig::new(&data, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let client =
        ConsoleClient::new(&format!("http://{}", server.addr()), Some(token.clone())).unwrap();
    let settle = |key: String| {
        let client = client.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let s = client.plan_status(&key, 0).await.unwrap();
                if s.status.is_finished() {
                    return s;
                }
                assert!(Instant::now() < deadline, "{s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let s = settle(a.key.clone()).await;
    assert_eq!(s.status, PlanStatus::FinishedWithErrors, "{s:?}");
    assert!(s.info.contains("nothing was switched"), "{}", s.info);
    assert_eq!(running(&test, "hello").await.0, None, "test unchanged");

    // Plan B: the target switched, but the console died before it learnt so.
    let b = client.create_plan(&create()).await.unwrap();
    let store = server.console().store().clone();
    assert!(
        store
            .set_plan_status(&b.key, Stored::Saved, Stored::Running, None)
            .await
            .unwrap()
    );
    let digest = b.operations[0].digest.clone().unwrap();
    let bytes = dev.client.package(&digest).await.unwrap();
    test.client.import_package(&digest, bytes).await.unwrap();
    let d = test
        .client
        .create_deployment(&runway_api::v1::DeploymentRequest {
            operations: vec![runway_api::v1::OperationRequest::Deploy {
                app: "hello".into(),
                version: "0.1.0".into(),
            }],
            config: Default::default(),
            prepare: false,
            disable_failed_frontends: false,
        })
        .await
        .unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    let server = ConsoleServer::start(ConsoleConfig::new(&data, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let client = ConsoleClient::new(&format!("http://{}", server.addr()), Some(token)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = client.plan_status(&b.key, 0).await.unwrap();
        if s.status.is_finished() {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s.status, PlanStatus::FinishedSuccessful, "{s:?}");
    assert_eq!(
        client.plan(&b.key).await.unwrap().target_deployment_id,
        Some(d.id),
        "found by the target's record"
    );
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ---------------------------------------------------------------- a farm target

/// `examples/hello` at `version`, serving its version number at
/// `/hello/version.txt`, so a response says which version served it.
fn hello_at(version: &str) -> runway_manifest::Package {
    let hello = package("examples/hello");
    let mut files = hello.static_files.clone();
    files.insert("version.txt".into(), version.as_bytes().to_vec());
    runway_manifest::Package::from_parts(
        with_version(&hello.manifest_toml, version),
        hello.component.clone(),
        files,
    )
    .expect("hello with a version file packs")
}

/// The body of `GET url` and the front-end that answered, if it is a 200.
async fn served(url: &str) -> Option<(String, String)> {
    let r = reqwest::get(url).await.ok()?;
    if r.status() != 200 {
        return None;
    }
    let frontend = r
        .headers()
        .get("x-runway-frontend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some((r.text().await.ok()?.trim().to_string(), frontend))
}

/// Waits until `url` serves `version`.
async fn wait_version(url: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = served(url).await;
        if got.as_ref().is_some_and(|(v, _)| v == version) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never served {version}; last answer {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prod is a farm — a controller and 2 front-ends as `runway` processes on a
/// throwaway PostgreSQL database, behind `runway balancer serve` — and plans
/// promote hello dev → test → prod, one-step then two-step: the same digest
/// runs everywhere, prepare switches nothing, and after `continue` both
/// front-ends serve the new version, directly and through the balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plans_promote_to_a_farm_of_two_frontends_behind_a_balancer() {
    use crate::farm_support::{Farm, served_generation};
    use runway_api::fleet::FrontendProgressState;

    let dir = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
    config.poll_interval = Duration::from_millis(200);
    let console = ConsoleServer::start(config).await.expect("console starts");
    let token = console.admin_token().unwrap().to_string();
    let client = ConsoleClient::new(&format!("http://{}", console.addr()), Some(token)).unwrap();
    client
        .create_pipeline(&CreatePipeline {
            name: "main".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let (dev, test) = (TestEnv::start().await, TestEnv::start().await);
    let mut prod = Farm::start(2).await;
    let lb = prod.start_balancer();
    dev.publish(&hello_at("0.1.0")).await;
    add(&client, "dev", &dev.url, &dev.token, 1).await;
    add(&client, "test", &test.url, &test.token, 2).await;
    add(&client, "prod", &prod.controller.url, &prod.admin, 3).await;
    let frontends: Vec<(String, String)> = prod
        .frontends
        .iter()
        .map(|(name, proc)| (name.clone(), proc.url.clone()))
        .collect();
    let plan = |from: &str, to: &str, version: &str, two_step: bool| CreatePlan {
        source: from.into(),
        target: to.into(),
        operations: vec![deploy("hello", version)],
        properties: Default::default(),
        notes: String::new(),
        two_step: Some(two_step),
        allow_out_of_order: false,
    };
    let run = |req: CreatePlan| {
        let client = client.clone();
        async move {
            let plan = client.create_plan(&req).await.expect("plan is saved");
            client.start_plan(&plan.key).await.expect("plan starts");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let s = client.plan_status(&plan.key, 0).await.unwrap();
                if s.status.is_finished() || s.status == PlanStatus::NeedsUserIntervention {
                    return (plan.key, s);
                }
                assert!(Instant::now() < deadline, "plan never settled: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let prod_running = |farm: &Farm| {
        let client = farm.client.clone();
        async move {
            client
                .apps()
                .await
                .unwrap()
                .into_iter()
                .find(|a| a.name == "hello")
                .map(|a| (a.running_version, a.running_digest))
                .unwrap_or((None, None))
        }
    };

    // One step: dev → test through the API, test → prod with `runway deploy
    // --wait`, which prints each prod front-end's stage (plain lines: no TTY).
    let digest1 = running(&dev, "hello").await.1.unwrap();
    let (key, s) = run(plan("dev", "test", "0.1.0", false)).await;
    assert_eq!(s.status, PlanStatus::FinishedSuccessful, "{key}: {s:?}");
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
            .args([
                "deploy", "hello", "--from", "test", "--to", "prod", "--wait",
            ])
            .env("RUNWAY_CONSOLE", format!("http://{}", console.addr()))
            .env("RUNWAY_CONSOLE_TOKEN", console.admin_token().unwrap())
            .env("HOME", dir.path())
            .env("CI", "true")
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for fe in ["fe1", "fe2"] {
        assert!(
            stderr.contains(&format!("front-end {fe}: committed")),
            "one line per front-end stage: {stderr}"
        );
    }
    assert!(stderr.contains("imported into prod"), "the log: {stderr}");
    assert_eq!(
        running(&test, "hello").await,
        (Some("0.1.0".into()), Some(digest1.clone()))
    );
    assert_eq!(
        prod_running(&prod).await,
        (Some("0.1.0".into()), Some(digest1.clone())),
        "the same digest runs in the farm"
    );
    for (name, url) in &frontends {
        let got = served(&format!("{url}/hello/version.txt")).await;
        assert_eq!(
            got.map(|(v, _)| v).as_deref(),
            Some("0.1.0"),
            "{name} serves 0.1.0"
        );
    }
    wait_version(&format!("{lb}/hello/version.txt"), "0.1.0").await;

    // Version 0.2.0: one step to test, then two steps to prod.
    dev.publish(&hello_at("0.2.0")).await;
    for env in client.environments().await.unwrap() {
        let _ = console.console().poll_once(&env.key).await;
    }
    let digest2 = running(&dev, "hello").await.1.unwrap();
    assert_ne!(digest1, digest2);
    let (key, s) = run(plan("dev", "test", "0.2.0", false)).await;
    assert_eq!(s.status, PlanStatus::FinishedSuccessful, "{key}: {s:?}");
    let generation_before = prod.list().await.generation;
    let (key, s) = run(plan("test", "prod", "0.2.0", true)).await;
    assert_eq!(s.status, PlanStatus::NeedsUserIntervention, "{key}: {s:?}");
    assert!(s.info.starts_with("prepared"), "{}", s.info);
    // Prepared: staged on both front-ends, nothing switched anywhere.
    assert_eq!(
        prod_running(&prod).await,
        (Some("0.1.0".into()), Some(digest1.clone())),
        "prepare switches nothing"
    );
    assert_eq!(prod.list().await.generation, generation_before);
    for (name, url) in &frontends {
        assert_eq!(served_generation(url).await, generation_before, "{name}");
        let got = served(&format!("{url}/hello/version.txt")).await;
        assert_eq!(
            got.map(|(v, _)| v).as_deref(),
            Some("0.1.0"),
            "{name} still serves 0.1.0 while the plan is prepared"
        );
    }
    for _ in 0..10 {
        let got = served(&format!("{lb}/hello/version.txt")).await;
        assert_eq!(got.map(|(v, _)| v).as_deref(), Some("0.1.0"), "balancer");
    }
    // The plan's view shows each prod front-end's stage: staged, not switched.
    let view: Value = reqwest::Client::new()
        .get(format!(
            "http://{}/_runway/console/v1/plans/{key}",
            console.addr()
        ))
        .bearer_auth(console.admin_token().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stages: Vec<(&str, &str)> = view["frontends"]
        .as_array()
        .unwrap_or_else(|| panic!("no frontends in {view:#}"))
        .iter()
        .map(|f| {
            (
                f["frontend"].as_str().unwrap(),
                f["state"].as_str().unwrap_or("none"),
            )
        })
        .collect();
    assert_eq!(stages, [("fe1", "staged"), ("fe2", "staged")], "{view:#}");

    client.continue_plan(&key).await.expect("continue");
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = client.plan_status(&key, 0).await.unwrap();
        if s.status.is_finished() {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s.status, PlanStatus::FinishedSuccessful, "{s:?}");
    let stages: Vec<_> = s
        .frontends
        .iter()
        .map(|f| (f.frontend.as_str(), f.state))
        .collect();
    assert_eq!(
        stages,
        [
            ("fe1", Some(FrontendProgressState::Committed)),
            ("fe2", Some(FrontendProgressState::Committed))
        ],
        "{s:?}"
    );
    // The same digest in dev, test and prod.
    for (name, got) in [
        ("dev", running(&dev, "hello").await),
        ("test", running(&test, "hello").await),
        ("prod", prod_running(&prod).await),
    ] {
        assert_eq!(
            got,
            (Some("0.2.0".into()), Some(digest2.clone())),
            "{name} runs the same bytes"
        );
    }
    let committed = prod.list().await.generation;
    assert!(committed > generation_before);
    for (name, url) in &frontends {
        assert_eq!(served_generation(url).await, committed, "{name}");
        let got = served(&format!("{url}/hello/version.txt")).await;
        assert_eq!(
            got.map(|(v, _)| v).as_deref(),
            Some("0.2.0"),
            "{name} serves 0.2.0"
        );
    }
    // Through the balancer: the new version, from both front-ends.
    wait_version(&format!("{lb}/hello/version.txt"), "0.2.0").await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (v, frontend) = served(&format!("{lb}/hello/version.txt"))
            .await
            .expect("the balancer answers 200");
        assert_eq!(v, "0.2.0", "through the balancer, from {frontend}");
        seen.insert(frontend);
    }
    assert_eq!(seen.len(), 2, "both front-ends answered: {seen:?}");
}
