use std::time::Duration;

use runway_store::{LogKind, LogLevel, LogQuery, NewLogEntry, now_ms};

use crate::open;

fn entry(i: i64) -> NewLogEntry {
    let kind = match i % 4 {
        0 => LogKind::Request,
        1 => LogKind::Output,
        2 => LogKind::Error,
        _ => LogKind::Platform,
    };
    NewLogEntry {
        at_ms: 1_000 + i,
        kind,
        level: if kind == LogKind::Error {
            LogLevel::Error
        } else {
            LogLevel::Info
        },
        app: Some(if i % 2 == 0 { "a" } else { "b" }.to_string()),
        version: Some("1.0.0".into()),
        frontend: Some(if i % 5 == 0 { "fe-1" } else { "fe-0" }.to_string()),
        request_id: Some(format!("req-{i}")),
        method: (kind == LogKind::Request).then(|| "GET".to_string()),
        path: (kind == LogKind::Request).then(|| format!("/a/{i}")),
        status: (kind == LogKind::Request).then_some(if i % 8 == 0 { 500 } else { 200 }),
        duration_us: (kind == LogKind::Request).then_some(i),
        bytes_out: (kind == LogKind::Request).then_some(10),
        stream: (kind == LogKind::Output).then(|| "stdout".to_string()),
        message: Some(format!("entry {i}")),
    }
}

async fn write_flush_and_query() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    for i in 0..5000 {
        sink.write(entry(i));
    }
    sink.flush().await;
    assert_eq!(sink.dropped(), 0);

    // Newest `limit`, ascending.
    let q = LogQuery {
        limit: 100,
        ..Default::default()
    };
    let page = store.logs(&q).await.unwrap();
    assert_eq!(page.len(), 100);
    assert!(page.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(page.last().unwrap().message.as_deref(), Some("entry 4999"));
    assert_eq!(page[0].message.as_deref(), Some("entry 4900"));

    let all = store
        .logs(&LogQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5000);
    let e = &all[8];
    assert_eq!(e.kind, LogKind::Request);
    assert_eq!(e.status, Some(500));
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(e.request_id.as_deref(), Some("req-8"));
    assert_eq!(all[1].stream.as_deref(), Some("stdout"));
    assert_eq!(all[1].status, None);

    // By app.
    let a = store
        .logs(&LogQuery {
            app: Some("b".into()),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.len(), 2500);
    assert!(a.iter().all(|e| e.app.as_deref() == Some("b")));

    // By kinds.
    let k = store
        .logs(&LogQuery {
            kinds: vec![LogKind::Output, LogKind::Platform],
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(k.len(), 2500);
    assert!(
        k.iter()
            .all(|e| matches!(e.kind, LogKind::Output | LogKind::Platform))
    );

    // Errors only.
    let errs = store
        .logs(&LogQuery {
            errors_only: true,
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errs.len(), 1250);
    assert!(errs.iter().all(|e| e.level == LogLevel::Error));

    // Frontend, status, since.
    let s = store
        .logs(&LogQuery {
            status: Some(500),
            frontend: Some("fe-1".into()),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    // i % 8 == 0 and i % 5 == 0 -> i % 40 == 0
    assert_eq!(s.len(), 125);
    let since = store
        .logs(&LogQuery {
            since_ms: Some(1_000 + 4990),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 10);
    let window = store
        .logs(&LogQuery {
            since_ms: Some(1_000 + 4990),
            until_ms: Some(1_000 + 4995),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 5);

    // Following with after_id: oldest first, pages of 1000 cover everything once.
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let page = store
            .logs(&LogQuery {
                after_id: Some(cursor),
                app: Some("a".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page[0].id > cursor);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id));
        seen += page.len();
        cursor = page.last().unwrap().id;
    }
    assert_eq!(seen, 2500);

    // New entries after the cursor show up.
    sink.write(entry(5000));
    sink.flush().await;
    let page = store
        .logs(&LogQuery {
            after_id: Some(cursor),
            app: Some("a".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].message.as_deref(), Some("entry 5000"));
    store.close().await;
}

async fn entries_arrive_without_flush() {
    let (_dir, store) = open().await;
    store.log_sink().write(entry(0));
    let q = LogQuery {
        limit: 10,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store.logs(&q).await.unwrap().len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
}

async fn retention_purges_old_entries() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    let now = now_ms();
    for i in 0..30 {
        sink.write(NewLogEntry {
            at_ms: if i < 20 { now - 3_600_000 } else { now },
            message: Some(format!("{i}")),
            ..Default::default()
        });
    }
    sink.flush().await;
    assert_eq!(store.purge_logs_before(now - 60_000).await.unwrap(), 20);
    assert_eq!(store.purge_logs_before(now - 60_000).await.unwrap(), 0);
    let left = store
        .logs(&LogQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 10);

    // The background task does the same.
    for _ in 0..5 {
        sink.write(NewLogEntry {
            at_ms: now - 3_600_000,
            ..Default::default()
        });
    }
    sink.flush().await;
    let task = store.spawn_retention(Duration::from_secs(60), Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = store
            .logs(&LogQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
        if n == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    // The task ends once the store is closed.
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("retention task ends after close")
        .unwrap();
}

async fn full_queue_drops_instead_of_blocking() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    // Far more than the queue holds, written synchronously (the writer task
    // cannot run in between on this single-threaded runtime).
    for _ in 0..70_000 {
        sink.write(NewLogEntry::default());
    }
    assert!(sink.dropped() > 0);
    sink.flush().await;
    let written = store
        .logs(&LogQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(written + sink.dropped(), 70_000);
    store.close().await;
}

crate::both!(
    write_flush_and_query,
    entries_arrive_without_flush,
    retention_purges_old_entries,
    full_queue_drops_instead_of_blocking,
);
