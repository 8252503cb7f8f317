//! Users and security: users (create, disable / enable / unlock, reset a
//! password, change a role), roles (the level of each on every registered
//! environment; custom roles created here), teams, service accounts (a new
//! account's token is shown once, on the page that created it), the audit
//! log with filters, and one's own password.
//!
//! Every page and action goes through the API's service functions: the
//! right to manage users is [`crate::auth::as_admin`] (what the API's
//! `AdminCaller` checks), covering and escalation checks stay in
//! [`crate::roles`]. The navigation hides these pages from users without
//! that right; the server refuses them anyway.

use axum::extract::{Query, State};
use http::StatusCode;
use runway_api::console::CreateServiceAccount;
use runway_api::console::identity::{
    AuditQuery, ChangePassword, CreateRole, CreateUser, RoleLevel, RoleView,
};
use runway_web::layout::{self, FlashKind};
use runway_web::time::{TimeStyle, timestamp};
use runway_web::{Markup, html};
use serde::Deserialize;

use super::{PageError, PageResult, Posted, Viewer, enc, see_other};
use crate::Console;
use crate::access::{EnvRef, Level};
use crate::auth::{AdminCaller, as_admin};
use crate::users::UserAction;

async fn admin(console: &Console, viewer: &Viewer) -> Result<AdminCaller, PageError> {
    Ok(as_admin(console, viewer.caller.clone()).await?)
}

fn tabs(active: &str) -> Markup {
    let items = [
        ("Users", "/security/users"),
        ("Roles", "/security/roles"),
        ("Teams", "/security/teams"),
        ("Service accounts", "/security/service-accounts"),
        ("Audit log", "/security/audit"),
    ];
    html! {
        nav aria-label="Users and security" {
            p {
                @for (i, (label, href)) in items.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href=(href) aria-current=[(*href == active).then_some("page")] { (label) }
                }
            }
        }
    }
}

fn role_options(roles: &[RoleView], selected: &str) -> Markup {
    html! {
        @for r in roles {
            option value=(r.name) selected[r.name == selected] { (r.name) }
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    done: String,
}

/// `GET /security/users`.
pub async fn users(
    State(console): State<Console>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let admin = admin(&console, &viewer).await?;
    users_page(&console, &viewer, &admin, None, &n.done).await
}

async fn users_page(
    console: &Console,
    viewer: &Viewer,
    admin: &AdminCaller,
    shown_once: Option<(String, String)>,
    done: &str,
) -> PageResult {
    let users = crate::users::users_for(console, admin).await?;
    let roles = crate::roles::all_roles(console, &viewer.caller).await?;
    let body = html! {
        (tabs("/security/users"))
        @if !done.is_empty() { (layout::flash(FlashKind::Success, done)) }
        @if let Some((user, password)) = &shown_once {
            div.flash.success role="status" {
                "The password of " strong { (user) } " is " code #shown-once { (password) }
                ". It is shown only now: give it to them over a safe channel."
            }
        }
        div.table-wrap {
            table #users {
                thead { tr { th { "User" } th { "Email" } th { "Role" } th { "State" } th { "Created" } th { "Actions" } } }
                tbody {
                    @for u in &users {
                        @let own = u.key == viewer.caller.principal.id;
                        tr {
                            td { strong { (u.name) } @if !u.display_name.is_empty() { br; span.muted { (u.display_name) } } }
                            td { (u.email) }
                            td {
                                @if own { (u.role) " " span.muted { "(yours)" } }
                                @else {
                                    form.inline method="post" action={ "/security/users/" (enc(&u.name)) } {
                                        (viewer.csrf_input())
                                        input type="hidden" name="action" value="role";
                                        select name="role" aria-label={ "Role of " (u.name) } { (role_options(&roles, &u.role)) }
                                        " " button.secondary type="submit" { "Set role" }
                                    }
                                }
                            }
                            td {
                                @if u.state == "disabled" { span.badge.bad { "disabled" } } @else { span.badge.ok { "active" } }
                                @if u.locked { " " span.badge.warn { "locked" } }
                            }
                            td { (timestamp(Some(u.created_at_ms), TimeStyle::Local)) @if let Some(by) = &u.created_by { br; span.muted { "by " (by) } } }
                            td {
                                @if !own {
                                    form.inline method="post" action={ "/security/users/" (enc(&u.name)) } {
                                        (viewer.csrf_input())
                                        @if u.state == "disabled" {
                                            button.secondary type="submit" name="action" value="enable" { "Enable" }
                                        } @else {
                                            button.danger type="submit" name="action" value="disable" data-confirm={ "Disable " (u.name) "? Their sessions end." } { "Disable" }
                                        }
                                        " "
                                        @if u.locked { button.secondary type="submit" name="action" value="unlock" { "Unlock" } " " }
                                        button.secondary type="submit" name="action" value="reset" data-confirm={ "Reset the password of " (u.name) "? Their sessions end." } { "Reset password" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        form.panel method="post" action="/security/users" {
            (viewer.csrf_input())
            p { label for="name" { "Username" } input #name name="name" required pattern="[a-z][a-z0-9-]{0,62}" autocomplete="off"; }
            p { label for="display_name" { "Display name" } input #display_name name="display_name"; }
            p { label for="email" { "Email" } input #email name="email" type="email" required; }
            p { label for="role" { "Role" } select #role name="role" { (role_options(&roles, "Developer")) } }
            p { label for="password" { "Password (leave empty to generate one, shown once)" } input #password name="password" type="password" autocomplete="new-password"; }
            p { button type="submit" { "Add user" } }
        }
    };
    Ok(viewer.page("/security/users", "Users", body))
}

/// `POST /security/users`: adds a user.
pub async fn create_user(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let admin = admin(&console, &viewer).await?;
    let password = form.get("password").filter(|p| !p.is_empty());
    let created = crate::users::add_user(
        &console,
        &admin,
        CreateUser {
            name: form.text("name"),
            email: form.text("email"),
            role: form.text("role"),
            display_name: form.text("display_name"),
            password: password.map(str::to_string),
        },
    )
    .await?;
    match created.password {
        Some(p) => users_page(&console, &viewer, &admin, Some((created.user.name, p)), "").await,
        None => Ok(see_other(&format!(
            "/security/users?done={}",
            enc(&format!("User {} added.", created.user.name))
        ))),
    }
}

/// `POST /security/users/{user}`: disable, enable, unlock, reset, role.
pub async fn user_change(
    State(console): State<Console>,
    axum::extract::Path(user): axum::extract::Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { viewer, form } = posted;
    let admin = admin(&console, &viewer).await?;
    let action = form.text("action");
    let done = match action.as_str() {
        "disable" | "enable" | "unlock" => {
            let which = match action.as_str() {
                "disable" => UserAction::Disable,
                "enable" => UserAction::Enable,
                _ => UserAction::Unlock,
            };
            let u = crate::users::user_action(&console, &admin, &user, which).await?;
            format!("User {}: {action}d.", u.name).replace("unlockd", "unlocked")
        }
        "role" => {
            let u =
                crate::roles::change_user_role(&console, &admin, &user, &form.text("role")).await?;
            format!("User {} now has role {}.", u.name, u.role)
        }
        "reset" => {
            let changed = crate::users::set_password(
                &console,
                &viewer.caller,
                &user,
                ChangePassword {
                    current: None,
                    new: None,
                },
            )
            .await?;
            let password = changed.password.unwrap_or_default();
            return users_page(&console, &viewer, &admin, Some((user, password)), "").await;
        }
        other => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown user action {other:?}: use disable, enable, unlock, reset or role"
                ),
            ));
        }
    };
    Ok(see_other(&format!("/security/users?done={}", enc(&done))))
}

/// `GET /security/roles`: every role's level on every registered
/// environment (built-in roles are fixed; custom ones are created here).
pub async fn roles(
    State(console): State<Console>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    admin(&console, &viewer).await?;
    let roles = crate::roles::all_roles(&console, &viewer.caller).await?;
    let classes = crate::roles::environment_classes(&console).await?;
    let mut resolved = Vec::new();
    for r in &roles {
        let role = crate::roles::existing_role(&console, &r.name).await?;
        let levels: Vec<Level> = classes
            .iter()
            .map(|(name, class)| {
                role.level(&EnvRef {
                    name,
                    class: *class,
                })
            })
            .collect();
        resolved.push((r, levels));
    }
    let scopes: Vec<String> = ["*", "@dev", "@test", "@prod"]
        .into_iter()
        .map(str::to_string)
        .chain(classes.iter().map(|(n, _)| n.clone()))
        .collect();
    let body = html! {
        (tabs("/security/roles"))
        @if !n.done.is_empty() { (layout::flash(FlashKind::Success, &n.done)) }
        div.table-wrap {
            table #roles {
                thead {
                    tr {
                        th { "Role" }
                        @for (env, _) in &classes { th { (env) } }
                        th { "Infrastructure" } th { "Users & roles" } th { span.muted { "Actions" } }
                    }
                }
                tbody {
                    @for (r, levels) in &resolved {
                        tr {
                            th scope="row" { (r.name) @if r.built_in { " " span.badge { "built-in" } } }
                            @for l in levels { td { (l.as_str()) } }
                            td { @if r.manage_infrastructure { "✓" } @else { "—" } }
                            td { @if r.manage_users { "✓" } @else { "—" } }
                            td {
                                @if !r.built_in {
                                    form.inline method="post" action="/security/roles/delete" {
                                        (viewer.csrf_input())
                                        input type="hidden" name="name" value=(r.name);
                                        button.danger type="submit" data-confirm={ "Delete role " (r.name) "?" } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a custom role" }
        form.panel method="post" action="/security/roles" {
            (viewer.csrf_input())
            p { label for="role-name" { "Name" } input #role-name name="name" required; }
            table {
                thead { tr { th { "Applies to" } th { "Level" } } }
                tbody {
                    @for scope in &scopes {
                        tr {
                            td { label for={ "level-" (scope) } { (scope) } }
                            td {
                                select id={ "level-" (scope) } name={ "level:" (scope) } {
                                    option value="" { "(not set)" }
                                    @for l in Level::ALL { option value=(l.as_str()) { (l.as_str()) } }
                                }
                            }
                        }
                    }
                }
            }
            p { label.check { input type="checkbox" name="manage_infrastructure" value="1"; "May manage infrastructure" } }
            p { label.check { input type="checkbox" name="manage_users" value="1"; "May manage users and roles" } }
            p { button type="submit" { "Add role" } }
        }
    };
    Ok(viewer.page("/security/users", "Roles", body))
}

/// `POST /security/roles`.
pub async fn create_role(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let admin = admin(&console, &viewer).await?;
    let levels = form
        .pairs()
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("level:")
                .filter(|_| !v.is_empty())
                .map(|scope| RoleLevel {
                    scope: scope.to_string(),
                    level: v.clone(),
                })
        })
        .collect();
    let role = crate::roles::add_role(
        &console,
        &admin,
        &CreateRole {
            name: form.text("name"),
            levels,
            manage_infrastructure: form.get("manage_infrastructure").is_some(),
            manage_users: form.get("manage_users").is_some(),
        },
    )
    .await?;
    Ok(see_other(&format!(
        "/security/roles?done={}",
        enc(&format!("Role {} added.", role.name))
    )))
}

/// `POST /security/roles/delete`: deletes a custom role nobody holds.
pub async fn delete_role(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let admin = admin(&console, &viewer).await?;
    let name = form.text("name");
    crate::roles::remove_role(&console, &admin, &name).await?;
    Ok(see_other(&format!(
        "/security/roles?done={}",
        enc(&format!("Role {name} deleted."))
    )))
}

/// `GET /security/teams`.
pub async fn teams(State(console): State<Console>, viewer: Viewer) -> PageResult {
    admin(&console, &viewer).await?;
    let teams = crate::roles::visible_teams(&console, &viewer.caller).await?;
    let body = html! {
        (tabs("/security/teams"))
        @if teams.is_empty() {
            (layout::empty("No team yet. `runway team create NAME --app APP --member USER=ROLE` creates one."))
        } @else {
            div.table-wrap {
                table #teams {
                    thead { tr { th { "Team" } th { "Applications" } th { "Members (role in the team)" } th { "Created" } } }
                    tbody {
                        @for t in &teams {
                            tr {
                                td { (t.name) }
                                td { (t.apps.join(", ")) }
                                td { @for (i, m) in t.members.iter().enumerate() { @if i > 0 { ", " } (m.member) " (" (m.role) ")" } }
                                td { (timestamp(Some(t.created_at_ms), TimeStyle::Local)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("/security/users", "Teams", body))
}

/// `GET /security/service-accounts`.
pub async fn accounts(State(console): State<Console>, viewer: Viewer) -> PageResult {
    let admin = admin(&console, &viewer).await?;
    accounts_page(&console, &viewer, &admin, None).await
}

async fn accounts_page(
    console: &Console,
    viewer: &Viewer,
    admin: &AdminCaller,
    shown_once: Option<(String, String)>,
) -> PageResult {
    let accounts = crate::accounts::accounts_for(console, admin).await?;
    let roles = crate::roles::all_roles(console, &viewer.caller).await?;
    let body = html! {
        (tabs("/security/service-accounts"))
        @if let Some((account, token)) = &shown_once {
            div.flash.success role="status" {
                "The token of " strong { (account) } ": " code #shown-once { (token) }
                " — it is shown only now and never again: store it in your CI's secrets."
            }
        }
        div.table-wrap {
            table #accounts {
                thead { tr { th { "Account" } th { "Role" } th { "Tokens" } th { "Created" } th { "State" } } }
                tbody {
                    @for a in &accounts {
                        tr {
                            td { (a.name) @if !a.description.is_empty() { br; span.muted { (a.description) } } }
                            td { (a.role) }
                            td { @for t in &a.tokens { (t.name) @if t.revoked_at_ms.is_some() { " (revoked)" } br; } }
                            td { (timestamp(Some(a.created_at_ms), TimeStyle::Local)) }
                            td { @if a.disabled_at_ms.is_some() { span.badge.bad { "disabled" } } @else { span.badge.ok { "active" } } }
                        }
                    }
                }
            }
        }
        h2 { "Add a service account" }
        form.panel method="post" action="/security/service-accounts" {
            (viewer.csrf_input())
            p { label for="sa-name" { "Name" } input #sa-name name="name" required pattern="[a-z][a-z0-9-]{0,62}"; }
            p { label for="sa-description" { "Description" } input #sa-description name="description"; }
            p { label for="sa-role" { "Role" } select #sa-role name="role" required { option value="" { "— choose —" } (role_options(&roles, "")) } }
            p { button type="submit" { "Add account" } }
        }
    };
    Ok(viewer.page("/security/users", "Service accounts", body))
}

/// `POST /security/service-accounts`: creates it and shows its token once.
pub async fn create_account(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let admin = admin(&console, &viewer).await?;
    let created = crate::accounts::add_account(
        &console,
        &admin,
        &CreateServiceAccount {
            name: form.text("name"),
            description: form.text("description"),
            role: Some(form.text("role")).filter(|r| !r.is_empty()),
        },
    )
    .await?;
    accounts_page(
        &console,
        &viewer,
        &admin,
        Some((created.account, created.token)),
    )
    .await
}

#[derive(Debug, Deserialize, Default)]
pub struct AuditFilters {
    #[serde(default)]
    user: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
}

/// `GET /security/audit`: the newest 500 rows matching the filters.
pub async fn audit(
    State(console): State<Console>,
    viewer: Viewer,
    Query(f): Query<AuditFilters>,
) -> PageResult {
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let rows = crate::audit::entries(
        &console,
        &viewer.caller,
        AuditQuery {
            user: some(&f.user),
            env: some(&f.env),
            app: some(&f.app),
            action: some(&f.action),
            since_ms: None,
            until_ms: None,
            limit: Some(500),
        },
    )
    .await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| f.outcome.is_empty() || r.outcome == f.outcome)
        .collect();
    let body = html! {
        (tabs("/security/audit"))
        form.filters method="get" action="/security/audit" role="search" {
            div { label for="a-user" { "Who" } input #a-user type="search" name="user" value=(f.user); }
            div { label for="a-env" { "Environment" } input #a-env type="search" name="env" value=(f.env); }
            div { label for="a-app" { "Application" } input #a-app type="search" name="app" value=(f.app); }
            div { label for="a-action" { "Action contains" } input #a-action type="search" name="action" value=(f.action); }
            div {
                label for="a-outcome" { "Outcome" }
                select #a-outcome name="outcome" {
                    option value="" { "any" }
                    option value="done" selected[f.outcome == "done"] { "done" }
                    option value="refused" selected[f.outcome == "refused"] { "refused" }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        @if rows.is_empty() { (layout::empty("No audit row matches.")) } @else {
            div.table-wrap {
                table #audit {
                    thead { tr { th { "When" } th { "Who" } th { "From" } th { "Action" } th { "Where" } th { "Outcome" } } }
                    tbody {
                        @for r in &rows {
                            tr {
                                td { (timestamp(Some(r.at_ms), TimeStyle::Local)) }
                                td { (r.principal) br; span.muted { (r.principal_kind) " " (r.credential) } }
                                td.mono { (r.address) }
                                td { code { (r.action) } }
                                td { (r.environment.as_deref().unwrap_or("")) @if let Some(a) = &r.app { " / " (a) } }
                                td {
                                    @if r.outcome == "done" { span.badge.ok { "done" } } @else { span.badge.bad { (r.outcome) " " (r.status) } }
                                    @if !r.reason.is_empty() { br; span.muted { (r.reason) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("/security/users", "Audit log", body))
}

/// `GET /account`: one's own password.
pub async fn account(
    State(_console): State<Console>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    Ok(account_page(&viewer, None, &n.done))
}

fn account_page(viewer: &Viewer, error: Option<&str>, done: &str) -> axum::response::Response {
    let body = html! {
        @if !done.is_empty() { (layout::flash(FlashKind::Success, done)) }
        @if let Some(e) = error { (layout::flash(FlashKind::Error, e)) }
        p { "Signed in as " strong { (viewer.caller.principal.name) } ", role " (viewer.caller.grants.role.name) "." }
        @if viewer.caller.user.is_some() {
            h2 { "Change your password" }
            form.panel method="post" action="/account" {
                (viewer.csrf_input())
                p { label for="current" { "Current password" } input #current type="password" name="current" autocomplete="current-password" required; }
                p { label for="new" { "New password (at least 12 characters, not guessable)" } input #new type="password" name="new" autocomplete="new-password" required; }
                p { button type="submit" { "Change password" } }
            }
        }
    };
    viewer.page("/account", "Your account", body)
}

/// `POST /account`: changes one's own password (the current one needed;
/// every other session ends).
pub async fn change_own_password(State(console): State<Console>, posted: Posted) -> PageResult {
    let Posted { viewer, form } = posted;
    let me = viewer.caller.principal.name.clone();
    match crate::users::set_password(
        &console,
        &viewer.caller,
        &me,
        ChangePassword {
            current: form.get("current").map(str::to_string),
            new: form.get("new").map(str::to_string),
        },
    )
    .await
    {
        Ok(changed) => Ok(see_other(&format!(
            "/account?done={}",
            enc(&format!(
                "Password changed; {} other session(s) ended.",
                changed.sessions_ended
            ))
        ))),
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            let message = e.message.clone();
            let mut response = account_page(&viewer, Some(&message), "");
            *response.status_mut() = status;
            response
                .extensions_mut()
                .insert(crate::audit::AuditReason(message));
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}
