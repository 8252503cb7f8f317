//! IT users: passwords (argon2id), the password policy, login with
//! throttling and lockout, sessions (logout, log out everywhere), and the
//! first administrator created on first start.
//!
//! * Passwords are hashed with argon2id ([`ARGON2_MEMORY_KIB`],
//!   [`ARGON2_ITERATIONS`], [`ARGON2_LANES`]; ARCHITECTURE.md has the measured
//!   cost). Hashing runs on the blocking pool, at most [`MAX_CONCURRENT_HASHES`]
//!   at a time.
//! * Policy: at least [`MIN_PASSWORD_CHARS`] characters, and not guessable
//!   (zxcvbn score ≥ 3 with the username, email and display name as known words).
//! * Throttling: per username and per client address, failed logins in a row
//!   (within [`FAILURE_WINDOW`]) beyond a free allowance make the next attempt
//!   wait a delay that doubles per failure; [`LOCK_AFTER_FAILURES`] in a row
//!   lock the user until an admin unlocks it. Check and record are one
//!   step (each attempt is counted before its password is checked, by
//!   compare-and-swap on the counter, and given back if right), so parallel
//!   guesses get no more attempts than sequential ones. IPv6 clients are
//!   counted per /64 ([`throttle_key`]).
//! * Sessions: `rws_` + 64 hex digits, SHA-256 at rest, idle and absolute
//!   expiry ([`IdentityConfig`]).

use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use rand::Rng as _;
use runway_api::console::identity::{
    ChangePassword, CreateUser, Login, PasswordChanged, SessionCreated, SessionsEnded, UserCreated,
    UserView,
};
use runway_store::console::principals::PrincipalKind;
use runway_store::console::users::{FailureScope, NewUser, UserRecord};
use runway_store::now_ms;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::auth::{AdminCaller, Caller, Myself, Need};
use crate::error::{ApiError, ApiResult};
use crate::{Console, check_name};

/// argon2id memory cost (KiB).
pub const ARGON2_MEMORY_KIB: u32 = 65_536;
/// argon2id passes over memory.
pub const ARGON2_ITERATIONS: u32 = 3;
/// argon2id parallelism.
pub const ARGON2_LANES: u32 = 1;
/// Password hashes computed at once (each takes [`ARGON2_MEMORY_KIB`] of memory).
pub const MAX_CONCURRENT_HASHES: usize = 2;
/// Shortest password accepted (characters).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins of one username that cost no delay.
pub const USER_FREE_FAILURES: i64 = 3;
/// Failed logins from one address that cost no delay.
pub const ADDRESS_FREE_FAILURES: i64 = 10;
/// Failed logins in a row that lock a user.
pub const LOCK_AFTER_FAILURES: i64 = 10;
/// Failures older than this are forgotten.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// The longest delay one username can be made to wait.
pub const MAX_USER_DELAY: Duration = Duration::from_secs(60);
/// The longest delay one address can be made to wait.
pub const MAX_ADDRESS_DELAY: Duration = Duration::from_secs(300);
/// Prefix of every session token.
pub const SESSION_PREFIX: &str = "rws_";
/// Username of the administrator created on first start.
pub const FIRST_ADMIN_USER: &str = "administrator";

/// Session lifetimes and the login delay of a console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A session ends after this long without a request. Default 1 h.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not. Default 12 h.
    pub session_absolute: Duration,
    /// The first delay after the free failed logins; it doubles with each
    /// further failure. Default 1 s.
    pub login_delay: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            session_idle: Duration::from_secs(3600),
            session_absolute: Duration::from_secs(12 * 3600),
            login_delay: Duration::from_secs(1),
        }
    }
}

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route(
            "/_runway/console/v1/users",
            get(list_users).post(create_user),
        )
        .route("/_runway/console/v1/users/{user}", get(show_user))
        .route(
            "/_runway/console/v1/users/{user}/disable",
            post(disable_user),
        )
        .route("/_runway/console/v1/users/{user}/enable", post(enable_user))
        .route("/_runway/console/v1/users/{user}/unlock", post(unlock_user))
        .route(
            "/_runway/console/v1/users/{user}/password",
            post(change_password),
        )
        .route(
            "/_runway/console/v1/sessions",
            post(login).delete(logout_everywhere),
        )
        .route(
            "/_runway/console/v1/sessions/current",
            axum::routing::delete(logout),
        )
}

// --- passwords ---------------------------------------------------------------

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .expect("the argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hashing() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(MAX_CONCURRENT_HASHES))
}

/// Hashes a password (argon2id, random salt): a PHC string.
pub fn hash_password_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash` (its own parameters).
pub fn verify_password_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

async fn hash_password(password: String) -> ApiResult<String> {
    let _permit = hashing().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn verify_password(password: String, hash: String) -> ApiResult<bool> {
    let _permit = hashing().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, &hash))
        .await
        .map_err(ApiError::internal)
}

/// A hash no password matches in practice, verified for unknown users so
/// that a wrong username costs as long as a wrong password. Built at start
/// ([`prepare_decoy`]), so the first unknown user costs no extra hash.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password_blocking(&generate_password()).expect("hashing a random password works")
    })
}

/// Builds the decoy hash now (on the blocking pool) rather than at the
/// first login of an unknown user, which would otherwise take a hash longer
/// than a known user's and tell the two apart.
pub async fn prepare_decoy() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| {
        decoy_hash();
    })
    .await?;
    Ok(())
}

/// A random password: 20 letters and digits (≈119 bits).
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// The password policy. `known` are words of the user (username, email,
/// display name) a password must not lean on.
pub fn check_password(password: &str, known: &[&str]) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password has {chars} characters; use at least {MIN_PASSWORD_CHARS} (a few \
             unrelated words, or let the console generate one by leaving it out)"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is {} bytes long; use at most {MAX_PASSWORD_BYTES}",
            password.len()
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("the password contains control characters; use printable ones".into());
    }
    let entropy = zxcvbn::zxcvbn(password, known);
    if entropy.score() < zxcvbn::Score::Three {
        let mut why = String::from("the password is too easy to guess");
        if let Some(feedback) = entropy.feedback() {
            if let Some(warning) = feedback.warning() {
                why.push_str(&format!(" ({warning})"));
            }
            for suggestion in feedback.suggestions() {
                why.push_str(&format!("; {suggestion}"));
            }
        }
        why.push_str(
            "; common passwords, keyboard patterns, repeats, dates and the user's own name or \
             email are refused",
        );
        return Err(why);
    }
    Ok(())
}

fn weak_password(message: String) -> ApiError {
    ApiError::bad_request("weak_password", message)
}

// --- views and lookups ---------------------------------------------------------

pub(crate) async fn user_view(console: &Console, u: &UserRecord) -> ApiResult<UserView> {
    let created_by = match &u.principal.created_by {
        Some(id) => console.store().principal(id).await?.map(|p| p.name),
        None => None,
    };
    Ok(UserView {
        key: u.principal.id.clone(),
        name: u.principal.name.clone(),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        role: u.role.clone(),
        state: if u.principal.disabled_at_ms.is_some() {
            "disabled".into()
        } else {
            "active".into()
        },
        locked: u.locked_at_ms.is_some(),
        created_at_ms: u.principal.created_at_ms,
        created_by,
        password_changed_at_ms: u.password_changed_at_ms,
    })
}

pub(crate) async fn find_user(console: &Console, name_or_key: &str) -> ApiResult<UserRecord> {
    console.store().user(name_or_key).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no user {name_or_key:?} on this console (`runway user list` shows them)"
        ))
    })
}

fn check_email(email: &str) -> ApiResult<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            format!("email {email:?} is not valid: give one like ada@example.com"),
        ))
    }
}

fn check_display_name(name: &str) -> ApiResult<()> {
    if name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the display name is too long (at most 256 bytes) or has control characters",
        ));
    }
    Ok(())
}

// --- user management (administrators) -----------------------------------------

#[utoipa::path(get, path = "/_runway/console/v1/users", responses((status = 200, body = Vec<UserView>), (status = 403, body = runway_api::ErrorBody)))]
async fn list_users(
    State(console): State<Console>,
    admin: AdminCaller,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(users_for(&console, &admin).await?))
}

/// Every user (for one who may manage users).
pub(crate) async fn users_for(console: &Console, _admin: &AdminCaller) -> ApiResult<Vec<UserView>> {
    let mut out = Vec::new();
    for u in console.store().users().await? {
        out.push(user_view(console, &u).await?);
    }
    Ok(out)
}

/// An administrator, or the user itself.
fn may_see(caller: &Caller, user: &UserRecord) -> bool {
    caller.is_admin() || caller.principal.id == user.principal.id
}

#[utoipa::path(get, path = "/_runway/console/v1/users/{user}", params(("user" = String, Path, description = "username or key")), responses((status = 200, body = UserView), (status = 404, body = runway_api::ErrorBody)))]
async fn show_user(
    State(console): State<Console>,
    Myself(caller): Myself,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    let user = find_user(&console, &user).await?;
    if !may_see(&caller, &user) {
        crate::auth::require(&console, &caller, "see other users", Need::ManageUsers).await?;
    }
    Ok(Json(user_view(&console, &user).await?))
}

#[utoipa::path(post, path = "/_runway/console/v1/users", request_body = CreateUser, responses((status = 201, body = UserCreated, description = "the user; a generated password is shown once"), (status = 400, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn create_user(
    State(console): State<Console>,
    admin: AdminCaller,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(add_user(&console, &admin, req).await?),
    ))
}

/// Creates a user (API and the users page).
pub(crate) async fn add_user(
    console: &Console,
    AdminCaller(admin): &AdminCaller,
    req: CreateUser,
) -> ApiResult<UserCreated> {
    check_name("user", &req.name).map_err(|m| ApiError::bad_request("invalid_name", m))?;
    check_email(&req.email)?;
    check_display_name(&req.display_name)?;
    let role = crate::roles::existing_role(console, &req.role).await?;
    crate::roles::check_grant(
        console,
        &admin.grants,
        &role,
        &format!("new user '{}'", req.name),
    )
    .await?;
    let (password, generated) = match req.password {
        Some(p) => {
            check_password(&p, &[&req.name, &req.email, &req.display_name])
                .map_err(weak_password)?;
            (p, false)
        }
        None => (generate_password(), true),
    };
    let hash = hash_password(password.clone()).await?;
    let user = console
        .store()
        .create_user(
            &NewUser {
                name: &req.name,
                display_name: &req.display_name,
                email: &req.email,
                role: &role.name,
                password_hash: &hash,
            },
            Some(&admin.principal.id),
        )
        .await?;
    Ok(UserCreated {
        user: user_view(console, &user).await?,
        password: generated.then_some(password),
    })
}

#[utoipa::path(post, path = "/_runway/console/v1/users/{user}/disable", params(("user" = String, Path)), responses((status = 200, body = UserView, description = "disabled, every session ended"), (status = 404, body = runway_api::ErrorBody)))]
async fn disable_user(
    State(console): State<Console>,
    admin: AdminCaller,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        user_action(&console, &admin, &user, UserAction::Disable).await?,
    ))
}

/// What an administrator does to a user's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserAction {
    Disable,
    Enable,
    Unlock,
}

/// Disables, enables or unlocks a user (API and the users page).
pub(crate) async fn user_action(
    console: &Console,
    admin: &AdminCaller,
    user: &str,
    action: UserAction,
) -> ApiResult<UserView> {
    match action {
        UserAction::Disable => disable(console, admin, user).await,
        UserAction::Enable => enable(console, admin, user).await,
        UserAction::Unlock => unlock(console, admin, user).await,
    }
}

async fn disable(
    console: &Console,
    AdminCaller(admin): &AdminCaller,
    user: &str,
) -> ApiResult<UserView> {
    let console = console.clone();
    let user = find_user(&console, user).await?;
    crate::roles::check_covers(&console, admin, &user.principal, "disable").await?;
    if user.principal.id == admin.principal.id {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "user '{}' cannot disable itself; another administrator can",
                user.principal.name
            ),
        ));
    }
    console.store().disable_user(&user.principal.id).await?;
    let user = find_user(&console, &user.principal.id).await?;
    user_view(&console, &user).await
}

#[utoipa::path(post, path = "/_runway/console/v1/users/{user}/enable", params(("user" = String, Path)), responses((status = 200, body = UserView), (status = 404, body = runway_api::ErrorBody), (status = 409, body = runway_api::ErrorBody)))]
async fn enable_user(
    State(console): State<Console>,
    admin: AdminCaller,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        user_action(&console, &admin, &user, UserAction::Enable).await?,
    ))
}

async fn enable(
    console: &Console,
    AdminCaller(admin): &AdminCaller,
    user: &str,
) -> ApiResult<UserView> {
    let user = find_user(console, user).await?;
    crate::roles::check_covers(console, admin, &user.principal, "enable").await?;
    console.store().enable_user(&user.principal.id).await?;
    let user = find_user(console, &user.principal.id).await?;
    user_view(console, &user).await
}

#[utoipa::path(post, path = "/_runway/console/v1/users/{user}/unlock", params(("user" = String, Path)), responses((status = 200, body = UserView, description = "lockout and failed-login count cleared"), (status = 404, body = runway_api::ErrorBody)))]
async fn unlock_user(
    State(console): State<Console>,
    admin: AdminCaller,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        user_action(&console, &admin, &user, UserAction::Unlock).await?,
    ))
}

async fn unlock(
    console: &Console,
    AdminCaller(admin): &AdminCaller,
    user: &str,
) -> ApiResult<UserView> {
    let user = find_user(console, user).await?;
    crate::roles::check_covers(console, admin, &user.principal, "unlock").await?;
    console
        .store()
        .unlock_user(&user.principal.id, &user.principal.name)
        .await?;
    let user = find_user(console, &user.principal.id).await?;
    user_view(console, &user).await
}

#[utoipa::path(post, path = "/_runway/console/v1/users/{user}/password", params(("user" = String, Path)), request_body = ChangePassword, responses((status = 200, body = PasswordChanged, description = "every other session of the user ended"), (status = 400, body = runway_api::ErrorBody), (status = 403, body = runway_api::ErrorBody)))]
async fn change_password(
    State(console): State<Console>,
    Myself(caller): Myself,
    Path(user): Path<String>,
    Json(req): Json<ChangePassword>,
) -> ApiResult<Json<PasswordChanged>> {
    Ok(Json(set_password(&console, &caller, &user, req).await?))
}

/// Changes a user's password: one's own (with the current one), or
/// another's as an administrator (API and the pages).
pub(crate) async fn set_password(
    console: &Console,
    caller: &Caller,
    user: &str,
    req: ChangePassword,
) -> ApiResult<PasswordChanged> {
    let console = console.clone();
    let caller = caller.clone();
    let user = find_user(&console, user).await?;
    let own = caller.principal.id == user.principal.id;
    if !own {
        crate::auth::require(
            &console,
            &caller,
            "change another user's password",
            Need::ManageUsers,
        )
        .await?;
        // Setting a password is logging in as that user: only for a user
        // whose rights the caller's cover.
        crate::roles::check_covers(&console, &caller, &user.principal, "reset the password of")
            .await?;
    }
    if own {
        // Proving the current password keeps a stolen session from taking
        // the account over (administrators included, for their own).
        // Throttled and counted like a login: a stolen session is no
        // oracle for guessing the password.
        let failures = claim_attempt(
            &console,
            FailureScope::User,
            &user.principal.name,
            USER_FREE_FAILURES,
            MAX_USER_DELAY,
        )
        .await?;
        let current = req.current.clone().unwrap_or_default();
        if verify_password(current, user.password_hash.clone()).await? {
            release(&console, FailureScope::User, &user.principal.name).await?;
        } else {
            if failures >= LOCK_AFTER_FAILURES {
                console.store().lock_user(&user.principal.id).await?;
            }
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "the current password is wrong: changing your own password needs it \
                 (`runway user passwd` asks for it)",
            ));
        }
    }
    let (password, generated) = match req.new {
        Some(p) => {
            let known = [
                user.principal.name.as_str(),
                user.email.as_str(),
                user.display_name.as_str(),
            ];
            check_password(&p, &known).map_err(weak_password)?;
            (p, false)
        }
        None if !own => (generate_password(), true),
        None => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give the new password (`new`)",
            ));
        }
    };
    let hash = hash_password(password.clone()).await?;
    let keep = if own {
        caller.session.as_ref().map(|s| s.id)
    } else {
        None
    };
    let ended = console
        .store()
        .set_password(&user.principal.id, &hash, keep)
        .await?;
    Ok(PasswordChanged {
        sessions_ended: ended,
        password: generated.then_some(password),
    })
}

// --- login and sessions ----------------------------------------------------------

/// The client address of a request (`unknown` when the socket did not tell).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<Console> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Console) -> Result<Self, ApiError> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<runway_server::PeerAddr>()
                .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string()),
        ))
    }
}

/// How long after the last of `failures` failed logins the next attempt
/// must wait, past `free` failures that cost nothing.
pub fn login_delay(base: Duration, failures: i64, free: i64, max: Duration) -> Duration {
    if failures < free || base.is_zero() {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - free).unwrap_or(u32::MAX).min(20);
    base.saturating_mul(1 << doublings).min(max)
}

/// How often an attempt re-reads a failure counter that parallel attempts
/// keep changing before it gives up (429).
const CLAIM_TRIES: usize = 64;

/// The key failed logins from `address` are counted under: the address
/// itself for IPv4 (and IPv4-mapped IPv6), the /64 network for IPv6 (one
/// host usually holds a whole /64, so per address would give it 2^64
/// allowances).
pub fn throttle_key(address: &str) -> String {
    use std::net::{IpAddr, Ipv6Addr};
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        _ => address.to_string(),
    }
}

fn throttled(scope: FailureScope, key: &str, failures: i64, wait_s: i64) -> ApiError {
    let whose = match scope {
        FailureScope::User => format!("user {key:?}"),
        FailureScope::Address => format!("address {key}"),
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
        format!(
            "{failures} failed logins in a row for {whose}: try again in {wait_s} s (the wait \
             doubles with each further failure)"
        ),
    )
    .with_detail("retry_after_s", wait_s.into())
}

/// The throttle's check and record in one step: refuses (429) while `key`
/// must wait after its failures, else counts this attempt as one more
/// failure at once, by compare-and-swap on the counter
/// ([`runway_store::ConsoleStore::claim_login_failure`]), so parallel
/// attempts cannot all pass the check before any is counted. An attempt
/// that turns out right gives its count back ([`release`]). Returns the
/// failures in a row, this attempt included.
async fn claim_attempt(
    console: &Console,
    scope: FailureScope,
    key: &str,
    free: i64,
    max: Duration,
) -> ApiResult<i64> {
    for _ in 0..CLAIM_TRIES {
        let now = now_ms();
        let since = now - FAILURE_WINDOW.as_millis() as i64;
        let seen = console.store().login_failure_row(scope, key).await?;
        if let Some((failures, last)) = seen
            && last >= since
        {
            let delay = login_delay(console.identity().login_delay, failures, free, max);
            let allowed_at = last + delay.as_millis() as i64;
            if now < allowed_at {
                return Err(throttled(
                    scope,
                    key,
                    failures,
                    (allowed_at - now + 999) / 1000,
                ));
            }
        }
        if let Some(count) = console
            .store()
            .claim_login_failure(scope, key, seen, since, now)
            .await?
        {
            return Ok(count);
        }
    }
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
        format!(
            "too many login attempts at once for {}: try again in 1 s",
            match scope {
                FailureScope::User => format!("user {key:?}"),
                FailureScope::Address => format!("address {key}"),
            }
        ),
    )
    .with_detail("retry_after_s", 1.into()))
}

/// Gives back the failure [`claim_attempt`] counted.
async fn release(console: &Console, scope: FailureScope, key: &str) -> ApiResult<()> {
    Ok(console.store().release_login_failure(scope, key).await?)
}

fn login_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "login_failed",
        "wrong username or password (repeated failures delay further attempts and lock the \
         user; an administrator can unlock it with `runway user unlock NAME`)",
    )
}

/// A new random session token (shown once) and its hash (stored).
pub fn new_session_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{SESSION_PREFIX}{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}

#[utoipa::path(post, path = "/_runway/console/v1/sessions", request_body = Login, responses((status = 201, body = SessionCreated, description = "logged in; the session token is shown once"), (status = 401, body = runway_api::ErrorBody, description = "wrong username or password"), (status = 403, body = runway_api::ErrorBody, description = "user disabled or locked"), (status = 429, body = runway_api::ErrorBody, description = "too many failed logins: wait")))]
async fn login(
    State(console): State<Console>,
    ClientAddress(address): ClientAddress,
    slot: Option<axum::Extension<crate::audit::AuditSlot>>,
    Json(req): Json<Login>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    let slot = slot.map(|axum::Extension(slot)| slot);
    let created = log_in(&console, &address, slot.as_ref(), req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Logs a user in: the throttle, the lockout, the password check and a new
/// session, for the API and the sign-in page alike. `slot` is the request's
/// audit row (it names the username tried, never the password).
pub(crate) async fn log_in(
    console: &Console,
    address: &str,
    slot: Option<&crate::audit::AuditSlot>,
    req: Login,
) -> ApiResult<SessionCreated> {
    let console = console.clone();
    if let Some(slot) = slot {
        slot.login_attempt(&req.user);
    }
    if req.user.is_empty() || req.user.len() > 256 || req.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "give a username (1–256 bytes) and a password (at most {MAX_PASSWORD_BYTES} bytes)"
            ),
        ));
    }
    // Each attempt is counted as a failure before its password is checked
    // (and given back if right): see `claim_attempt`.
    let address_key = throttle_key(address);
    claim_attempt(
        &console,
        FailureScope::Address,
        &address_key,
        ADDRESS_FREE_FAILURES,
        MAX_ADDRESS_DELAY,
    )
    .await?;
    let failures = match claim_attempt(
        &console,
        FailureScope::User,
        &req.user,
        USER_FREE_FAILURES,
        MAX_USER_DELAY,
    )
    .await
    {
        Ok(failures) => failures,
        Err(e) => {
            release(&console, FailureScope::Address, &address_key).await?;
            return Err(e);
        }
    };
    let user = console.store().user(&req.user).await?;
    let Some(user) = user.filter(|u| u.principal.name == req.user) else {
        verify_password(req.password, decoy_hash().to_string()).await?;
        return Err(login_failed());
    };
    // The password is checked before the lock is told: a locked name answers
    // a wrong password like any other (no way to learn which names exist).
    if !verify_password(req.password, user.password_hash.clone()).await? {
        if failures >= LOCK_AFTER_FAILURES {
            console.store().lock_user(&user.principal.id).await?;
        }
        return Err(login_failed());
    }
    release(&console, FailureScope::Address, &address_key).await?;
    release(&console, FailureScope::User, &req.user).await?;
    // Read again: a lock or a disable that landed while this attempt was
    // being verified (a burst of parallel guesses) still applies.
    let user = console
        .store()
        .user(&req.user)
        .await?
        .filter(|u| u.principal.id == user.principal.id)
        .ok_or_else(login_failed)?;
    if user.locked_at_ms.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "user_locked",
            format!(
                "user '{}' is locked after {LOCK_AFTER_FAILURES} failed logins in a row; an \
                 administrator unlocks it with `runway user unlock {}`",
                user.principal.name, user.principal.name
            ),
        ));
    }
    if user.principal.disabled_at_ms.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "user_disabled",
            format!(
                "user '{}' is disabled; an administrator enables it with `runway user enable {}`",
                user.principal.name, user.principal.name
            ),
        ));
    }
    console
        .store()
        .clear_login_failures(FailureScope::User, &req.user)
        .await?;
    let (token, hash) = new_session_token();
    let identity = console.identity();
    let expires_at_ms = now_ms() + identity.session_absolute.as_millis() as i64;
    console
        .store()
        .create_session(&user.principal.id, &hash, address, expires_at_ms)
        .await?;
    Ok(SessionCreated {
        token,
        user: user_view(&console, &user).await?,
        expires_at_ms,
        idle_timeout_ms: identity.session_idle.as_millis() as i64,
    })
}

fn no_session(caller: &Caller) -> ApiError {
    ApiError::bad_request(
        "not_a_session",
        format!(
            "{} '{}' is authenticated by a token, not a login session: there is nothing to log \
             out of (revoke the token instead)",
            caller.principal.kind.as_str().replace('_', " "),
            caller.principal.name
        ),
    )
}

#[utoipa::path(delete, path = "/_runway/console/v1/sessions/current", responses((status = 204, description = "this session ended"), (status = 401, body = runway_api::ErrorBody)))]
async fn logout(State(console): State<Console>, Myself(caller): Myself) -> ApiResult<StatusCode> {
    log_out(&console, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's own session (API logout and the pages' sign-out).
pub(crate) async fn log_out(console: &Console, caller: &Caller) -> ApiResult<()> {
    let session = caller.session.as_ref().ok_or_else(|| no_session(caller))?;
    console
        .store()
        .end_session(session.id, "logged out")
        .await?;
    Ok(())
}

#[utoipa::path(delete, path = "/_runway/console/v1/sessions", responses((status = 200, body = SessionsEnded, description = "every session of the caller ended, this one included"), (status = 401, body = runway_api::ErrorBody)))]
async fn logout_everywhere(
    State(console): State<Console>,
    Myself(caller): Myself,
) -> ApiResult<Json<SessionsEnded>> {
    if caller.principal.kind != PrincipalKind::User {
        return Err(no_session(&caller));
    }
    let ended = console
        .store()
        .end_sessions(&caller.principal.id, None, "logged out everywhere")
        .await?;
    Ok(Json(SessionsEnded {
        sessions_ended: ended,
    }))
}

/// Creates the first administrator (username [`FIRST_ADMIN_USER`], role
/// Administrator, a generated password) if the console has no user yet.
/// Returns the password (shown once) if it did.
pub async fn ensure_first_admin(
    store: &runway_store::ConsoleStore,
) -> anyhow::Result<Option<String>> {
    if store.has_users().await? {
        return Ok(None);
    }
    let password = generate_password();
    let p = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password_blocking(&p))
        .await?
        .map_err(anyhow::Error::msg)?;
    store
        .create_user(
            &NewUser {
                name: FIRST_ADMIN_USER,
                display_name: "Administrator",
                email: "administrator@localhost.invalid",
                role: "Administrator",
                password_hash: &hash,
            },
            None,
        )
        .await?;
    Ok(Some(password))
}

/// The OpenAPI paths of this module (merged into the console's document).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_users,
        show_user,
        create_user,
        disable_user,
        enable_user,
        unlock_user,
        change_password,
        login,
        logout,
        logout_everywhere,
    ),
    components(schemas(runway_api::ErrorBody))
)]
pub(crate) struct UsersDoc;

#[cfg(test)]
#[path = "users_tests.rs"]
mod server_tests;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn password_policy() {
        for weak in [
            "short",
            "password1234",
            "qwertyuiop123",
            "aaaaaaaaaaaaaaa",
            "123456789012",
            "ada-lovelace-1815",
        ] {
            let r = check_password(weak, &["ada-lovelace", "ada@example.com", ""]);
            assert!(r.is_err(), "{weak} was accepted");
        }
        assert!(
            check_password("Tangerine-Viaduct-Osprey-42", &["ada"]).is_ok(),
            "a strong password is refused"
        );
        assert!(check_password(&generate_password(), &[]).is_ok());
        let err = check_password("short", &[]).unwrap_err();
        assert!(err.contains("at least 12"), "{err}");
    }

    #[test]
    fn hashes_verify_and_salts_differ() {
        let a = hash_password_blocking("Tangerine-Viaduct-Osprey-42").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{a}");
        assert!(verify_password_blocking("Tangerine-Viaduct-Osprey-42", &a));
        assert!(!verify_password_blocking("Tangerine-Viaduct-Osprey-43", &a));
        assert!(!verify_password_blocking("x", "not a hash"));
        let b = hash_password_blocking("Tangerine-Viaduct-Osprey-42").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn addresses_are_throttled_per_ipv4_and_per_ipv6_64() {
        use super::throttle_key;
        assert_eq!(throttle_key("127.0.0.1"), "127.0.0.1");
        assert_eq!(throttle_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            throttle_key("2001:db8:1:2:ffff::1"),
            throttle_key("2001:db8:1:2::9")
        );
        assert_ne!(
            throttle_key("2001:db8:1:3::1"),
            throttle_key("2001:db8:1:2::1")
        );
        assert_eq!(throttle_key("::ffff:10.0.0.7"), "10.0.0.7");
        assert_eq!(throttle_key("unknown"), "unknown");
    }

    #[test]
    fn delays_double_and_cap() {
        let s = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(login_delay(s, 2, 3, max), Duration::ZERO);
        assert_eq!(login_delay(s, 3, 3, max), s);
        assert_eq!(login_delay(s, 4, 3, max), 2 * s);
        assert_eq!(login_delay(s, 6, 3, max), 8 * s);
        assert_eq!(login_delay(s, 40, 3, max), max);
        assert_eq!(login_delay(Duration::ZERO, 40, 3, max), Duration::ZERO);
    }

    #[test]
    fn session_tokens() {
        let (t, h) = new_session_token();
        assert!(t.starts_with("rws_") && t.len() == 4 + 64);
        assert_eq!(h.len(), 64);
        assert_ne!(new_session_token().0, t);
    }
}
