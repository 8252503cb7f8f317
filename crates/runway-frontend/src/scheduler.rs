//! The scheduler of a front-end with the timers flag: timers (here) and
//! background jobs (`jobs.rs`), both driven by one claim loop
//! ([`poll_loop`] over a [`Work`]) and delivered by [`deliver`].
//!
//! At the next due time of a timer it serves (read on the database clock,
//! [`runway_store::Store::timer_wait_ms`]), as soon as a run ends, and at
//! least every `poll` (250 ms), while this front-end is ready at the
//! committed generation: (1) make sure every timer of the served table has
//! its next due time in the catalog, computed from its effective schedule
//! (the environment's override, else the manifest's) in the environment's
//! time zone (setting `timers.time_zone`, default UTC) — every timer when the
//! table or the zone changed (and every [`FULL_SYNC`]), else once a second
//! only those whose override changed; (2) claim as many due timers as it
//! has free run slots (`--timer-concurrency`, default 32), at most
//! [`TIMER_CLAIM_BATCH`] in one transaction, with
//! [`runway_store::Store::claim_timers`] (at most once per due time,
//! whatever the number of front-ends; missed ticks run once); (3) run each as `POST /{app}{path}` with `x-runway-timer:
//! NAME` and `x-runway-timer-due: <ms>`, through the same path as app traffic
//! (admission, fair share, memory budget, request log) but with the timer's
//! timeout, renewing the run's lease while it lasts; (4) record the outcome
//! in the timer's row and a log row. A run keeps the version it started with:
//! a deployment does not interrupt it. Every claim carries its own token:
//! a front-end whose lease expired cannot renew or record a run it no longer
//! holds, even when it claimed the same timer again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use runway_manifest::{DEFAULT_TIME_ZONE, Schedule, Tz, parse_time_zone};
use runway_store::{
    LogKind, LogLevel, NewLogEntry, TIME_ZONE_SETTING, TimerClaim, TimerOutcome, now_ms,
};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::Frontend;
use crate::deploy::{Inner, RunningApp};

/// Header naming the timer a request runs.
pub const TIMER_HEADER: &str = "x-runway-timer";
/// Header carrying the due time (ms since the unix epoch) a run is for.
pub const TIMER_DUE_HEADER: &str = "x-runway-timer-due";

/// How a front-end runs timers.
#[derive(Debug, Clone, Copy)]
pub struct TimerSettings {
    /// Runs at once on this front-end (OutSystems runs 3; a run here is a
    /// sandboxed request that mostly waits on the app, so more fit).
    pub concurrency: usize,
    /// Lease of a run, renewed every third of it while the run lasts; a
    /// front-end that dies holding one delays the timer by at most this.
    pub lease: Duration,
    /// How often due timers are looked for at the least (the loop also
    /// wakes at the next due time and whenever a run ends).
    pub poll: Duration,
    /// Job deliveries at once on this front-end.
    pub job_concurrency: usize,
    /// How often due jobs are looked for (also as soon as a delivery ends).
    pub job_poll: Duration,
    /// Wait before the second attempt of a failed job; doubled for each
    /// further attempt (at most an hour), with jitter.
    pub job_backoff: Duration,
    /// Done and cancelled jobs are deleted this long after they finished.
    pub job_retention: Duration,
    /// SMTP sends at once on a front-end with the email flag.
    pub email_concurrency: usize,
    /// How often due emails are looked for (also as soon as a send ends).
    pub email_poll: Duration,
    /// Wait before the second attempt of an email after a temporary SMTP
    /// failure; doubled for each further attempt (at most an hour), with jitter.
    pub email_backoff: Duration,
    /// Sent emails are deleted this long after they were sent (failed ones are kept).
    pub email_retention: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        TimerSettings {
            concurrency: 32,
            lease: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            job_concurrency: 16,
            job_poll: Duration::from_millis(100),
            job_backoff: Duration::from_secs(1),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            email_concurrency: 8,
            email_poll: Duration::from_millis(100),
            email_backoff: Duration::from_secs(5),
            email_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The running scheduler (timers and jobs); stopping it lets runs in flight
/// finish.
pub struct TimerScheduler {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl TimerScheduler {
    /// Stops claiming timers and jobs. Runs in flight go on until they end
    /// (or the process stops: their leases then expire and another
    /// front-end runs them again).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Frontend {
    /// Starts running this front-end's share of the environment's timers
    /// and background jobs.
    pub fn start_timers(&self, settings: TimerSettings) -> TimerScheduler {
        let (stop, stopped) = watch::channel(false);
        let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(10_000);
        let timers = TimerWork {
            settings,
            lease_ms,
            known: HashMap::new(),
            tz: parse_time_zone(DEFAULT_TIME_ZONE).expect("UTC is a time zone"),
            synced: None,
            fully_synced: None,
            wake_in: None,
        };
        let jobs = crate::jobs::JobWork::new(settings, lease_ms);
        let tasks = vec![
            tokio::spawn(poll_loop(
                self.inner.clone(),
                settings.concurrency,
                settings.poll,
                stopped.clone(),
                timers,
            )),
            tokio::spawn(poll_loop(
                self.inner.clone(),
                settings.job_concurrency,
                settings.job_poll,
                stopped,
                jobs,
            )),
        ];
        TimerScheduler { stop, tasks }
    }
}

/// What a scheduler loop claims and runs (timers, jobs).
pub(crate) trait Work: Send + 'static {
    /// Claims at most `free` items for this front-end and returns one run
    /// per claim. `changed`: the served table is not the one of the last
    /// call. Called only while this front-end is ready at the committed
    /// generation; with `free == 0` it may still refresh its state.
    fn claim(
        &mut self,
        inner: &Arc<Inner>,
        changed: bool,
        free: usize,
    ) -> impl Future<Output = Vec<BoxFuture<'static, ()>>> + Send;

    /// When the next item will be due, as learned by the last `claim`
    /// (`None`: unknown, wait for the poll).
    fn wake_in(&self) -> Option<Duration> {
        None
    }
}

/// The shortest sleep of a claim loop that was told work is due now: rows
/// due but locked by another front-end's claim transaction are skipped, and
/// asking again at once would only spin on the catalog.
const MIN_WAKE: Duration = Duration::from_millis(10);

/// The claim loop: every `poll`, as soon as a run ends, and when the work
/// says the next item is due (sooner than `poll`), while ready at the
/// committed generation, claims as many items as there are free slots
/// (`concurrency`) and runs each in its own task.
pub(crate) async fn poll_loop<W: Work>(
    inner: Arc<Inner>,
    concurrency: usize,
    poll: Duration,
    mut stopped: watch::Receiver<bool>,
    mut work: W,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let ended = Arc::new(Notify::new());
    let mut known_generation = -1;
    let mut wait = poll;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ended.notified() => {}
            _ = stopped.changed() => return,
        }
        wait = poll;
        let (generation, ready) = inner.status();
        if !ready {
            continue;
        }
        let changed = generation != known_generation;
        known_generation = generation;
        let free = slots.available_permits();
        for run in work.claim(&inner, changed, free).await {
            let permit = slots
                .clone()
                .try_acquire_owned()
                .expect("claimed no more than the free slots");
            let ended = ended.clone();
            tokio::spawn(async move {
                run.await;
                drop(permit);
                ended.notify_one();
            });
        }
        // With every slot busy the end of a run wakes the loop; otherwise
        // sleep until the next item is due.
        if slots.available_permits() > 0
            && let Some(due) = work.wake_in()
        {
            wait = due.clamp(MIN_WAKE, poll);
        }
    }
}

/// One timer of a served app.
struct Known {
    app: Arc<RunningApp>,
    schedule: String,
    path: String,
    timeout: Option<Duration>,
}

/// Most timers claimed in one catalog transaction: large enough that a
/// burst of due timers costs few transactions, small enough that one
/// front-end's claim holds few rows (and their locks) at once.
pub(crate) const TIMER_CLAIM_BATCH: usize = 32;

/// How often every timer state is compared with the served table even
/// without a change seen (a safety net; overrides are seen every second).
const FULL_SYNC: Duration = Duration::from_secs(30);

struct TimerWork {
    settings: TimerSettings,
    lease_ms: i64,
    known: HashMap<(String, String), Known>,
    tz: Tz,
    /// When only the timers whose override changed were last rescheduled.
    synced: Option<Instant>,
    /// When every timer state was last compared with the served table.
    fully_synced: Option<Instant>,
    wake_in: Option<Duration>,
}

impl Work for TimerWork {
    async fn claim(
        &mut self,
        inner: &Arc<Inner>,
        changed: bool,
        free: usize,
    ) -> Vec<BoxFuture<'static, ()>> {
        self.wake_in = None;
        if changed {
            self.known = timers_of(inner);
            self.synced = None;
            self.fully_synced = None;
        }
        if self.known.is_empty() {
            return Vec::new();
        }
        if self
            .synced
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            let full = self.fully_synced.is_none_or(|at| at.elapsed() >= FULL_SYNC);
            match sync(inner, &self.known, self.tz, full).await {
                Ok((zone, was_full)) => {
                    self.tz = zone;
                    self.synced = Some(Instant::now());
                    if was_full {
                        self.fully_synced = self.synced;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "timers: cannot read the timer states; retrying");
                    return Vec::new();
                }
            }
        }
        if free == 0 {
            return Vec::new();
        }
        let batch = free.min(TIMER_CLAIM_BATCH);
        let known = &self.known;
        let tz = self.tz;
        let mut apps: Vec<&str> = known.keys().map(|(app, _)| app.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        let claims = inner
            .store
            .claim_timers(
                &inner.config.name,
                &apps,
                batch,
                self.lease_ms,
                |app, timer, over, after| {
                    let k = known.get(&(app.to_string(), timer.to_string()))?;
                    let schedule = over.unwrap_or(&k.schedule);
                    Some((basis(schedule, tz), next_due(schedule, tz, after)))
                },
            )
            .await;
        let claims = match claims {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!(error = %e, "timers: cannot claim due timers; retrying");
                return Vec::new();
            }
        };
        if claims.len() < batch {
            // Nothing else is due now: learn when something will be.
            match inner.store.timer_wait_ms(&apps).await {
                Ok(wait) => {
                    self.wake_in =
                        wait.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
                }
                Err(e) => tracing::debug!(error = %e, "timers: cannot read the next due time"),
            }
        } else {
            // Probably more due at once: claim again as soon as possible.
            self.wake_in = Some(Duration::ZERO);
        }
        let mut runs: Vec<BoxFuture<'static, ()>> = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(k) = known.get(&(claim.app.clone(), claim.timer.clone())) else {
                continue;
            };
            let job = RunTimer {
                inner: inner.clone(),
                app: k.app.clone(),
                path: k.path.clone(),
                timeout: k.timeout.unwrap_or(k.app.limits.timeout),
                claim,
                request_id: uuid::Uuid::new_v4().simple().to_string(),
                lease: self.settings.lease,
                lease_ms: self.lease_ms,
            };
            runs.push(Box::pin(job.run()));
        }
        runs
    }

    fn wake_in(&self) -> Option<Duration> {
        self.wake_in
    }
}

fn basis(schedule: &str, tz: Tz) -> String {
    format!("{schedule}|{tz}")
}

fn next_due(schedule: &str, tz: Tz, after_ms: i64) -> Option<i64> {
    Schedule::parse(schedule).ok()?.next_after(after_ms, tz)
}

/// Every timer of the table served now.
fn timers_of(inner: &Inner) -> HashMap<(String, String), Known> {
    let routes = inner.routes.load_full();
    let mut out = HashMap::new();
    for app in routes.apps.values() {
        for t in &app.package.manifest.timers {
            out.insert(
                (app.name.to_string(), t.name.clone()),
                Known {
                    app: app.clone(),
                    schedule: t.schedule.clone(),
                    path: t.path.clone(),
                    timeout: t.timeout_secs.map(Duration::from_secs),
                },
            );
        }
    }
    out
}

/// Gives every known timer whose row lacks it (new, or its schedule or the
/// time zone changed) a next due time. Reads every timer state when `full`
/// or when the time zone is not `tz` any more, else only the rows whose
/// override changed (their basis was cleared). Returns the time zone and
/// whether every state was read.
async fn sync(
    inner: &Inner,
    known: &HashMap<(String, String), Known>,
    tz: Tz,
    full: bool,
) -> Result<(Tz, bool), runway_store::StoreError> {
    let previous = tz;
    let zone = inner.store.setting(TIME_ZONE_SETTING).await?;
    let tz = match zone.as_deref().map(parse_time_zone) {
        Some(Ok(tz)) => tz,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "timers: the environment's time zone is invalid; using UTC");
            parse_time_zone(DEFAULT_TIME_ZONE).expect("UTC is a time zone")
        }
        None => parse_time_zone(DEFAULT_TIME_ZONE).expect("UTC is a time zone"),
    };
    let full = full || tz != previous;
    let states = if full {
        inner.store.timer_states(None).await?
    } else {
        inner.store.timers_without_basis().await?
    };
    let states: HashMap<(String, String), runway_store::TimerState> = states
        .into_iter()
        .map(|s| ((s.app.clone(), s.timer.clone()), s))
        .collect();
    let now = now_ms();
    // A timer its app no longer declares is never due again.
    for (key, state) in &states {
        if state.next_due_at_ms.is_some()
            && !known.contains_key(key)
            && known.keys().any(|(app, _)| *app == key.0)
        {
            inner
                .store
                .set_timer_next_due(&key.0, &key.1, "removed", None)
                .await?;
        }
    }
    for (key, k) in known {
        let state = states.get(key);
        if !full && state.is_none() {
            // Not read: its basis is set (checked at the last full sync).
            continue;
        }
        let schedule = state
            .and_then(|s| s.schedule_override.as_deref())
            .unwrap_or(&k.schedule);
        let wanted = basis(schedule, tz);
        if state.and_then(|s| s.next_due_basis.as_deref()) != Some(wanted.as_str()) {
            inner
                .store
                .set_timer_next_due(&key.0, &key.1, &wanted, next_due(schedule, tz, now))
                .await?;
        }
    }
    Ok((tz, full))
}

struct RunTimer {
    inner: Arc<Inner>,
    app: Arc<RunningApp>,
    path: String,
    timeout: Duration,
    claim: TimerClaim,
    request_id: String,
    lease: Duration,
    lease_ms: i64,
}

impl RunTimer {
    async fn run(self) {
        let claim = &self.claim;
        if let Some(lost_by) = &claim.lost_by {
            self.log(
                LogLevel::Warn,
                None,
                format!(
                    "timer {}: the run due at {} on front-end {lost_by} was lost (its lease expired); running it again",
                    claim.timer, claim.due_at_ms
                ),
            );
        }
        let started_at_ms = now_ms();
        let started = Instant::now();
        let request = app_request(
            &self.app,
            &self.path,
            &self.request_id,
            &[
                (TIMER_HEADER, claim.timer.clone()),
                (TIMER_DUE_HEADER, claim.due_at_ms.to_string()),
            ],
            Vec::new(),
        );
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                self.finish(
                    started_at_ms,
                    started,
                    None,
                    Some(format!("cannot build the request: {e}")),
                )
                .await;
                return;
            }
        };
        let store = self.inner.store.clone();
        let (token, app, timer, lease_ms) = (
            claim.token.clone(),
            claim.app.clone(),
            claim.timer.clone(),
            self.lease_ms,
        );
        let (status, error) = deliver(
            &self.inner,
            &self.app,
            request,
            &self.request_id,
            self.timeout,
            Renewal {
                lease: self.lease,
                renew: move || {
                    let (store, token, app, timer) =
                        (store.clone(), token.clone(), app.clone(), timer.clone());
                    async move { store.renew_timer(&token, &app, &timer, lease_ms).await }
                },
            },
            &format!("timer {}/{}", claim.app, claim.timer),
        )
        .await;
        if error.as_deref().is_some_and(lost_lease) {
            // Another claim holds the timer now: it records its own run.
            self.log(
                LogLevel::Warn,
                None,
                format!(
                    "timer {}: {LOST_LEASE}; this run (due {}) was stopped after {} ms and is not recorded",
                    claim.timer,
                    claim.due_at_ms,
                    started.elapsed().as_millis()
                ),
            );
            return;
        }
        self.finish(started_at_ms, started, status, error).await;
    }

    async fn finish(
        &self,
        started_at_ms: i64,
        started: Instant,
        status: Option<i64>,
        error: Option<String>,
    ) {
        let claim = &self.claim;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let ok = error.is_none();
        let outcome = TimerOutcome {
            due_at_ms: claim.due_at_ms,
            started_at_ms,
            duration_ms,
            status,
            outcome: if ok { "ok" } else { "failed" }.into(),
            error: error.clone(),
            frontend: self.inner.config.name.clone(),
        };
        let status_text = status.map_or("no answer".to_string(), |s| s.to_string());
        self.log(
            if ok { LogLevel::Info } else { LogLevel::Error },
            status,
            match &error {
                None => format!(
                    "timer {}: {status_text} in {duration_ms} ms (due {}{})",
                    claim.timer,
                    claim.due_at_ms,
                    if claim.manual { ", run now" } else { "" }
                ),
                Some(e) => format!(
                    "timer {} failed after {duration_ms} ms (due {}): {e}; the next run happens as scheduled",
                    claim.timer, claim.due_at_ms
                ),
            },
        );
        for attempt in 0..5 {
            match self
                .inner
                .store
                .finish_timer(&claim.token, &claim.app, &claim.timer, &outcome)
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "timers: cannot record a timer's run; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    fn log(&self, level: LogLevel, status: Option<i64>, message: String) {
        self.inner.log.write(NewLogEntry {
            at_ms: now_ms(),
            kind: LogKind::Platform,
            level,
            app: Some(self.claim.app.clone()),
            version: Some(self.app.version.to_string()),
            frontend: Some(self.inner.config.name.clone()),
            request_id: Some(self.request_id.clone()),
            method: Some("POST".into()),
            path: Some(format!("/{}{}", self.app.name, self.path)),
            status,
            message: Some(message),
            ..Default::default()
        });
    }
}

/// Why a run was stopped: its lease was taken over.
pub(crate) const LOST_LEASE: &str = "this front-end lost the run's lease (its renewal was refused: the lease expired and another claim holds it)";

/// Whether a run's error says it was stopped for [`LOST_LEASE`].
pub(crate) fn lost_lease(error: &str) -> bool {
    error.starts_with(LOST_LEASE)
}

/// A run boxed for its own task.
pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `POST /{app}{path}` as a request through the environment's address
/// would carry it (its host from `runway.base_url`), with `headers` and `body`.
pub(crate) fn app_request(
    app: &RunningApp,
    path: &str,
    request_id: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Request<Body>, http::Error> {
    let host = app
        .config
        .get("runway.base_url")
        .and_then(|url| url.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let mut request = Request::builder()
        .method(Method::POST)
        .header(http::header::HOST, host)
        .uri(format!("/{}{}", app.name, path))
        .header(runway_api::REQUEST_ID_HEADER, request_id)
        .header(http::header::CONTENT_LENGTH, body.len().to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Body::from(body))
}

/// How a run keeps its lease: `renew` is called every third of `lease`.
pub(crate) struct Renewal<R> {
    pub(crate) lease: Duration,
    pub(crate) renew: R,
}

/// Runs `request` in `app` through the front-end's app path (admission,
/// fair share, memory budget, request log row) with `timeout` replacing the
/// request deadline, renewing its lease (`renewal`) while it lasts.
/// Returns the app's status (`None`: no answer in time) and, unless it
/// answered 2xx with a whole body, why it failed (the platform's error code
/// and message for traps and timeouts). `what` names the run in logs.
pub(crate) async fn deliver<R, F>(
    inner: &Arc<Inner>,
    app: &Arc<RunningApp>,
    request: Request<Body>,
    request_id: &str,
    timeout: Duration,
    renewal: Renewal<R>,
    what: &str,
) -> (Option<i64>, Option<String>)
where
    R: FnMut() -> F,
    F: Future<Output = Result<bool, runway_store::StoreError>>,
{
    // The runtime enforces the timeout (and stops a looping guest at its
    // next epoch tick).
    let app = if app.limits.timeout == timeout {
        app.clone()
    } else {
        let mut app = RunningApp::clone(app);
        app.limits.timeout = timeout;
        Arc::new(app)
    };
    let run = async {
        let response = inner.run_internal(&app, request_id, request).await;
        let status = response.status();
        match response.into_body().collect().await {
            Ok(body) if !status.is_success() => {
                // The platform's error bodies say why (trap, timeout…).
                let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                let why = serde_json::from_str::<runway_api::ErrorBody>(&text)
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .unwrap_or_else(|_| text.chars().take(300).collect());
                (
                    status,
                    Some(format!("the app answered {status}: {}", why.trim())),
                )
            }
            Ok(_) => (status, None),
            Err(e) => (status, Some(format!("the response broke off: {e}"))),
        }
    };
    tokio::pin!(run);
    let Renewal { lease, mut renew } = renewal;
    let mut renewal = tokio::time::interval(lease / 3);
    renewal.tick().await;
    // Past the timeout and a margin, the runtime has surely ended it.
    let hard_stop = tokio::time::sleep(timeout + Duration::from_secs(5));
    tokio::pin!(hard_stop);
    loop {
        tokio::select! {
            (status, error) = &mut run => return (Some(i64::from(status.as_u16())), error),
            _ = &mut hard_stop => return (None, Some(format!(
                "the run did not end within its timeout of {} s", timeout.as_secs()))),
            _ = renewal.tick() => match renew().await {
                Ok(true) => {}
                Ok(false) => {
                    // Another front-end holds it now: stop the run here
                    // (dropping it ends the guest's request) so that it is
                    // never done twice at once; recording is refused anyway.
                    tracing::warn!(run = what,
                        "scheduler: lost the lease of a running {what} (the catalog was unreachable too long); stopped it, another front-end runs it");
                    return (None, Some(format!("{LOST_LEASE}; the run was stopped")));
                }
                Err(e) => tracing::warn!(error = %e, run = what, "scheduler: cannot renew a lease"),
            },
        }
    }
}
