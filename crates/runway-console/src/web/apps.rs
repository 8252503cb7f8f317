//! Applications: the applications × environments matrix (what the last
//! polls saw), and an application's page (versions, where each runs, its
//! dependencies and dependants as a small graph, its properties per
//! environment with secrets masked).
//!
//! The matrix reads only the console's catalog. The app page also asks the
//! environments that run the app (in parallel, at most [`LIVE_TIMEOUT`]):
//! dependencies and properties live there, and an environment that does not
//! answer in time is shown as such rather than holding the page.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use runway_api::console::{ApplicationView, EnvironmentView, RunningView};
use runway_api::v1::AppDetail;
use runway_web::layout;
use runway_web::time::{TimeStyle, timestamp};
use runway_web::{Markup, html};
use serde::Deserialize;

use super::{PageResult, Viewer, enc};
use crate::Console;
use crate::access::Level;
use crate::auth::Access;

/// How long the app page waits for the environments it asks.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, Default)]
pub struct MatrixQuery {
    /// A part of the app's name.
    #[serde(default)]
    q: String,
    /// Only apps whose version differs between neighbouring environments.
    #[serde(default)]
    differences: Option<String>,
}

/// The environments as columns: by pipeline, then stage.
pub(crate) fn columns(mut envs: Vec<EnvironmentView>) -> Vec<EnvironmentView> {
    envs.sort_by(|a, b| {
        (
            a.pipeline.is_none(),
            &a.pipeline,
            a.order.unwrap_or(i64::MAX),
            &a.name,
        )
            .cmp(&(
                b.pipeline.is_none(),
                &b.pipeline,
                b.order.unwrap_or(i64::MAX),
                &b.name,
            ))
    });
    envs
}

/// The version an app runs in an environment, if any.
fn version_in<'a>(app: &'a ApplicationView, env: &str) -> Option<&'a RunningView> {
    app.running
        .iter()
        .find(|r| r.environment == env && r.version.is_some())
}

/// Whether the cell of `envs[i]` differs from its left neighbour in the
/// same pipeline (a promotion waiting, or a hotfix to bring back).
fn differs_from_left(app: &ApplicationView, envs: &[EnvironmentView], i: usize) -> bool {
    if i == 0 || envs[i].pipeline.is_none() || envs[i - 1].pipeline != envs[i].pipeline {
        return false;
    }
    let left = version_in(app, &envs[i - 1].name).map(|r| (&r.version, &r.digest));
    let here = version_in(app, &envs[i].name).map(|r| (&r.version, &r.digest));
    left.is_some() && left != here
}

/// `GET /applications`.
pub async fn matrix(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<MatrixQuery>,
) -> PageResult {
    let envs = columns(crate::environments::visible_environments(&console, &viewer.caller).await?);
    let apps = crate::apps::visible_apps(&console, &viewer.caller).await?;
    let only_differences = q.differences.is_some();
    let needle = q.q.trim().to_lowercase();
    let rows: Vec<(&ApplicationView, Vec<bool>)> = apps
        .iter()
        .filter(|a| needle.is_empty() || a.name.to_lowercase().contains(&needle))
        .map(|a| {
            let marks = (0..envs.len())
                .map(|i| differs_from_left(a, &envs, i))
                .collect::<Vec<_>>();
            (a, marks)
        })
        .filter(|(_, marks)| !only_differences || marks.iter().any(|m| *m))
        .collect();
    let body = html! {
        form.filters method="get" action="/applications" role="search" {
            div {
                label for="q" { "Name contains" }
                input #q type="search" name="q" value=(q.q);
            }
            div {
                label.check {
                    input type="checkbox" name="differences" value="1" checked[only_differences];
                    "Show only differences"
                }
            }
            div { button type="submit" { "Filter" } }
        }
        @if rows.is_empty() {
            (layout::empty(if apps.is_empty() { "No application you may see runs anywhere yet." } else { "No application matches the filter." }))
        } @else {
            div.table-wrap {
                table #matrix {
                    caption.muted { (rows.len()) " application(s) × " (envs.len()) " environment(s); ≠ marks a version that differs from the environment before it in the pipeline" }
                    thead {
                        tr {
                            th scope="col" { "Application" }
                            @for env in &envs {
                                th scope="col" {
                                    (env.name)
                                    @if let Some(p) = &env.pipeline { br; span.muted { (p) } }
                                }
                            }
                        }
                    }
                    tbody {
                        @for (app, marks) in &rows {
                            tr class=[marks.iter().any(|m| *m).then_some("differs")] {
                                th scope="row" { a href={ "/applications/" (enc(&app.name)) } { (app.name) } }
                                @for (i, env) in envs.iter().enumerate() {
                                    td data-env=(env.name) {
                                        @match version_in(app, &env.name) {
                                            Some(r) => {
                                                span.version { (r.version.as_deref().unwrap_or("")) }
                                                @if r.version_key.is_none() {
                                                    " " span.badge.warn title="the bytes differ from the console's version of that number" { "other bytes" }
                                                }
                                                @if r.status != runway_api::v1::AppStatus::Running {
                                                    " " span.badge.bad { (r.status.as_str()) }
                                                }
                                            }
                                            None => span.muted { "—" },
                                        }
                                        @if marks[i] {
                                            " " span.badge.warn title={ "differs from " (envs[i - 1].name) } { "≠" }
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
    Ok(viewer.page("/applications", "Applications", body))
}

/// What an environment told of the app: its detail and the apps there that
/// depend on it, or why it could not tell.
struct Live {
    env: String,
    detail: Result<AppDetail, String>,
    dependants: Vec<(String, String)>,
}

async fn ask_environment(console: &Console, env: &str, app: &str, may_see: Vec<String>) -> Live {
    let fail = |why: String| Live {
        env: env.to_string(),
        detail: Err(why),
        dependants: Vec::new(),
    };
    let record = match crate::environments::find_environment(console, env).await {
        Ok(r) => r,
        Err(e) => return fail(e.message),
    };
    let client = match crate::plans::env_client(console, &record).await {
        Ok(c) => c,
        Err(e) => return fail(e.message),
    };
    let detail = match client.app(app).await {
        Ok(d) => d,
        Err(e) => return fail(format!("{} did not answer: {e}", record.name)),
    };
    // Who depends on it here: the other apps the caller may see, asked at once.
    let mut asks = tokio::task::JoinSet::new();
    for other in may_see.into_iter().filter(|o| o != app) {
        let client = client.clone();
        asks.spawn(async move { (other.clone(), client.app(&other).await) });
    }
    let mut dependants = Vec::new();
    while let Some(done) = asks.join_next().await {
        if let Ok((other, Ok(d))) = done
            && let Some(range) = d.dependencies.get(app)
        {
            dependants.push((other, range.clone()));
        }
    }
    dependants.sort();
    Live {
        env: env.to_string(),
        detail: Ok(detail),
        dependants,
    }
}

/// The dependency graph: the app in the middle, what it depends on to the
/// left, what depends on it to the right; edges name the version range and
/// the environments where it holds.
fn graph(app: &str, live: &[Live]) -> Markup {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dependants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in live {
        if let Ok(d) = &l.detail {
            for (dep, range) in &d.dependencies {
                deps.entry(dep.clone())
                    .or_default()
                    .insert(format!("{range} ({})", l.env));
            }
        }
        for (other, range) in &l.dependants {
            dependants
                .entry(other.clone())
                .or_default()
                .insert(format!("{range} ({})", l.env));
        }
    }
    let rows = deps.len().max(dependants.len()).max(1);
    let row_h = 44.0;
    let height = rows as f64 * row_h + 16.0;
    let (w, box_w, box_h) = (720.0, 170.0, 28.0);
    let center_y = height / 2.0;
    let y_of = |i: usize, n: usize| {
        let top = (height - n as f64 * row_h) / 2.0;
        top + i as f64 * row_h + row_h / 2.0
    };
    let label = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    html! {
        figure.graph {
            figcaption { "Dependencies (left) and dependants (right) of " (app) ", across the environments that answered" }
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (height) } role="img"
                aria-label={ (app) ": " (deps.len()) " dependencies, " (dependants.len()) " dependants" } {
                @for (i, (dep, ranges)) in deps.iter().enumerate() {
                    @let y = y_of(i, deps.len());
                    line.edge x1=(box_w) y1=(y) x2=(w / 2.0 - box_w / 2.0) y2=(center_y) stroke="#5f6b7a" {}
                    g.node {
                        rect x="0" y=(y - box_h / 2.0) width=(box_w) height=(box_h) rx="4" fill="#eef1f5" stroke="#aab3bf" {}
                        text x=(box_w / 2.0) y=(y + 4.0) text-anchor="middle" font-size="12" { (dep) }
                        title { (app) " depends on " (dep) " " (label(ranges)) }
                    }
                }
                @for (i, (other, ranges)) in dependants.iter().enumerate() {
                    @let y = y_of(i, dependants.len());
                    line.edge x1=(w / 2.0 + box_w / 2.0) y1=(center_y) x2=(w - box_w) y2=(y) stroke="#5f6b7a" {}
                    g.node {
                        rect x=(w - box_w) y=(y - box_h / 2.0) width=(box_w) height=(box_h) rx="4" fill="#eef1f5" stroke="#aab3bf" {}
                        text x=(w - box_w / 2.0) y=(y + 4.0) text-anchor="middle" font-size="12" { (other) }
                        title { (other) " depends on " (app) " " (label(ranges)) }
                    }
                }
                g.node.center {
                    rect x=(w / 2.0 - box_w / 2.0) y=(center_y - box_h / 2.0) width=(box_w) height=(box_h) rx="4" fill="#1f5fbf" {}
                    text x=(w / 2.0) y=(center_y + 4.0) text-anchor="middle" font-size="13" fill="#ffffff" { (app) }
                }
            }
            @if deps.is_empty() && dependants.is_empty() {
                p.muted { "No dependencies and no dependants." }
            } @else {
                ul {
                    @for (dep, ranges) in &deps { li { (app) " → " (dep) " " span.muted { (label(ranges)) } } }
                    @for (other, ranges) in &dependants { li { (other) " → " (app) " " span.muted { (label(ranges)) } } }
                }
            }
        }
    }
}

/// `GET /applications/{app}`.
pub async fn app_page(
    State(console): State<Console>,
    viewer: Viewer,
    Path(app): Path<String>,
) -> PageResult {
    let (view, versions) = crate::apps::app_detail_for(&console, &viewer.caller, &app).await?;
    let access = Access::load(&console, &viewer.caller).await?;
    let envs = columns(crate::environments::visible_environments(&console, &viewer.caller).await?);
    let runs_in: Vec<&RunningView> = view
        .running
        .iter()
        .filter(|r| r.version.is_some())
        .collect();
    // Every app the caller may see, per environment (for dependants).
    let all = crate::apps::visible_running(&console, &access).await?;
    let mut asks = tokio::task::JoinSet::new();
    for r in &runs_in {
        let env = r.environment.clone();
        let may_see: Vec<String> = all
            .iter()
            .filter(|o| o.environment == env && o.version.is_some())
            .filter(|o| access.level(&env, Some(&o.app)) >= Level::Monitor)
            .map(|o| o.app.clone())
            .collect();
        let console = console.clone();
        let name = view.name.clone();
        asks.spawn(async move {
            match tokio::time::timeout(
                LIVE_TIMEOUT,
                ask_environment(&console, &env, &name, may_see),
            )
            .await
            {
                Ok(live) => live,
                Err(_) => Live {
                    env: env.clone(),
                    detail: Err(format!(
                        "{env} did not answer within {} s",
                        LIVE_TIMEOUT.as_secs()
                    )),
                    dependants: Vec::new(),
                },
            }
        });
    }
    let mut live = Vec::new();
    while let Some(done) = asks.join_next().await {
        if let Ok(l) = done {
            live.push(l);
        }
    }
    let order: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
    live.sort_by_key(|l| order.iter().position(|e| *e == l.env).unwrap_or(usize::MAX));
    let body = html! {
        @if let Some(d) = &view.description { p { (d) } }
        @if let Some(p) = &view.pipeline { p { "Pipeline " strong { (p) } } }
        h2 { "Where it runs" }
        div.table-wrap {
            table {
                thead { tr { th { "Environment" } th { "Version" } th { "Status" } th { "Deployed" } } }
                tbody {
                    @for env in &envs {
                        @if let Some(r) = view.running.iter().find(|r| r.environment == env.name) {
                            tr {
                                td { (env.name) }
                                td { (r.version.as_deref().unwrap_or("—")) }
                                td { (r.status.as_str()) }
                                td { (timestamp(r.deployed_at_ms, TimeStyle::Relative)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Versions" }
        @if versions.is_empty() {
            (layout::empty("The console has recorded no version of this app yet."))
        } @else {
            div.table-wrap {
                table #versions {
                    thead { tr { th { "Version" } th { "Digest" } th { "Changelog" } th { "Created" } th { "Runs in" } } }
                    tbody {
                        @for v in &versions {
                            tr {
                                td { (v.version) }
                                td.mono title=(v.digest) { (v.digest.chars().take(19).collect::<String>()) "…" }
                                td { (v.changelog) }
                                td {
                                    (timestamp(Some(v.created_at_ms), TimeStyle::Local))
                                    @if let Some(by) = &v.created_by { br; span.muted { "by " (by) } }
                                }
                                td { (v.running_in.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Dependencies" }
        (graph(&view.name, &live))
        h2 { "Properties" }
        @if live.is_empty() {
            (layout::empty("It runs nowhere you may see."))
        }
        @for l in &live {
            section.panel {
                h3 { (l.env) }
                @match &l.detail {
                    Err(why) => p.bad { (why) },
                    Ok(d) if d.properties.is_empty() => p.muted { "No properties." },
                    Ok(d) => {
                        table {
                            thead { tr { th { "Property" } th { "Value" } th { "Source" } } }
                            tbody {
                                @for p in &d.properties {
                                    tr {
                                        td { (p.name) @if p.required { " " span.badge { "required" } } }
                                        td {
                                            @if p.secret { span.muted { "•••••• (secret)" } }
                                            @else { @match &p.value { Some(v) => code { (v) }, None => span.muted { "unset" } } }
                                        }
                                        td { (format!("{:?}", p.source).to_lowercase()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("/applications", &format!("Application {}", view.name), body))
}
