//! Timestamps on pages.
//!
//! A timestamp is rendered as `<time datetime="…Z">` whose text reads without
//! JavaScript (UTC, to the minute); Runway's script rewrites it in the
//! viewer's time zone, or as "3 min ago" for `relative` ones, with the exact
//! local time in its `title`.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// How a timestamp is shown once the script has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStyle {
    /// Date and time in the viewer's time zone.
    Local,
    /// "3 min ago" / "in 5 s", exact local time on hover.
    Relative,
}

/// A timestamp in milliseconds since the epoch, as a `<time>` element.
/// `None` (never happened) renders as an em dash.
pub fn timestamp(ms: Option<i64>, style: TimeStyle) -> Markup {
    let Some(at) = ms.and_then(DateTime::<Utc>::from_timestamp_millis) else {
        return html! { span.muted { "—" } };
    };
    let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let text = at.format("%Y-%m-%d %H:%M UTC").to_string();
    let style = match style {
        TimeStyle::Local => "local",
        TimeStyle::Relative => "relative",
    };
    html! { time datetime=(iso) data-style=(style) title=(iso) { (text) } }
}

/// A duration for people: `850 ms`, `12 s`, `4 min`, `3 h`, `2 d`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{} s", ms / 1_000),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        3_600_000..86_400_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// "12 s ago" / "in 4 min", from `now_ms`: the server's rendering of an age
/// (heartbeats, last seen), right without JavaScript.
pub fn ago_text(now_ms: i64, at_ms: i64) -> String {
    if at_ms <= now_ms {
        format!("{} ago", duration_text(now_ms - at_ms))
    } else {
        format!("in {}", duration_text(at_ms - now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_text_and_iso_attribute() {
        let m = timestamp(Some(1_700_000_000_000), TimeStyle::Relative).into_string();
        assert!(m.contains(r#"datetime="2023-11-14T22:13:20.000Z""#), "{m}");
        assert!(m.contains("2023-11-14 22:13 UTC"));
        assert!(m.contains(r#"data-style="relative""#));
        assert!(
            timestamp(None, TimeStyle::Local)
                .into_string()
                .contains('—')
        );
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(duration_text(850), "850 ms");
        assert_eq!(duration_text(12_400), "12 s");
        assert_eq!(duration_text(3 * 60_000), "3 min");
        assert_eq!(ago_text(10_000, 7_000), "3 s ago");
        assert_eq!(ago_text(0, 300_000), "in 5 min");
    }
}
