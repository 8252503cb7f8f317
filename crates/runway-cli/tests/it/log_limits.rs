//! Logs nobody can flood or poison (a guest that floods stdout, writes NUL
//! bytes, invalid UTF-8 and 100 KiB lines; a client sending 60 KB paths):
//! per-app output limits with a marker row, cut lines and paths, and the drop
//! counts in `runway env` and the API.

use runway_api::v1::{LogEntry, LogKind, LogLevel, LogQueryParams};

use crate::support::{TestEnv, package};

/// Every row (of `app`, or of all apps), once everything logged is stored.
async fn rows(env: &TestEnv, app: Option<&str>) -> Vec<LogEntry> {
    let store = env.env.as_ref().unwrap().controller().store().clone();
    store.log_sink().flush().await;
    env.client
        .logs(&LogQueryParams {
            app: app.map(str::to_string),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .expect("logs query")
}

/// The number a marker row `… N lines dropped (…)` reports.
fn marker_count(e: &LogEntry) -> Option<u64> {
    let m = e.message.as_deref()?;
    if e.kind != LogKind::Platform || !m.contains("lines dropped (output limit 100 lines/s") {
        return None;
    }
    m.trim_start_matches('…')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_output_is_cut_to_the_limit_with_a_marker_and_counted() {
    // The documented defaults: 100 lines/s per app, bursts of 5 s worth.
    let env = TestEnv::start().await;
    env.publish(&package("tests/guests/flood")).await;
    let (status, body) = env.get_text("/flood/lines?n=5000").await;
    assert_eq!((status, body.as_str()), (200, "flooded 5000\n"));
    // Another app's output is not affected by the flood.
    env.publish(&package("tests/guests/misbehave")).await;
    assert_eq!(env.get_text("/misbehave/print").await.0, 200);

    let flood = rows(&env, Some("flood")).await;
    let kept = flood.iter().filter(|r| r.kind == LogKind::Output).count() as u64;
    assert!((500..700).contains(&kept), "{kept} output rows kept");
    let marked: u64 = flood.iter().filter_map(marker_count).sum();
    assert_eq!(kept + marked, 5000, "every dropped line is in a marker row");
    let marker = flood.iter().find(|r| marker_count(r).is_some()).unwrap();
    assert_eq!(marker.level, LogLevel::Warn);
    let misbehave = rows(&env, Some("misbehave")).await;
    assert_eq!(
        misbehave
            .iter()
            .filter(|r| r.kind == LogKind::Output)
            .count(),
        2,
        "{misbehave:?}"
    );

    let info = env.client.environment().await.expect("environment");
    assert_eq!(info.log_dropped.output_rate_limit, marked);
    assert_eq!(info.log_dropped.rejected, 0);
    let text = runway_cli::commands::env::render(&info);
    assert!(
        text.contains(&format!("log rows dropped: {marked} (output rate limit)"))
            || text.contains(&format!("{marked} (output rate limit)")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_invalid_utf8_long_lines_and_long_paths_are_stored_safely() {
    let env = TestEnv::start().await;
    env.publish(&package("tests/guests/flood")).await;
    assert_eq!(env.get_text("/flood/bad").await.0, 200);
    assert_eq!(env.get_text("/flood/long").await.0, 200);
    let long_path = format!("/nosuchapp/{}", "p".repeat(60_000));
    assert_eq!(env.get(&long_path).await.status().as_u16(), 404);

    let flood = rows(&env, Some("flood")).await;
    let output: Vec<&str> = flood
        .iter()
        .filter(|r| r.kind == LogKind::Output)
        .map(|r| r.message.as_deref().unwrap())
        .collect();
    assert_eq!(
        output.len(),
        3,
        "one row per line: {:?}",
        output.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(output[0], "nul \u{FFFD} inside \u{FFFD}");
    assert_eq!(output[1], "invalid \u{FFFD}\u{FFFD} utf-8");
    assert!(output[2].starts_with(&"L".repeat(8 * 1024)));
    assert!(output[2].len() < 8 * 1024 + 100, "{}", output[2].len());
    assert!(
        output[2].ends_with("[runway: line cut at 8192 of 102400 bytes]"),
        "{}",
        &output[2][8 * 1024..]
    );

    let all = rows(&env, None).await;
    let request = all
        .iter()
        .find(|r| {
            r.kind == LogKind::Request
                && r.path
                    .as_deref()
                    .is_some_and(|p| p.starts_with("/nosuchapp/"))
        })
        .expect("the request is logged");
    let path = request.path.as_deref().unwrap();
    assert!(
        path.len() < 2 * 1024 + 100,
        "path stored with {} bytes",
        path.len()
    );
    assert!(
        path.ends_with("[runway: cut at 2048 of 60011 bytes]"),
        "{}",
        &path[2048..]
    );
}
