//! Test support for server farms: the controller, front-ends and balancer run
//! as separate `runway` processes on `127.0.0.1:0`, with their catalogs in a
//! throwaway database on the real PostgreSQL server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runway_api::v1::{FrontendList, FrontendState};
use runway_store::testing::TestDatabase;

pub fn runway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runway"));
    command.env("CI", "true").env_remove("RUNWAY_TOKEN");
    command
}

/// A `runway … serve` process. Killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    /// The URL it printed after "listening on".
    pub url: String,
    /// Everything it printed, stdout and stderr, for failure messages.
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `runway args…` and waits until it prints its address; panics
    /// with its output if it exits first.
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = runway()
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runway starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.split(" listening on ").nth(1) {
                        let _ = tx.send(url.trim().to_string());
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        drop(tx);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Proc { child, url, output },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "`runway {}` did not start:\n{}",
                    args.join(" "),
                    output.lock().unwrap().join("\n")
                );
            }
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Waits (up to 30 s) for an output line containing `needle`, and returns it.
    pub fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .output
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within 30 s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no goodbye, no graceful anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `runway args…` to completion: (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let mut command = runway();
    command.args(args).stdin(Stdio::null());
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runway runs");
    // A command that should fail fast must not hang a test.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`runway {}` did not exit within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A controller on a fresh PostgreSQL database, its tokens, and front-ends.
pub struct Farm {
    pub dir: tempfile::TempDir,
    /// The catalogs; dropped (with its connections) when the farm is.
    pub db: TestDatabase,
    pub controller: Proc,
    pub admin: String,
    pub join: String,
    pub frontends: Vec<(String, Proc)>,
    pub balancer: Option<Proc>,
    pub client: runway_client::Client,
}

impl Farm {
    /// A controller and `n` front-ends named fe1…feN, all ready.
    pub async fn start(n: usize) -> Farm {
        Farm::start_on(n, TestDatabase::create().await).await
    }

    /// [`Farm::start`] with the catalogs in `db`.
    pub async fn start_on(n: usize, db: TestDatabase) -> Farm {
        Farm::start_with(n, db, &[]).await
    }

    /// [`Farm::start_on`], with `extra` flags for the controller.
    pub async fn start_with(n: usize, db: TestDatabase, extra: &[&str]) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let ctl = dir.path().join("ctl");
        let mut args = controller_args(&db.url, &ctl, "127.0.0.1:0");
        args.extend_from_slice(extra);
        let controller = Proc::spawn(&args);
        let read = |file: &str| {
            use std::os::unix::fs::PermissionsExt;
            let path = ctl.join(file);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is readable by its owner only");
            std::fs::read_to_string(path).unwrap().trim().to_string()
        };
        let (admin, join) = (read("admin.token"), read("join.token"));
        let client = runway_client::Client::new(&controller.url, Some(admin.clone())).unwrap();
        let mut farm = Farm {
            dir,
            db,
            controller,
            admin,
            join,
            frontends: Vec::new(),
            balancer: None,
            client,
        };
        for i in 1..=n {
            farm.add_frontend(&format!("fe{i}"));
        }
        let names: Vec<String> = farm.frontends.iter().map(|(n, _)| n.clone()).collect();
        farm.wait_ready(&names, Duration::from_secs(30)).await;
        farm
    }

    pub fn frontend_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts front-end `name` (its data dir is kept across restarts).
    pub fn add_frontend(&mut self, name: &str) {
        let proc = self.spawn_frontend(name, &[]);
        self.frontends.push((name.to_string(), proc));
    }

    pub fn spawn_frontend(&self, name: &str, extra: &[&str]) -> Proc {
        let data = self.frontend_dir(name);
        let mut args = vec![
            "frontend",
            "serve",
            "--controller",
            &self.controller.url,
            "--join-token",
            &self.join,
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        Proc::spawn(&args)
    }

    pub fn frontend(&mut self, name: &str) -> &mut Proc {
        &mut self
            .frontends
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no front-end {name}"))
            .1
    }

    /// Replaces front-end `name`'s process with a new one on the same data dir.
    pub fn restart_frontend(&mut self, name: &str) {
        self.frontend(name).kill();
        let proc = self.spawn_frontend(name, &[]);
        *self.frontend(name) = proc;
    }

    /// `kill -9` the controller, then start it again on the same address,
    /// data directory and database.
    pub fn restart_controller(&mut self) {
        self.controller.kill();
        let listen = self
            .controller
            .url
            .trim_start_matches("http://")
            .to_string();
        let ctl = self.dir.path().join("ctl");
        self.controller = Proc::spawn(&controller_args(&self.db.url, &ctl, &listen));
    }

    /// Another controller on the same database and data directory (a
    /// standby while the first one is active), with `extra` flags.
    pub fn spawn_controller(&self, extra: &[&str]) -> Proc {
        let ctl = self.dir.path().join("ctl");
        let mut args = controller_args(&self.db.url, &ctl, "127.0.0.1:0");
        args.extend_from_slice(extra);
        Proc::spawn(&args)
    }

    /// Starts `runway balancer serve` discovering from every controller in
    /// `controllers` (the first one first).
    pub fn start_balancer_following(&mut self, controllers: &[&str]) -> String {
        let joined = controllers.join(",");
        let proc = Proc::spawn(&[
            "balancer",
            "serve",
            "--controller",
            &joined,
            "--token",
            &self.admin,
            "--listen",
            "127.0.0.1:0",
            "--discovery-interval-ms",
            "200",
            "--health-interval-ms",
            "200",
        ]);
        let url = proc.url.clone();
        self.balancer = Some(proc);
        url
    }

    /// Starts `runway balancer serve` following the controller.
    pub fn start_balancer(&mut self) -> String {
        let proc = Proc::spawn(&[
            "balancer",
            "serve",
            "--controller",
            &self.controller.url,
            "--token",
            &self.admin,
            "--listen",
            "127.0.0.1:0",
            "--discovery-interval-ms",
            "200",
            "--health-interval-ms",
            "200",
        ]);
        let url = proc.url.clone();
        self.balancer = Some(proc);
        url
    }

    pub async fn list(&self) -> FrontendList {
        self.client.frontends().await.expect("frontend list")
    }

    /// Waits until every front-end in `names` is listed ready at the
    /// committed generation.
    pub async fn wait_ready(&self, names: &[String], within: Duration) -> FrontendList {
        self.wait_for(within, "front-ends ready", |list| {
            names.iter().all(|n| {
                list.frontends
                    .iter()
                    .any(|f| &f.name == n && f.state == FrontendState::Ready)
            })
        })
        .await
    }

    /// Polls `frontend list` until `check` holds; panics (with the list and
    /// the processes' output) after `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&FrontendList) -> bool,
    ) -> FrontendList {
        let deadline = Instant::now() + within;
        loop {
            let list = self.list().await;
            if check(&list) {
                return list;
            }
            if Instant::now() > deadline {
                let mut output = format!("controller:\n{}\n", self.controller.output());
                for (name, proc) in &self.frontends {
                    output.push_str(&format!("{name}:\n{}\n", proc.output()));
                }
                panic!("{what}: not within {within:?}: {list:#?}\n{output}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn controller_args<'a>(
    database: &'a str,
    data_dir: &'a std::path::Path,
    listen: &'a str,
) -> Vec<&'a str> {
    vec![
        "controller",
        "serve",
        "--name",
        "prod",
        "--database",
        database,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        listen,
        "--heartbeat-ms",
        "200",
        "--offline-after-ms",
        "1500",
    ]
}

/// Reads a front-end's `/_runway/health` generation.
pub async fn served_generation(url: &str) -> i64 {
    let health: serde_json::Value = reqwest::get(format!("{url}/_runway/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["generation"].as_i64().unwrap()
}

/// A steady stream of GETs from a few clients, until stopped.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Stats>>,
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    /// How many requests failed.
    pub failures: u64,
    /// The first few failures: status and body, or the error.
    pub failed: Vec<String>,
    /// Responses per front-end (`x-runway-frontend`).
    pub by_frontend: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    fn fail(&mut self, what: String) {
        self.failures += 1;
        if self.failed.len() < 10 {
            self.failed.push(what);
        }
    }
}

impl Load {
    pub fn start(url: &str, clients: usize) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop) = (url.to_string(), stop.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(20))
                        .build()
                        .unwrap();
                    let mut stats = Stats::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match http.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                let fe = r
                                    .headers()
                                    .get("x-runway-frontend")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("?")
                                    .to_string();
                                match r.bytes().await {
                                    Ok(_) => {
                                        stats.ok += 1;
                                        *stats.by_frontend.entry(fe).or_default() += 1;
                                    }
                                    Err(e) => stats.fail(format!("body from {fe}: {e}")),
                                }
                            }
                            Ok(r) => {
                                let status = r.status();
                                let body = r.text().await.unwrap_or_default();
                                stats.fail(format!("{status}: {body}"));
                            }
                            Err(e) => stats.fail(format!("error: {e:?}")),
                        }
                    }
                    stats
                })
            })
            .collect();
        Load { stop, tasks }
    }

    pub async fn stop(self) -> Stats {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = Stats::default();
        for task in self.tasks {
            let stats = task.await.unwrap();
            total.ok += stats.ok;
            total.failures += stats.failures;
            total.failed.extend(stats.failed);
            total.failed.truncate(10);
            for (fe, n) in stats.by_frontend {
                *total.by_frontend.entry(fe).or_default() += n;
            }
        }
        total
    }
}

/// A PostgreSQL server of the test's own (initdb into a temporary
/// directory, run as the `postgres` user), so it can be restarted without
/// disturbing other tests.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::os::unix::fs::chown(dir.path(), Some(postgres_uid()), None).unwrap();
        let pg = PrivatePostgres { dir, bin, port };
        pg.as_postgres(&[
            "initdb",
            "-D",
            pg.data().to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        pg.ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A URL of its `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it (fast: connections are cut) and starts it again.
    pub fn restart(&self) {
        self.ctl("restart");
    }

    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            self.data().to_str().unwrap(),
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            action,
        ]);
    }

    fn as_postgres(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(&args[1..])
            .output()
            .expect("runuser runs");
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

fn postgres_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Waits until `url` answers 200 (the balancer has found a ready front-end).
pub async fn wait_200(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 200 within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
