//! `runway app show NAME [--json]`

use clap::Args;
use runway_api::v1::{AppDetail, Limits};

use super::{print_json, properties_table};
use crate::connection::Connection;
use crate::output::{Table, ago, fields, human_size, or_dash};

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The app.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: ShowArgs) -> anyhow::Result<()> {
    let app = args.conn.client().await?.app(&args.name).await?;
    if args.json {
        return print_json(&app);
    }
    print!("{}", render(&app));
    Ok(())
}

pub fn render(app: &AppDetail) -> String {
    let s = &app.summary;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let deps: Vec<String> = app
        .dependencies
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let mut out = fields(&[
        ("name", s.name.clone()),
        (
            "version",
            s.running_version
                .clone()
                .unwrap_or_else(|| "- (not deployed)".to_owned()),
        ),
        (
            "status",
            match &s.load_error {
                Some(error) => format!("{} ({error})", s.status),
                None => s.status.to_string(),
            },
        ),
        ("digest", or_dash(s.running_digest.as_deref())),
        ("zone", s.zone.clone()),
        ("description", or_dash(s.description.as_deref())),
        ("deployed", ago(s.deployed_at_ms)),
        ("versions", s.version_count.to_string()),
        ("url", s.url.clone()),
        ("limits", limits(&app.limits)),
        ("outbound", list(&app.outbound_allow)),
        ("dependencies", list(&deps)),
    ]);
    out.push('\n');
    if app.properties.is_empty() {
        out.push_str("properties: none\n");
    } else {
        out.push_str("properties:\n");
        out.push_str(&properties_table(&app.properties).render());
    }
    if !app.timers.is_empty() {
        out.push_str("\ntimers:\n");
        let mut t = Table::new(["NAME", "SCHEDULE", "PATH", "TIMEOUT"]);
        for timer in &app.timers {
            t.row([
                timer.name.clone(),
                timer.schedule.clone(),
                timer.path.clone(),
                timer
                    .timeout_secs
                    .map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// `timeout 30000 ms, memory 128.0 MiB, body 1.0 MiB`
pub fn limits(l: &Limits) -> String {
    format!(
        "timeout {} ms, memory {}, body {}",
        l.timeout_ms,
        human_size(l.memory_bytes),
        human_size(l.max_body_bytes)
    )
}
