//! Deployment zones: the catalog side (issue 12 part 1).

use runway_api::v1::OperationKind;
use runway_store::{FrontendRegistration, GLOBAL_ZONE, StoreError, ZoneChanges};

use crate::{new_version, open};

fn registration(name: &str, zone: &str) -> FrontendRegistration {
    FrontendRegistration {
        name: name.into(),
        node_id: format!("node-{name}"),
        address: "http://127.0.0.1:1".into(),
        serves_apps: true,
        runs_timers: false,
        sends_email: false,
        engine: "engine-a".into(),
        runway_version: "0.1.0".into(),
        zone: zone.into(),
    }
}

async fn zones_are_created_listed_and_removed_only_when_unused() {
    let (_guard, store) = open().await;
    let zones = store.zones().await.unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].name, GLOBAL_ZONE);

    let partners = store
        .create_zone("partners", "https://partners-lb.internal:9443", true)
        .await
        .unwrap();
    assert!(partners.https_internal);
    assert_eq!(
        partners.address.as_deref(),
        Some("https://partners-lb.internal:9443")
    );
    let again = store
        .create_zone("partners", "http://x:1", false)
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::Conflict(ref m) if m.contains("already exists")),
        "{again}"
    );
    assert_eq!(store.zones().await.unwrap().len(), 2);

    // Global is never removed.
    let err = store.remove_zone(GLOBAL_ZONE).await.unwrap_err();
    assert!(err.to_string().contains("cannot be removed"), "{err}");

    // A front-end naming an unknown zone is refused, nothing registered.
    let err = store
        .register_frontend(&registration("fe9", "nowhere"), "n")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("zone nowhere") && text.contains("runway zone create nowhere"),
        "{text}"
    );
    assert!(store.frontend("fe9").await.unwrap().is_none());

    // In use by a front-end: refused, naming it.
    let fe = store
        .register_frontend(&registration("fe1", "partners"), "n1")
        .await
        .unwrap();
    assert_eq!(fe.zone, "partners");
    let err = store.remove_zone("partners").await.unwrap_err();
    assert!(err.to_string().contains("front-ends fe1"), "{err}");
    store.remove_frontend("fe1").await.unwrap();

    // In use by an app: refused, naming it.
    store
        .insert_version(&new_version("billing", "1.0.0", "db1"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("billing", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment_in_zones(
            id,
            1,
            &[("billing".into(), Some("1.0.0".into()))],
            &[],
            &ZoneChanges {
                moves: vec![("billing".into(), "partners".into())],
                touched: Some(vec!["partners".into()]),
                settings: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.app_zone("billing").await.unwrap(), "partners");
    let err = store.remove_zone("partners").await.unwrap_err();
    assert!(err.to_string().contains("apps billing"), "{err}");
    assert_eq!(store.zones().await.unwrap().len(), 2);

    let err = store.remove_zone("nowhere").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    store.close().await;
}

async fn a_deployment_moves_generations_only_of_the_zones_it_touches() {
    let (_guard, store) = open().await;
    store.create_zone("a", "http://a:1", false).await.unwrap();
    store.create_zone("b", "http://b:1", false).await.unwrap();
    store
        .insert_version(&new_version("app1", "1.0.0", "d1"))
        .await
        .unwrap();
    let fa = store
        .register_frontend(&registration("fa", "a"), "na")
        .await
        .unwrap();
    let fb = store
        .register_frontend(&registration("fb", "b"), "nb")
        .await
        .unwrap();
    assert_eq!((fa.zone.as_str(), fb.zone.as_str()), ("a", "b"));

    let id = store
        .begin_deployment("app1", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    let generation = store.claim_generation(id).await.unwrap();
    store
        .commit_deployment_in_zones(
            id,
            generation,
            &[("app1".into(), Some("1.0.0".into()))],
            &[],
            &ZoneChanges {
                moves: vec![("app1".into(), "a".into())],
                touched: Some(vec!["a".into()]),
                settings: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.generation().await.unwrap(), generation);
    assert_eq!(store.zone_generation("a").await.unwrap(), generation);
    assert_eq!(store.zone_generation("b").await.unwrap(), 0);
    assert_eq!(store.zone_generation(GLOBAL_ZONE).await.unwrap(), 0);

    // fb serves generation 0 and is ready (its zone did not change); fa
    // serving 0 is behind.
    let b = store
        .heartbeat_frontend("fb", "nb", 0, true, false)
        .await
        .unwrap()
        .unwrap();
    assert!(b.ready);
    let a = store
        .heartbeat_frontend("fa", "na", 0, true, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!a.ready);
    let a = store
        .heartbeat_frontend("fa", "na", generation, true, false)
        .await
        .unwrap()
        .unwrap();
    assert!(a.ready);

    // A move back to global deletes the assignment; a move to a zone that
    // does not exist fails the whole record.
    let id = store
        .begin_deployment("app1", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    let g2 = store.claim_generation(id).await.unwrap();
    let err = store
        .commit_deployment_in_zones(
            id,
            g2,
            &[("app1".into(), Some("1.0.0".into()))],
            &[],
            &ZoneChanges {
                moves: vec![("app1".into(), "gone".into())],
                touched: Some(vec!["a".into(), "gone".into()]),
                settings: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("zone gone"), "{err}");
    assert_eq!(store.generation().await.unwrap(), generation);
    assert_eq!(store.app_zone("app1").await.unwrap(), "a");
    store
        .commit_deployment_in_zones(
            id,
            g2,
            &[("app1".into(), Some("1.0.0".into()))],
            &[],
            &ZoneChanges {
                moves: vec![("app1".into(), GLOBAL_ZONE.into())],
                touched: Some(vec!["a".into(), GLOBAL_ZONE.into()]),
                settings: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.app_zone("app1").await.unwrap(), GLOBAL_ZONE);
    assert!(store.app_zones().await.unwrap().is_empty());
    assert_eq!(store.zone_generation(GLOBAL_ZONE).await.unwrap(), g2);
    assert_eq!(store.zone_generation("b").await.unwrap(), 0);
    store.close().await;
}

crate::both!(
    zones_are_created_listed_and_removed_only_when_unused,
    a_deployment_moves_generations_only_of_the_zones_it_touches,
);
