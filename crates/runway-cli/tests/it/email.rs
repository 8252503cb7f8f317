//! Email end to end (issue 10, stage 3): `tests/guests/jobs` queues email
//! through `runway:email/outbox`; the front-ends send it over SMTP to a real
//! SMTP server (`tests/smtp_sink.py`, aiosmtpd), which records what it
//! accepted and answers 4xx, 5xx or drops the connection on demand (by the
//! recipient's local part). In a standalone environment, and in a farm of
//! `runway` processes on PostgreSQL with an email front-end killed mid-way.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use runway_api::v1::{EmailList, EmailQuery, EmailState, EmailView};

use crate::farm_support::{Farm, run};
use crate::sched_support::{eventually, publish};
use crate::support::{TestEnv, package};

/// A real SMTP server (aiosmtpd) on 127.0.0.1; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// One message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
struct Received {
    message_id: String,
    to: Vec<String>,
    subject: String,
    text: String,
}

/// A python3 that has aiosmtpd (`.ci/run` installs Debian's python3-aiosmtpd).
fn python() -> &'static str {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!(
        "no python3 with aiosmtpd: install python3-aiosmtpd (apt-get install -y python3-aiosmtpd)"
    );
}

impl SmtpSink {
    fn start(delay_ms: u64) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("received.jsonl");
        let script = crate::support::repo_root().join("tests/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--out", out.to_str().unwrap()])
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP test server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP test server said {line:?}"));
        SmtpSink {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a received message"))
            .collect()
    }

    /// How many times each Message-ID was received.
    fn by_message_id(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.received() {
            *out.entry(r.message_id).or_default() += 1;
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--env", &env.url, "--token", &env.token]);
    run(&all)
}

/// Asks the app to send email (`query` as for `POST /jobs/mail`).
async fn mail(http: &reqwest::Client, url: &str, query: &str) -> (u16, Vec<String>) {
    let response = http
        .post(format!("{url}/jobs/mail?{query}"))
        .send()
        .await
        .expect("the app answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, text.lines().map(str::to_string).collect())
}

async fn email(client: &runway_client::Client, id: &str) -> EmailView {
    client.email(id).await.expect("the email is listed")
}

async fn emails(client: &runway_client::Client, state: Option<EmailState>) -> EmailList {
    client
        .emails(&EmailQuery {
            app: None,
            state,
            limit: Some(1000),
        })
        .await
        .expect("email list")
}

async fn standalone() -> TestEnv {
    TestEnv::start_with(|c| {
        let timers = c
            .timers
            .as_mut()
            .expect("timers and email run in runway up");
        timers.email_backoff = Duration::from_millis(100);
    })
    .await
}

async fn wait_state(env: &TestEnv, id: &str, state: EmailState) -> EmailView {
    eventually(
        Duration::from_secs(20),
        &format!("email {id} {state}"),
        async || {
            let e = email(&env.client, id).await;
            (e.state == state).then_some(e)
        },
    )
    .await
}

fn catalog_contains(data_dir: &Path, needle: &str) -> bool {
    let catalog = data_dir.join("catalog");
    ["platform.db", "platform.db-wal"]
        .iter()
        .filter_map(|name| std::fs::read(catalog.join(name)).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_email_is_sent_retried_failed_and_managed() {
    let env = standalone().await;
    env.publish(&package("tests/guests/jobs")).await;
    let (http, url) = (&env.http, env.url.as_str());
    let sink = SmtpSink::start(0);

    // Without settings an email is queued and stays queued.
    let (status, ids) = mail(http, url, "to=ada@example.com&subject=early").await;
    assert_eq!(status, 200, "{ids:?}");
    let list = emails(&env.client, None).await;
    assert!(!list.configured);
    let (ok, out, _) = cli(&env, &["email", "list"]);
    assert!(ok && out.contains("no SMTP settings"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(email(&env.client, &ids[0]).await.state, EmailState::Queued);

    // Settings pointing at a port nobody listens on: the connection is
    // refused, the email is retried (temporary), nothing is lost.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("smtp://{}", dead.local_addr().unwrap());
    drop(dead);
    let (ok, out, err) = cli(
        &env,
        &[
            "email",
            "settings",
            "--smtp",
            &dead_url,
            "--from",
            "Runway <noreply@example.com>",
        ],
    );
    assert!(ok, "{out}{err}");
    let refused = eventually(Duration::from_secs(20), "a refused attempt", async || {
        let e = email(&env.client, &ids[0]).await;
        (e.attempts >= 1 && e.last_error.is_some()).then_some(e)
    })
    .await;
    assert!(
        !matches!(refused.state, EmailState::Sent | EmailState::Failed),
        "{refused:?}"
    );
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection failed"),
        "{refused:?}"
    );

    // The real server: the early email goes out, with its Message-ID.
    let (ok, out, err) = cli(
        &env,
        &[
            "email",
            "settings",
            "--smtp",
            &sink.url(),
            "--from",
            "Runway <noreply@example.com>",
        ],
    );
    assert!(ok, "{out}{err}");
    let sent = wait_state(&env, &ids[0], EmailState::Sent).await;
    assert!(
        sent.server_answer.as_deref().unwrap().starts_with("250"),
        "{sent:?}"
    );
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(got[0].to, ["ada@example.com"]);
    assert_eq!(got[0].subject, "early 0");
    assert!(got[0].text.starts_with("mail 0"), "{got:?}");
    assert!(
        sent.message_id.starts_with(&format!("<{}@", sent.id)),
        "{sent:?}"
    );

    // 4xx twice, then accepted at the third attempt: received once.
    let (_, flaky) = mail(http, url, "to=flaky2@example.com&subject=flaky").await;
    let e = wait_state(&env, &flaky[0], EmailState::Sent).await;
    assert_eq!(e.attempts, 3, "{e:?}");
    // 4xx every time: retried with backoff, still queued.
    let (_, temp) = mail(http, url, "to=tempfail@example.com").await;
    let e = eventually(
        Duration::from_secs(20),
        "two temporary failures",
        async || {
            let e = email(&env.client, &temp[0]).await;
            (e.attempts >= 2).then_some(e)
        },
    )
    .await;
    assert!(
        matches!(e.state, EmailState::Queued | EmailState::Sending),
        "{e:?}"
    );
    assert!(e.last_error.as_deref().unwrap().contains("451"), "{e:?}");
    // 5xx: failed at once, with the server's reason.
    let (_, perm) = mail(http, url, "to=permfail@example.com").await;
    let e = wait_state(&env, &perm[0], EmailState::Failed).await;
    assert_eq!(e.attempts, 1, "{e:?}");
    assert!(e.last_error.as_deref().unwrap().contains("550"), "{e:?}");
    // Dropped mid-exchange (no answer to the message): retried.
    let (_, drop_ids) = mail(http, url, "to=drop@example.com").await;
    let e = eventually(
        Duration::from_secs(20),
        "two dropped attempts",
        async || {
            let e = email(&env.client, &drop_ids[0]).await;
            (e.attempts >= 2).then_some(e)
        },
    )
    .await;
    assert_ne!(e.state, EmailState::Failed, "{e:?}");
    assert_ne!(e.state, EmailState::Sent, "{e:?}");

    // Several recipients, html: one message, every recipient.
    let (_, multi) = mail(
        http,
        url,
        "to=ada@example.com,grace@example.com&cc=cc@example.com&bcc=bcc@example.com&html=1&subject=multi",
    )
    .await;
    let e = wait_state(&env, &multi[0], EmailState::Sent).await;
    let got = sink.received();
    let m = got.iter().find(|r| r.message_id == e.message_id).unwrap();
    assert_eq!(m.to.len(), 4, "{m:?}");

    // Operators: list by state, show, resend (a copy with its own Message-ID).
    let (ok, out, _) = cli(&env, &["email", "list", "--state", "failed", "--json"]);
    assert!(ok, "{out}");
    let failed: EmailList = serde_json::from_str(&out).unwrap();
    assert_eq!(failed.emails.len(), 1);
    assert_eq!(failed.emails[0].id, perm[0]);
    let (ok, out, _) = cli(&env, &["email", "show", &ids[0]]);
    assert!(ok && out.contains(&sent.message_id), "{out}");
    let (ok, out, _) = cli(&env, &["email", "resend", &ids[0]]);
    assert!(ok && out.contains("queued again as"), "{out}");
    eventually(Duration::from_secs(20), "the copy received", async || {
        let by_id = sink.by_message_id();
        let early = sink
            .received()
            .into_iter()
            .filter(|r| r.subject == "early 0")
            .count();
        (early == 2 && by_id.values().all(|n| *n == 1)).then_some(())
    })
    .await;
    let (ok, _, err) = cli(&env, &["email", "resend", &temp[0]]);
    assert!(!ok && err.contains("only a sent or failed email"), "{err}");
    let (ok, _, err) = cli(&env, &["email", "show", "nope"]);
    assert!(!ok && err.contains("no email nope"), "{err}");

    // The test message of `settings --test`, sent now by the controller.
    let (ok, out, err) = cli(&env, &["email", "settings", "--test", "ops@example.com"]);
    assert!(
        ok && out.contains("accepted by the SMTP server: 250"),
        "{out}{err}"
    );
    assert!(
        sink.received()
            .iter()
            .any(|r| r.to == ["ops@example.com"] && r.subject.starts_with("Runway test message")),
        "{:?}",
        sink.received()
    );
    let (ok, _, err) = cli(&env, &["email", "settings", "--test", "not-an-address"]);
    assert!(!ok && err.contains("not a valid email address"), "{err}");

    // Bad settings are refused, naming the problem; the old ones stay.
    for (args, expected) in [
        (
            vec!["--smtp", "mail.example.com:25", "--from", "a@example.com"],
            "scheme",
        ),
        (
            vec![
                "--smtp",
                "smtp://u:p@mail.example.com",
                "--from",
                "a@example.com",
            ],
            "--user",
        ),
        (
            vec!["--smtp", &sink.url(), "--from", "nobody"],
            "--from address",
        ),
        (
            vec![
                "--smtp",
                &sink.url(),
                "--from",
                "a@example.com",
                "--user",
                "u",
            ],
            "in clear",
        ),
        (
            vec![
                "--smtp",
                "smtps://mail.example.com",
                "--from",
                "a@example.com",
                "--starttls",
            ],
            "TLS from the first byte",
        ),
    ] {
        let mut all = vec!["email", "settings"];
        all.extend(args.iter().copied());
        let (ok, out, err) = cli(&env, &all);
        assert!(!ok && err.contains(expected), "{args:?}: {out}{err}");
    }
    assert_eq!(env.client.email_settings().await.unwrap().smtp, sink.url());

    // A password is stored encrypted and never returned.
    let password = "Smtp-Secret-7f3a9c";
    let mut child = crate::farm_support::runway()
        .args([
            "email",
            "settings",
            "--smtp",
            "smtp://127.0.0.1:587",
            "--from",
            "a@example.com",
            "--starttls",
            "--user",
            "mailer",
            "--password-stdin",
            "--json",
            "--env",
            &env.url,
            "--token",
            &env.token,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("\"password_set\": true") && !text.contains(password),
        "{text}"
    );
    let raw = env
        .http
        .get(format!("{}/_runway/api/v1/email/settings", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !raw.contains(password) && raw.contains("\"password_set\":true"),
        "{raw}"
    );
    assert!(
        !catalog_contains(&env.data_dir(), password),
        "the password is encrypted at rest"
    );
    // The OpenAPI document names every email route.
    let doc = env
        .http
        .get(format!("{}/_runway/api/openapi.json", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for path in [
        "/_runway/api/v1/email\"",
        "/_runway/api/v1/email/settings",
        "/_runway/api/v1/email/test",
        "/_runway/api/v1/email/{id}\"",
        "/_runway/api/v1/email/{id}/resend",
    ] {
        assert!(doc.contains(path), "{path} is documented");
    }
    // Changing the server but not the user keeps the password.
    let (ok, out, err) = cli(
        &env,
        &[
            "email",
            "settings",
            "--smtp",
            "smtp://127.0.0.1:2587",
            "--from",
            "a@example.com",
            "--starttls",
            "--user",
            "mailer",
        ],
    );
    assert!(ok && out.contains("set (encrypted)"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_bad_input_is_refused_with_a_guest_visible_error() {
    let env = TestEnv::start().await;
    env.publish(&package("tests/guests/jobs")).await;
    for (case, expected) in [
        (
            "address",
            "to address \"not an address\" is not a valid email address",
        ),
        ("header-injection", "line break or control character"),
        ("no-recipient", "no recipient"),
        ("subject-newline", "a subject is one line"),
        ("oversized", "the limit is 1048576 (1 MiB)"),
        ("too-many", "51 recipients; the limit is 50"),
        ("reply-to", "reply-to address \"nobody@\""),
        ("no-body", "no body"),
    ] {
        let response = env
            .http
            .post(format!("{}/jobs/mail-bad?case={case}", env.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{case}: {text}");
        assert!(
            text.starts_with("invalid: ") && text.contains(expected),
            "{case}: {text}"
        );
    }
    assert!(
        emails(&env.client, None).await.emails.is_empty(),
        "nothing was queued"
    );
}

/// 100 emails through a real SMTP server in a farm of 3 front-ends on
/// PostgreSQL (two send email, one has `--no-email`); one email front-end is
/// killed (SIGKILL) while sending. All 100 are received; a Message-ID is
/// received twice only if the killed front-end lost it between the server's
/// acceptance and its recording (then its row shows a second attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_farm_sends_100_emails_none_lost_while_an_email_frontend_is_killed() {
    // Each acceptance takes 200 ms, so that sends are in flight when the kill comes.
    let sink = SmtpSink::start(200);
    let mut farm = Farm::start(0).await;
    for (name, extra) in [
        ("fe1", vec!["--timer-lease-ms", "1500"]),
        ("fe2", vec!["--timer-lease-ms", "1500"]),
        ("fe3", vec!["--timer-lease-ms", "1500", "--no-email"]),
    ] {
        let proc = farm.spawn_frontend(name, &extra);
        farm.frontends.push((name.to_string(), proc));
    }
    let all: Vec<String> = ["fe1", "fe2", "fe3"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    farm.wait_ready(&all, Duration::from_secs(30)).await;
    publish(&farm, &package("tests/guests/jobs")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let fe3 = farm.frontends[2].1.url.clone();

    // 100 emails from 4 concurrent requests to the front-end without email,
    // queued before the settings exist; then the settings start the sending.
    let mut senders = Vec::new();
    for c in 0..4 {
        let (http, url) = (http.clone(), fe3.clone());
        senders.push(tokio::spawn(async move {
            let (status, ids) = mail(&http, &url, &format!("n=25&to=user{c}@example.com")).await;
            assert_eq!(status, 200, "{ids:?}");
            ids
        }));
    }
    let mut ids = Vec::new();
    for s in senders {
        ids.extend(s.await.unwrap());
    }
    assert_eq!(ids.len(), 100);
    let (ok, out, err) = run(&[
        "email",
        "settings",
        "--smtp",
        &sink.url(),
        "--from",
        "noreply@example.com",
        "--env",
        &farm.controller.url,
        "--token",
        &farm.admin,
    ]);
    assert!(ok, "{out}{err}");
    eventually(Duration::from_secs(30), "sending under way", async || {
        (sink.received().len() >= 10).then_some(())
    })
    .await;
    farm.frontend("fe1").kill();

    eventually(Duration::from_secs(60), "100 emails sent", async || {
        let sent = emails(&farm.client, Some(EmailState::Sent))
            .await
            .emails
            .len();
        (sent == 100).then_some(())
    })
    .await;
    let list = emails(&farm.client, None).await;
    let by_id = sink.by_message_id();
    for e in &list.emails {
        let n = by_id.get(&e.message_id).copied().unwrap_or(0);
        assert!(n >= 1, "email {} was never received: {e:?}", e.id);
        if n > 1 {
            assert!(
                e.attempts >= 2,
                "received {n} times, sent in one attempt: {e:?}"
            );
        }
        assert_ne!(
            e.frontend.as_deref(),
            Some("fe3"),
            "fe3 has --no-email: {e:?}"
        );
    }
    let twice = by_id.values().filter(|n| **n > 1).count();
    eprintln!("received twice (killed between acceptance and recording): {twice}");
    assert!(
        twice <= 8,
        "at most what fe1 held (its email concurrency): {by_id:?}"
    );
    assert_eq!(
        by_id.len(),
        100,
        "every Message-ID received: {}",
        by_id.len()
    );
}
