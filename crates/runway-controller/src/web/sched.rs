//! The dashboard's scheduler pages: timers (schedule, next and last run,
//! "run now"), background jobs and emails.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use http::HeaderMap;
use runway_api::v1::{EmailQuery, JobQuery, Scope, TimerQuery};
use runway_web::layout::{FlashKind, empty, flash};
use runway_web::time::{TimeStyle, timestamp};
use serde::Deserialize;

use super::{PageResult, Viewer, Web, render};
use crate::identity::{AuditSlot, Deploy, Read};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AppFilter {
    app: Option<String>,
    ran: Option<String>,
}

fn app_of(f: &AppFilter) -> Option<String> {
    f.app.clone().filter(|a| !a.trim().is_empty())
}

pub(crate) async fn timers(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AppFilter>,
) -> PageResult {
    let app = app_of(&f);
    let caller = viewer.caller::<Read>(app.as_deref())?;
    let Json(timers) =
        crate::timers::list_timers(State(web.c.clone()), caller, Query(TimerQuery { app })).await?;
    let body = runway_web::html! {
        @if let Some(ran) = &f.ran { (flash(FlashKind::Success, &format!("Run of {ran} requested: a front-end runs it within a second or two."))) }
        @if timers.is_empty() { (empty("No running app declares a timer.")) } @else {
            table {
                thead { tr { th { "App" } th { "Timer" } th { "Schedule" } th { "Next run" } th { "Last run" } th { "Outcome" } th { "" } } }
                tbody {
                    @for t in &timers {
                        tr {
                            td { a href={ "/_runway/apps/" (t.app) } { (t.app) } }
                            td { (t.timer) " " code.muted { (t.path) } }
                            td {
                                code { (t.schedule) } " " span.muted { (t.time_zone) }
                                @if t.overridden { " (overridden)" }
                                @if t.disabled { " " strong { "disabled" } }
                            }
                            td {
                                (timestamp(t.next_run_at_ms, TimeStyle::Relative))
                                @if t.run_now_pending { " · run requested" }
                                @if let Some(r) = &t.running { " · running on " (r.frontend) }
                            }
                            td { (timestamp(t.last_run.as_ref().map(|r| r.started_at_ms), TimeStyle::Relative)) }
                            td {
                                @if let Some(r) = &t.last_run {
                                    span class={ "outcome-" (r.outcome) } { (r.outcome) }
                                    @if let Some(s) = r.status { " " (s) }
                                    " in " (r.duration_ms) " ms"
                                    @if let Some(e) = &r.error { br; span.error { (e) } }
                                }
                            }
                            td {
                                @if viewer.may(Scope::Deploy, Some(&t.app)) {
                                    form.inline method="post" action={ "/_runway/timers/" (t.app) "/" (t.timer) "/run" } {
                                        input type="hidden" name=(runway_web::csrf::FIELD) value=(viewer.csrf_token);
                                        button type="submit" { "Run now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&web, &viewer, "Timers", "Timers", body))
}

pub(crate) async fn run_timer(
    State(web): State<Web>,
    viewer: Viewer,
    slot: Option<Extension<AuditSlot>>,
    headers: HeaderMap,
    Path((app, timer)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    if let Err(e) = viewer.check_form(&web, &headers, &form) {
        return Ok(e.into_response());
    }
    let slot = slot.map(|Extension(s)| s);
    let caller = viewer.acting::<Deploy>(Some(&app), slot.as_ref())?;
    let _requested = crate::timers::run_timer(
        State(web.c.clone()),
        caller,
        Path((app.clone(), timer.clone())),
    )
    .await?;
    let query =
        serde_urlencoded::to_string([("ran", format!("{app}/{timer}"))]).unwrap_or_default();
    Ok(Redirect::to(&format!("/_runway/timers?{query}")).into_response())
}

pub(crate) async fn jobs(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AppFilter>,
) -> PageResult {
    let app = app_of(&f);
    let caller = viewer.caller::<Read>(app.as_deref())?;
    let Json(list) = crate::jobs::list_jobs(
        State(web.c.clone()),
        caller,
        Query(JobQuery {
            app: app.clone(),
            state: None,
            limit: Some(100),
        }),
    )
    .await?;
    let body = runway_web::html! {
        p { a href="/_runway/emails" { "Emails →" } }
        @if !list.undeployed_apps.is_empty() {
            (flash(FlashKind::Info, &format!("Jobs of apps not deployed here wait until they are: {}", list.undeployed_apps.join(", "))))
        }
        @if list.jobs.is_empty() { (empty("No background jobs.")) } @else {
            table {
                thead { tr { th { "Job" } th { "App" } th { "Path" } th { "State" } th { "Attempts" } th { "Created" } th { "Runs at" } th { "Last error" } } }
                tbody {
                    @for j in &list.jobs {
                        tr {
                            td { code { (j.id.get(..8).unwrap_or(&j.id)) } }
                            td { (j.app) }
                            td { code { (j.path) } }
                            td { (j.state.to_string()) }
                            td { (j.attempts) " / " (j.max_attempts) }
                            td { (timestamp(Some(j.created_at_ms), TimeStyle::Relative)) }
                            td { (timestamp(Some(j.run_at_ms), TimeStyle::Relative)) }
                            td { @if let Some(e) = &j.last_error { span.error { (e) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(
        &web,
        &viewer,
        "Jobs & email",
        "Background jobs",
        body,
    ))
}

pub(crate) async fn emails(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<AppFilter>,
) -> PageResult {
    let app = app_of(&f);
    let caller = viewer.caller::<Read>(app.as_deref())?;
    let Json(list) = crate::email::list_emails(
        State(web.c.clone()),
        caller,
        Query(EmailQuery {
            app: app.clone(),
            state: None,
            limit: Some(100),
        }),
    )
    .await?;
    let body = runway_web::html! {
        p { a href="/_runway/jobs" { "← Background jobs" } }
        @if !list.configured {
            (flash(FlashKind::Info, "No SMTP server is configured: emails stay queued (`runway email settings`)."))
        }
        @if list.emails.is_empty() { (empty("No emails.")) } @else {
            table {
                thead { tr { th { "Email" } th { "App" } th { "To" } th { "Subject" } th { "State" } th { "Attempts" } th { "Queued" } th { "Finished" } } }
                tbody {
                    @for e in &list.emails {
                        tr {
                            td { code { (e.id.get(..8).unwrap_or(&e.id)) } }
                            td { (e.app) }
                            td { (e.to.join(", ")) }
                            td { (e.subject) }
                            td { (e.state.to_string()) }
                            td { (e.attempts) " / " (e.max_attempts) }
                            td { (timestamp(Some(e.created_at_ms), TimeStyle::Relative)) }
                            td { (timestamp(e.finished_at_ms, TimeStyle::Relative)) }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&web, &viewer, "Jobs & email", "Emails", body))
}
