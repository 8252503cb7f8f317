//! Client connections against every kind of Runway server: a half-sent
//! request head and an idle keep-alive connection are closed within their
//! timeouts, and idle connections beyond the bound (or beyond the open-file
//! limit) never lock a fresh client out, and a client that stops reading its
//! response is disconnected after the send timeout. The attacker is a raw
//! TCP client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runway_server::ConnectionSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestEnv, package, repackage};

const HEALTH: &[u8] = b"GET /_runway/health HTTP/1.1\r\nhost: test\r\n\r\n";

fn settings(header_ms: u64, keep_alive_ms: u64, max: usize) -> ConnectionSettings {
    ConnectionSettings {
        header_read_timeout: Duration::from_millis(header_ms),
        keep_alive_timeout: Duration::from_millis(keep_alive_ms),
        max_connections: max,
        ..ConnectionSettings::default()
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Reads one response (head and `content-length` body); returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("content-length");
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    status
}

/// How long until the server closes `stream` (EOF or reset), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_within_the_header_timeout() {
    let env = TestEnv::start_with(|c| c.connections = settings(500, 60_000, 100)).await;
    let mut stream = TcpStream::connect(host_port(&env.url)).await.unwrap();
    stream
        .write_all(b"GET /_runway/health HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a connection that never finished its request head is still open after 5 s \
         (header read timeout 500 ms)"
    );

    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(host_port(&env.url)).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a silent connection is still open after 5 s"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_within_the_idle_timeout() {
    let env = TestEnv::start_with(|c| c.connections = settings(400, 2_000, 100)).await;
    let mut stream = TcpStream::connect(host_port(&env.url)).await.unwrap();
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);

    // Idle for longer than the header timeout but within the keep-alive
    // timeout: the connection is still good for another request.
    tokio::time::sleep(Duration::from_millis(900)).await;
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);

    let closed = closed_within(&mut stream, Duration::from_secs(6)).await;
    let Some(after) = closed else {
        panic!("an idle keep-alive connection is still open after 6 s (keep-alive timeout 2 s)");
    };
    assert!(
        after >= Duration::from_millis(1_500),
        "closed after {after:?}, before the keep-alive timeout of 2 s"
    );
}

#[tokio::test]
async fn the_farm_balancer_closes_idle_and_half_sent_connections() {
    let env = TestEnv::start_with(|c| {
        c.farm = 1;
        c.connections = settings(500, 1_000, 100);
    })
    .await;
    let mut idle = TcpStream::connect(host_port(&env.url)).await.unwrap();
    idle.write_all(HEALTH).await.unwrap();
    read_response(&mut idle).await;
    let mut half = TcpStream::connect(host_port(&env.url)).await.unwrap();
    half.write_all(b"GET /_runway/health HTTP/1.1\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(5))
            .await
            .is_some(),
        "the balancer keeps a half-sent request head open past its header timeout (500 ms)"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5))
            .await
            .is_some(),
        "the balancer keeps an idle connection open past its keep-alive timeout (1 s)"
    );
}

#[tokio::test]
async fn idle_connections_beyond_the_bound_leave_room_for_a_fresh_client() {
    let env = TestEnv::start_with(|c| c.connections = settings(30_000, 60_000, 8)).await;
    let address = host_port(&env.url);
    let mut idle = Vec::new();
    for i in 0..24 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            // A kept-alive connection after one request.
            stream.write_all(HEALTH).await.unwrap();
            read_response(&mut stream).await;
        }
        idle.push(stream);
    }
    let started = Instant::now();
    let response = env
        .http
        .get(format!("{}/_runway/health", env.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a fresh client is served while idle connections fill the bound");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// `runway up` as a process whose open-file limit (soft and hard) is
/// `files`; returns it and its address.
fn up_with_file_limit(data_dir: &std::path::Path, files: u32, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_runway"))
        .args(["up", "--single", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runway up starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let url = rest.trim().to_string();
            // Keep reading: a closed stdout would end the process at its next line.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, url);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("runway up exited before listening");
}

#[tokio::test]
async fn idle_connections_beyond_the_open_file_limit_do_not_lock_out_a_fresh_client() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = up_with_file_limit(&dir.path().join("data"), 400, &[]);
    let address = host_port(&url);
    let mut idle = Vec::new();
    for _ in 0..450 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let result = reqwest::Client::new()
        .get(format!("{url}/_runway/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let response = result.expect(
        "a fresh client is served while 450 idle connections exceed the open-file limit of 400",
    );
    assert_eq!(response.status(), 200);
}

/// A client that asks for a large response and never reads it is
/// disconnected once the server's writes made no progress for
/// `--send-timeout-ms`, and the guest producing the response is stopped
/// (the app's only instance is free again), and the request is logged 499.
/// Before the send timeout the guest stayed blocked until its deadline.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_send_timeout() {
    a_client_that_stops_reading_is_disconnected(0).await;
}

/// The same through the farm's balancer (`runway up --farm 1`).
#[tokio::test]
async fn the_farm_balancer_disconnects_a_client_that_stops_reading() {
    a_client_that_stops_reading_is_disconnected(1).await;
}

async fn a_client_that_stops_reading_is_disconnected(farm: u32) {
    let env = TestEnv::start_with(|c| {
        c.farm = farm;
        c.connections = ConnectionSettings {
            send_timeout: Duration::from_millis(1000),
            ..ConnectionSettings::default()
        }
    })
    .await;
    env.publish(&repackage(&package("tests/guests/misbehave"), |m| {
        format!("{m}\n[limits]\nconcurrency = 1\n")
    }))
    .await;

    let mut stream = TcpStream::connect(host_port(&env.url)).await.unwrap();
    stream
        .write_all(b"GET /misbehave/big?mib=64 HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    // The socket buffers fill in a moment; then nothing moves for the send
    // timeout (1 s), noticed within another second.
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // The app's single instance is free again: the guest was stopped.
    let (status, body) = env.get_text("/misbehave/ok").await;
    assert_eq!(
        status, 200,
        "the stalled response still holds the app: {body}"
    );

    // What the client can still read ends well short of 64 MiB.
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => total += n,
            Err(_) => break false,
        }
    };
    assert!(ended, "the connection is still open after {total} bytes");
    assert!(
        total < 64 << 20,
        "the whole response arrived ({total} bytes)"
    );

    let rows = env.logs("misbehave", Some("request"), false).await;
    assert!(
        rows.iter()
            .any(|r| r.path.as_deref() == Some("/misbehave/big") && r.status == Some(499)),
        "{rows:#?}"
    );
}
