//! Deploying: the plan wizard (LifeTime's "Deploy…"), a plan's page with
//! its validation and its live progress, and the plan history.
//!
//! Everything goes through the deployment-plan service of [`crate::plans`]:
//! the wizard saves a plan with [`crate::plans::create_plan`] (which checks
//! change & deploy on the target and monitor on the source for every app),
//! then validates or starts it with [`crate::plans::validate_for`] /
//! [`crate::plans::command`]. The wizard offers as targets only the
//! environments the user may deploy to; the server refuses the rest anyway.
//!
//! The progress page polls a fragment (`/plans/{key}/live`) every second
//! with htmx while the plan is under way; without JavaScript the page
//! reloads itself every 2 s.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use http::StatusCode;
use runway_api::console::plans::{
    CreatePlan, PlanConflict, PlanOperationRequest, PlanStatus, PlanStatusView, PlanValidation,
    PlanView,
};
use runway_api::console::{ApplicationView, EnvironmentView};
use runway_web::layout::{self, FlashKind};
use runway_web::time::{TimeStyle, timestamp};
use runway_web::{Markup, html};
use serde::Deserialize;

use super::{
    PageError, PageResult, Posted, Viewer, enc, html_response, plan_status_class, plan_status_text,
    see_other,
};
use crate::Console;
use crate::access::Level;
use crate::auth::Access;
use crate::plans::PlanCommand;

#[derive(Debug, Deserialize, Default)]
pub struct WizardQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    target: String,
    /// Pre-select every app whose version differs.
    #[serde(default)]
    all_differences: Option<String>,
}

fn running_version<'a>(app: &'a ApplicationView, env: &str) -> Option<&'a str> {
    app.running
        .iter()
        .find(|r| r.environment == env)
        .and_then(|r| r.version.as_deref())
}

fn env_select(name: &str, label: &str, envs: &[&EnvironmentView], selected: &str) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            select #(name) name=(name) required {
                option value="" { "— choose —" }
                @for e in envs {
                    option value=(e.name) selected[e.name == selected] {
                        (e.name) @if let Some(p) = &e.pipeline { " (" (p) ")" }
                    }
                }
            }
        }
    }
}

/// `GET /deploy`: choose source and target, then the apps and versions.
pub async fn wizard(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<WizardQuery>,
) -> PageResult {
    let envs = super::apps::columns(
        crate::environments::visible_environments(&console, &viewer.caller).await?,
    );
    let access = Access::load(&console, &viewer.caller).await?;
    let sources: Vec<&EnvironmentView> = envs.iter().collect();
    let targets: Vec<&EnvironmentView> = envs
        .iter()
        .filter(|e| access.may_deploy_to(&e.name))
        .collect();
    let chosen = sources.iter().any(|e| e.name == q.source)
        && targets.iter().any(|e| e.name == q.target)
        && q.source != q.target;
    let target_two_step = envs
        .iter()
        .find(|e| e.name == q.target)
        .is_some_and(|e| e.two_step);
    let mut rows = Vec::new();
    if chosen {
        for app in crate::apps::visible_apps(&console, &viewer.caller).await? {
            let Some(in_source) = running_version(&app, &q.source).map(str::to_string) else {
                continue;
            };
            if access.level(&q.source, Some(&app.name)) < Level::Monitor {
                continue;
            }
            let in_target = running_version(&app, &q.target).map(str::to_string);
            let deployable = access.level(&q.target, Some(&app.name)) >= Level::ChangeAndDeploy;
            let versions: Vec<String> = console
                .store()
                .app_versions(&app.key)
                .await
                .map_err(crate::error::ApiError::from)?
                .into_iter()
                .map(|v| v.version)
                .collect();
            rows.push((app.name.clone(), in_source, in_target, deployable, versions));
        }
    }
    let preselect = q.all_differences.is_some();
    let body = html! {
        @if targets.is_empty() {
            (layout::flash(FlashKind::Info, "Your role lets you deploy to no environment: you can look, not deploy. An administrator can give you change & deploy."))
        }
        form.filters method="get" action="/deploy" {
            (env_select("source", "From (source)", &sources, &q.source))
            (env_select("target", "To (target)", &targets, &q.target))
            div { button type="submit" { "Choose applications" } }
        }
        @if !chosen && !q.source.is_empty() && !q.target.is_empty() {
            (layout::flash(FlashKind::Error, &format!(
                "Cannot deploy from {:?} to {:?}: pick two different environments, the target one you may deploy to.",
                q.source, q.target)))
        }
        @if chosen {
            form method="post" action="/deploy" {
                (viewer.csrf_input())
                input type="hidden" name="source" value=(q.source);
                input type="hidden" name="target" value=(q.target);
                h2 { "Applications in " (q.source) }
                p {
                    a href={ "/deploy?source=" (enc(&q.source)) "&target=" (enc(&q.target)) "&all_differences=1" } { "Select all with differences" }
                }
                @if rows.is_empty() {
                    (layout::empty("Nothing you may see runs in the source."))
                } @else {
                    div.table-wrap {
                        table #wizard-apps {
                            thead { tr { th { "Deploy" } th { "Application" } th { "Version to deploy" } th { "In " (q.target) " now" } } }
                            tbody {
                                @for (name, in_source, in_target, deployable, versions) in &rows {
                                    @let differs = in_target.as_deref() != Some(in_source.as_str());
                                    tr class=[differs.then_some("differs")] {
                                        td {
                                            input type="checkbox" name="app" value=(name) id={ "app-" (name) }
                                                checked[preselect && differs && *deployable] disabled[!*deployable];
                                        }
                                        td {
                                            label for={ "app-" (name) } { (name) }
                                            @if !*deployable { " " span.muted { "(you may not deploy it there)" } }
                                        }
                                        td {
                                            select id={ "version-" (name) } name={ "version:" (name) } aria-label={ "Version of " (name) } {
                                                @for v in versions {
                                                    option value=(v) selected[v == in_source] { (v) @if v == in_source { " (in " (q.source) ")" } }
                                                }
                                                @if !versions.contains(in_source) {
                                                    option value=(in_source) selected { (in_source) }
                                                }
                                            }
                                        }
                                        td {
                                            (in_target.as_deref().unwrap_or("—"))
                                            @if differs { " " span.badge.warn { "≠" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Property values for " (q.target) }
                p {
                    label for="properties" { "One per line: " code { "app.PROPERTY=value" } " (validation names what the target still needs)" }
                    textarea #properties name="properties" rows="3" cols="60" {}
                }
                p {
                    label for="notes" { "Notes" }
                    textarea #notes name="notes" rows="2" cols="60" {}
                }
                fieldset {
                    legend { "How" }
                    label.check { input type="radio" name="mode" value="now" checked[!target_two_step]; "Deploy now (one step)" }
                    label.check { input type="radio" name="mode" value="prepare" checked[target_two_step]; "Prepare, then continue (two-step)" }
                }
                p {
                    button.secondary type="submit" name="action" value="validate" { "Validate" } " "
                    button type="submit" name="action" value="start" { "Start deployment" }
                }
            }
        }
    };
    Ok(viewer.page("/deploy", "Deploy", body))
}

/// Parses `app.KEY=value` lines.
fn parse_properties(
    text: &str,
) -> Result<BTreeMap<String, BTreeMap<String, Option<String>>>, PageError> {
    let mut out: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once('=')
            .and_then(|(k, v)| k.trim().split_once('.').map(|(a, k)| (a, k, v)));
        let Some((app, key, value)) = parsed else {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "property line {} ({line:?}) is not `app.PROPERTY=value`: write one value per line like notes.GREETING=hello",
                    n + 1
                ),
            ));
        };
        out.entry(app.trim().to_string())
            .or_default()
            .insert(key.trim().to_string(), Some(value.to_string()));
    }
    Ok(out)
}

/// `POST /deploy`: saves the plan, then validates or starts it.
pub async fn submit(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let apps = form.all("app");
    if apps.is_empty() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "no application is selected: tick at least one in the Deploy column",
        ));
    }
    let operations = apps
        .iter()
        .map(|app| PlanOperationRequest::Deploy {
            app: app.to_string(),
            version: form.text(&format!("version:{app}")),
            rollback: false,
        })
        .collect();
    let req = CreatePlan {
        source: form.text("source"),
        target: form.text("target"),
        operations,
        properties: parse_properties(form.get("properties").unwrap_or_default())?,
        notes: form.get("notes").unwrap_or_default().to_string(),
        two_step: Some(form.get("mode") == Some("prepare")),
        allow_out_of_order: false,
    };
    let plan = crate::plans::create_plan(&console, &viewer.caller, &req).await?;
    match form.get("action") {
        Some("start") => start_or_show(&console, viewer, &plan.id).await,
        _ => {
            let validation = crate::plans::validate_for(&console, &viewer.caller, &plan.id).await?;
            plan_response(&console, &viewer, &plan.id, Some(validation)).await
        }
    }
}

/// Starts a saved plan; a plan with conflicts stays saved and its page
/// shows them (409).
async fn start_or_show(console: &Console, viewer: Viewer, key: &str) -> PageResult {
    match crate::plans::command(console, &viewer.caller, key, PlanCommand::Start).await {
        Ok(_) => Ok(see_other(&format!("/plans/{}", enc(key)))),
        Err(e) if e.code == "plan_conflicts" => {
            let conflicts: Vec<PlanConflict> =
                serde_json::from_value(e.details["conflicts"].clone()).unwrap_or_default();
            let validation = PlanValidation {
                ok: false,
                conflicts,
                warnings: Vec::new(),
            };
            let mut response = plan_response(console, &viewer, key, Some(validation)).await?;
            *response.status_mut() = StatusCode::CONFLICT;
            response
                .extensions_mut()
                .insert(crate::audit::AuditReason(e.message));
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// The validation result: green or red per app, each conflict with its fix.
fn validation_view(plan: &PlanView, v: &PlanValidation) -> Markup {
    html! {
        section.panel #validation aria-live="polite" {
            h2 { "Validation" }
            @if v.ok {
                (layout::flash(FlashKind::Success, "The plan is valid: every app can be deployed."))
            } @else {
                (layout::flash(FlashKind::Error, "The plan has conflicts: fix them and prepare a new plan."))
            }
            ul {
                @for op in &plan.operations {
                    @let conflicts: Vec<&PlanConflict> = v.conflicts.iter().filter(|c| c.app == op.app).collect();
                    @if conflicts.is_empty() {
                        li.ok { "✓ " (op.app) " " (op.version.as_deref().unwrap_or("")) }
                    } @else {
                        li.bad {
                            "✗ " (op.app) " " (op.version.as_deref().unwrap_or(""))
                            ul { @for c in conflicts { li { code { (c.code) } ": " (c.message) } } }
                        }
                    }
                }
                @for c in v.conflicts.iter().filter(|c| !plan.operations.iter().any(|o| o.app == c.app)) {
                    li.bad { "✗ " (c.app) ": " code { (c.code) } " " (c.message) }
                }
            }
            @for w in &v.warnings { p.warn { "⚠ " (w) } }
        }
    }
}

/// The live part of a plan's page: status, each front-end's stage, the log,
/// and Continue / Abort when they apply.
fn live_view(viewer: &Viewer, plan: &PlanView, status: &PlanStatusView, may_act: bool) -> Markup {
    let under_way = !status.status.is_finished() && status.status != PlanStatus::Saved;
    let key = enc(&plan.key);
    html! {
        div #live data-status=(status.status.as_str())
            hx-get=[under_way.then(|| format!("/plans/{key}/live"))]
            hx-trigger=[under_way.then_some("every 1s")]
            hx-swap=[under_way.then_some("outerHTML")] {
            p {
                "Status: " span #plan-status class=(plan_status_class(status.status)) { (plan_status_text(status.status)) }
            }
            @if !status.info.is_empty() { p.muted { (status.info) } }
            @if may_act && status.status == PlanStatus::NeedsUserIntervention {
                form.inline method="post" action={ "/plans/" (key) "/continue" } {
                    (viewer.csrf_input())
                    button type="submit" { "Continue (switch " (plan.target) ")" }
                }
                " "
            }
            @if may_act && matches!(status.status, PlanStatus::Running | PlanStatus::NeedsUserIntervention) {
                form.inline method="post" action={ "/plans/" (key) "/abort" } {
                    (viewer.csrf_input())
                    button.danger type="submit" data-confirm={ "Abort this plan? " (plan.target) " keeps what it serves." } { "Abort" }
                }
            }
            h3 { "Front-ends of " (plan.target) }
            @if status.frontends.is_empty() {
                p.muted { "No registered front-end reported (a standalone environment, or not started yet)." }
            } @else {
                table {
                    thead { tr { th { "Front-end" } th { "Stage" } th.num { "Fetched" } th.num { "Time" } th { "Error" } } }
                    tbody {
                        @for f in &status.frontends {
                            tr {
                                td { (f.frontend) }
                                td { @match f.state { Some(s) => (s.as_str()), None => span.muted { "waiting" } } }
                                td.num { (f.fetched_bytes) " B" }
                                td.num { (runway_web::time::duration_text(f.elapsed_ms as i64)) }
                                td { (f.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            h3 { "Status log" }
            ol.log #plan-log {
                @for row in &status.log {
                    @let class = match row.kind {
                        runway_api::console::plans::PlanLogKind::Info => "",
                        runway_api::console::plans::PlanLogKind::Warning => "warn",
                        runway_api::console::plans::PlanLogKind::Error => "bad",
                    };
                    li class=(class) { (timestamp(Some(row.instant_ms), TimeStyle::Local)) " " (row.message) }
                }
            }
        }
    }
}

/// A plan's page (with a validation result, after Validate).
async fn plan_response(
    console: &Console,
    viewer: &Viewer,
    key: &str,
    validation: Option<PlanValidation>,
) -> PageResult {
    let plan = crate::plans::show_plan_for(console, &viewer.caller, key).await?;
    let status = crate::plans::status_for(console, &viewer.caller, key, 0).await?;
    let access = Access::load(console, &viewer.caller).await?;
    let may_act = plan
        .operations
        .iter()
        .all(|op| access.level(&plan.target, Some(&op.app)) >= Level::ChangeAndDeploy);
    let under_way = !plan.status.is_finished() && plan.status != PlanStatus::Saved;
    let k = enc(&plan.key);
    let body = html! {
        dl.panel {
            dt { "From → to" } dd { (plan.source) " → " (plan.target) }
            dt { "How" } dd { @if plan.two_step { "prepare, then continue (two-step)" } @else { "deploy now (one step)" } }
            dt { "Created" } dd { (timestamp(Some(plan.created_at_ms), TimeStyle::Local)) @if let Some(by) = &plan.created_by { " by " (by) } }
            @if !plan.notes.is_empty() { dt { "Notes" } dd { (plan.notes) } }
        }
        h2 { "Operations" }
        table #operations {
            thead { tr { th { "Application" } th { "Operation" } th { "Version" } } }
            tbody {
                @for op in &plan.operations {
                    tr { td { a href={ "/applications/" (enc(&op.app)) } { (op.app) } } td { (op.op) } td { (op.version.as_deref().unwrap_or("—")) } }
                }
            }
        }
        @if !plan.properties.is_empty() {
            p { "Property values set (values are not shown): "
                @for (app, keys) in &plan.properties { (app) ": " (keys.join(", ")) "; " } }
        }
        @if let Some(v) = &validation { (validation_view(&plan, v)) }
        @if plan.status == PlanStatus::Saved && may_act {
            div.panel {
                form.inline method="post" action={ "/plans/" (k) "/validate" } {
                    (viewer.csrf_input())
                    button.secondary type="submit" { "Validate" }
                }
                " "
                form.inline method="post" action={ "/plans/" (k) "/start" } {
                    (viewer.csrf_input())
                    button type="submit" { @if plan.two_step { "Prepare" } @else { "Deploy now" } }
                }
                " "
                form.inline method="post" action={ "/plans/" (k) "/delete" } {
                    (viewer.csrf_input())
                    button.danger type="submit" data-confirm="Delete this saved plan?" { "Delete" }
                }
            }
        }
        (live_view(viewer, &plan, &status, may_act))
    };
    let title = format!("Plan {} → {}", plan.source, plan.target);
    let refresh = under_way.then_some(2);
    Ok(html_response(layout::page(
        &viewer.shell("/plans"),
        &title,
        refresh,
        body,
    )))
}

/// `GET /plans/{key}`.
pub async fn plan_page(
    State(console): State<Console>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> PageResult {
    plan_response(&console, &viewer, &key, None).await
}

/// `GET /plans/{key}/live`: the fragment the progress page polls.
pub async fn live(
    State(console): State<Console>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> PageResult {
    let plan = crate::plans::show_plan_for(&console, &viewer.caller, &key).await?;
    let status = crate::plans::status_for(&console, &viewer.caller, &key, 0).await?;
    let access = Access::load(&console, &viewer.caller).await?;
    let may_act = plan
        .operations
        .iter()
        .all(|op| access.level(&plan.target, Some(&op.app)) >= Level::ChangeAndDeploy);
    Ok(html_response(live_view(&viewer, &plan, &status, may_act)))
}

/// `POST /plans/{key}/validate`.
pub async fn validate(
    State(console): State<Console>,
    Path(key): Path<String>,
    posted: Posted,
) -> PageResult {
    let validation = crate::plans::validate_for(&console, &posted.viewer.caller, &key).await?;
    plan_response(&console, &posted.viewer, &key, Some(validation)).await
}

/// `POST /plans/{key}/start`.
pub async fn start(
    State(console): State<Console>,
    Path(key): Path<String>,
    posted: Posted,
) -> PageResult {
    start_or_show(&console, posted.viewer, &key).await
}

async fn run(console: &Console, posted: Posted, key: &str, command: PlanCommand) -> PageResult {
    crate::plans::command(console, &posted.viewer.caller, key, command).await?;
    Ok(see_other(&format!("/plans/{}", enc(key))))
}

/// `POST /plans/{key}/continue`.
pub async fn continue_plan(
    State(console): State<Console>,
    Path(key): Path<String>,
    posted: Posted,
) -> PageResult {
    run(&console, posted, &key, PlanCommand::Continue).await
}

/// `POST /plans/{key}/abort`.
pub async fn abort(
    State(console): State<Console>,
    Path(key): Path<String>,
    posted: Posted,
) -> PageResult {
    run(&console, posted, &key, PlanCommand::Abort).await
}

/// `POST /plans/{key}/delete`.
pub async fn delete(
    State(console): State<Console>,
    Path(key): Path<String>,
    posted: Posted,
) -> PageResult {
    crate::plans::delete_for(&console, &posted.viewer.caller, &key).await?;
    Ok(see_other("/plans"))
}

#[derive(Debug, Deserialize, Default)]
pub struct HistoryQuery {
    #[serde(default)]
    target: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    app: String,
}

/// `GET /plans`: the plan history with filters.
pub async fn history(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<HistoryQuery>,
) -> PageResult {
    let envs = super::apps::columns(
        crate::environments::visible_environments(&console, &viewer.caller).await?,
    );
    let target = (!q.target.is_empty()).then_some(q.target.as_str());
    let app = q.app.trim().to_lowercase();
    let plans: Vec<PlanView> = crate::plans::visible_plans(&console, &viewer.caller, target)
        .await?
        .into_iter()
        .filter(|p| q.status.is_empty() || p.status.as_str() == q.status)
        .filter(|p| {
            app.is_empty()
                || p.operations
                    .iter()
                    .any(|o| o.app.to_lowercase().contains(&app))
        })
        .collect();
    let statuses = [
        PlanStatus::Saved,
        PlanStatus::Running,
        PlanStatus::NeedsUserIntervention,
        PlanStatus::FinishedSuccessful,
        PlanStatus::FinishedWithWarnings,
        PlanStatus::FinishedWithErrors,
        PlanStatus::Aborting,
        PlanStatus::Aborted,
    ];
    let body = html! {
        form.filters method="get" action="/plans" role="search" {
            div {
                label for="target" { "Target" }
                select #target name="target" {
                    option value="" { "any" }
                    @for e in &envs { option value=(e.name) selected[e.name == q.target] { (e.name) } }
                }
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for s in statuses { option value=(s.as_str()) selected[s.as_str() == q.status] { (plan_status_text(s)) } }
                }
            }
            div {
                label for="app" { "Application contains" }
                input #app type="search" name="app" value=(q.app);
            }
            div { button type="submit" { "Filter" } }
        }
        @if plans.is_empty() {
            (layout::empty("No plan matches."))
        } @else {
            div.table-wrap {
                table #plans {
                    thead { tr { th { "Created" } th { "From → to" } th { "Applications" } th { "Status" } th { "By" } } }
                    tbody {
                        @for p in &plans {
                            tr {
                                td { a href={ "/plans/" (enc(&p.key)) } { (timestamp(Some(p.created_at_ms), TimeStyle::Local)) } }
                                td { (p.source) " → " (p.target) }
                                td { @for (i, o) in p.operations.iter().enumerate() { @if i > 0 { ", " } (o.app) " " (o.version.as_deref().unwrap_or("")) } }
                                td { span class=(plan_status_class(p.status)) { (plan_status_text(p.status)) } }
                                td { (p.created_by.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("/plans", "Deployment plans", body))
}
