use runway_api::v1::OperationKind;
use runway_store::{FrontendRegistration, StoreError};

use crate::open;

fn registration(name: &str, node: &str, address: &str) -> FrontendRegistration {
    FrontendRegistration {
        name: name.into(),
        node_id: node.into(),
        address: address.into(),
        serves_apps: true,
        runs_timers: false,
        sends_email: true,
        engine: "engine-a".into(),
        runway_version: "0.1.0".into(),
        zone: "global".into(),
    }
}

async fn register_heartbeat_restart_and_duplicate() {
    let (_guard, store) = open().await;
    let fe = store
        .register_frontend(&registration("fe1", "node-1", "http://127.0.0.1:1"), "n1")
        .await
        .unwrap();
    assert!(fe.enabled && !fe.ready && fe.serves_apps && !fe.runs_timers);
    assert_eq!(fe.generation, 0);

    let beat = store
        .heartbeat_frontend("fe1", "n1", 0, true, false)
        .await
        .unwrap()
        .unwrap();
    assert!(beat.ready);
    assert_eq!(beat.generation, 0);
    // Behind the committed generation: not ready, whatever it says…
    store
        .insert_version(&crate::new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 4, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    let beat = |generation, switching| {
        let store = store.clone();
        async move {
            store
                .heartbeat_frontend("fe1", "n1", generation, true, switching)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert!(!beat(3, false).await.ready);
    // …unless it is being switched to it right now.
    assert!(beat(3, true).await.ready);
    let current = beat(4, false).await;
    assert!(current.ready && current.generation == 4);
    // A commit the controller saw never moves a front-end backwards.
    store.record_frontend_commit("fe1", 3).await.unwrap();
    assert_eq!(store.frontend("fe1").await.unwrap().unwrap().generation, 4);
    // A stale key nonce (an older start of the same front-end) is not heard.
    assert!(
        store
            .heartbeat_frontend("fe1", "old", 4, true, false)
            .await
            .unwrap()
            .is_none()
    );

    // Disabled stays disabled across a restart; a restart is not ready yet.
    assert!(store.set_frontend_enabled("fe1", false).await.unwrap());
    let again = store
        .register_frontend(&registration("fe1", "node-1", "http://127.0.0.1:2"), "n2")
        .await
        .unwrap();
    assert!(!again.enabled && !again.ready);
    assert_eq!(
        (again.address.as_str(), again.generation),
        ("http://127.0.0.1:2", 0)
    );
    assert!(
        store
            .heartbeat_frontend("fe1", "n1", 4, true, false)
            .await
            .unwrap()
            .is_none()
    );

    // Another data directory claiming the name is refused; nothing changes.
    let err = store
        .register_frontend(&registration("fe1", "node-2", "http://127.0.0.1:3"), "n3")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(
        err.to_string().contains("runway frontend remove fe1"),
        "{err}"
    );
    assert_eq!(
        store.frontend("fe1").await.unwrap().unwrap().address,
        "http://127.0.0.1:2"
    );

    store
        .register_frontend(&registration("fe0", "node-0", "http://127.0.0.1:4"), "n4")
        .await
        .unwrap();
    let names: Vec<_> = store
        .frontends()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["fe0", "fe1"]);

    store.mark_frontend_behind("fe0").await.unwrap();
    assert!(store.remove_frontend("fe1").await.unwrap());
    assert!(!store.remove_frontend("fe1").await.unwrap());
    assert!(!store.set_frontend_enabled("fe1", true).await.unwrap());
    store.close().await;
}

async fn concurrent_registrations_of_one_name_admit_one_node() {
    let (_guard, store) = open().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .register_frontend(
                    &registration("fe", &format!("node-{i}"), "http://127.0.0.1:1"),
                    &format!("n{i}"),
                )
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    store.close().await;
}

crate::both!(
    register_heartbeat_restart_and_duplicate,
    concurrent_registrations_of_one_name_admit_one_node,
);
