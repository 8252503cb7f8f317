//! The infrastructure page: each pipeline as a left-to-right flow of its
//! environments (what the caller may see), with their health from the last
//! poll, a "Deploy…" link between neighbours (only towards an environment
//! the caller may deploy to) and a link to each environment's dashboard.

use std::collections::BTreeMap;

use axum::extract::State;
use runway_api::console::EnvironmentView;
use runway_api::v1::FrontendState;
use runway_store::now_ms;
use runway_web::layout;
use runway_web::time::{TimeStyle, ago_text, timestamp};
use runway_web::{Markup, html};

use super::{PageResult, Viewer, enc};
use crate::Console;
use crate::auth::Access;

/// One environment as a box of the flow.
fn environment_box(env: &EnvironmentView, now: i64) -> Markup {
    let health = env.health.as_ref();
    let reachable = health.is_some_and(|h| h.reachable);
    let class = if health.is_some() && !reachable {
        "env unreachable"
    } else {
        "env"
    };
    html! {
        section class=(class) aria-label={ "environment " (env.name) } {
            h3 { (env.name) }
            @match health {
                None => p.muted { "not polled yet" },
                Some(h) => {
                    @if h.reachable {
                        p { span.badge.ok { "✓ healthy" } }
                    } @else {
                        p.bad {
                            strong { "✗ unreachable" }
                            @if let Some(error) = &h.error { br; span { (error) } }
                        }
                    }
                    @let total = h.frontends.len();
                    @let ready = h.frontends.iter().filter(|f| f.enabled && f.state == FrontendState::Ready).count();
                    p {
                        "Front-ends: "
                        @if total == 0 { span.muted { "standalone" } }
                        @else {
                            @let class = if ready == total { "ok" } else { "warn" };
                            span class=(class) { (ready) " / " (total) " ready" }
                        }
                    }
                    p { "Generation " (h.generation.map_or("—".to_string(), |g| g.to_string())) }
                    p {
                        "Last seen "
                        @match h.last_seen_at_ms {
                            Some(at) => { (timestamp(Some(at), TimeStyle::Relative)) " " span.muted { "(" (ago_text(now, at)) ")" } }
                            None => span.muted { "never" },
                        }
                    }
                }
            }
            p.muted.mono { (env.address) }
            p { a href={ "/environments/" (enc(&env.name)) "/dashboard" } { "Dashboard" } }
        }
    }
}

/// `GET /` and `/infrastructure`.
pub async fn page(State(console): State<Console>, viewer: Viewer) -> PageResult {
    let envs = crate::environments::visible_environments(&console, &viewer.caller).await?;
    let access = Access::load(&console, &viewer.caller).await?;
    let mut pipelines: BTreeMap<Option<String>, Vec<EnvironmentView>> = BTreeMap::new();
    for env in envs {
        pipelines.entry(env.pipeline.clone()).or_default().push(env);
    }
    for stages in pipelines.values_mut() {
        stages.sort_by_key(|e| (e.order.unwrap_or(i64::MAX), e.name.clone()));
    }
    let now = now_ms();
    let body = html! {
        @if pipelines.is_empty() {
            (layout::empty("No environment you may see is registered. `runway env add NAME URL --token …` registers one; an administrator gives access."))
        }
        @for (pipeline, stages) in &pipelines {
            section.panel {
                h2 {
                    @match pipeline {
                        Some(name) => { "Pipeline " (name) }
                        None => "Not in a pipeline",
                    }
                }
                div.pipeline {
                    @for (i, env) in stages.iter().enumerate() {
                        @if i > 0 {
                            @let source = &stages[i - 1];
                            div.arrow {
                                span aria-hidden="true" { "→" }
                                @if pipeline.is_some() && access.may_deploy_to(&env.name) {
                                    br;
                                    a.button.secondary href={ "/deploy?source=" (enc(&source.name)) "&target=" (enc(&env.name)) }
                                        aria-label={ "Deploy from " (source.name) " to " (env.name) } { "Deploy…" }
                                }
                            }
                        }
                        (environment_box(env, now))
                    }
                }
            }
        }
    };
    Ok(viewer.page("/", "Infrastructure", body))
}
