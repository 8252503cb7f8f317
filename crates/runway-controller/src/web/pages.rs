//! The dashboard's monitoring pages: overview, apps, front-ends, the request
//! log and a request's detail, errors with the guest's output around them,
//! app output, charts.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use http::HeaderMap;
use runway_api::v1::{AppSummary, FrontendState, LogKind, Scope};
use runway_store::{LogEntry, LogPage, MINUTE_MS, QUARTER_MS, RollupPoint};
use runway_web::chart::{LineChart, Series};
use runway_web::layout::empty;
use runway_web::time::{TimeStyle, ago_text, timestamp};
use runway_web::{Markup, html};
use serde::Deserialize;

use super::{PageError, PageResult, Viewer, Web, render};
use crate::identity::{Admin, AuditSlot, Read};

/// Rows per page of the request log, errors and output.
const PAGE_ROWS: i64 = 50;
/// Errors per page (each shows its request's output).
const ERROR_ROWS: i64 = 20;

// ---------------------------------------------------------------- overview

pub(crate) async fn home(State(web): State<Web>, viewer: Viewer) -> PageResult {
    let caller = viewer.caller::<Read>(None)?;
    let Json(apps) = crate::api::list_apps(State(web.c.clone()), caller).await?;
    let list = web.c.frontend_list().await?;
    let now = runway_store::now_ms();
    let ready = list
        .frontends
        .iter()
        .filter(|f| f.state == FrontendState::Ready)
        .count();
    let points = web
        .c
        .store()
        .request_rollups(None, MINUTE_MS, now - 3_600_000)
        .await?;
    let charts = charts_for("environment", &points, MINUTE_MS, now - 3_600_000, now);
    let body = html! {
        dl.facts {
            dt { "Environment" } dd { (web.c.config().environment) }
            dt { "Generation" } dd { (list.generation) }
            dt { "Front-ends ready" } dd { (ready) " / " (list.frontends.len()) }
            dt { "Apps running" } dd { (apps.iter().filter(|a| a.running_version.is_some()).count()) " / " (apps.len()) }
        }
        h2 { "Last hour" }
        (charts)
        h2 { "Apps" }
        (apps_table(&apps))
    };
    Ok(render(&web, &viewer, "Overview", "Overview", body))
}

// -------------------------------------------------------------------- apps

fn apps_table(apps: &[AppSummary]) -> Markup {
    if apps.is_empty() {
        return empty("No app is published here yet: `runway app publish DIR`.");
    }
    html! {
        table {
            thead { tr { th { "App" } th { "Running" } th { "Status" } th { "Zone" } th { "Versions" } th { "Deployed" } } }
            tbody {
                @for a in apps {
                    tr {
                        td { a href={ "/_runway/apps/" (a.name) } { (a.name) } }
                        td { @if let Some(v) = &a.running_version { code { (v) } } @else { span.muted { "not deployed" } } }
                        td { (a.status.to_string()) @if let Some(e) = &a.load_error { " " span.error { (e) } } }
                        td { (a.zone) }
                        td { (a.version_count) }
                        td { (timestamp(a.deployed_at_ms, TimeStyle::Relative)) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn apps(State(web): State<Web>, viewer: Viewer) -> PageResult {
    let caller = viewer.caller::<Read>(None)?;
    let Json(apps) = crate::api::list_apps(State(web.c.clone()), caller).await?;
    Ok(render(&web, &viewer, "Apps", "Apps", apps_table(&apps)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    range: Option<String>,
}

/// `hour` (per-minute buckets) or `day` (per quarter of an hour).
fn range(q: Option<&str>) -> (&'static str, i64, i64) {
    match q {
        Some("day") => ("day", QUARTER_MS, 86_400_000),
        _ => ("hour", MINUTE_MS, 3_600_000),
    }
}

pub(crate) async fn app(
    State(web): State<Web>,
    viewer: Viewer,
    Path(app): Path<String>,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let caller = viewer.caller::<Read>(Some(&app))?;
    let Json(detail) =
        crate::api::show_app(State(web.c.clone()), caller, Path(app.clone())).await?;
    let caller = viewer.caller::<Read>(Some(&app))?;
    let Json(versions) =
        crate::api::list_versions(State(web.c.clone()), caller, Path(app.clone())).await?;
    let (name, width, span) = range(q.range.as_deref());
    let now = runway_store::now_ms();
    let points = web
        .c
        .store()
        .request_rollups(Some(&app), width, now - span)
        .await?;
    let s = &detail.summary;
    let body = html! {
        dl.facts {
            dt { "Running" } dd { @if let Some(v) = &s.running_version { code { (v) } } @else { "nothing" } }
            dt { "Status" } dd { (s.status.to_string()) }
            dt { "URL" } dd { a href=(s.url) { (s.url) } }
            dt { "Zone" } dd { (s.zone) }
            @if let Some(d) = &s.description { dt { "Description" } dd { (d) } }
        }
        p {
            a href={ "/_runway/requests?app=" (app) } { "Requests" } " · "
            a href={ "/_runway/errors?app=" (app) } { "Errors" } " · "
            a href={ "/_runway/output?app=" (app) } { "Output" } " · "
            a href={ "/_runway/timers?app=" (app) } { "Timers" }
        }
        h2 { "Charts, last " (name) }
        (range_links(&format!("/_runway/apps/{app}"), name))
        (charts_for(&app, &points, width, now - span, now))
        h2 { "Versions" }
        @if versions.is_empty() { (empty("No versions.")) } @else {
            table {
                thead { tr { th { "Version" } th { "Digest" } th { "Published" } th { "Size" } th { "Running" } } }
                tbody {
                    @for v in &versions {
                        tr {
                            td { code { (v.version) } }
                            td { code title=(v.digest) { (v.digest.get(..19).unwrap_or(&v.digest)) "…" } }
                            td { (timestamp(Some(v.published_at_ms), TimeStyle::Local)) }
                            td { (v.size_bytes / 1024) " KiB" }
                            td { @if v.running { "running" } }
                        }
                    }
                }
            }
        }
        h2 { "Properties" }
        @if detail.properties.is_empty() { (empty("This app declares no properties.")) } @else {
            table {
                thead { tr { th { "Name" } th { "Value" } th { "Source" } th { "Required" } } }
                tbody {
                    @for p in &detail.properties {
                        tr {
                            td { code { (p.name) } }
                            td {
                                @if p.secret { span.muted title="secret values are never shown" { "•••••• (secret)" } }
                                @else if let Some(v) = &p.value { code { (v) } }
                                @else { span.muted { "not set" } }
                            }
                            td { (format!("{:?}", p.source).to_lowercase()) }
                            td { @if p.required { "yes" } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&web, &viewer, "Apps", &format!("App {app}"), body))
}

fn range_links(base: &str, current: &str) -> Markup {
    html! {
        p.tabs {
            @for (r, label) in [("hour", "Last hour"), ("day", "Last day")] {
                @if r == current { strong aria-current="true" { (label) } } @else {
                    a href={ (base) "?range=" (r) } { (label) }
                }
                " "
            }
        }
    }
}

// -------------------------------------------------------------- front-ends

pub(crate) async fn frontends(State(web): State<Web>, viewer: Viewer) -> PageResult {
    let _caller = viewer.caller::<Read>(None)?;
    let list = web.c.frontend_list().await?;
    let now = runway_store::now_ms();
    let may_change = viewer.may(Scope::Admin, None);
    let body = html! {
        p { "Committed generation " strong { (list.generation) } "; a front-end without a heartbeat for "
            (list.offline_after_secs) " s is offline." }
        @if list.frontends.is_empty() { (empty("No front-end has registered.")) } @else {
            table {
                thead { tr { th { "Front-end" } th { "State" } th { "Zone" } th { "Generation" } th { "Heartbeat" } th { "Address" } @if may_change { th { "Traffic" } } } }
                tbody {
                    @for f in &list.frontends {
                        tr {
                            td { (f.name) }
                            td { span class={ "state state-" (f.state.to_string()) } { (f.state.to_string()) } @if !f.enabled { " (disabled)" } }
                            td { (f.zone) }
                            td { (f.generation) }
                            td {
                                @if let Some(at) = f.last_heartbeat_ms {
                                    span title=(ago_text(now, at)) { (timestamp(Some(at), TimeStyle::Relative)) }
                                } @else { span.muted { "in process" } }
                            }
                            td { code { (f.address) } }
                            @if may_change {
                                td {
                                    // In-process front-ends (`runway up`) are not in the
                                    // registry: nothing to enable or disable.
                                    @if f.last_heartbeat_ms.is_some() {
                                    @let action = if f.enabled { "disable" } else { "enable" };
                                    form.inline method="post" action={ "/_runway/frontends/" (f.name) "/" (action) } {
                                        input type="hidden" name=(runway_web::csrf::FIELD) value=(viewer.csrf_token);
                                        button type="submit" data-confirm={ (action) " front-end " (f.name) "?" } {
                                            @if f.enabled { "Disable" } @else { "Enable" }
                                        }
                                    }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&web, &viewer, "Front-ends", "Front-ends", body))
}

async fn set_frontend(
    web: Web,
    viewer: Viewer,
    slot: Option<Extension<AuditSlot>>,
    headers: HeaderMap,
    name: String,
    form: HashMap<String, String>,
    enable: bool,
) -> PageResult {
    let slot = slot.map(|Extension(s)| s);
    if let Err(e) = viewer.check_form(&web, &headers, &form) {
        return Ok(e.into_response());
    }
    let caller = viewer.acting::<Admin>(None, slot.as_ref())?;
    if enable {
        crate::api::enable_frontend(State(web.c.clone()), caller, Path(name)).await?;
    } else {
        crate::api::disable_frontend(State(web.c.clone()), caller, Path(name)).await?;
    }
    Ok(Redirect::to("/_runway/frontends").into_response())
}

pub(crate) async fn enable_frontend(
    State(web): State<Web>,
    viewer: Viewer,
    slot: Option<Extension<AuditSlot>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    set_frontend(web, viewer, slot, headers, name, form, true).await
}

pub(crate) async fn disable_frontend(
    State(web): State<Web>,
    viewer: Viewer,
    slot: Option<Extension<AuditSlot>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    set_frontend(web, viewer, slot, headers, name, form, false).await
}

// ------------------------------------------------------------- request log

/// The request log's filters (a GET form, so a filtered page has a URL).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogFilters {
    app: Option<String>,
    /// `2xx`…`5xx`, or a status code.
    status: Option<String>,
    frontend: Option<String>,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    since: Option<String>,
    until: Option<String>,
    /// The next page: rows older than this id.
    before: Option<i64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_minute(field: &str, value: &Option<String>) -> Result<Option<i64>, PageError> {
    let Some(v) = nonempty(value) else {
        return Ok(None);
    };
    chrono::NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M")
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .map_err(|_| {
            PageError::bad_request(format!(
                "{field} {v:?} is not a time like 2026-01-31T13:45 (UTC)"
            ))
        })
}

fn parse_status(value: &Option<String>) -> Result<Option<(i64, i64)>, PageError> {
    let Some(v) = nonempty(value) else {
        return Ok(None);
    };
    if let Some(class) = v.strip_suffix("xx").and_then(|c| c.parse::<i64>().ok())
        && (1..=5).contains(&class)
    {
        return Ok(Some((class * 100, class * 100 + 99)));
    }
    match v.parse::<i64>() {
        Ok(code) if (100..=599).contains(&code) => Ok(Some((code, code))),
        _ => Err(PageError::bad_request(format!(
            "status {v:?} is neither a class (2xx, 3xx, 4xx, 5xx) nor a code between 100 and 599"
        ))),
    }
}

impl LogFilters {
    fn page(&self, kind: LogKind, limit: i64) -> Result<LogPage, PageError> {
        Ok(LogPage {
            kind: Some(kind),
            app: nonempty(&self.app),
            frontend: nonempty(&self.frontend),
            status: parse_status(&self.status)?,
            since_ms: parse_minute("since", &self.since)?,
            until_ms: parse_minute("until", &self.until)?,
            before_id: self.before,
            limit,
        })
    }

    /// The query string of these filters with `before` replaced.
    fn with_before(&self, before: i64) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("app", &self.app),
            ("status", &self.status),
            ("frontend", &self.frontend),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = nonempty(v) {
                pairs.push((k, v));
            }
        }
        pairs.push(("before", before.to_string()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

fn filter_form(
    action: &str,
    f: &LogFilters,
    apps: &[String],
    with_request_filters: bool,
) -> Markup {
    let app = nonempty(&f.app).unwrap_or_default();
    html! {
        form.filters method="get" action=(action) {
            label { "App " select name="app" {
                option value="" { "all" }
                @for a in apps { option value=(a) selected[*a == app] { (a) } }
            } }
            @if with_request_filters {
                label { "Status " input type="text" name="status" size="4" placeholder="5xx" value=(f.status.clone().unwrap_or_default()); }
                label { "Front-end " input type="text" name="frontend" size="10" value=(f.frontend.clone().unwrap_or_default()); }
            }
            label { "From (UTC) " input type="datetime-local" name="since" value=(f.since.clone().unwrap_or_default()); }
            label { "To (UTC) " input type="datetime-local" name="until" value=(f.until.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
    }
}

async fn app_names(web: &Web) -> Result<Vec<String>, PageError> {
    Ok(web
        .c
        .store()
        .apps()
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect())
}

fn duration(us: Option<i64>) -> String {
    match us {
        Some(us) if us >= 10_000 => format!("{} ms", us / 1000),
        Some(us) => format!("{:.1} ms", us as f64 / 1000.0),
        None => "—".into(),
    }
}

fn older_link(base: &str, f: &LogFilters, rows: &[LogEntry], limit: i64) -> Markup {
    html! {
        @if rows.len() as i64 >= limit {
            @if let Some(last) = rows.last() {
                p.pager { a rel="next" href={ (base) "?" (f.with_before(last.id)) } { "Older →" } }
            }
        }
    }
}

/// The app a filtered page names must be readable by the viewer (a console
/// user may have a raise on one app only).
/// One page of log rows of `kind` matching the filters, once the viewer may
/// read them (the app's, or the environment's when no app is named).
async fn checked_page(
    web: &Web,
    viewer: &Viewer,
    f: &LogFilters,
    kind: LogKind,
    rows: i64,
) -> Result<Vec<LogEntry>, PageError> {
    viewer.caller::<Read>(nonempty(&f.app).as_deref())?;
    Ok(web.c.store().log_page(&f.page(kind, rows)?).await?)
}

pub(crate) async fn requests(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<LogFilters>,
) -> PageResult {
    let rows = checked_page(&web, &viewer, &f, LogKind::Request, PAGE_ROWS).await?;
    let apps = app_names(&web).await?;
    let body = html! {
        (filter_form("/_runway/requests", &f, &apps, true))
        @if rows.is_empty() { (empty("No request matches.")) } @else {
            table.log {
                thead { tr { th { "When" } th { "Request id" } th { "App" } th { "Method" } th { "Path" } th { "Status" } th { "Duration" } th { "Front-end" } } }
                tbody {
                    @for r in &rows {
                        tr class=[r.status.filter(|s| *s >= 500).map(|_| "error")] {
                            td { (timestamp(Some(r.at_ms), TimeStyle::Local)) }
                            td { @if let Some(id) = &r.request_id { a.request-id href={ "/_runway/requests/" (id) } { code { (id) } } } }
                            td { (r.app.clone().unwrap_or_default()) }
                            td { (r.method.clone().unwrap_or_default()) }
                            td.path { code { (r.path.clone().unwrap_or_default()) } }
                            td { (r.status.map(|s| s.to_string()).unwrap_or_default()) }
                            td { (duration(r.duration_us)) }
                            td { (r.frontend.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            (older_link("/_runway/requests", &f, &rows, PAGE_ROWS))
        }
    };
    Ok(render(&web, &viewer, "Requests", "Requests", body))
}

fn rows_table(rows: &[LogEntry]) -> Markup {
    html! {
        table.log {
            thead { tr { th { "When" } th { "Kind" } th { "Level" } th { "Stream" } th { "Message" } } }
            tbody {
                @for r in rows {
                    tr class={ "kind-" (r.kind.as_str()) " level-" (r.level.as_str()) } {
                        td { (timestamp(Some(r.at_ms), TimeStyle::Local)) }
                        td { (r.kind.as_str()) }
                        td { (r.level.as_str()) }
                        td { (r.stream.clone().unwrap_or_default()) }
                        td { pre.message { (r.message.clone().unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

pub(crate) async fn request(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let rows = web.c.store().log_rows_of_request(&id).await?;
    let Some(first) = rows.first() else {
        // Not found (or not readable): the same answer.
        viewer.caller::<Read>(None)?;
        return Err(PageError {
            status: http::StatusCode::NOT_FOUND,
            message: format!(
                "no log row has request id {id:?} (rows older than the retention are deleted)"
            ),
        });
    };
    let app = rows
        .iter()
        .find_map(|r| r.app.clone())
        .or(first.app.clone());
    viewer.caller::<Read>(app.as_deref())?;
    let req = rows.iter().find(|r| r.kind == LogKind::Request);
    let body = html! {
        @if let Some(r) = req {
            dl.facts {
                dt { "Request id" } dd { code #request-id { (id) } }
                dt { "When" } dd { (timestamp(Some(r.at_ms), TimeStyle::Local)) }
                dt { "App" } dd { (r.app.clone().unwrap_or_default()) " " (r.version.clone().unwrap_or_default()) }
                dt { "Request" } dd { code { (r.method.clone().unwrap_or_default()) " " (r.path.clone().unwrap_or_default()) } }
                dt { "Status" } dd { (r.status.map(|s| s.to_string()).unwrap_or_default()) }
                dt { "Duration" } dd { (duration(r.duration_us)) }
                dt { "Bytes out" } dd { (r.bytes_out.unwrap_or(0)) }
                dt { "Front-end" } dd { (r.frontend.clone().unwrap_or_default()) }
                @if let Some(m) = &r.message { dt { "Note" } dd { (m) } }
            }
        } @else {
            p { "Request id " code #request-id { (id) } " (its request row is not stored yet)." }
        }
        h2 { "Everything it logged" }
        (rows_table(&rows))
    };
    Ok(render(
        &web,
        &viewer,
        "Requests",
        &format!("Request {id}"),
        body,
    ))
}

// ------------------------------------------------------- errors and output

pub(crate) async fn errors(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<LogFilters>,
) -> PageResult {
    let rows = checked_page(&web, &viewer, &f, LogKind::Error, ERROR_ROWS).await?;
    let mut around = Vec::with_capacity(rows.len());
    for r in &rows {
        let output = match &r.request_id {
            Some(id) => web
                .c
                .store()
                .log_rows_of_request(id)
                .await?
                .into_iter()
                .filter(|o| o.kind == LogKind::Output)
                .collect(),
            None => Vec::new(),
        };
        around.push(output);
    }
    let apps = app_names(&web).await?;
    let body = html! {
        (filter_form("/_runway/errors", &f, &apps, false))
        @if rows.is_empty() { (empty("No errors. (Failed requests, traps, timeouts and failed runs are listed here.)")) } @else {
            @for (r, output) in rows.iter().zip(&around) {
                article.error-entry {
                    h3 {
                        (r.app.clone().unwrap_or_else(|| "platform".into())) " "
                        (timestamp(Some(r.at_ms), TimeStyle::Local))
                    }
                    p.cause { (r.message.clone().unwrap_or_default()) }
                    @if let Some(id) = &r.request_id {
                        p { "Request " a.request-id href={ "/_runway/requests/" (id) } { code { (id) } } }
                    }
                    @if output.is_empty() { p.muted { "The guest wrote no output during this request." } } @else {
                        details open {
                            summary { "The guest's output during this request (" (output.len()) " lines)" }
                            pre.output {
                                @for o in output {
                                    span class={ "stream-" (o.stream.clone().unwrap_or_default()) } {
                                        (o.stream.clone().unwrap_or_default()) ": " (o.message.clone().unwrap_or_default()) "\n"
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (older_link("/_runway/errors", &f, &rows, ERROR_ROWS))
        }
    };
    Ok(render(&web, &viewer, "Errors", "Errors", body))
}

pub(crate) async fn output(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<LogFilters>,
) -> PageResult {
    let rows = checked_page(&web, &viewer, &f, LogKind::Output, PAGE_ROWS).await?;
    let apps = app_names(&web).await?;
    let body = html! {
        (filter_form("/_runway/output", &f, &apps, false))
        @if rows.is_empty() { (empty("No output matches.")) } @else {
            table.log {
                thead { tr { th { "When" } th { "App" } th { "Stream" } th { "Line" } th { "Request" } } }
                tbody {
                    @for r in &rows {
                        tr class={ "stream-" (r.stream.clone().unwrap_or_default()) } {
                            td { (timestamp(Some(r.at_ms), TimeStyle::Local)) }
                            td { (r.app.clone().unwrap_or_default()) }
                            td { (r.stream.clone().unwrap_or_default()) }
                            td { pre.message { (r.message.clone().unwrap_or_default()) } }
                            td { @if let Some(id) = &r.request_id { a href={ "/_runway/requests/" (id) } { "request" } } }
                        }
                    }
                }
            }
            (older_link("/_runway/output", &f, &rows, PAGE_ROWS))
        }
    };
    Ok(render(&web, &viewer, "Output", "App output", body))
}

// ------------------------------------------------------------------ charts

/// The three charts of a series of buckets: requests/s, p50/p99 latency,
/// error rate.
pub(crate) fn charts_for(
    name: &str,
    points: &[RollupPoint],
    width_ms: i64,
    from_ms: i64,
    to_ms: i64,
) -> Markup {
    let secs = width_ms as f64 / 1000.0;
    let series = |label: &str, f: &dyn Fn(&RollupPoint) -> Option<f64>| Series {
        name: label.to_string(),
        points: points
            .iter()
            .filter_map(|p| f(p).map(|v| (p.bucket_ms + width_ms / 2, v)))
            .collect(),
    };
    let rps = LineChart {
        title: format!("Requests per second · {name}"),
        unit: "req/s".into(),
        from_ms,
        to_ms,
        series: vec![series("requests/s", &|p| Some(p.requests as f64 / secs))],
    };
    let latency = LineChart {
        title: format!("Latency · {name}"),
        unit: "ms".into(),
        from_ms,
        to_ms,
        series: vec![
            series("p50", &|p| p.quantile_ms(0.5)),
            series("p99", &|p| p.quantile_ms(0.99)),
        ],
    };
    let errors = LineChart {
        title: format!("Error rate (5xx) · {name}"),
        unit: "%".into(),
        from_ms,
        to_ms,
        series: vec![series("errors", &|p| {
            (p.requests > 0).then(|| 100.0 * p.errors as f64 / p.requests as f64)
        })],
    };
    html! {
        div.charts { (rps.render()) (latency.render()) (errors.render()) }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChartQuery {
    app: Option<String>,
    range: Option<String>,
}

pub(crate) async fn charts(
    State(web): State<Web>,
    viewer: Viewer,
    Query(q): Query<ChartQuery>,
) -> PageResult {
    let app = nonempty(&q.app);
    viewer.caller::<Read>(app.as_deref())?;
    let (name, width, span) = range(q.range.as_deref());
    let now = runway_store::now_ms();
    let points = web
        .c
        .store()
        .request_rollups(app.as_deref(), width, now - span)
        .await?;
    let apps = app_names(&web).await?;
    let current = app.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/_runway/charts" {
            label { "App " select name="app" {
                option value="" { "whole environment" }
                @for a in &apps { option value=(a) selected[*a == current] { (a) } }
            } }
            label { "Period " select name="range" {
                option value="hour" selected[name == "hour"] { "last hour (per minute)" }
                option value="day" selected[name == "day"] { "last day (per 15 minutes)" }
            } }
            button type="submit" { "Show" }
        }
        (charts_for(app.as_deref().unwrap_or("environment"), &points, width, now - span, now))
    };
    Ok(render(&web, &viewer, "Charts", "Charts", body))
}
