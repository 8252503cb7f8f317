//! `runway jobs [APP] [--state S] [--json]`, `runway jobs show|retry|cancel ID`:
//! the environment's background jobs.

use clap::{Args, Subcommand};
use runway_api::v1::{JobList, JobQuery, JobState, JobView};

use crate::commands::app::print_json;
use crate::connection::Connection;
use crate::output::{Table, rfc3339};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// One job in full (JSON).
    Show(IdArgs),
    /// Queue a failed or cancelled job again; its attempts start over.
    Retry(IdArgs),
    /// Cancel a job that waits (queued or retrying); it is never delivered.
    Cancel(IdArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this app's jobs.
    pub app: Option<String>,
    /// Only jobs in this state.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
    /// At most this many, newest first (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The job id (from `runway jobs`).
    pub id: String,
    #[command(flatten)]
    pub conn: Connection,
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown job state {s:?}; use one of {}", all.join(", "))
    })
}

pub async fn run(args: JobsArgs) -> anyhow::Result<()> {
    match args.command {
        None => {
            let list = args.list;
            let query = JobQuery {
                app: list.app.clone(),
                state: list.state,
                limit: Some(list.limit),
            };
            let jobs = list.conn.client().await?.jobs(&query).await?;
            if list.json {
                return print_json(&jobs);
            }
            print!("{}", render(&jobs));
            Ok(())
        }
        Some(JobsCommand::Show(a)) => print_json(&a.conn.client().await?.job(&a.id).await?),
        Some(JobsCommand::Retry(a)) => {
            let job = a.conn.client().await?.retry_job(&a.id).await?;
            println!(
                "job {} of app {} is queued again (attempts start over; at most {})",
                job.id, job.app, job.max_attempts
            );
            Ok(())
        }
        Some(JobsCommand::Cancel(a)) => {
            let job = a.conn.client().await?.cancel_job(&a.id).await?;
            println!("job {} of app {} is cancelled", job.id, job.app);
            Ok(())
        }
    }
}

fn outcome(j: &JobView) -> String {
    match (&j.last_status, &j.last_error) {
        (_, Some(e)) => e.clone(),
        (Some(s), None) => s.to_string(),
        (None, None) => "-".into(),
    }
}

/// The `runway jobs` table.
pub fn render(list: &JobList) -> String {
    let mut out = String::new();
    if list.jobs.is_empty() {
        out.push_str("no jobs\n");
    } else {
        let mut t = Table::new([
            "ID", "APP", "PATH", "STATE", "ATTEMPTS", "CREATED", "NEXT", "LAST",
        ]);
        for j in &list.jobs {
            t.row([
                j.id.clone(),
                j.app.clone(),
                j.path.clone(),
                match &j.frontend {
                    Some(f) if j.state == JobState::Running => format!("running on {f}"),
                    _ => j.state.to_string(),
                },
                format!("{}/{}", j.attempts, j.max_attempts),
                rfc3339(j.created_at_ms),
                if j.state.is_finished() || j.state == JobState::Running {
                    "-".into()
                } else {
                    rfc3339(j.run_at_ms)
                },
                outcome(j),
            ]);
        }
        out.push_str(&t.render());
        out.push_str("times in UTC\n");
    }
    if !list.undeployed_apps.is_empty() {
        out.push_str(&format!(
            "waiting jobs of apps that are not deployed stay queued until they are: {}\n",
            list.undeployed_apps.join(", ")
        ));
    }
    out
}
