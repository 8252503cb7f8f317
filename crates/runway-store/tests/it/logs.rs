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

/// Every row of the catalog, oldest first.
async fn all_rows(store: &runway_store::Store) -> Vec<runway_store::LogEntry> {
    store
        .logs(&LogQuery {
            after_id: Some(0),
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn output(app: &str, message: &str) -> NewLogEntry {
    NewLogEntry {
        at_ms: now_ms(),
        kind: LogKind::Output,
        app: Some(app.to_string()),
        stream: Some("stdout".into()),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

/// NUL bytes (which PostgreSQL refuses in text) and what is left of invalid
/// UTF-8 are stored on both backends, and never cost the other rows of their
/// batch (other apps' rows included).
async fn nul_bytes_and_invalid_utf8_are_stored() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    for i in 0..50 {
        sink.write(output("other", &format!("line {i}")));
    }
    let lossy = String::from_utf8_lossy(b"bad \xff\xfe utf-8").into_owned();
    sink.write(output("nul", "a\0b\0"));
    sink.write(output("nul", &lossy));
    sink.write(NewLogEntry {
        at_ms: now_ms(),
        kind: LogKind::Request,
        app: Some("nul\0app".into()),
        method: Some("G\0ET".into()),
        path: Some("/nul/\0".into()),
        request_id: Some("r\0".into()),
        ..Default::default()
    });
    for i in 50..100 {
        sink.write(output("other", &format!("line {i}")));
    }
    sink.flush().await;
    assert_eq!(sink.dropped(), 0);
    let rows = all_rows(&store).await;
    assert_eq!(rows.len(), 103, "every row of the batch is stored");
    let nul: Vec<_> = rows
        .iter()
        .filter(|r| r.app.as_deref() == Some("nul"))
        .collect();
    assert_eq!(nul.len(), 2);
    let first = nul[0].message.as_deref().unwrap();
    assert!(!first.contains('\0'), "{first:?}");
    assert!(first.starts_with('a') && first.contains('b'), "{first:?}");
    assert_eq!(nul[1].message.as_deref(), Some(lossy.as_str()));
    let request = rows.iter().find(|r| r.kind == LogKind::Request).unwrap();
    for field in [
        &request.app,
        &request.method,
        &request.path,
        &request.request_id,
    ] {
        assert!(!field.as_deref().unwrap().contains('\0'), "{field:?}");
    }
    store.close().await;
}

/// Makes the database itself refuse rows whose message is `poison` (a
/// trigger), to stand for any row the database rejects.
async fn install_poison_trigger(dir: &crate::Guard) {
    use sqlx::Connection;
    match dir {
        crate::Guard::Dir(d) => {
            let url = format!("sqlite://{}/log.db", d.path().display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON log_entries \
                 WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        crate::Guard::Database(db) => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            for sql in [
                "CREATE FUNCTION log.poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.message = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
                 RETURN NEW; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON log.log_entries \
                 FOR EACH ROW EXECUTE FUNCTION log.poison()",
            ] {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }
}

/// A row the database rejects is dropped alone and counted; the rest of its
/// batch is stored.
async fn a_rejected_row_does_not_cost_its_batch() {
    let (dir, store) = open().await;
    install_poison_trigger(&dir).await;
    let sink = store.log_sink();
    for i in 0..300 {
        let message = if i == 150 {
            "poison".to_string()
        } else {
            format!("line {i}")
        };
        sink.write(output(if i % 2 == 0 { "a" } else { "b" }, &message));
    }
    sink.flush().await;
    let rows = all_rows(&store).await;
    assert_eq!(rows.len(), 299);
    assert!(rows.iter().all(|r| r.message.as_deref() != Some("poison")));
    assert_eq!(sink.dropped(), 1);
    let drops = store.log_drops().await.unwrap();
    assert_eq!(drops.rejected, 1, "{drops:?}");
    assert_eq!(drops.total(), 1, "{drops:?}");
    store.close().await;
}

/// Long fields are cut, with a marker that says so.
async fn long_fields_are_cut_with_a_marker() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    let path = format!("/unknown/{}", "p".repeat(64 * 1024));
    sink.write(NewLogEntry {
        at_ms: now_ms(),
        kind: LogKind::Request,
        method: Some("M".repeat(10_000)),
        path: Some(path),
        request_id: Some("r".repeat(10_000)),
        message: Some("é".repeat(100_000)),
        ..Default::default()
    });
    sink.flush().await;
    let rows = all_rows(&store).await;
    let row = &rows[0];
    let path = row.path.as_deref().unwrap();
    assert!(path.len() <= 2 * 1024 + 64, "{}", path.len());
    assert!(path.starts_with("/unknown/ppp"));
    assert!(path.contains("cut"), "marker: {}", &path[path.len() - 60..]);
    let message = row.message.as_deref().unwrap();
    assert!(message.len() <= 9 * 1024 + 64, "{}", message.len());
    assert!(message.contains("cut"));
    assert!(row.method.as_deref().unwrap().len() <= 128);
    assert!(row.request_id.as_deref().unwrap().len() <= 256);
    store.close().await;
}

/// App output beyond the per-app rate is dropped, counted, and a marker row
/// says how many; other apps keep their own budget.
async fn output_beyond_the_rate_limit_is_dropped_with_a_marker() {
    let (_dir, store) = open().await;
    store.set_log_limits(runway_store::LogLimits {
        output_lines_per_sec: 10,
        output_bytes_per_sec: 1 << 20,
        ..Default::default()
    });
    let sink = store.log_sink();
    for i in 0..1000 {
        sink.write(output("noisy", &format!("line {i}")));
    }
    for i in 0..10 {
        sink.write(output("quiet", &format!("line {i}")));
    }
    sink.flush().await;
    let rows = all_rows(&store).await;
    let quiet = rows
        .iter()
        .filter(|r| r.app.as_deref() == Some("quiet"))
        .count();
    assert_eq!(quiet, 10);
    let noisy_lines = rows
        .iter()
        .filter(|r| r.app.as_deref() == Some("noisy") && r.kind == LogKind::Output)
        .count() as u64;
    // The burst, and perhaps a line or two refilled meanwhile.
    assert!((50..100).contains(&noisy_lines), "{noisy_lines}");
    let marker = rows
        .iter()
        .find(|r| r.app.as_deref() == Some("noisy") && r.kind != LogKind::Output)
        .expect("a marker row");
    assert_eq!(marker.level, LogLevel::Warn);
    let text = marker.message.as_deref().unwrap();
    let dropped = 1000 - noisy_lines;
    assert!(
        text.contains(&format!("{dropped} lines dropped (output limit 10 lines/s")),
        "{text}"
    );
    let drops = store.log_drops().await.unwrap();
    assert_eq!(drops.output_rate_limit, dropped);
    store.close().await;
}

/// The size cap deletes the oldest rows until the catalog is under it, and
/// counts them.
async fn size_cap_deletes_the_oldest_rows() {
    let (_dir, store) = open().await;
    let sink = store.log_sink();
    let message = "x".repeat(1000);
    for i in 0..3000 {
        sink.write(NewLogEntry {
            at_ms: now_ms(),
            message: Some(format!("{i:05} {message}")),
            ..Default::default()
        });
    }
    sink.flush().await;
    let before = store.log_size().await.unwrap();
    assert!(before > 3_000_000, "{before}");
    let cap = 1 << 20;
    let deleted = store.enforce_log_size_cap(cap).await.unwrap();
    assert!(deleted > 1900, "{deleted}");
    assert!(store.log_size().await.unwrap() <= cap);
    let rows = all_rows(&store).await;
    assert_eq!(rows.len() as u64, 3000 - deleted);
    assert!(
        rows.last()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .starts_with("02999 ")
    );
    assert!(rows[0].message.as_deref().unwrap() > "01000");
    // Under the cap: nothing more to delete.
    assert_eq!(store.enforce_log_size_cap(cap).await.unwrap(), 0);
    sink.flush().await;
    assert_eq!(store.log_drops().await.unwrap().size_cap, deleted);

    // The background task does the same.
    for _ in 0..3000 {
        sink.write(NewLogEntry {
            at_ms: now_ms(),
            message: Some(message.clone()),
            ..Default::default()
        });
    }
    sink.flush().await;
    store.set_log_limits(runway_store::LogLimits {
        max_bytes: cap,
        ..Default::default()
    });
    let task = store.spawn_retention(Duration::from_secs(3600), Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.log_size().await.unwrap() > cap {
        assert!(
            tokio::time::Instant::now() < deadline,
            "size cap not enforced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    store.close().await;
}

crate::both!(
    write_flush_and_query,
    entries_arrive_without_flush,
    retention_purges_old_entries,
    full_queue_drops_instead_of_blocking,
    nul_bytes_and_invalid_utf8_are_stored,
    a_rejected_row_does_not_cost_its_batch,
    long_fields_are_cut_with_a_marker,
    output_beyond_the_rate_limit_is_dropped_with_a_marker,
    size_cap_deletes_the_oldest_rows,
);
