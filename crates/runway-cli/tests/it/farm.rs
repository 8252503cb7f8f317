//! Server farm reliability, end to end: the controller, front-ends and the
//! balancer are separate `runway` processes talking over real sockets, and
//! the catalogs are on the real PostgreSQL server.

use std::time::{Duration, Instant};

use runway_api::fleet::FrontendProgressState;
use runway_api::v1::{
    DeploymentStatus, FrontendState, LogQueryParams, OperationKind, PublishResult,
};
use runway_manifest::Package;

use crate::farm_support::{Farm, Load, run, served_generation, wait_200};
use crate::support::{package, repackage, with_version};

async fn publish(farm: &Farm, package: &Package) -> PublishResult {
    let (result, _) = farm
        .client
        .publish(package.to_bytes(), true, None)
        .await
        .expect("publish succeeds");
    let d = result.deployment.as_ref().expect("published and deployed");
    assert_eq!(
        d.status,
        DeploymentStatus::Succeeded,
        "deployment failed: {d:?}"
    );
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploys_across_three_frontends_under_load_fail_no_request() {
    let mut farm = Farm::start(3).await;
    let hello = package("examples/hello");
    publish(&farm, &hello).await;
    let lb = farm.start_balancer();
    let url = format!("{lb}/hello/");
    wait_200(&url, Duration::from_secs(10)).await;

    let load = Load::start(&url, 4);
    for version in ["0.2.0", "0.3.0"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let result = publish(&farm, &repackage(&hello, |m| with_version(m, version))).await;
        let d = result.deployment.unwrap();
        assert_eq!(d.frontends.len(), 3, "{d:?}");
        assert!(
            d.frontends
                .iter()
                .all(|p| p.state == FrontendProgressState::Committed),
            "{d:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Rollback is a deployment too, and every front-end has its bytes
    // already: nothing is downloaded again.
    let rollback = farm.client.deploy("hello", "0.1.0").await.unwrap();
    assert_eq!(rollback.frontends.len(), 3, "{rollback:?}");
    for p in &rollback.frontends {
        assert_eq!(
            (p.state.as_str(), p.fetched_bytes),
            ("committed", 0),
            "{rollback:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = load.stop().await;
    assert_eq!(stats.failures, 0, "failed requests: {:?}", stats.failed);
    assert!(stats.ok > 50, "{stats:?}");
    assert_eq!(
        stats.by_frontend.len(),
        3,
        "traffic reached every front-end: {stats:?}"
    );

    let list = farm.list().await;
    for f in &list.frontends {
        assert_eq!(
            (f.state, f.generation),
            (FrontendState::Ready, list.generation)
        );
    }

    // Logs from every front-end are in the environment's log catalog, tagged.
    let client = &farm.client;
    let mut deadline = Instant::now() + Duration::from_secs(10);
    for fe in ["fe1", "fe2", "fe3"] {
        loop {
            let rows = client
                .logs(&LogQueryParams {
                    app: Some("hello".into()),
                    frontend: Some(fe.into()),
                    status: Some(200),
                    ..Default::default()
                })
                .await
                .unwrap();
            if !rows.is_empty() {
                assert!(rows.iter().all(|r| r.frontend.as_deref() == Some(fe)));
                break;
            }
            assert!(Instant::now() < deadline, "no log rows from {fe}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        deadline = Instant::now() + Duration::from_secs(10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_frontend_leaves_the_pool_without_failing_a_request() {
    let mut farm = Farm::start(3).await;
    publish(&farm, &package("examples/hello")).await;
    let lb = farm.start_balancer();
    let url = format!("{lb}/hello/");
    wait_200(&url, Duration::from_secs(10)).await;

    let load = Load::start(&url, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    farm.frontend("fe2").kill();
    // The controller declares it offline after 1.5 s without a heartbeat.
    farm.wait_for(Duration::from_secs(10), "fe2 offline", |list| {
        list.frontends
            .iter()
            .any(|f| f.name == "fe2" && f.state == FrontendState::Offline)
    })
    .await;
    let detected = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = load.stop().await;
    assert_eq!(
        during.failures, 0,
        "failed requests after kill -9: {:?}",
        during.failed
    );
    assert!(
        detected < Duration::from_secs(5),
        "detected after {detected:?}"
    );

    // From now on, fe2 gets nothing.
    let after = Load::start(&url, 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = after.stop().await;
    assert_eq!(after.failures, 0, "{:?}", after.failed);
    assert!(!after.by_frontend.contains_key("fe2"), "{after:?}");
    assert!(after.ok > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frontend_down_during_a_deployment_catches_up_before_it_is_ready() {
    let mut farm = Farm::start(3).await;
    let hello = package("examples/hello");
    publish(&farm, &hello).await;
    let before = farm.list().await.generation;

    farm.frontend("fe3").kill();
    let result = publish(&farm, &repackage(&hello, |m| with_version(m, "0.2.0"))).await;
    let d = result.deployment.unwrap();
    let fe3 = d
        .frontends
        .iter()
        .find(|p| p.frontend == "fe3")
        .expect("fe3 is in the deployment's status");
    assert!(
        fe3.state == FrontendProgressState::Behind || fe3.state == FrontendProgressState::Skipped,
        "fe3 was down: {d:?}"
    );
    let committed = d.generation.unwrap();
    assert!(committed > before);
    for p in d.frontends.iter().filter(|p| p.frontend != "fe3") {
        assert_eq!(p.state, FrontendProgressState::Committed, "{d:?}");
    }
    let list = farm.list().await;
    let listed = list.frontends.iter().find(|f| f.name == "fe3").unwrap();
    assert_ne!(listed.state, FrontendState::Ready, "{listed:?}");

    // It comes back: it registers, fetches, verifies, loads the committed
    // generation, and only then is listed ready.
    farm.restart_frontend("fe3");
    let url = farm.frontend("fe3").url.clone();
    let list = farm
        .wait_ready(&["fe3".to_string()], Duration::from_secs(30))
        .await;
    let fe3 = list.frontends.iter().find(|f| f.name == "fe3").unwrap();
    assert_eq!(fe3.generation, committed);
    assert_eq!(served_generation(&url).await, committed);
    let ready = reqwest::get(format!("{url}/_runway/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_frontend_joins_under_load_with_no_configuration_change() {
    let mut farm = Farm::start(3).await;
    publish(&farm, &package("examples/hello")).await;
    let lb = farm.start_balancer();
    let url = format!("{lb}/hello/");
    wait_200(&url, Duration::from_secs(10)).await;

    let load = Load::start(&url, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    farm.add_frontend("fe4");
    farm.wait_ready(&["fe4".to_string()], Duration::from_secs(20))
        .await;
    // The balancer discovers it and sends it traffic.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = reqwest::get(&url).await.unwrap();
        if r.headers()["x-runway-frontend"] == "fe4" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fe4 never served through the balancer"
        );
    }
    let joined = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = load.stop().await;
    assert_eq!(stats.failures, 0, "{:?}", stats.failed);
    assert!(stats.by_frontend.contains_key("fe4"), "{stats:?}");
    assert!(joined < Duration::from_secs(15), "joined after {joined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabled_frontends_are_drained_skipped_and_catch_up_when_enabled() {
    let mut farm = Farm::start(2).await;
    let hello = package("examples/hello");
    publish(&farm, &hello).await;
    let lb = farm.start_balancer();
    let url = format!("{lb}/hello/");
    wait_200(&url, Duration::from_secs(10)).await;

    let env = farm.controller.url.clone();
    let (ok, out, err) = run(&[
        "frontend",
        "disable",
        "fe2",
        "--env",
        &env,
        "--token",
        &farm.admin,
    ]);
    assert!(ok, "{out}{err}");
    farm.wait_for(Duration::from_secs(5), "fe2 disabled", |l| {
        l.frontends
            .iter()
            .any(|f| f.name == "fe2" && f.state == FrontendState::Disabled)
    })
    .await;
    // Give the balancer a discovery round, then nothing goes to fe2.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let load = Load::start(&url, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = load.stop().await;
    assert_eq!(stats.failures, 0, "{:?}", stats.failed);
    assert!(!stats.by_frontend.contains_key("fe2"), "{stats:?}");

    // A deployment skips it and says so.
    let result = publish(&farm, &repackage(&hello, |m| with_version(m, "0.2.0"))).await;
    let d = result.deployment.unwrap();
    let fe2 = d.frontends.iter().find(|p| p.frontend == "fe2").unwrap();
    assert_eq!(fe2.state, FrontendProgressState::Skipped, "{d:?}");

    // Enabled again, it serves the committed generation.
    let (ok, out, err) = run(&[
        "frontend",
        "enable",
        "fe2",
        "--env",
        &env,
        "--token",
        &farm.admin,
    ]);
    assert!(ok, "{out}{err}");
    let list = farm
        .wait_ready(&["fe2".to_string()], Duration::from_secs(10))
        .await;
    let fe2 = list.frontends.iter().find(|f| f.name == "fe2").unwrap();
    assert_eq!(fe2.generation, d.generation.unwrap());

    // `frontend list` shows every column; --json is the API's document.
    let (ok, out, _) = run(&["frontend", "list", "--env", &env, "--token", &farm.admin]);
    assert!(ok);
    for column in [
        "NAME",
        "ADDRESS",
        "STATE",
        "GENERATION",
        "LAST HEARTBEAT",
        "FLAGS",
    ] {
        assert!(out.contains(column), "{out}");
    }
    assert!(
        out.contains("fe1") && out.contains("apps,timers,email"),
        "{out}"
    );
    let (ok, out, _) = run(&[
        "frontend",
        "list",
        "--json",
        "--env",
        &env,
        "--token",
        &farm.admin,
    ]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["frontends"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_farm_input_is_a_clear_error_and_changes_nothing() {
    let mut farm = Farm::start(1).await;
    let ctl = farm.controller.url.clone();
    let before = farm.list().await;
    let dir = farm.dir.path().to_path_buf();
    let serve = |name: &str, token: &str, extra: &[&str]| {
        let data = dir.join(format!("bad-{name}"));
        let mut args = vec![
            "frontend".to_string(),
            "serve".into(),
            "--controller".into(),
            ctl.clone(),
            "--join-token".into(),
            token.to_string(),
            "--data-dir".into(),
            data.to_str().unwrap().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--name".into(),
            name.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    };

    // A wrong join token.
    let (ok, _, err) = serve("fe-x", "rwt_00", &[]);
    assert!(!ok);
    assert!(
        err.contains("refused to register") && err.contains("no such token"),
        "{err}"
    );
    // An API token is not a join token.
    let (ok, _, err) = serve("fe-x", &farm.admin.clone(), &[]);
    assert!(!ok);
    assert!(err.contains("join token"), "{err}");
    // A revoked join token.
    let env = ["--env", ctl.as_str(), "--token", farm.admin.as_str()];
    let (ok, joiner, err) =
        run(&[&["token", "create", "joiner", "--scope", "join"][..], &env].concat());
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[&["token", "revoke", "joiner"][..], &env].concat());
    assert!(ok, "{err}");
    let (ok, _, err) = serve("fe-x", joiner.trim(), &[]);
    assert!(!ok);
    assert!(err.contains("revoked"), "{err}");
    // Mismatched engine settings, in plain words.
    let join = farm.join.clone();
    let (ok, _, err) = serve("fe-x", &join, &["--memory-mib", "64"]);
    assert!(!ok);
    assert!(
        err.contains("engine settings differ") && err.contains("--memory-mib 128"),
        "{err}"
    );
    // A second process claiming a registered name.
    let (ok, _, err) = serve("fe1", &join, &[]);
    assert!(!ok);
    assert!(
        err.contains("already registered") && err.contains("--name"),
        "{err}"
    );
    // A dead controller (nothing listens on port 1).
    let data = dir.join("bad-dead");
    let (ok, _, err) = run(&[
        "frontend",
        "serve",
        "--controller",
        "http://127.0.0.1:1",
        "--join-token",
        &join,
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        err.contains("cannot reach the controller at http://127.0.0.1:1"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "balancer",
        "serve",
        "--controller",
        "http://127.0.0.1:1",
        "--token",
        &farm.admin,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // An unreachable database.
    let (ok, _, err) = run(&[
        "controller",
        "serve",
        "--database",
        "postgres://postgres:hunter2@127.0.0.1:1/runway_x",
        "--data-dir",
        dir.join("bad-ctl").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        err.contains("127.0.0.1:1/runway_x") && !err.contains("hunter2"),
        "{err}"
    );
    // ... and leaves nothing behind in its data directory: no new
    // secrets.key that the next start, on the right database, would adopt.
    let left: Vec<_> = std::fs::read_dir(dir.join("bad-ctl"))
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Nothing changed: the same front-ends, fe1 still serving.
    let after = farm.list().await;
    let names = |l: &runway_api::v1::FrontendList| {
        l.frontends
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&before), names(&after));
    assert_eq!(after.frontends[0].state, FrontendState::Ready);
    let fe1 = farm.frontend("fe1");
    assert!(fe1.child.try_wait().unwrap().is_none(), "fe1 still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_nothing_and_everyone_reconnects() {
    let pg = crate::farm_support::PrivatePostgres::start();
    let db = runway_store::testing::TestDatabase::create_on(&pg.admin_url()).await;
    let mut farm = Farm::start_on(2, db).await;
    publish(&farm, &package("examples/notes")).await;
    let lb = farm.start_balancer();
    wait_200(&format!("{lb}/notes/"), Duration::from_secs(10)).await;

    // Committed data: a note, through the balancer.
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{lb}/notes/"))
        .body("written before the restart")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let id = created.text().await.unwrap().trim().to_string();

    let load = Load::start(&format!("{lb}/notes/help.txt"), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = load.stop().await;
    // Static files and the routing table do not touch the database.
    assert_eq!(stats.failures, 0, "{:?}", stats.failed);

    // Every component reconnected by itself: heartbeats (front-ends), the
    // API and deployments (controller), key-value reads and writes (apps).
    let list = farm
        .wait_ready(&["fe1".into(), "fe2".into()], Duration::from_secs(20))
        .await;
    assert!(
        list.frontends
            .iter()
            .all(|f| { f.last_heartbeat_ms.unwrap() > runway_store::now_ms() - 2_000 })
    );
    let note = http.get(format!("{lb}/notes/{id}")).send().await.unwrap();
    assert_eq!(note.status(), 200);
    assert_eq!(note.text().await.unwrap(), "written before the restart");
    let again = http
        .post(format!("{lb}/notes/"))
        .body("after")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    let notes = package("examples/notes");
    publish(&farm, &repackage(&notes, |m| with_version(m, "0.2.0"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_killed_mid_deployment_fails_it_cleanly_on_restart() {
    let mut farm = Farm::start(2).await;
    let hello = package("examples/hello");
    publish(&farm, &hello).await;
    let before = farm.list().await.generation;

    // A deployment in flight, not yet decided, when the controller dies.
    let store = runway_store::Store::open(&farm.db.url).await.unwrap();
    let id = store
        .begin_deployment("hello", "0.1.0", OperationKind::Deploy)
        .await
        .unwrap();
    store.close().await;
    farm.restart_controller();

    let deployments = farm.client.deployments(Some("hello"), None).await.unwrap();
    let interrupted = deployments.iter().find(|d| d.id == id).unwrap();
    assert_eq!(interrupted.status, DeploymentStatus::Failed);
    assert!(
        interrupted
            .error
            .as_deref()
            .unwrap()
            .contains("nothing was switched"),
        "{interrupted:?}"
    );
    // Nothing switched, nothing split: the same generation everywhere, and
    // the front-ends, which kept serving, heartbeat to the new process.
    let list = farm
        .wait_ready(&["fe1".into(), "fe2".into()], Duration::from_secs(10))
        .await;
    assert_eq!(list.generation, before);
    for (_, fe) in &farm.frontends {
        assert_eq!(served_generation(&fe.url).await, before);
    }
    let started = runway_store::now_ms();
    farm.wait_for(
        Duration::from_secs(10),
        "heartbeats to the new controller",
        |l| {
            l.frontends
                .iter()
                .all(|f| f.last_heartbeat_ms.unwrap() > started)
        },
    )
    .await;
    // And it deploys again.
    publish(&farm, &repackage(&hello, |m| with_version(m, "0.2.0"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staging_failure_switches_nothing_unless_told_to_disable_the_frontend() {
    let mut farm = Farm::start(2).await;
    // fe3 accepts no package at all: staging anything fails there.
    let fe3 = farm.spawn_frontend("fe3", &["--max-package-mib", "0"]);
    farm.frontends.push(("fe3".into(), fe3));
    farm.wait_ready(&["fe3".into()], Duration::from_secs(10))
        .await;
    let before = farm.list().await.generation;

    let hello = package("examples/hello");
    let (result, _) = farm
        .client
        .publish(hello.to_bytes(), true, None)
        .await
        .unwrap();
    let d = result.deployment.unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed, "{d:?}");
    assert!(d.error.as_deref().unwrap().contains("fe3"), "{d:?}");
    let fe3 = d.frontends.iter().find(|p| p.frontend == "fe3").unwrap();
    assert_eq!(fe3.state, FrontendProgressState::Failed, "{d:?}");
    // Nothing switched anywhere.
    assert_eq!(farm.list().await.generation, before);
    for (_, fe) in &farm.frontends {
        assert_eq!(served_generation(&fe.url).await, before);
    }

    // Told to, it disables fe3 and deploys on the others; the status says so.
    let env = farm.controller.url.clone();
    let (ok, out, err) = run(&[
        "app",
        "deploy",
        "hello@0.1.0",
        "--disable-failed-frontends",
        "--env",
        &env,
        "--token",
        &farm.admin,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("front-end fe3: disabled"), "{out}");
    let list = farm.list().await;
    assert!(list.generation > before);
    let fe3 = list.frontends.iter().find(|f| f.name == "fe3").unwrap();
    assert_eq!(fe3.state, FrontendState::Disabled);
    for fe in list.frontends.iter().filter(|f| f.name != "fe3") {
        assert_eq!(
            (fe.state, fe.generation),
            (FrontendState::Ready, list.generation)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_killed_after_recording_leaves_no_split_farm() {
    let mut farm = Farm::start(2).await;
    publish(&farm, &package("examples/hello")).await;
    let before = farm.list().await.generation;

    // The controller records a deployment and dies before switching anyone.
    farm.controller.kill();
    let store = runway_store::Store::open(&farm.db.url).await.unwrap();
    let id = store
        .begin_deployment("hello", "0.1.0", OperationKind::Deploy)
        .await
        .unwrap();
    let generation = store.claim_generation(id).await.unwrap();
    assert!(generation > before);
    store
        .commit_deployment(id, generation, &[("hello".into(), Some("0.1.0".into()))])
        .await
        .unwrap();
    store.close().await;

    // No front-end may keep answering ready on the old generation.
    let urls: Vec<String> = farm.frontends.iter().map(|(_, p)| p.url.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for url in &urls {
        loop {
            let ready = reqwest::get(format!("{url}/_runway/ready")).await.unwrap();
            if ready.status() == 503 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} still ready on generation {before}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The controller is back: both catch up to the recorded generation.
    farm.restart_controller();
    let list = farm
        .wait_ready(&["fe1".into(), "fe2".into()], Duration::from_secs(20))
        .await;
    assert_eq!(list.generation, generation);
    for url in &urls {
        assert_eq!(served_generation(url).await, generation);
    }
}

/// A front-end catching up with the committed table serves every app it can
/// load: an app that cannot be loaded there (its package is larger than this
/// front-end's `--max-package-mib`) is answered 503 `app_failed` and logged
/// for that app, while the other apps serve and the front-end is ready.
/// Before, the whole table failed and the front-end never became ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frontend_catching_up_serves_the_apps_it_can_load() {
    let mut farm = Farm::start(1).await;
    let hello = package("examples/hello");
    assert!(hello.to_bytes().len() < 1 << 20, "hello fits in 1 MiB");
    publish(&farm, &hello).await;
    // The same component under another name, with 3 MiB of static content.
    let mut files = hello.static_files.clone();
    files.insert("big.bin".into(), vec![7u8; 3 << 20]);
    let big = Package::from_parts(
        hello
            .manifest_toml
            .replacen("name = \"hello\"", "name = \"big\"", 1),
        hello.component.clone(),
        files,
    )
    .unwrap();
    publish(&farm, &big).await;

    let fe2 = farm.spawn_frontend("fe2", &["--max-package-mib", "2"]);
    let url = fe2.url.clone();
    farm.frontends.push(("fe2".into(), fe2));
    farm.wait_ready(&["fe2".to_string()], Duration::from_secs(30))
        .await;
    let response = reqwest::get(format!("{url}/hello/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = reqwest::get(format!("{url}/big/")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "app_failed", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("'big'"),
        "{body}"
    );
    // fe1 serves both.
    let fe1 = farm.frontend("fe1").url.clone();
    assert_eq!(
        reqwest::get(format!("{fe1}/big/")).await.unwrap().status(),
        200
    );

    // The app's log says which front-end could not load it, and why.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = farm
            .client
            .logs(&LogQueryParams {
                app: Some("big".into()),
                kind: Some(runway_api::v1::LogKinds(vec![
                    runway_api::v1::LogKind::Error,
                ])),
                frontend: Some("fe2".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            let message = row.message.as_deref().unwrap_or_default();
            assert!(
                message.contains("front-end fe2 could not load"),
                "{message}"
            );
            assert!(message.contains("big"), "{message}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error row for app big from fe2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
