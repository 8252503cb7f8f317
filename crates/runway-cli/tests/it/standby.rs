//! One active controller per environment: a second `runway controller serve`
//! on the same database is a standby that serves reads, refuses writes
//! naming the active one, and takes over when the active one dies; front-ends
//! and balancers given every controller follow the active one. Real
//! processes, real PostgreSQL.

use std::time::{Duration, Instant};

use runway_api::fleet::FrontendProgressState;
use runway_api::v1::{CreateToken, DeploymentStatus, Scope};
use runway_store::testing::TestDatabase;

use crate::farm_support::{Farm, Load, Proc, served_generation, wait_200};
use crate::support::{package, repackage, with_version};

/// The lease the tests run with (`--lease-ms`); the renewal tick is a third
/// of it, so a standby takes over at most `LEASE + LEASE / 3` after the
/// active controller's last renewal.
const LEASE_MS: u64 = 1500;

fn lease_flags() -> [&'static str; 2] {
    ["--lease-ms", "1500"]
}

/// The id a controller printed (`runway: controller id <id>: <role>`).
fn controller_id(proc: &Proc) -> (String, String) {
    let line = proc.wait_line("controller id ");
    let rest = line.split("controller id ").nth(1).unwrap();
    let (id, role) = rest.split_once(": ").unwrap();
    (id.to_string(), role.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_to_the_standby_is_refused_naming_the_active_controller() {
    let farm = Farm::start_with(0, TestDatabase::create().await, &lease_flags()).await;
    let (active_id, role) = controller_id(&farm.controller);
    assert_eq!(role, "active");
    let standby = farm.spawn_controller(&lease_flags());
    let (standby_id, role) = controller_id(&standby);
    assert_ne!(standby_id, active_id);
    assert!(role.starts_with("standby of "), "{role}");

    let http = reqwest::Client::new();
    let api = format!("{}/_runway/api/v1", standby.url);
    // A write: 503, the standby error, naming the active controller.
    let refused = http
        .post(format!("{api}/tokens"))
        .bearer_auth(&farm.admin)
        .json(&CreateToken {
            name: "ci".into(),
            scope: Scope::Read,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["x-runway-active-controller"],
        farm.controller.url.as_str()
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "standby", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&active_id) && message.contains(&farm.controller.url),
        "{message}"
    );
    assert_eq!(
        body["details"]["active_address"],
        farm.controller.url.as_str()
    );
    // Publishing too, through the typed client.
    let client = runway_client::Client::new(&standby.url, Some(farm.admin.clone())).unwrap();
    let err = client
        .publish(package("examples/hello").to_bytes(), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("standby"), "{err}");
    // Nothing was written.
    assert!(farm.client.apps().await.unwrap().is_empty());
    let tokens = farm.client.tokens().await.unwrap();
    assert!(tokens.iter().all(|t| t.name != "ci"), "{tokens:?}");

    // A read is served, pointing at the active controller.
    let read = http
        .get(format!("{api}/frontends"))
        .bearer_auth(&farm.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.headers()["x-runway-active-controller"],
        farm.controller.url.as_str()
    );
    // The active one answers writes, without the standby header.
    let created = http
        .post(format!("{}/_runway/api/v1/tokens", farm.controller.url))
        .bearer_auth(&farm.admin)
        .json(&CreateToken {
            name: "ci".into(),
            scope: Scope::Read,
        })
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    assert!(
        created
            .headers()
            .get("x-runway-active-controller")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controllers_racing_to_start_elect_exactly_one() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let url = db.url.clone();
    // Three controllers started at once on one fresh database and data dir.
    let spawns: Vec<_> = (0..3)
        .map(|_| {
            let (url, ctl) = (url.clone(), ctl.clone());
            std::thread::spawn(move || {
                Proc::spawn(&[
                    "controller",
                    "serve",
                    "--database",
                    &url,
                    "--data-dir",
                    ctl.to_str().unwrap(),
                    "--listen",
                    "127.0.0.1:0",
                    "--lease-ms",
                    "1500",
                ])
            })
        })
        .collect();
    let procs: Vec<Proc> = spawns.into_iter().map(|s| s.join().unwrap()).collect();
    let roles: Vec<(String, String)> = procs.iter().map(controller_id).collect();
    let active: Vec<_> = roles.iter().filter(|(_, r)| r == "active").collect();
    assert_eq!(active.len(), 1, "{roles:?}");
    for (_, role) in roles.iter().filter(|(_, r)| r != "active") {
        assert!(role.contains(&active[0].0), "{roles:?}");
    }
    // Exactly one accepts a write; the admin token was created once.
    let admin = std::fs::read_to_string(ctl.join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let mut accepted = 0;
    for proc in &procs {
        let answer = http
            .post(format!("{}/_runway/api/v1/tokens", proc.url))
            .bearer_auth(admin.trim())
            .json(&CreateToken {
                name: format!("t{}", proc.url.rsplit(':').next().unwrap()),
                scope: Scope::Read,
            })
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            200 | 201 => accepted += 1,
            503 => {}
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert_eq!(accepted, 1);
    let client = runway_client::Client::new(&procs[0].url, Some(admin.trim().into())).unwrap();
    let tokens = client.tokens().await.unwrap();
    assert_eq!(
        tokens.iter().filter(|t| t.scope == Scope::Admin).count(),
        1,
        "{tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_takes_over_from_a_killed_controller_under_load() {
    let mut farm = Farm::start_with(0, TestDatabase::create().await, &lease_flags()).await;
    let standby = farm.spawn_controller(&lease_flags());
    assert!(controller_id(&standby).1.starts_with("standby"));
    let (a, b) = (farm.controller.url.clone(), standby.url.clone());
    // Two front-ends and a balancer, each given both controllers.
    for name in ["fe1", "fe2"] {
        let proc = farm.spawn_frontend(name, &["--controller", &b]);
        farm.frontends.push((name.to_string(), proc));
    }
    farm.wait_ready(&["fe1".into(), "fe2".into()], Duration::from_secs(30))
        .await;
    let hello = package("examples/hello");
    let (first, _) = farm
        .client
        .publish(hello.to_bytes(), true, None)
        .await
        .unwrap();
    assert_eq!(
        first.deployment.unwrap().status,
        DeploymentStatus::Succeeded
    );
    let lb = farm.start_balancer_following(&[&a, &b]);
    let url = format!("{lb}/hello/");
    wait_200(&url, Duration::from_secs(10)).await;
    let load = Load::start(&url, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // kill -9 the active controller.
    farm.controller.kill();
    let killed = Instant::now();
    let client = runway_client::Client::new(&b, Some(farm.admin.clone())).unwrap();
    // The standby refuses writes until the lease expires, then takes over.
    let mut probe = 0;
    let took_over = loop {
        probe += 1;
        let created = client
            .create_token(&CreateToken {
                name: format!("probe{probe}"),
                scope: Scope::Read,
            })
            .await;
        match created {
            Ok(_) => break killed.elapsed(),
            Err(e) => assert_eq!(e.code(), Some("standby"), "{e}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no takeover:\n{}",
            standby.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Documented bound: the lease plus one renewal tick; a loaded machine
    // gets some slack on top.
    let bound = Duration::from_millis(LEASE_MS + LEASE_MS / 3 + 3000);
    assert!(took_over <= bound, "took over after {took_over:?}");
    assert!(
        took_over >= Duration::from_millis(LEASE_MS / 2),
        "took over after {took_over:?}: before the lease could expire"
    );

    // A publish through the new active controller deploys everywhere.
    let (second, _) = client
        .publish(
            repackage(&hello, |m| with_version(m, "0.2.0")).to_bytes(),
            true,
            None,
        )
        .await
        .unwrap();
    let deployment = second.deployment.unwrap();
    assert_eq!(
        deployment.status,
        DeploymentStatus::Succeeded,
        "{deployment:?}"
    );
    assert_eq!(deployment.frontends.len(), 2, "{deployment:?}");
    assert!(
        deployment
            .frontends
            .iter()
            .all(|p| p.state == FrontendProgressState::Committed),
        "{deployment:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = load.stop().await;
    assert_eq!(
        stats.failures, 0,
        "failed requests at the balancer: {:?}",
        stats.failed
    );
    assert!(stats.ok > 20, "{stats:?}");
    // The balancer still routes.
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    // History: every deployment decided once, none left half done, each
    // generation recorded by exactly one deployment, and every front-end
    // serves the last one.
    let history = client.deployments(None, None).await.unwrap();
    assert!(
        history
            .iter()
            .all(|d| d.status == DeploymentStatus::Succeeded),
        "{history:#?}"
    );
    let mut generations: Vec<i64> = history.iter().filter_map(|d| d.generation).collect();
    assert_eq!(generations.len(), 2, "{history:#?}");
    generations.sort_unstable();
    generations.dedup();
    assert_eq!(
        generations.len(),
        2,
        "a generation recorded twice: {history:#?}"
    );
    let committed = client.frontends().await.unwrap().generation;
    assert_eq!(committed, *generations.last().unwrap());
    for (_, fe) in &farm.frontends {
        assert_eq!(served_generation(&fe.url).await, committed);
    }
    let app = client.app("hello").await.unwrap();
    assert_eq!(app.summary.running_version.as_deref(), Some("0.2.0"));
}
