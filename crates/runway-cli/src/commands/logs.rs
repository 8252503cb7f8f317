//! `runway logs [APP] [--errors] [--follow] [--kind K] [--frontend NAME]
//! [--status N] [--since T] [--until T] [--limit N] [--json]`

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use runway_api::v1::{LogEntry, LogKind, LogKinds, LogLevel, LogQueryParams};

use crate::connection::Connection;
use crate::output::{fmt_us_compact, rfc3339};

/// How often `--follow` asks for new entries.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only this app's entries.
    pub app: Option<String>,
    /// Only errors (error entries and 5xx requests).
    #[arg(long)]
    pub errors: bool,
    /// Keep printing new entries until ctrl-c.
    #[arg(short, long)]
    pub follow: bool,
    /// Only these kinds, comma-separated: request, output, error, platform.
    #[arg(long, value_name = "K")]
    pub kind: Option<String>,
    /// Only entries logged by this front-end.
    #[arg(long, value_name = "NAME")]
    pub frontend: Option<String>,
    /// Only requests answered with this HTTP status.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(100..=599))]
    pub status: Option<i64>,
    /// Only entries from this time on: an age (30s, 10m, 2h, 1d) or unix milliseconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only entries before this time: an age (30s, 10m, 2h, 1d) or unix milliseconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<i64>,
    /// How many entries to fetch (per poll when following).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let kind = args.kind.as_deref().map(check_kinds).transpose()?;
    let client = args.conn.client().await?;
    let mut params = LogQueryParams {
        app: args.app.clone(),
        kind,
        errors: args.errors.then_some(true),
        limit: Some(args.limit),
        frontend: args.frontend.clone(),
        status: args.status,
        since_ms: args.since,
        until_ms: args.until,
        ..LogQueryParams::default()
    };
    let mut last = print_batch(client.logs(&params).await?, args.json)?;
    if !args.follow {
        return Ok(());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
        // Drain: a full page means there may be more right now.
        loop {
            params.after = last.or(params.after);
            let batch = client.logs(&params).await?;
            let full = batch.len() as i64 >= args.limit;
            last = print_batch(batch, args.json)?.or(last);
            if !full {
                break;
            }
        }
    }
}

fn check_kinds(list: &str) -> anyhow::Result<LogKinds> {
    for k in list.split(',').map(str::trim) {
        if LogKind::parse(k).is_none() {
            bail!(
                "unknown log kind {k:?} in --kind {list:?}; use request, output, error or platform (comma-separated)"
            );
        }
    }
    LogKinds::parse(list).map_err(anyhow::Error::msg)
}

/// Prints entries oldest first; returns the highest id printed. A closed
/// stdout (`runway logs | head`) ends the command quietly.
/// `--since`/`--until`: an age before now (`90s`, `10m`, `2h`, `1d`) or unix
/// milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?}: expected an age like 30s, 10m, 2h or 1d, or unix milliseconds");
    if let Ok(ms) = text.parse::<i64>() {
        return if ms >= 0 { Ok(ms) } else { Err(bad()) };
    }
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms)
        .filter(|age| *age >= 0)
        .map(|age| runway_store::now_ms() - age)
        .ok_or_else(bad)
}

fn print_batch(mut entries: Vec<LogEntry>, json: bool) -> anyhow::Result<Option<i64>> {
    entries.sort_by_key(|e| e.id);
    let mut out = std::io::stdout().lock();
    for e in &entries {
        let line = if json {
            serde_json::to_string(e)?
        } else {
            format_entry(e)
        };
        if let Err(err) = writeln!(out, "{line}") {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(err.into());
        }
    }
    if let Err(err) = out.flush()
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(err.into());
    }
    Ok(entries.last().map(|e| e.id))
}

/// `text` with every control character except tab (C0, DEL, C1) written
/// as a visible escape (`\x1b`, `\n`, `\u{9b}`): guest-controlled text
/// must not move the cursor, recolour, retitle or clear the terminal, nor
/// fake extra log lines.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c != '\t' && c.is_control();
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One log line (guest-controlled text neutralised, see [`neutralise`]):
/// - request: `TIME  notes@0.1.0  GET /notes/ 200 1.2ms 123B  req=…`
/// - output:  `TIME  notes@0.1.0  stdout: line`
/// - error:   `TIME  ERROR notes@0.1.0  message  req=…`
/// - platform: `TIME  platform  message` (with `WARN`/`ERROR` when not info)
pub fn format_entry(e: &LogEntry) -> String {
    let line = format_raw(e);
    match neutralise(&line) {
        std::borrow::Cow::Borrowed(_) => line,
        std::borrow::Cow::Owned(safe) => safe,
    }
}

fn format_raw(e: &LogEntry) -> String {
    let time = rfc3339(e.at_ms);
    let who = match (&e.app, &e.version) {
        (Some(a), Some(v)) => format!("{a}@{v}"),
        (Some(a), None) => a.clone(),
        (None, _) => "platform".to_owned(),
    };
    let req = e
        .request_id
        .as_deref()
        .map(|r| format!("  req={r}"))
        .unwrap_or_default();
    let msg = e.message.as_deref().unwrap_or("").trim_end();
    match e.kind {
        LogKind::Request => {
            let mut parts = vec![
                e.method.clone().unwrap_or_else(|| "-".into()),
                e.path.clone().unwrap_or_else(|| "-".into()),
                e.status.map_or_else(|| "-".into(), |s| s.to_string()),
            ];
            if let Some(us) = e.duration_us {
                parts.push(fmt_us_compact(us));
            }
            if let Some(b) = e.bytes_out {
                parts.push(format!("{b}B"));
            }
            format!("{time}  {who}  {}{req}", parts.join(" "))
        }
        LogKind::Output => {
            let stream = e.stream.as_deref().unwrap_or("output");
            format!("{time}  {who}  {stream}: {msg}")
        }
        LogKind::Error => format!("{time}  ERROR {who}  {msg}{req}"),
        LogKind::Platform => {
            let level = match e.level {
                LogLevel::Warn => "WARN ",
                LogLevel::Error => "ERROR ",
                LogLevel::Info => "",
            };
            format!("{time}  {level}{who}  {msg}{req}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str) -> LogEntry {
        LogEntry {
            id: 1,
            at_ms: 1_700_000_000_123,
            kind: LogKind::parse(kind).unwrap(),
            level: LogLevel::Info,
            app: Some("notes".into()),
            version: Some("0.1.0".into()),
            frontend: Some("fe-1".into()),
            request_id: Some("abc123".into()),
            method: None,
            path: None,
            status: None,
            duration_us: None,
            bytes_out: None,
            stream: None,
            message: None,
        }
    }

    #[test]
    fn formats_each_kind() {
        let mut r = entry("request");
        r.method = Some("GET".into());
        r.path = Some("/notes/".into());
        r.status = Some(200);
        r.duration_us = Some(1_234);
        r.bytes_out = Some(123);
        assert_eq!(
            format_entry(&r),
            "2023-11-14T22:13:20.123Z  notes@0.1.0  GET /notes/ 200 1.2ms 123B  req=abc123"
        );
        let mut o = entry("output");
        o.stream = Some("stdout".into());
        o.message = Some("hello\n".into());
        o.request_id = None;
        assert_eq!(
            format_entry(&o),
            "2023-11-14T22:13:20.123Z  notes@0.1.0  stdout: hello"
        );
        let mut e = entry("error");
        e.level = LogLevel::Error;
        e.message = Some("trap: unreachable".into());
        assert_eq!(
            format_entry(&e),
            "2023-11-14T22:13:20.123Z  ERROR notes@0.1.0  trap: unreachable  req=abc123"
        );
        let mut p = entry("platform");
        p.app = None;
        p.version = None;
        p.request_id = None;
        p.level = LogLevel::Warn;
        p.message = Some("front-end fe-2 offline".into());
        assert_eq!(
            format_entry(&p),
            "2023-11-14T22:13:20.123Z  WARN platform  front-end fe-2 offline"
        );
    }

    #[test]
    fn terminal_escapes_in_guest_text_are_neutralised() {
        let mut o = entry("output");
        o.stream = Some("stdout".into());
        o.message = Some("\x1b[2J\x1b]0;pwned\x07hi\u{9b}31m\tok\r\nfake line\x7f\0".into());
        let line = format_entry(&o);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.123Z  notes@0.1.0  stdout: \\x1b[2J\\x1b]0;pwned\\x07hi\\u{9b}31m\tok\\r\\nfake line\\x7f\\x00"
        );
        assert!(
            !line.chars().any(|c| c != '\t' && c.is_control()),
            "{line:?}"
        );

        let mut r = entry("request");
        r.method = Some("GET".into());
        r.path = Some("/notes/\x1b[31mred".into());
        r.status = Some(404);
        r.request_id = Some("id\x1b[0m".into());
        let line = format_entry(&r);
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(line.contains("/notes/\\x1b[31mred") && line.contains("req=id\\x1b[0m"));

        let mut e = entry("error");
        e.app = Some("a\x1bb".into());
        e.message = Some("boom\x1b[K".into());
        assert!(!format_entry(&e).contains('\x1b'));
        // Plain text is untouched (no copy).
        assert!(matches!(
            neutralise("plain\ttext"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn kinds_are_checked() {
        assert!(check_kinds("request,error").is_ok());
        let e = check_kinds("request,bogus").unwrap_err().to_string();
        assert!(e.contains("\"bogus\""), "{e}");
    }
}
