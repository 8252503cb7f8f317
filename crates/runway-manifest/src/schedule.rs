//! Timer schedules: cron expressions (5 fields, or 6 with seconds first)
//! evaluated in the environment's time zone, and timer timeouts.
//!
//! The one place a schedule is parsed and its next due time computed: the
//! manifest parser, the controller (overrides, `timer list`) and the
//! front-ends' scheduler all call it, so they agree on what a schedule means.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The time zone of an environment that never set one.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

const FIX: &str =
    "use 5 fields (minute hour day month weekday) like \"0 3 * * *\", or 6 with seconds first";

/// A validated cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a cron expression; the error says what is wrong and how to fix it.
    pub fn parse(schedule: &str) -> Result<Schedule, String> {
        // croner also accepts a 7th (year) field in some versions; the scheduler
        // promises 5 or 6, so count fields ourselves. Nicknames (@daily) are one word.
        let fields = schedule.split_whitespace().count();
        let nickname = fields == 1 && schedule.trim_start().starts_with('@');
        if !nickname && !(5..=6).contains(&fields) {
            return Err(format!(
                "a cron schedule has 5 or 6 fields, this one has {fields}; {FIX}"
            ));
        }
        croner::Cron::new(schedule)
            .with_seconds_optional()
            .parse()
            .map(|cron| Schedule { cron })
            .map_err(|e| {
                format!(
                    "not a valid cron schedule ({}); {FIX}",
                    e.to_string().trim_end_matches('.')
                )
            })
    }

    /// The first due time strictly after `after_ms` (milliseconds since the
    /// unix epoch), in time zone `tz`; `None` if the schedule never fires
    /// again (e.g. a 30th of February).
    ///
    /// When the clocks fall back, a local time happens twice and cron gives
    /// the first of the two: a schedule runs once in the repeated hour, and a
    /// search from inside its second pass continues after it (never a time
    /// at or before `after_ms`).
    pub fn next_after(&self, after_ms: i64, tz: Tz) -> Option<i64> {
        let (mut from, mut inclusive) = (after_ms, false);
        // Bounded: each round moves `from` an hour on; any zone's repeated
        // hour is passed within two.
        for _ in 0..4 {
            let start: DateTime<Utc> = Utc.timestamp_millis_opt(from).single()?;
            let next = self
                .cron
                .find_next_occurrence(&start.with_timezone(&tz), inclusive)
                .ok()?
                .timestamp_millis();
            if next > after_ms {
                return Some(next);
            }
            // croner works in whole seconds (an `after` with milliseconds may
            // round down to a time that is not after it), and maps a repeated
            // local time to its first pass: look again from a later instant.
            (from, inclusive) = if from == after_ms && after_ms - next < 1000 {
                (after_ms + 1000, true)
            } else {
                (from + 3_600_000, false)
            };
        }
        None
    }
}

/// Parses an IANA time zone name (`Europe/Lisbon`, `UTC`).
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone {name:?}; use an IANA name like \"UTC\", \"Europe/Lisbon\" or \"America/New_York\""
        )
    })
}

/// Parses a timer timeout: whole seconds (`600`) or a duration with units
/// (`"10m"`, `"1h 30m"`, `"90s"`). Returns seconds.
pub fn parse_timeout(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("not a duration ({e}); write it like \"90s\", \"10m\" or \"1h\""))?;
    if d.subsec_nanos() != 0 {
        return Err(
            "a timeout is a whole number of seconds; write it like \"90s\" or \"10m\"".into(),
        );
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_in_a_time_zone() {
        let s = Schedule::parse("0 2 * * *").unwrap();
        // 2026-01-01T00:00:00Z
        let t0 = 1_767_225_600_000;
        let utc = s.next_after(t0, parse_time_zone("UTC").unwrap()).unwrap();
        assert_eq!(utc, t0 + 2 * 3_600_000);
        // Lisbon is UTC+0 in winter, New York UTC-5.
        let ny = s
            .next_after(t0, parse_time_zone("America/New_York").unwrap())
            .unwrap();
        assert_eq!(ny, t0 + 7 * 3_600_000);
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn next_is_strictly_after_even_with_milliseconds() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let tz = parse_time_zone("UTC").unwrap();
        assert_eq!(s.next_after(10_000, tz), Some(11_000));
        assert_eq!(s.next_after(10_500, tz), Some(11_000));
        assert_eq!(s.next_after(10_999, tz), Some(11_000));
    }

    #[test]
    fn the_repeated_hour_of_a_fall_back_never_gives_a_time_in_the_past() {
        // New York falls back at 2026-11-01 06:00 UTC (02:00 EDT → 01:00 EST).
        let tz = parse_time_zone("America/New_York").unwrap();
        let s = Schedule::parse("*/15 * * * *").unwrap();
        let second_pass = 1_793_513_100_000; // 06:05 UTC = 01:05 EST
        let next = s.next_after(second_pass, tz).unwrap();
        assert!(next > second_pass, "{next} is not after {second_pass}");
        assert!(next <= 1_793_517_300_000, "at the latest 07:15 UTC: {next}");
        // Every due time from a day before to a day after moves forward.
        let mut t = second_pass - 86_400_000;
        while t < second_pass + 86_400_000 {
            let n = s.next_after(t, tz).unwrap();
            assert!(n > t && n - t <= 2 * 3_600_000, "{t} → {n}");
            t = n;
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("10m"), Ok(600));
        assert_eq!(parse_timeout("1h 30m"), Ok(5400));
        assert_eq!(parse_timeout("90s"), Ok(90));
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("1500ms").is_err());
    }
}
