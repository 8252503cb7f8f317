//! IT users on a real console over real sockets (issue 9, stage 1): the
//! first administrator, user management, login with throttling and
//! lockout, sessions (logout, log out everywhere, idle and absolute expiry,
//! a password change), on SQLite and PostgreSQL. (The CLI's side is in
//! runway-cli's `tests/it/identity.rs`.)

use std::time::Duration;

use crate::users::IdentityConfig;
use crate::{ConsoleConfig, ConsoleServer};
use runway_api::console::identity::{ChangePassword, CreateUser};
use runway_client::{ClientError, ConsoleClient};
use runway_store::testing::TestDatabase;

const ADA_PASSWORD: &str = "Tangerine-Viaduct-Osprey-42";

struct IdConsole {
    _server: ConsoleServer,
    _dir: tempfile::TempDir,
    url: String,
    /// The admin token's client.
    token: ConsoleClient,
    /// The first administrator user's password.
    admin_password: String,
}

impl IdConsole {
    async fn start(identity: IdentityConfig, database: Option<String>) -> IdConsole {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.identity = identity;
        config.database = database;
        let server = ConsoleServer::start(config).await.expect("console starts");
        let url = format!("http://{}", server.addr());
        let token = ConsoleClient::new(&url, server.admin_token().map(str::to_string)).unwrap();
        let admin_password = server
            .admin_password()
            .expect("the first start creates the first administrator")
            .to_string();
        IdConsole {
            _server: server,
            _dir: dir,
            url,
            token,
            admin_password,
        }
    }

    fn anonymous(&self) -> ConsoleClient {
        ConsoleClient::new(&self.url, None).unwrap()
    }

    fn with(&self, token: &str) -> ConsoleClient {
        ConsoleClient::new(&self.url, Some(token.to_string())).unwrap()
    }

    async fn login(&self, user: &str, password: &str) -> ConsoleClient {
        let s = self
            .anonymous()
            .login(user, password)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        assert!(s.token.starts_with("rws_"));
        self.with(&s.token)
    }

    async fn add_user(&self, by: &ConsoleClient, name: &str, role: &str) {
        by.create_user(&CreateUser {
            name: name.into(),
            email: format!("{name}@example.com"),
            role: role.into(),
            display_name: String::new(),
            password: Some(ADA_PASSWORD.into()),
        })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
}

fn api_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn fast() -> IdentityConfig {
    IdentityConfig {
        login_delay: Duration::ZERO,
        ..IdentityConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_administrator_manages_users() {
    let c = IdConsole::start(fast(), None).await;
    let admin = c.login("administrator", &c.admin_password).await;
    let me = admin.info().await.unwrap().principal;
    assert_eq!(
        (me.kind.as_str(), me.name.as_str()),
        ("user", "administrator")
    );

    // With a password of its own; with a generated one, returned once.
    c.add_user(&admin, "ada", "Developer").await;
    let bob = admin
        .create_user(&CreateUser {
            name: "bob".into(),
            email: "bob@example.com".into(),
            role: "tester".into(),
            display_name: "Bob B.".into(),
            password: None,
        })
        .await
        .unwrap();
    assert_eq!(bob.user.role, "Tester");
    assert_eq!(bob.user.created_by.as_deref(), Some("administrator"));
    let bob_password = bob.password.expect("generated, shown once");
    assert!(bob_password.len() >= 20);
    c.login("bob", &bob_password).await;

    // The admin token keeps working and sees the same users.
    let names: Vec<String> = c
        .token
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["administrator", "ada", "bob"]);

    // Bad input: a name taken, an unknown role, a weak password, a bad email.
    let (status, _, message) = api_error(
        admin
            .create_user(&CreateUser {
                name: "ada".into(),
                email: "ada2@example.com".into(),
                role: "Developer".into(),
                display_name: String::new(),
                password: None,
            })
            .await,
    );
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("already named \"ada\""), "{message}");
    let (status, code, message) = api_error(
        admin
            .create_user(&CreateUser {
                name: "carol".into(),
                email: "carol@example.com".into(),
                role: "Janitor".into(),
                display_name: String::new(),
                password: None,
            })
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_role"), "{message}");
    assert!(message.contains("Administrator, Developer, Tester, Operations"));
    for weak in ["short1!", "password12345", "carol-carol-carol"] {
        let (status, code, message) = api_error(
            admin
                .create_user(&CreateUser {
                    name: "carol".into(),
                    email: "carol@example.com".into(),
                    role: "Developer".into(),
                    display_name: String::new(),
                    password: Some(weak.into()),
                })
                .await,
        );
        assert_eq!(
            (status, code.as_str()),
            (400, "weak_password"),
            "{weak}: {message}"
        );
    }
    let (status, code, _) = api_error(
        admin
            .create_user(&CreateUser {
                name: "carol".into(),
                email: "not-an-email".into(),
                role: "Developer".into(),
                display_name: String::new(),
                password: None,
            })
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_email"));
    assert!(c.token.user("carol").await.is_err(), "nothing was created");

    // A Developer manages no users and sees only itself.
    let ada = c.login("ada", ADA_PASSWORD).await;
    assert_eq!(ada.user("ada").await.unwrap().role, "Developer");
    let (status, code, message) = api_error(ada.user("bob").await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(
        message.contains("user 'ada' (role Developer) cannot see other users"),
        "{message}"
    );
    assert!(message.contains("manage users and roles"), "{message}");
    let (status, _, _) = api_error(ada.users().await);
    assert_eq!(status, 403);
    let (status, _, _) = api_error(
        ada.create_user(&CreateUser {
            name: "eve".into(),
            email: "eve@example.com".into(),
            role: "Administrator".into(),
            display_name: String::new(),
            password: None,
        })
        .await,
    );
    assert_eq!(status, 403);
    assert!(c.token.user("eve").await.is_err(), "nothing was created");
    let (status, _, _) = api_error(
        ada.change_password(
            "bob",
            &ChangePassword {
                current: None,
                new: Some("Another-Lengthy-Passphrase-7".into()),
            },
        )
        .await,
    );
    assert_eq!(status, 403);
    let (status, _, _) = api_error(ada.user_action("ada", "unlock").await);
    assert_eq!(status, 403);

    // A Developer reads environments and pipelines (listings show only what
    // it may see), and its own account.
    assert_eq!(ada.info().await.unwrap().principal.name, "ada");
    assert!(ada.environments().await.unwrap().is_empty());
    assert!(ada.pipelines().await.unwrap().is_empty());
    admin.environments().await.unwrap();

    // Disabling ends the user's sessions; enabling lets it log in again.
    let disabled = admin.user_action("ada", "disable").await.unwrap();
    assert_eq!(disabled.state, "disabled");
    let (status, _, message) = api_error(ada.info().await);
    assert_eq!(status, 401);
    assert!(message.contains("user disabled"), "{message}");
    let (status, code, message) = api_error(c.anonymous().login("ada", ADA_PASSWORD).await);
    assert_eq!((status, code.as_str()), (403, "user_disabled"), "{message}");
    assert!(message.contains("runway user enable ada"), "{message}");
    // A wrong password on a disabled user says no more than for anyone.
    let (status, code, _) = api_error(c.anonymous().login("ada", "Wrong-Password-123").await);
    assert_eq!((status, code.as_str()), (401, "login_failed"));
    assert_eq!(
        admin.user_action("ada", "enable").await.unwrap().state,
        "active"
    );
    c.login("ada", ADA_PASSWORD).await;
    // An administrator cannot disable itself.
    let (status, _, message) = api_error(admin.user_action("administrator", "disable").await);
    assert_eq!(status, 400, "{message}");

    // The API documents the new endpoints.
    let doc = serde_json::to_value(crate::openapi::document()).unwrap();
    for path in [
        "/_runway/console/v1/users",
        "/_runway/console/v1/sessions",
        "/_runway/console/v1/users/{user}/password",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_then_lock_the_user() {
    // Default delays: three free failures, then a wait.
    let c = IdConsole::start(IdentityConfig::default(), None).await;
    c.add_user(&c.token, "ada", "Developer").await;
    for _ in 0..3 {
        let (status, code, message) =
            api_error(c.anonymous().login("ada", "Not-Her-Password-1").await);
        assert_eq!((status, code.as_str()), (401, "login_failed"), "{message}");
        assert!(message.contains("wrong username or password"), "{message}");
    }
    // Even the right password waits now.
    let (status, code, message) = api_error(c.anonymous().login("ada", ADA_PASSWORD).await);
    assert_eq!(
        (status, code.as_str()),
        (429, "login_throttled"),
        "{message}"
    );
    assert!(
        message.contains("3 failed logins in a row for user \"ada\""),
        "{message}"
    );
    assert!(message.contains("try again in 1 s"), "{message}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.login("ada", ADA_PASSWORD).await;

    // An unknown user: the same answer as a wrong password.
    let (status, code, message) =
        api_error(c.anonymous().login("nobody", "Not-Her-Password-1").await);
    assert_eq!((status, code.as_str()), (401, "login_failed"), "{message}");

    // Per address: many usernames from one address are throttled too.
    let c = IdConsole::start(IdentityConfig::default(), None).await;
    for i in 0..10 {
        let (status, _, _) = api_error(
            c.anonymous()
                .login(&format!("guess{i}"), "Not-Her-Password-1")
                .await,
        );
        assert_eq!(status, 401);
    }
    let (status, code, message) = api_error(c.anonymous().login("guess99", "x").await);
    assert_eq!(
        (status, code.as_str()),
        (429, "login_throttled"),
        "{message}"
    );
    assert!(message.contains("address 127.0.0.1"), "{message}");

    // Without delays: ten failures in a row lock the user until unlocked.
    let c = IdConsole::start(fast(), None).await;
    c.add_user(&c.token, "ada", "Developer").await;
    for _ in 0..10 {
        let (status, _, _) = api_error(c.anonymous().login("ada", "Not-Her-Password-1").await);
        assert_eq!(status, 401);
    }
    // Locked: a wrong password still answers like any other (a lock tells
    // nobody that the name exists); the right one learns it is locked.
    let (status, code, message) = api_error(c.anonymous().login("ada", "Not-Her-Password-1").await);
    assert_eq!((status, code.as_str()), (401, "login_failed"), "{message}");
    let (status, code, message) = api_error(c.anonymous().login("ada", ADA_PASSWORD).await);
    assert_eq!((status, code.as_str()), (403, "user_locked"), "{message}");
    assert!(message.contains("runway user unlock ada"), "{message}");
    assert!(c.token.user("ada").await.unwrap().locked);
    let unlocked = c.token.user_action("ada", "unlock").await.unwrap();
    assert!(!unlocked.locked);
    c.login("ada", ADA_PASSWORD).await;
}

/// 30 wrong guesses at once get no more attempts than 30 in a row: the
/// throttle's check and record are one step. (Before, every parallel guess
/// passed the check before any was recorded, and all 30 were verified.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_guesses_get_no_more_attempts_than_the_limit() {
    let c = IdConsole::start(
        IdentityConfig {
            login_delay: Duration::from_secs(60),
            ..IdentityConfig::default()
        },
        None,
    )
    .await;
    c.add_user(&c.token, "ada", "Developer").await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..30 {
        let client = c.anonymous();
        attempts.spawn(async move { client.login("ada", &format!("Not-Her-Password-{i}")).await });
    }
    let mut verified = 0;
    let mut throttled = 0;
    while let Some(r) = attempts.join_next().await {
        let r = r.expect("the attempt's task ends");
        let (status, code, message) = api_error(r);
        match (status, code.as_str()) {
            (401, "login_failed") => verified += 1,
            (429, "login_throttled") => throttled += 1,
            other => panic!("unexpected answer {other:?}: {message}"),
        }
    }
    assert!(
        (1..=crate::users::USER_FREE_FAILURES).contains(&verified),
        "{verified} wrong passwords were checked, {throttled} throttled"
    );
    assert_eq!(verified + throttled, 30);
    // Exactly the checked ones are counted; the right password now waits.
    let store = c._server.console().store();
    let (failures, _) = store
        .login_failure_row(runway_store::console::users::FailureScope::User, "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failures, verified);
    let (status, code, message) = api_error(c.anonymous().login("ada", ADA_PASSWORD).await);
    if verified == crate::users::USER_FREE_FAILURES {
        assert_eq!(
            (status, code.as_str()),
            (429, "login_throttled"),
            "{message}"
        );
    }
    // Throttled attempts were given back to the address: it is not blocked.
    let (failures, _) = store
        .login_failure_row(
            runway_store::console::users::FailureScope::Address,
            "127.0.0.1",
        )
        .await
        .unwrap()
        .unwrap();
    assert!(failures <= verified + 1, "address failures {failures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_logout_password_change_and_expiry() {
    let c = IdConsole::start(fast(), None).await;
    c.add_user(&c.token, "ada", "Developer").await;

    // Logout; the token replayed afterwards is refused.
    let s = c.anonymous().login("ada", ADA_PASSWORD).await.unwrap();
    let ada = c.with(&s.token);
    ada.info().await.unwrap();
    ada.logout().await.unwrap();
    let (status, code, message) = api_error(ada.info().await);
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("has ended (logged out)"), "{message}");
    assert!(message.contains("runway login"), "{message}");
    let (status, _, _) = api_error(ada.logout().await);
    assert_eq!(status, 401);
    // A token that never was a session.
    let (status, _, message) = api_error(c.with(&format!("rws_{}", "0".repeat(64))).info().await);
    assert_eq!(status, 401);
    assert!(message.contains("no such session"), "{message}");
    // Tokens are not sessions.
    let (status, code, _) = api_error(c.token.logout().await);
    assert_eq!((status, code.as_str()), (400, "not_a_session"));

    // Log out everywhere.
    let one = c.login("ada", ADA_PASSWORD).await;
    let two = c.login("ada", ADA_PASSWORD).await;
    assert_eq!(one.logout_everywhere().await.unwrap().sessions_ended, 2);
    for s in [&one, &two] {
        let (status, _, message) = api_error(s.info().await);
        assert_eq!(status, 401);
        assert!(message.contains("logged out everywhere"), "{message}");
    }

    // A password change ends the user's other sessions, not the caller's.
    let one = c.login("ada", ADA_PASSWORD).await;
    let two = c.login("ada", ADA_PASSWORD).await;
    let (status, code, _) = api_error(
        one.change_password(
            "ada",
            &ChangePassword {
                current: Some("Not-Her-Password-1".into()),
                new: Some("Another-Lengthy-Passphrase-7".into()),
            },
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (403, "wrong_password"));
    let (status, code, _) = api_error(
        one.change_password(
            "ada",
            &ChangePassword {
                current: Some(ADA_PASSWORD.into()),
                new: Some("ada12345".into()),
            },
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "weak_password"));
    two.info().await.expect("nothing changed yet");
    let changed = one
        .change_password(
            "ada",
            &ChangePassword {
                current: Some(ADA_PASSWORD.into()),
                new: Some("Another-Lengthy-Passphrase-7".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.sessions_ended, 1);
    one.info().await.expect("the caller's session stays");
    let (status, _, message) = api_error(two.info().await);
    assert_eq!(status, 401);
    assert!(message.contains("password changed"), "{message}");
    let (status, _, _) = api_error(c.anonymous().login("ada", ADA_PASSWORD).await);
    assert_eq!(status, 401, "the old password no longer works");
    c.login("ada", "Another-Lengthy-Passphrase-7").await;
    // An administrator resets it: a generated one, every session ended.
    let reset = c
        .token
        .change_password(
            "ada",
            &ChangePassword {
                current: None,
                new: None,
            },
        )
        .await
        .unwrap();
    assert!(reset.sessions_ended >= 2);
    c.login("ada", &reset.password.expect("generated")).await;

    // Idle expiry.
    let c = IdConsole::start(
        IdentityConfig {
            session_idle: Duration::from_millis(800),
            ..fast()
        },
        None,
    )
    .await;
    c.add_user(&c.token, "ada", "Developer").await;
    let ada = c.login("ada", ADA_PASSWORD).await;
    ada.info().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, _, message) = api_error(ada.info().await);
    assert_eq!(status, 401);
    assert!(message.contains("without a request"), "{message}");

    // Absolute expiry, however busy the session.
    let c = IdConsole::start(
        IdentityConfig {
            session_absolute: Duration::from_millis(1500),
            ..fast()
        },
        None,
    )
    .await;
    c.add_user(&c.token, "ada", "Developer").await;
    let ada = c.login("ada", ADA_PASSWORD).await;
    for _ in 0..4 {
        ada.info().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, message) = api_error(ada.info().await);
    assert_eq!(status, 401);
    assert!(message.contains("sessions last at most"), "{message}");
}

/// The same on PostgreSQL, and a restart keeps users and sessions (the
/// first administrator is created once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_sessions_on_postgres_survive_a_restart() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.database = Some(db.url.clone());
        config.identity = fast();
        config
    };
    let server = ConsoleServer::start(config()).await.unwrap();
    let url = format!("http://{}", server.addr());
    let password = server.admin_password().unwrap().to_string();
    let admin = ConsoleClient::new(&url, None).unwrap();
    let s = admin.login("administrator", &password).await.unwrap();
    let admin = ConsoleClient::new(&url, Some(s.token.clone())).unwrap();
    admin
        .create_user(&CreateUser {
            name: "ada".into(),
            email: "ada@example.com".into(),
            role: "Operations".into(),
            display_name: "Ada".into(),
            password: Some(ADA_PASSWORD.into()),
        })
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, _, _) = api_error(
            ConsoleClient::new(&url, None)
                .unwrap()
                .login("ada", "Not-Her-Password-1")
                .await,
        );
        assert_eq!(status, 401);
    }
    server.shutdown(Duration::from_secs(5)).await.unwrap();

    let server = ConsoleServer::start(config()).await.unwrap();
    assert!(server.admin_password().is_none(), "created once");
    let url = format!("http://{}", server.addr());
    let admin = ConsoleClient::new(&url, Some(s.token)).unwrap();
    let ada = admin.user("ada").await.expect("the session survives");
    assert_eq!(
        (ada.role.as_str(), ada.state.as_str()),
        ("Operations", "active")
    );
    ConsoleClient::new(&url, None)
        .unwrap()
        .login("ada", ADA_PASSWORD)
        .await
        .unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}
