//! Line charts rendered on the server as SVG.
//!
//! A [`LineChart`] is a few series of `(time, value)` points drawn over a
//! fixed time range, with a y axis from zero to a rounded maximum, grid
//! lines, labels and a legend. The SVG uses classes and presentation
//! attributes only (the pages' Content-Security-Policy forbids inline
//! styles); every label is escaped. A chart with no points says so instead
//! of drawing an empty frame. Each point is also an element with a `<title>`
//! (its time and value), so a reader can hover it and a test can count it.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// `(milliseconds since the epoch, value)`, any order.
    pub points: Vec<(i64, f64)>,
}

/// A chart over `[from_ms, to_ms]`.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Read by screen readers and shown above the chart.
    pub title: String,
    /// The unit of the y axis (`req/s`, `ms`, `%`).
    pub unit: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A "nice" upper bound for the y axis: 1, 2 or 5 times a power of ten.
pub fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&bound| bound >= max)
        .unwrap_or(10.0 * magnitude)
}

fn value_label(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn time_label(ms: i64, span_ms: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    if span_ms > 2 * 86_400_000 {
        at.format("%m-%d").to_string()
    } else {
        at.format("%H:%M").to_string()
    }
}

/// The points in time order.
fn sorted(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.0);
    points
}

impl LineChart {
    /// How many points the chart draws.
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The chart as an inline `<figure>` with its SVG.
    pub fn render(&self) -> Markup {
        let span = (self.to_ms - self.from_ms).max(1);
        let max = nice_max(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(0.0, f64::max),
        );
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x =
            |ms: i64| LEFT + plot_w * ((ms - self.from_ms) as f64 / span as f64).clamp(0.0, 1.0);
        let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
        let label = format!("{} ({})", self.title, self.unit);
        html! {
            figure.chart {
                figcaption { (self.title) " " span.muted { "(" (self.unit) ")" } }
                @if self.point_count() == 0 {
                    p.chart-empty { "No data in this period." }
                } @else {
                    svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                        role="img" aria-label=(label) preserveAspectRatio="none" {
                        @for i in 0..=4 {
                            @let v = max * f64::from(i) / 4.0;
                            line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(v)) y2=(y(v)) {}
                            text.axis x=(LEFT - 4.0) y=(y(v) + 4.0) text-anchor="end" { (value_label(v)) }
                        }
                        @for i in 0..=4 {
                            @let t = self.from_ms + span * i / 4;
                            text.axis x=(x(t)) y=(HEIGHT - 6.0) text-anchor="middle" { (time_label(t, span)) }
                        }
                        @for (n, series) in self.series.iter().enumerate() {
                            @let points = sorted(&series.points);
                            @let path = points.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect::<Vec<_>>().join(" ");
                            g class={ "series series-" (n % 6) } {
                                polyline points=(path) fill="none" {}
                                @for &(t, v) in &points {
                                    circle.point cx=(format!("{:.1}", x(t))) cy=(format!("{:.1}", y(v))) r="2" {
                                        title { (series.name) " " (time_label(t, 0)) ": " (value_label(v)) " " (self.unit) }
                                    }
                                }
                            }
                        }
                    }
                    @if self.series.len() > 1 {
                        ul.legend {
                            @for (n, series) in self.series.iter().enumerate() {
                                li class={ "series-" (n % 6) } { (series.name) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }

    #[test]
    fn renders_points_and_escapes_names() {
        let chart = LineChart {
            title: "requests <all>".into(),
            unit: "req/s".into(),
            from_ms: 0,
            to_ms: 3_600_000,
            series: vec![Series {
                name: "<script>".into(),
                points: vec![(60_000, 3.0), (0, 1.0), (120_000, 2.5)],
            }],
        };
        let svg = chart.render().into_string();
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("requests &lt;all&gt;"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn no_points_says_so() {
        let chart = LineChart {
            title: "p99".into(),
            unit: "ms".into(),
            from_ms: 0,
            to_ms: 1,
            series: vec![],
        };
        assert!(chart.render().into_string().contains("No data"));
    }
}
