//! `runway timer list|run|schedule|zone`: the environment's timers.

use clap::{Args, Subcommand};
use runway_api::v1::{TimerScheduleChange, TimerSettingsView, TimerStatus};

use crate::commands::app::print_json;
use crate::connection::Connection;
use crate::output::{Table, rfc3339};

#[derive(Subcommand, Debug)]
pub enum TimerCommand {
    /// The timers of running apps: schedule in effect, next run, last run, running on.
    List(ListArgs),
    /// Run a timer once, now (OutSystems' "Run Now"), on a front-end with the timers flag.
    Run(RunArgs),
    /// This environment's schedule of a timer: a cron expression, --default
    /// (the manifest's) or --disable.
    Schedule(ScheduleArgs),
    /// Show or set the time zone schedules are read in (IANA name; default UTC).
    Zone(ZoneArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this app's timers.
    pub app: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub app: String,
    pub timer: String,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    pub app: String,
    pub timer: String,
    /// Cron expression (5 fields, or 6 with seconds first), e.g. "*/5 * * * *".
    #[arg(required_unless_present_any = ["default", "disable"], conflicts_with_all = ["default", "disable"])]
    pub schedule: Option<String>,
    /// Back to the manifest's schedule (and enabled).
    #[arg(long, conflicts_with = "disable")]
    pub default: bool,
    /// No scheduled runs (`timer run` still works).
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct ZoneArgs {
    /// The new time zone (IANA name like Europe/Lisbon); without it, show it.
    pub time_zone: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// Flags of the processes that run timers (`up`, `frontend serve`).
#[derive(Args, Debug, Clone)]
pub struct TimerRunArgs {
    /// Timer runs at once per front-end (OutSystems runs 3; a run here is a
    /// sandboxed request, so the default is higher: 10,000 timers due in one
    /// minute start within a second on two front-ends, see bench/README.md).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub timer_concurrency: u32,
    /// Lease of a timer run, in milliseconds: renewed while the run lasts; a
    /// front-end that dies mid-run delays the timer by at most this long.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    pub timer_lease_ms: u64,
    /// Background-job deliveries at once per front-end (jobs share the
    /// timers' lease, `--timer-lease-ms`, as their visibility timeout).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub job_concurrency: u32,
    /// SMTP sends at once per front-end with the email flag (emails share the
    /// timers' lease, `--timer-lease-ms`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub email_concurrency: u32,
}

impl TimerRunArgs {
    pub fn settings(&self) -> runway_frontend::TimerSettings {
        runway_frontend::TimerSettings {
            concurrency: self.timer_concurrency as usize,
            lease: std::time::Duration::from_millis(self.timer_lease_ms),
            job_concurrency: self.job_concurrency as usize,
            email_concurrency: self.email_concurrency as usize,
            ..Default::default()
        }
    }
}

pub async fn run(cmd: TimerCommand) -> anyhow::Result<()> {
    match cmd {
        TimerCommand::List(args) => {
            let timers = args
                .conn
                .client()
                .await?
                .timers(args.app.as_deref())
                .await?;
            if args.json {
                return print_json(&timers);
            }
            print!("{}", render(&timers));
            Ok(())
        }
        TimerCommand::Run(args) => {
            let r = args
                .conn
                .client()
                .await?
                .run_timer(&args.app, &args.timer)
                .await?;
            println!(
                "timer {}/{} will run now on a front-end with the timers flag; `runway timer list {}` shows how it went",
                r.app, r.timer, r.app
            );
            Ok(())
        }
        TimerCommand::Schedule(args) => {
            let change = TimerScheduleChange {
                schedule: args.schedule.clone(),
                disabled: args.disable,
            };
            let t = args
                .conn
                .client()
                .await?
                .schedule_timer(&args.app, &args.timer, &change)
                .await?;
            if t.disabled {
                println!(
                    "timer {}/{} is disabled here (`runway timer run` still runs it)",
                    t.app, t.timer
                );
            } else {
                println!(
                    "timer {}/{} runs on \"{}\" ({}){}; next run {}",
                    t.app,
                    t.timer,
                    t.schedule,
                    t.time_zone,
                    if t.overridden {
                        ", this environment's schedule"
                    } else {
                        ", the manifest's schedule"
                    },
                    t.next_run_at_ms.map_or("never".into(), rfc3339)
                );
            }
            Ok(())
        }
        TimerCommand::Zone(args) => {
            let client = args.conn.client().await?;
            let settings = match args.time_zone {
                Some(time_zone) => {
                    client
                        .set_timer_settings(&TimerSettingsView { time_zone })
                        .await?
                }
                None => client.timer_settings().await?,
            };
            println!("{}", settings.time_zone);
            Ok(())
        }
    }
}

/// The `timer list` table.
pub fn render(timers: &[TimerStatus]) -> String {
    let mut t = Table::new([
        "APP",
        "TIMER",
        "SCHEDULE",
        "NEXT RUN",
        "LAST RUN",
        "DURATION",
        "OUTCOME",
        "RUNNING ON",
    ]);
    for s in timers {
        let schedule = match (s.disabled, s.overridden) {
            (true, _) => format!("{} (disabled)", s.schedule),
            (false, true) => format!("{} (override)", s.schedule),
            (false, false) => s.schedule.clone(),
        };
        let (last, duration, outcome) = match &s.last_run {
            Some(l) => (
                rfc3339(l.started_at_ms),
                format!("{} ms", l.duration_ms),
                match (&l.status, &l.error) {
                    (_, Some(e)) => format!("{}: {e}", l.outcome),
                    (Some(status), None) => format!("{} {status}", l.outcome),
                    (None, None) => l.outcome.clone(),
                },
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        t.row([
            s.app.clone(),
            s.timer.clone(),
            schedule,
            if s.run_now_pending {
                "now (requested)".into()
            } else {
                s.next_run_at_ms.map_or("-".into(), rfc3339)
            },
            last,
            duration,
            outcome,
            s.running
                .as_ref()
                .map_or("-".into(), |r| r.frontend.clone()),
        ]);
    }
    let zone = timers.first().map_or("", |t| t.time_zone.as_str());
    if timers.is_empty() {
        "no timers: no running app declares [[timers]]\n".into()
    } else {
        format!("{}times in UTC; schedules read in {zone}\n", t.render())
    }
}
