//! The controller lease: compare-and-set acquisition, renewal, expiry,
//! takeover with a new term, and fencing of deployment records.

use std::time::Duration;

use runway_api::v1::OperationKind;
use runway_store::{Fence, Lease, Store, StoreError};

use crate::{new_version, open};

const TTL: Duration = Duration::from_secs(30);

fn held(lease: Lease) -> runway_store::LeaseState {
    match lease {
        Lease::Held(state) => state,
        Lease::Other(state) => panic!("expected to hold the lease, {state:?} holds it"),
    }
}

fn other(lease: Lease) -> runway_store::LeaseState {
    match lease {
        Lease::Other(state) => state,
        Lease::Held(state) => panic!("expected a standby answer, got the lease {state:?}"),
    }
}

async fn acquire_renew_and_refuse_a_second_holder() {
    let (_guard, store) = open().await;
    let free = store.lease().await.unwrap();
    assert!(!free.is_live(), "{free:?}");
    let a = held(
        store
            .acquire_lease("a", "http://a", None, TTL)
            .await
            .unwrap(),
    );
    assert_eq!((a.holder.as_str(), a.address.as_str()), ("a", "http://a"));
    assert_eq!(a.term, 1);
    assert!(
        a.expires_in_ms > 25_000 && a.expires_in_ms <= 30_000,
        "{a:?}"
    );

    // A second controller is told who holds it and where.
    let b = other(
        store
            .acquire_lease("b", "http://b", None, TTL)
            .await
            .unwrap(),
    );
    assert_eq!(
        (b.holder.as_str(), b.address.as_str(), b.term),
        ("a", "http://a", 1)
    );
    // Renewing keeps the term.
    let renewed = held(
        store
            .acquire_lease("a", "http://a", Some(1), TTL)
            .await
            .unwrap(),
    );
    assert_eq!(renewed.term, 1);
    // A renewal that names a wrong term is not one.
    other(
        store
            .acquire_lease("a", "http://a", Some(7), TTL)
            .await
            .unwrap(),
    );
    store.close().await;
}

async fn expiry_lets_another_take_over_with_a_new_term() {
    let (_guard, store) = open().await;
    held(
        store
            .acquire_lease("a", "http://a", None, Duration::from_millis(300))
            .await
            .unwrap(),
    );
    other(
        store
            .acquire_lease("b", "http://b", None, TTL)
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!store.lease().await.unwrap().is_live());
    let b = held(
        store
            .acquire_lease("b", "http://b", None, TTL)
            .await
            .unwrap(),
    );
    assert_eq!((b.holder.as_str(), b.term), ("b", 2));
    // The old holder cannot renew its way back.
    let seen = other(
        store
            .acquire_lease("a", "http://a", Some(1), TTL)
            .await
            .unwrap(),
    );
    assert_eq!(
        (seen.holder.as_str(), seen.address.as_str()),
        ("b", "http://b")
    );

    // Released: the next one takes it at once.
    assert!(store.release_lease("b", 2).await.unwrap());
    let a = held(
        store
            .acquire_lease("a", "http://a", None, TTL)
            .await
            .unwrap(),
    );
    assert_eq!(a.term, 3);
    store.close().await;
}

async fn racing_controllers_elect_exactly_one() {
    let (guard, store) = open().await;
    let mut stores = vec![store];
    for _ in 0..4 {
        stores.push(Store::open(&guard.location()).await.unwrap());
    }
    let attempts: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            tokio::spawn(async move {
                s.acquire_lease(&format!("c{i}"), &format!("http://c{i}"), None, TTL)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let winners: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Lease::Held(s) => Some(s.holder.clone()),
            Lease::Other(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Lease::Other(s) = outcome {
            assert_eq!(s.holder, winners[0]);
        }
    }
    for s in stores {
        s.close().await;
    }
}

async fn a_deposed_controller_cannot_record_a_deployment() {
    let (guard, old) = open().await;
    let new = Store::open(&guard.location()).await.unwrap();
    old.insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let lease = held(
        old.acquire_lease("old", "http://old", None, Duration::from_millis(300))
            .await
            .unwrap(),
    );
    old.set_fence(Some(Fence {
        holder: "old".into(),
        term: lease.term,
    }));
    // The old controller starts a deployment, then stalls past its lease.
    let id = old
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let taken = held(
        new.acquire_lease("new", "http://new", None, TTL)
            .await
            .unwrap(),
    );
    new.set_fence(Some(Fence {
        holder: "new".into(),
        term: taken.term,
    }));
    let err = old
        .commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("no longer holds"), "{err}");
    assert_eq!(new.generation().await.unwrap(), 0);
    assert_eq!(new.app("a").await.unwrap().unwrap().running_version, None);

    // Expired but not taken over is not enough either.
    let (guard2, lone) = open().await;
    lone.insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let l = held(
        lone.acquire_lease("lone", "http://lone", None, Duration::from_millis(200))
            .await
            .unwrap(),
    );
    lone.set_fence(Some(Fence {
        holder: "lone".into(),
        term: l.term,
    }));
    let id2 = lone
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    lone.commit_deployment(id2, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap_err();
    // Renewed: it records.
    held(
        lone.acquire_lease("lone", "http://lone", Some(l.term), TTL)
            .await
            .unwrap(),
    );
    lone.commit_deployment(id2, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();

    // The new holder records, once its start-up recovery has failed the
    // deposed controller's unrecorded deployment (one runs at a time).
    assert_eq!(
        new.fail_unfinished_deployments("taken over").await.unwrap(),
        1
    );
    let id = new
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    new.commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    assert_eq!(new.generation().await.unwrap(), 1);
    for s in [old, new, lone] {
        s.close().await;
    }
    drop((guard, guard2));
}

async fn a_restart_at_the_same_address_reclaims_at_once() {
    let (_guard, store) = open().await;
    let first = held(
        store
            .acquire_lease("p1", "http://h:9000", None, TTL)
            .await
            .unwrap(),
    );
    // Another address waits for the expiry…
    other(
        store
            .reclaim_lease("q", "http://h:9001", TTL)
            .await
            .unwrap(),
    );
    // …the same address does not, and fences the old process with a new term.
    let second = held(
        store
            .reclaim_lease("p2", "http://h:9000", TTL)
            .await
            .unwrap(),
    );
    assert_eq!(
        (second.holder.as_str(), second.term),
        ("p2", first.term + 1)
    );
    other(
        store
            .acquire_lease("p1", "http://h:9000", Some(first.term), TTL)
            .await
            .unwrap(),
    );
    store.close().await;
}

crate::both!(
    acquire_renew_and_refuse_a_second_holder,
    expiry_lets_another_take_over_with_a_new_term,
    racing_controllers_elect_exactly_one,
    a_deposed_controller_cannot_record_a_deployment,
    a_restart_at_the_same_address_reclaims_at_once,
);
