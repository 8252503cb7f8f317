//! Pre-aggregated request series for the dashboard's charts (table
//! `request_rollups`, log migration `0014_request_rollups.sql`).
//!
//! The log writer adds each batch's request rows to their buckets in the
//! transaction that inserts them ([`upsert_batch`]): one upsert per app and
//! bucket per batch, at two widths (a minute, for the last hour; a quarter
//! of an hour, for the last day). Latency percentiles come from fixed
//! histogram buckets ([`BUCKET_EDGES_US`], the same edges as the
//! `runway_http_request_duration_seconds` histogram), so a chart reads at
//! most 60 or 96 rows per app and never the request log. Retention is the
//! log rows' ([`crate::Store::purge_logs_before`]).

use std::collections::HashMap;

use sqlx::Row;

use crate::Store;
use crate::db::Catalog;
use crate::error::{Context, Result};
use crate::logs::{LogKind, NewLogEntry};

/// A minute: the buckets of the last hour's charts.
pub const MINUTE_MS: i64 = 60_000;
/// A quarter of an hour: the buckets of the last day's charts.
pub const QUARTER_MS: i64 = 900_000;
/// Both widths every request is counted at.
pub const WIDTHS_MS: [i64; 2] = [MINUTE_MS, QUARTER_MS];

/// Upper edges (µs) of the duration buckets `l0`..`l13`; `l14` is longer.
pub const BUCKET_EDGES_US: [i64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];
/// Duration buckets per row.
pub const BUCKETS: usize = BUCKET_EDGES_US.len() + 1;

/// One bucket of one app (or of the environment: every app summed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupPoint {
    /// Start of the bucket, ms since the epoch.
    pub bucket_ms: i64,
    pub requests: i64,
    /// Requests answered 5xx.
    pub errors: i64,
    pub duration_us_sum: i64,
    /// Requests per duration bucket (see [`BUCKET_EDGES_US`]).
    pub buckets: [i64; BUCKETS],
}

impl RollupPoint {
    /// The `q` quantile (0..1) of the durations, in ms, interpolated
    /// linearly inside its bucket; `None` without timed requests.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: i64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0i64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BUCKET_EDGES_US[i - 1] };
                let upper = BUCKET_EDGES_US.get(i).copied().unwrap_or(lower);
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                return Some((lower as f64 + (upper - lower) as f64 * within) / 1000.0);
            }
            seen += n;
        }
        Some(BUCKET_EDGES_US[BUCKET_EDGES_US.len() - 1] as f64 / 1000.0)
    }

    fn add(&mut self, e: &NewLogEntry) {
        self.requests += 1;
        if e.status.is_some_and(|s| (500..600).contains(&s)) {
            self.errors += 1;
        }
        if let Some(us) = e.duration_us {
            self.duration_us_sum += us.max(0);
            let i = BUCKET_EDGES_US
                .iter()
                .position(|&edge| us <= edge)
                .unwrap_or(BUCKETS - 1);
            self.buckets[i] += 1;
        }
    }
}

/// The buckets `batch`'s request rows fall in: `(app, width, start)`.
pub(crate) fn aggregate(batch: &[NewLogEntry]) -> HashMap<(String, i64, i64), RollupPoint> {
    let mut out: HashMap<(String, i64, i64), RollupPoint> = HashMap::new();
    for e in batch.iter().filter(|e| e.kind == LogKind::Request) {
        let app = e.app.clone().unwrap_or_default();
        for width in WIDTHS_MS {
            let start = e.at_ms.div_euclid(width) * width;
            let point = out.entry((app.clone(), width, start)).or_default();
            point.bucket_ms = start;
            point.add(e);
        }
    }
    out
}

fn bucket_columns() -> String {
    (0..BUCKETS)
        .map(|i| format!("l{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `batch`'s request rows to their buckets, inside `tx`.
pub(crate) async fn upsert_batch(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    batch: &[NewLogEntry],
) -> Result<()> {
    let points = aggregate(batch);
    if points.is_empty() {
        return Ok(());
    }
    let columns = bucket_columns();
    let params = (7..7 + BUCKETS)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sums = (0..BUCKETS)
        .map(|i| format!("l{i} = request_rollups.l{i} + excluded.l{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO request_rollups (app, width_ms, bucket_ms, requests, errors, \
         duration_us_sum, {columns}) VALUES ($1, $2, $3, $4, $5, $6, {params}) \
         ON CONFLICT (width_ms, bucket_ms, app) DO UPDATE SET \
         requests = request_rollups.requests + excluded.requests, \
         errors = request_rollups.errors + excluded.errors, \
         duration_us_sum = request_rollups.duration_us_sum + excluded.duration_us_sum, {sums}"
    );
    for ((app, width, start), point) in points {
        let mut q = sqlx::query(&sql)
            .bind(app.clone())
            .bind(width)
            .bind(start)
            .bind(point.requests)
            .bind(point.errors)
            .bind(point.duration_us_sum);
        for n in point.buckets {
            q = q.bind(n);
        }
        q.execute(&mut **tx)
            .await
            .context(|| format!("failed to add requests of app {app:?} to the chart series"))?;
    }
    Ok(())
}

/// Deletes buckets that ended before `before_ms`.
pub(crate) async fn purge_before(catalog: &Catalog, before_ms: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM request_rollups WHERE bucket_ms + width_ms <= $1")
            .bind(before_ms)
            .execute(&catalog.pool)
            .await
            .context(|| format!("failed to purge chart series before {before_ms}"))?
            .rows_affected(),
    )
}

impl Store {
    /// The buckets of width `width_ms` starting at or after `since_ms`, in
    /// time order: of `app`, or of the whole environment (every app summed)
    /// when `app` is `None`.
    pub async fn request_rollups(
        &self,
        app: Option<&str>,
        width_ms: i64,
        since_ms: i64,
    ) -> Result<Vec<RollupPoint>> {
        let sums = (0..BUCKETS)
            .map(|i| format!("CAST(SUM(l{i}) AS BIGINT) AS l{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = if app.is_some() { " AND app = $3" } else { "" };
        let sql = format!(
            "SELECT bucket_ms, CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(errors) AS BIGINT) AS errors, \
             CAST(SUM(duration_us_sum) AS BIGINT) AS duration_us_sum, {sums} \
             FROM request_rollups WHERE width_ms = $1 AND bucket_ms >= $2{filter} \
             GROUP BY bucket_ms ORDER BY bucket_ms"
        );
        let mut q = sqlx::query(&sql).bind(width_ms).bind(since_ms);
        if let Some(app) = app {
            q = q.bind(app.to_string());
        }
        let rows = q
            .fetch_all(&self.log_catalog().pool)
            .await
            .context(|| "failed to read the chart series".to_string())?;
        let what = || "failed to decode a chart bucket".to_string();
        rows.iter()
            .map(|r| {
                let mut point = RollupPoint {
                    bucket_ms: r.try_get("bucket_ms").context(what)?,
                    requests: r.try_get("requests").context(what)?,
                    errors: r.try_get("errors").context(what)?,
                    duration_us_sum: r.try_get("duration_us_sum").context(what)?,
                    buckets: [0; BUCKETS],
                };
                for (i, slot) in point.buckets.iter_mut().enumerate() {
                    *slot = r.try_get(format!("l{i}").as_str()).context(what)?;
                }
                Ok(point)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(app: &str, at_ms: i64, status: i64, us: i64) -> NewLogEntry {
        NewLogEntry {
            at_ms,
            kind: LogKind::Request,
            app: Some(app.into()),
            status: Some(status),
            duration_us: Some(us),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_is_one_bucket_per_app_and_width() {
        let batch = [
            request("a", 60_000, 200, 800),
            request("a", 119_999, 500, 3_000),
            request("b", 60_500, 200, 40_000_000),
            NewLogEntry {
                kind: LogKind::Output,
                ..Default::default()
            },
        ];
        let points = aggregate(&batch);
        assert_eq!(points.len(), 4);
        let a = &points[&("a".to_string(), MINUTE_MS, 60_000)];
        assert_eq!((a.requests, a.errors), (2, 1));
        assert_eq!(a.buckets[0], 1);
        assert_eq!(a.buckets[2], 1);
        let b = &points[&("b".to_string(), QUARTER_MS, 0)];
        assert_eq!(b.buckets[BUCKETS - 1], 1);
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let mut p = RollupPoint::default();
        assert_eq!(p.quantile_ms(0.5), None);
        p.buckets[0] = 50; // ≤ 1 ms
        p.buckets[6] = 50; // 50..100 ms
        assert_eq!(p.quantile_ms(0.5), Some(1.0));
        let p99 = p.quantile_ms(0.99).unwrap();
        assert!((99.0..=100.0).contains(&p99), "{p99}");
    }
}
