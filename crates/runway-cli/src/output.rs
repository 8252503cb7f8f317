//! Plain-text output: aligned tables, key/value blocks, times, sizes, durations.
//!
//! Convention: tables and `show` output use relative times ("3m ago"); log
//! lines use RFC 3339 UTC with milliseconds.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A table with a header row; columns are separated by two spaces and padded
/// to their widest cell (the last column is not padded).
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(headers: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths = vec![0usize; n];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i + 1 < n {
                    let pad = w - cell.chars().count();
                    let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
                } else {
                    text.push_str(cell);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key:  value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = width - k.chars().count();
        let _ = writeln!(out, "{k}:{}  {v}", " ".repeat(pad));
    }
    out
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2026-11-22T10:00:00.123Z` (UTC, millisecond precision).
pub fn rfc3339(at_ms: i64) -> String {
    let days = at_ms.div_euclid(86_400_000);
    let ms_of_day = at_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let h = ms_of_day / 3_600_000;
    let min = ms_of_day / 60_000 % 60;
    let s = ms_of_day / 1000 % 60;
    let ms = ms_of_day % 1000;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// "just now", "12s ago", "3m ago", "5h ago", "4d ago"; the date beyond 30 days.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - at_ms) / 1000;
    match secs {
        s if s < 1 => "just now".to_owned(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s if s < 30 * 86_400 => format!("{}d ago", s / 86_400),
        _ => rfc3339(at_ms)[..10].to_owned(),
    }
}

/// [`relative`] to now, or `-`.
pub fn ago(at_ms: Option<i64>) -> String {
    at_ms.map_or_else(|| "-".to_owned(), |t| relative(t, now_ms()))
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `1.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < K * K {
        format!("{:.1} KiB", b / K)
    } else if b < K * K * K {
        format!("{:.1} MiB", b / (K * K))
    } else {
        format!("{:.1} GiB", b / (K * K * K))
    }
}

/// Milliseconds for step timings: `0.42 ms`, `12.3 ms`, `812 ms`, `12.3 s`.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

pub fn fmt_duration(d: Duration) -> String {
    fmt_ms(d.as_secs_f64() * 1000.0)
}

/// Request durations in log lines: `0.35ms`, `1.2ms`, `812ms`, `12.3s`.
pub fn fmt_us_compact(us: i64) -> String {
    fmt_ms(us as f64 / 1000.0).replace(' ', "")
}

/// `sha256:0123456789ab…` → `0123456789ab` (12 hex digits).
pub fn short_digest(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.chars().take(12).collect()
}

/// `Some(s)` → `s`, `None`/empty → `-`.
pub fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(["NAME", "VERSION", "DESCRIPTION"]);
        t.row(["notes", "0.1.0", "Notes app"]);
        t.row(["a", "10.0.0", ""]);
        t.row(["longer-name", "-"]);
        assert_eq!(
            t.render(),
            "NAME         VERSION  DESCRIPTION\n\
             notes        0.1.0    Notes app\n\
             a            10.0.0\n\
             longer-name  -\n"
        );
        assert!(!t.is_empty());
        // Widths count characters, not bytes.
        let mut t = Table::new(["A", "B"]);
        t.row(["é", "x"]);
        assert_eq!(t.render(), "A  B\né  x\n");
    }

    #[test]
    fn fields_align_values() {
        let s = fields(&[("name", "notes".into()), ("description", "x".into())]);
        assert_eq!(s, "name:         notes\ndescription:  x\n");
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn relative_times() {
        let now = 1_700_000_000_000;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now + 5000, now), "just now");
        assert_eq!(relative(now - 12_000, now), "12s ago");
        assert_eq!(relative(now - 3 * 60_000 - 59_000, now), "3m ago");
        assert_eq!(relative(now - 5 * 3_600_000, now), "5h ago");
        assert_eq!(relative(now - 4 * 86_400_000, now), "4d ago");
        assert_eq!(relative(now - 40 * 86_400_000, now), "2023-10-05");
        assert_eq!(ago(None), "-");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(fmt_ms(0.421), "0.42 ms");
        assert_eq!(fmt_ms(12.34), "12.3 ms");
        assert_eq!(fmt_ms(812.0), "812 ms");
        assert_eq!(fmt_ms(12_345.0), "12.3 s");
        assert_eq!(fmt_duration(Duration::from_micros(4_000)), "4.0 ms");
        assert_eq!(fmt_us_compact(1_200), "1.2ms");
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "abababababab"
        );
        assert_eq!(or_dash(None), "-");
        assert_eq!(or_dash(Some("")), "-");
        assert_eq!(or_dash(Some("x")), "x");
    }
}
