//! Custom roles, teams and a user's role on a real console over real
//! sockets (issue 9): management by administrators, bad input, what a
//! principal's grants are once loaded from the catalog, and privilege
//! escalation refused. (The CLI's side is in runway-cli's `tests/it/identity.rs`.)

use std::time::Duration;

use runway_api::console::identity::{CreateRole, CreateTeam, CreateUser, RoleLevel, TeamMember};
use runway_client::{ClientError, ConsoleClient};
use runway_store::testing::TestDatabase;

use crate::access::{EnvClass, EnvRef, Level, effective_level};
use crate::users::IdentityConfig;
use crate::{ConsoleConfig, ConsoleServer};

const PASSWORD: &str = "Tangerine-Viaduct-Osprey-42";

struct RolesConsole {
    server: ConsoleServer,
    _dir: tempfile::TempDir,
    url: String,
    /// The admin token's client.
    admin: ConsoleClient,
}

impl RolesConsole {
    async fn start(database: Option<String>) -> RolesConsole {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
        config.identity = IdentityConfig {
            login_delay: Duration::ZERO,
            ..IdentityConfig::default()
        };
        config.database = database;
        let server = ConsoleServer::start(config).await.expect("console starts");
        let url = format!("http://{}", server.addr());
        let admin = ConsoleClient::new(&url, server.admin_token().map(str::to_string)).unwrap();
        RolesConsole {
            server,
            _dir: dir,
            url,
            admin,
        }
    }

    async fn add_user(&self, name: &str, role: &str) {
        self.admin
            .create_user(&CreateUser {
                name: name.into(),
                email: format!("{name}@example.com"),
                role: role.into(),
                display_name: String::new(),
                password: Some(PASSWORD.into()),
            })
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    async fn login(&self, user: &str) -> ConsoleClient {
        let s = ConsoleClient::new(&self.url, None)
            .unwrap()
            .login(user, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        ConsoleClient::new(&self.url, Some(s.token)).unwrap()
    }

    /// The grants of a principal as the console loads them for a request.
    async fn grants(&self, name: &str) -> crate::access::Grants {
        let console = self.server.console();
        let user = console.store().user(name).await.unwrap().unwrap();
        crate::roles::grants_for(console, &user.principal, Some(&user))
            .await
            .unwrap()
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

fn level(scope: &str, level: &str) -> RoleLevel {
    RoleLevel {
        scope: scope.into(),
        level: level.into(),
    }
}

fn role(name: &str, levels: Vec<RoleLevel>, manage_users: bool) -> CreateRole {
    CreateRole {
        name: name.into(),
        levels,
        manage_infrastructure: false,
        manage_users,
    }
}

fn member(name: &str, role: &str) -> TeamMember {
    TeamMember {
        member: name.into(),
        role: role.into(),
    }
}

async fn roles_and_teams(c: &RolesConsole) {
    let admin = &c.admin;
    // The built-in roles, as the access model defines them.
    let roles = admin.roles().await.unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["Administrator", "Developer", "Tester", "Operations"]
    );
    assert!(roles.iter().all(|r| r.built_in));
    assert_eq!(roles[0].levels, [level("*", "full-control")]);
    assert!(roles[0].manage_infrastructure && roles[0].manage_users);

    // A custom role: entries come back most specific first.
    let ops = admin
        .create_role(&CreateRole {
            name: "Ops".into(),
            levels: vec![
                level("*", "monitor"),
                level("@prod", "no-access"),
                level("prod", "Full Control"),
            ],
            manage_infrastructure: true,
            manage_users: false,
        })
        .await
        .unwrap();
    assert_eq!(
        ops.levels,
        [
            level("prod", "full-control"),
            level("@prod", "no-access"),
            level("*", "monitor")
        ]
    );
    assert!(!ops.built_in && ops.manage_infrastructure && !ops.manage_users);
    assert_eq!(admin.role("OPS").await.unwrap(), ops);

    // Bad roles: each refused, precisely, and nothing created.
    let bad: [(CreateRole, u16, &str, &str); 7] = [
        (
            role("ops", vec![], false),
            409,
            "conflict",
            "exists already",
        ),
        (
            role("developer", vec![], false),
            409,
            "conflict",
            "built-in role Developer",
        ),
        (
            role("1ops", vec![], false),
            400,
            "invalid_name",
            "starting with a letter",
        ),
        (
            role("Bad", vec![level("prod", "admin")], false),
            400,
            "invalid_level",
            "unknown level \"admin\"",
        ),
        (
            role("Bad", vec![level("@staging", "monitor")], false),
            400,
            "invalid_level",
            "use @dev, @test or @prod",
        ),
        (
            role("Bad", vec![level("Prod", "monitor")], false),
            400,
            "invalid_level",
            "environment name \"Prod\" is not valid",
        ),
        (
            role(
                "Bad",
                vec![level("*", "monitor"), level("*", "full-control")],
                false,
            ),
            400,
            "invalid_level",
            "* is given two levels",
        ),
    ];
    for (req, status, code, needle) in bad {
        let (s, k, message) = api_error(admin.create_role(&req).await);
        assert_eq!((s, k.as_str()), (status, code), "{}: {message}", req.name);
        assert!(message.contains(needle), "{}: {message}", req.name);
    }
    assert_eq!(admin.roles().await.unwrap().len(), 5);
    let (s, _, message) = api_error(admin.delete_role("developer").await);
    assert_eq!(s, 409, "{message}");
    assert!(
        message.contains("built-in roles cannot be deleted"),
        "{message}"
    );
    let (s, _, message) = api_error(admin.role("Janitor").await);
    assert_eq!(s, 404, "{message}");

    // A user's role: set, refused when unknown, and a held role stays.
    c.add_user("ada", "Developer").await;
    assert_eq!(admin.set_user_role("ada", "ops").await.unwrap().role, "Ops");
    let (s, code, message) = api_error(admin.set_user_role("ada", "Janitor").await);
    assert_eq!((s, code.as_str()), (400, "invalid_role"), "{message}");
    assert!(
        message.contains("Administrator, Developer, Tester, Operations, Ops"),
        "{message}"
    );
    let (s, _, message) = api_error(admin.delete_role("Ops").await);
    assert_eq!(s, 409, "{message}");
    assert!(message.contains("held by user ada"), "{message}");
    assert_eq!(admin.user("ada").await.unwrap().role, "Ops");
    admin.set_user_role("ada", "Developer").await.unwrap();

    // Teams.
    let team = admin
        .create_team(&CreateTeam {
            name: "payments".into(),
            apps: vec!["notes".into(), "billing".into()],
            members: vec![member("ada", "Operations")],
        })
        .await
        .unwrap();
    assert_eq!(team.apps, ["billing", "notes"]);
    assert_eq!(
        (
            team.members[0].member.as_str(),
            team.members[0].kind.as_str(),
            team.members[0].role.as_str()
        ),
        ("ada", "user", "Operations")
    );
    assert_eq!(team.created_by.as_deref(), Some("admin"));
    let bad_teams = [
        (vec![], vec![], "payments", 409, "exists already"),
        (
            vec!["Bad App".to_string()],
            vec![],
            "t2",
            400,
            "app \"Bad App\"",
        ),
        (
            vec![],
            vec![member("zed", "Developer")],
            "t2",
            400,
            "no active user or service account \"zed\"",
        ),
        (
            vec![],
            vec![member("ada", "Janitor")],
            "t2",
            400,
            "no role \"Janitor\"",
        ),
        (
            vec![],
            vec![member("ada", "Tester"), member("ada", "Developer")],
            "t2",
            400,
            "listed twice",
        ),
        (vec![], vec![], "Payments", 400, "not valid"),
    ];
    for (apps, members, name, status, needle) in bad_teams {
        let (s, _, message) = api_error(
            admin
                .create_team(&CreateTeam {
                    name: name.into(),
                    apps,
                    members,
                })
                .await,
        );
        assert_eq!(s, status, "{message}");
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(admin.teams().await.unwrap().len(), 1);

    // The team's role raises ada's level on its apps only, as loaded from the catalog.
    let prod = EnvRef {
        name: "prod",
        class: EnvClass::Prod,
    };
    let grants = c.grants("ada").await;
    assert_eq!(grants.role.name, "Developer");
    assert_eq!(
        effective_level(&grants, Some("billing"), &prod),
        Level::ChangeAndDeploy
    );
    assert_eq!(
        effective_level(&grants, Some("ledger"), &prod),
        Level::Monitor
    );
    let team = admin.add_team_app("payments", "ledger").await.unwrap();
    assert_eq!(team.apps, ["billing", "ledger", "notes"]);
    assert_eq!(
        effective_level(&c.grants("ada").await, Some("ledger"), &prod),
        Level::ChangeAndDeploy
    );
    admin.remove_team_app("payments", "ledger").await.unwrap();
    let (s, _, message) = api_error(admin.remove_team_app("payments", "ledger").await);
    assert_eq!(s, 404, "{message}");
    assert!(message.contains("its apps: billing, notes"), "{message}");
    // A custom team role counts too.
    let team = admin
        .set_team_member("payments", &member("ada", "Ops"))
        .await
        .unwrap();
    assert_eq!(team.members[0].role, "Ops");
    assert_eq!(
        effective_level(&c.grants("ada").await, Some("billing"), &prod),
        Level::FullControl
    );
    let (s, _, message) = api_error(admin.delete_role("Ops").await);
    assert_eq!(s, 409, "{message}");
    assert!(message.contains("user ada in team payments"), "{message}");

    // Ada sees the roles and her own teams, and manages nothing.
    let ada = c.login("ada").await;
    assert_eq!(ada.roles().await.unwrap().len(), 5);
    assert_eq!(ada.teams().await.unwrap().len(), 1);
    let (s, _, message) = api_error(ada.create_role(&role("Mine", vec![], false)).await);
    assert_eq!(s, 403, "{message}");
    assert!(
        message.contains("user 'ada' (role Developer) cannot"),
        "{message}"
    );
    let (s, _, _) = api_error(ada.set_user_role("ada", "Administrator").await);
    assert_eq!(s, 403);
    let (s, _, _) = api_error(ada.delete_team("payments").await);
    assert_eq!(s, 403);

    admin.remove_team_member("payments", "ada").await.unwrap();
    let (s, _, message) = api_error(admin.remove_team_member("payments", "ada").await);
    assert_eq!(s, 404, "{message}");
    assert!(ada.teams().await.unwrap().is_empty());
    let (s, _, _) = api_error(ada.team("payments").await);
    assert_eq!(s, 404, "a team one is not in is not shown");
    assert_eq!(
        effective_level(&c.grants("ada").await, Some("billing"), &prod),
        Level::Monitor
    );
    admin.delete_role("ops").await.unwrap();
    assert_eq!(api_error(admin.role("Ops").await).0, 404);
    admin.delete_team("payments").await.unwrap();
    assert!(admin.teams().await.unwrap().is_empty());

    // The API documents the new endpoints.
    let doc = serde_json::to_value(crate::openapi::document()).unwrap();
    for path in [
        "/_runway/console/v1/roles",
        "/_runway/console/v1/roles/{role}",
        "/_runway/console/v1/users/{user}/role",
        "/_runway/console/v1/teams/{team}/members/{member}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_teams_on_sqlite() {
    let c = RolesConsole::start(None).await;
    roles_and_teams(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_teams_on_postgres() {
    let db = TestDatabase::create().await;
    let c = RolesConsole::start(Some(db.url.clone())).await;
    roles_and_teams(&c).await;
}

/// A user who may manage users but holds only monitor everywhere cannot
/// hand out more than that, nor change its own role or team role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granting_cannot_escalate() {
    let c = RolesConsole::start(None).await;
    c.admin
        .create_role(&role("Helpdesk", vec![level("*", "monitor")], true))
        .await
        .unwrap();
    c.admin
        .create_role(&role("Viewer", vec![level("*", "monitor")], false))
        .await
        .unwrap();
    c.add_user("mallory", "Helpdesk").await;
    // Within mallory's rights, so only the grants below are refused.
    c.add_user("ada", "Viewer").await;
    c.admin
        .create_team(&CreateTeam {
            name: "payments".into(),
            apps: vec!["billing".into()],
            members: vec![member("mallory", "Helpdesk"), member("ada", "Developer")],
        })
        .await
        .unwrap();
    let mallory = c.login("mallory").await;

    let refusals = [
        (
            mallory.set_user_role("mallory", "Administrator").await,
            "you cannot change your own role",
        ),
        (
            mallory.set_user_role("ada", "Administrator").await,
            "you cannot give role Administrator to user 'ada': role Administrator includes \
             managing infrastructure, a right you do not have",
        ),
        (
            mallory.set_user_role("ada", "Operations").await,
            "role Operations gives change & deploy on environment (any new @prod environment), \
             above your own monitor",
        ),
    ];
    for (result, needle) in refusals {
        let (s, code, message) = api_error(result);
        assert_eq!((s, code.as_str()), (403, "forbidden"), "{message}");
        assert!(message.contains(needle), "{message}");
    }
    // A role naming an environment the console does not know yet is judged
    // for every class that environment could have.
    c.admin
        .create_role(&role(
            "Prodish",
            vec![level("eu", "change-and-deploy")],
            false,
        ))
        .await
        .unwrap();
    let (s, _, message) = api_error(mallory.set_user_role("ada", "Prodish").await);
    assert_eq!(s, 403, "{message}");
    assert!(message.contains("on environment eu"), "{message}");
    let (s, _, message) = api_error(
        mallory
            .create_user(&CreateUser {
                name: "carol".into(),
                email: "carol@example.com".into(),
                role: "Developer".into(),
                display_name: String::new(),
                password: None,
            })
            .await,
    );
    assert_eq!(s, 403, "{message}");
    assert!(message.contains("to new user 'carol'"), "{message}");
    // Teams: its own team role, a member above it, an app that would raise one.
    let (s, _, message) = api_error(
        mallory
            .set_team_member("payments", &member("mallory", "Administrator"))
            .await,
    );
    assert_eq!(s, 403, "{message}");
    assert!(message.contains("your own team role"), "{message}");
    let (s, _, message) = api_error(
        mallory
            .create_team(&CreateTeam {
                name: "mine".into(),
                apps: vec![],
                members: vec![member("ada", "Developer")],
            })
            .await,
    );
    assert_eq!(s, 403, "{message}");
    assert!(
        message.contains("role Developer gives change & deploy"),
        "{message}"
    );
    let (s, _, message) = api_error(mallory.add_team_app("payments", "ledger").await);
    assert_eq!(s, 403, "{message}");
    assert!(
        message.contains("ada (through app ledger of team payments)"),
        "{message}"
    );

    // Nothing changed.
    assert_eq!(c.admin.user("ada").await.unwrap().role, "Viewer");
    assert_eq!(c.admin.user("mallory").await.unwrap().role, "Helpdesk");
    assert_eq!(api_error(c.admin.user("carol").await).0, 404);
    let team = c.admin.team("payments").await.unwrap();
    assert_eq!(team.apps, ["billing"]);
    assert_eq!(
        team.members
            .iter()
            .map(|m| format!("{}={}", m.member, m.role))
            .collect::<Vec<_>>(),
        ["ada=Developer", "mallory=Helpdesk"]
    );
    assert_eq!(c.admin.teams().await.unwrap().len(), 1);

    // What is within its own rights, it may hand out.
    assert_eq!(
        mallory.set_user_role("ada", "Helpdesk").await.unwrap().role,
        "Helpdesk"
    );
}

fn console_token(c: &RolesConsole, token: &str) -> ConsoleClient {
    ConsoleClient::new(&c.url, Some(token.to_string())).unwrap()
}

/// Service accounts are bound to a role; rotation keeps the old token for
/// its grace period only; revocation refuses every token; nobody hands an
/// account more than they have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_have_roles_rotate_and_revoke() {
    use runway_api::console::CreateServiceAccount;
    let c = RolesConsole::start(None).await;
    c.admin
        .create_role(&role(
            "Deployer",
            vec![level("*", "change-and-deploy")],
            false,
        ))
        .await
        .unwrap();
    let created = c
        .admin
        .create_service_account(&CreateServiceAccount {
            name: "ci".into(),
            description: String::new(),
            role: Some("deployer".into()),
        })
        .await
        .unwrap();
    let first = console_token(&c, &created.token);
    assert_eq!(
        first.info().await.unwrap().principal.kind,
        "service_account"
    );
    // Its role grants no right to manage users.
    let (s, _, message) = api_error(first.users().await);
    assert_eq!(s, 403, "{message}");
    assert!(
        message.contains("service account 'ci' (role Deployer) cannot"),
        "{message}"
    );
    let accounts = c.admin.service_accounts().await.unwrap();
    assert_eq!(accounts[0].role, "Deployer");
    assert!(
        accounts[0].tokens[0].last_used_at_ms.is_some(),
        "last use is recorded"
    );

    // Rotation without grace: the old token is refused at once.
    let second = c.admin.rotate_account_tokens("ci", 0).await.unwrap();
    let (s, _, message) = api_error(first.info().await);
    assert_eq!(s, 401, "{message}");
    assert!(message.contains("replaced by a rotation"), "{message}");
    let second = console_token(&c, &second.token);
    second.info().await.unwrap();
    // With a grace period: accepted until it ends, refused after.
    let third = c.admin.rotate_account_tokens("ci", 1).await.unwrap();
    second.info().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, message) = api_error(second.info().await);
    assert_eq!(s, 401, "{message}");
    assert!(message.contains("grace period ended"), "{message}");
    let third = console_token(&c, &third.token);
    third.info().await.unwrap();
    let (s, _, message) = api_error(c.admin.rotate_account_tokens("ci", 8 * 24 * 3600).await);
    assert_eq!(s, 400, "{message}");
    assert!(message.contains("at most 604800 s"), "{message}");

    // A role for the account, not above the granter's; never its own.
    c.admin
        .create_role(&role("Helpdesk", vec![level("*", "monitor")], true))
        .await
        .unwrap();
    c.add_user("mallory", "Helpdesk").await;
    let mallory = c.login("mallory").await;
    // Without a role: refused, naming the built-in roles and the flag.
    let (s, code, message) = api_error(
        c.admin
            .create_service_account(&CreateServiceAccount {
                name: "norole".into(),
                description: String::new(),
                role: None,
            })
            .await,
    );
    assert_eq!((s, code.as_str()), (400, "role_required"), "{message}");
    for needle in [
        "--role ROLE",
        "Administrator, Developer, Tester, Operations",
        "'norole' needs a role",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    for asked in [Some("Developer"), Some("Deployer")] {
        let (s, _, message) = api_error(
            mallory
                .create_service_account(&CreateServiceAccount {
                    name: "sneaky".into(),
                    description: String::new(),
                    role: asked.map(str::to_string),
                })
                .await,
        );
        assert_eq!(s, 403, "{asked:?}: {message}");
        assert!(
            message.contains("to new service account 'sneaky'"),
            "{message}"
        );
    }
    let (s, _, message) = api_error(mallory.set_account_role("ci", "Administrator").await);
    assert_eq!(s, 403, "{message}");
    let helper = mallory
        .create_service_account(&CreateServiceAccount {
            name: "helper".into(),
            description: String::new(),
            role: Some("Helpdesk".into()),
        })
        .await
        .unwrap();
    let helper = console_token(&c, &helper.token);
    let (s, _, message) = api_error(helper.set_account_role("helper", "Administrator").await);
    assert_eq!(s, 403, "{message}");
    assert!(message.contains("your own role"), "{message}");
    let (s, code, message) = api_error(c.admin.set_account_role("ci", "Janitor").await);
    assert_eq!((s, code.as_str()), (400, "invalid_role"), "{message}");
    assert_eq!(
        c.admin.set_account_role("ci", "Tester").await.unwrap().role,
        "Tester"
    );
    // Nothing else changed.
    let names: Vec<String> = c
        .admin
        .service_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{}={}", a.name, a.role))
        .collect();
    assert_eq!(names, ["ci=Tester", "helper=Helpdesk"]);

    // Revocation: every token of the account is refused.
    c.admin.disable_service_account("ci").await.unwrap();
    let (s, _, message) = api_error(third.info().await);
    assert_eq!(s, 401, "{message}");
    assert!(message.contains("revoked"), "{message}");
}

/// The permission table through the one enforcement point: role × team ×
/// environment × action, with the grants loaded from the catalog and the
/// environment classes from the pipeline (dev → test → prod; lab outside
/// it). Every refusal is an audit row naming the environment and app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_table_through_require() {
    use runway_store::console::audit::AuditFilter;
    use runway_store::console::environments::NewEnvironment;
    use runway_store::console::users::NewUser;

    use crate::auth::{Caller, Need, require};

    let c = RolesConsole::start(None).await;
    let console = c.server.console();
    let store = console.store();
    store.create_pipeline("main", "", None).await.unwrap();
    for (i, name) in ["dev", "test", "prod", "lab"].into_iter().enumerate() {
        store
            .add_environment(&NewEnvironment {
                id: runway_store::console::new_key(),
                name: name.into(),
                address: format!("http://127.0.0.1:{}", 9 + i),
                pipeline: (name != "lab").then(|| ("main".to_string(), i as i64 + 1)),
                allow_insecure: false,
                two_step: false,
                credential: "rwt_stand-in".into(),
                credential_name: "console:test".into(),
                created_by: None,
            })
            .await
            .unwrap();
    }
    let mut users = Vec::new();
    for role in ["Administrator", "Developer", "Tester", "Operations"] {
        for in_team in [false, true] {
            // Not "administrator": the first administrator has that name.
            let name = format!(
                "{}-{}",
                role.to_lowercase(),
                if in_team { "t" } else { "n" }
            );
            let user = store
                .create_user(
                    &NewUser {
                        name: &name,
                        display_name: "",
                        email: "x@example.com",
                        role,
                        password_hash: "$argon2id$stand-in",
                    },
                    None,
                )
                .await
                .unwrap();
            users.push((role, in_team, user));
        }
    }
    // payments: billing, its members Operations there.
    let members: Vec<(String, String)> = users
        .iter()
        .filter(|(_, in_team, _)| *in_team)
        .map(|(_, _, u)| (u.principal.id.clone(), "Operations".to_string()))
        .collect();
    store
        .create_team("payments", &["billing".to_string()], &members, None)
        .await
        .unwrap();

    // (action, what it needs)
    type NeedOf = fn(&'static str, &'static str) -> Need<'static>;
    let actions: [(&str, NeedOf); 4] = [
        ("read", |env, app| Need::Level {
            env,
            app: Some(app),
            level: Level::Monitor,
        }),
        ("deploy", |env, app| Need::Level {
            env,
            app: Some(app),
            level: Level::ChangeAndDeploy,
        }),
        ("settings", |env, _| Need::Level {
            env,
            app: None,
            level: Level::FullControl,
        }),
        ("infrastructure", |_, _| Need::ManageInfrastructure),
    ];
    // (role, in team, app, env) → [read, deploy, settings, infrastructure]
    let table: &[(&str, bool, &str, &str, [bool; 4])] = &[
        (
            "Administrator",
            false,
            "notes",
            "prod",
            [true, true, true, true],
        ),
        (
            "Administrator",
            false,
            "notes",
            "lab",
            [true, true, true, true],
        ),
        (
            "Developer",
            false,
            "notes",
            "dev",
            [true, true, false, false],
        ),
        (
            "Developer",
            false,
            "notes",
            "test",
            [true, false, false, false],
        ),
        (
            "Developer",
            false,
            "notes",
            "prod",
            [true, false, false, false],
        ),
        (
            "Developer",
            false,
            "notes",
            "lab",
            [true, false, false, false],
        ),
        (
            "Developer",
            true,
            "billing",
            "prod",
            [true, true, false, false],
        ),
        (
            "Developer",
            true,
            "notes",
            "prod",
            [true, false, false, false],
        ),
        ("Tester", false, "notes", "dev", [true, false, false, false]),
        ("Tester", false, "notes", "test", [true, true, false, false]),
        (
            "Tester",
            false,
            "notes",
            "prod",
            [false, false, false, false],
        ),
        (
            "Tester",
            false,
            "notes",
            "lab",
            [false, false, false, false],
        ),
        (
            "Tester",
            true,
            "billing",
            "prod",
            [true, true, false, false],
        ),
        (
            "Tester",
            true,
            "notes",
            "prod",
            [false, false, false, false],
        ),
        (
            "Operations",
            false,
            "notes",
            "dev",
            [true, false, false, false],
        ),
        (
            "Operations",
            false,
            "notes",
            "test",
            [true, false, false, false],
        ),
        (
            "Operations",
            false,
            "notes",
            "prod",
            [true, true, false, false],
        ),
        (
            "Operations",
            true,
            "billing",
            "prod",
            [true, true, false, false],
        ),
    ];
    let mut refusals = 0;
    for (role, in_team, app, env, want) in table {
        let (_, _, user) = users
            .iter()
            .find(|(r, t, _)| r == role && t == in_team)
            .unwrap();
        let caller = Caller {
            principal: user.principal.clone(),
            token: None,
            session: None,
            user: Some(user.clone()),
            grants: crate::roles::grants_for(console, &user.principal, Some(user))
                .await
                .unwrap(),
            address: "127.0.0.1".into(),
            audit: None,
        };
        for ((action, need), allowed) in actions.iter().zip(want) {
            let got = require(console, &caller, action, need(env, app)).await;
            assert_eq!(
                got.is_ok(),
                *allowed,
                "{role} (team: {in_team}) {action} {app} in {env}: {got:?}"
            );
            if let Err(e) = got {
                refusals += 1;
                assert!(e.message.contains(&user.principal.name), "{}", e.message);
            }
        }
    }
    // The levels on one environment, for credentials the console issues
    // there: the role's, and the apps its teams raise.
    let principal = |name: &str| {
        users
            .iter()
            .find(|(_, _, u)| u.principal.name == name)
            .map(|(_, _, u)| u.principal.clone())
            .unwrap()
    };
    let (own, apps) = crate::auth::env_levels(console, &principal("developer-t"), "prod")
        .await
        .unwrap();
    assert_eq!(own, Level::Monitor);
    assert_eq!(
        apps.into_iter().collect::<Vec<_>>(),
        [("billing".to_string(), Level::ChangeAndDeploy)]
    );
    let (own, apps) = crate::auth::env_levels(console, &principal("tester-n"), "prod")
        .await
        .unwrap();
    assert_eq!((own, apps.len()), (Level::NoAccess, 0));
    let (own, _) = crate::auth::env_levels(console, &principal("tester-n"), "test")
        .await
        .unwrap();
    assert_eq!(own, Level::ChangeAndDeploy);

    // Every refusal is an audit row, with the environment and app of a level.
    let rows = store
        .audit(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let refused: Vec<_> = rows.iter().filter(|r| r.outcome == "refused").collect();
    assert_eq!(refused.len(), refusals, "{rows:#?}");
    assert!(refused.iter().any(|r| r.principal_name == "tester-n"
        && r.action == "deploy"
        && r.environment.as_deref() == Some("prod")
        && r.app.as_deref() == Some("notes")
        && r.status == 403));
}

/// What one who may manage users does to another principal.
#[derive(Debug, Clone, Copy)]
enum OnTarget {
    Disable,
    Enable,
    Unlock,
    SetRole,
    TeamRole,
    RemoveFromTeam,
    ResetPassword,
    AddToken,
    RevokeToken,
    Rotate,
    Revoke,
}

async fn act_on(
    by: &ConsoleClient,
    action: OnTarget,
    target: &str,
    token_id: i64,
) -> Result<(), ClientError> {
    use runway_api::console::identity::ChangePassword;
    match action {
        OnTarget::Disable => by.user_action(target, "disable").await.map(drop),
        OnTarget::Enable => by.user_action(target, "enable").await.map(drop),
        OnTarget::Unlock => by.user_action(target, "unlock").await.map(drop),
        OnTarget::SetRole if target.starts_with("ci-") => {
            by.set_account_role(target, "Viewer").await.map(drop)
        }
        OnTarget::SetRole => by.set_user_role(target, "Viewer").await.map(drop),
        OnTarget::TeamRole => by
            .set_team_member("payments", &member(target, "Viewer"))
            .await
            .map(drop),
        OnTarget::RemoveFromTeam => by.remove_team_member("payments", target).await.map(drop),
        OnTarget::ResetPassword => by
            .change_password(
                target,
                &ChangePassword {
                    current: None,
                    new: None,
                },
            )
            .await
            .map(drop),
        OnTarget::AddToken => by.create_account_token(target, "extra").await.map(drop),
        OnTarget::RevokeToken => by.revoke_account_token(target, token_id).await,
        OnTarget::Rotate => by.rotate_account_tokens(target, 0).await.map(drop),
        OnTarget::Revoke => by.disable_service_account(target).await,
    }
}

/// One who may manage users acts on a user or service account only if its
/// own rights cover the target's (every environment level and both rights):
/// the table of target × action. A refusal is 403 naming the target's role
/// and what is missing, has an audit row, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_a_more_powerful_account_is_refused() {
    use OnTarget::*;
    use runway_api::console::CreateServiceAccount;
    use runway_store::console::audit::AuditFilter;

    let c = RolesConsole::start(None).await;
    c.admin
        .create_role(&role("Helpdesk", vec![level("*", "monitor")], true))
        .await
        .unwrap();
    c.admin
        .create_role(&role("Viewer", vec![level("*", "monitor")], false))
        .await
        .unwrap();
    c.add_user("hd", "Helpdesk").await;
    let users = [
        ("root", "Administrator", false),
        ("dev", "Developer", false),
        ("view", "Viewer", true),
        ("peer", "Helpdesk", true),
    ];
    for (name, role, _) in users {
        c.add_user(name, role).await;
    }
    let mut accounts = Vec::new();
    for (name, role, covered) in [
        ("ci-admin", "Administrator", false),
        ("ci-view", "Viewer", true),
    ] {
        let created = c
            .admin
            .create_service_account(&CreateServiceAccount {
                name: name.into(),
                description: String::new(),
                role: Some(role.into()),
            })
            .await
            .unwrap();
        accounts.push((name, role, covered, created.info.id, created.token));
    }
    c.admin
        .create_team(&CreateTeam {
            name: "payments".into(),
            apps: vec!["billing".into()],
            members: users
                .iter()
                .map(|(name, _, _)| member(name, "Viewer"))
                .collect(),
        })
        .await
        .unwrap();
    let hd = c.login("hd").await;

    let user_actions = [
        Disable,
        Enable,
        Unlock,
        SetRole,
        TeamRole,
        ResetPassword,
        RemoveFromTeam,
    ];
    let account_actions = [SetRole, AddToken, RevokeToken, Rotate, Revoke];
    let mut table: Vec<(&str, &str, bool, OnTarget, i64)> = Vec::new();
    for (name, role, covered) in users {
        for a in user_actions {
            table.push((name, role, covered, a, 0));
        }
    }
    for (name, role, covered, token_id, _) in &accounts {
        for a in account_actions {
            table.push((*name, *role, *covered, a, *token_id));
        }
    }
    let mut refusals = 0;
    for (target, target_role, covered, action, token_id) in &table {
        let got = act_on(&hd, *action, target, *token_id).await;
        if *covered {
            got.unwrap_or_else(|e| panic!("{action:?} on {target} ({target_role}): {e}"));
            continue;
        }
        refusals += 1;
        let (s, code, message) = api_error(got);
        assert_eq!(
            (s, code.as_str()),
            (403, "forbidden"),
            "{action:?} on {target}: {message}"
        );
        for needle in [
            "user 'hd' (role Helpdesk) cannot".to_string(),
            format!("'{target}', whose role is {target_role}"),
            "only someone whose own rights cover the target's".to_string(),
        ] {
            assert!(message.contains(&needle), "{action:?}: {needle}: {message}");
        }
        let missing = if *target_role == "Administrator" {
            "a right you do not have"
        } else {
            "change & deploy on environment (any new @dev environment), above your own monitor"
        };
        assert!(message.contains(missing), "{action:?}: {message}");
    }
    assert!(refusals > 0);

    // Every refusal is an audit row of hd's, naming the target.
    let rows = c
        .server
        .console()
        .store()
        .audit(&AuditFilter {
            principal: Some("hd".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let refused: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome == "refused" && r.status == 403)
        .collect();
    assert_eq!(refused.len(), refusals, "{rows:#?}");
    for target in ["root", "dev", "ci-admin"] {
        assert!(
            refused
                .iter()
                .any(|r| r.reason.contains(&format!("'{target}', whose role is"))),
            "{target}: {refused:#?}"
        );
    }

    // Nothing changed for the targets hd does not cover.
    for name in ["root", "dev"] {
        let u = c.admin.user(name).await.unwrap();
        assert!(u.state == "active" && !u.locked, "{u:?}");
        c.login(name).await;
    }
    assert_eq!(c.admin.user("root").await.unwrap().role, "Administrator");
    assert_eq!(c.admin.user("dev").await.unwrap().role, "Developer");
    let team = c.admin.team("payments").await.unwrap();
    for name in ["root", "dev"] {
        assert!(team.members.iter().any(|m| m.member == name), "{team:?}");
    }
    let all = c.admin.service_accounts().await.unwrap();
    let ci_admin = all.iter().find(|a| a.name == "ci-admin").unwrap();
    assert_eq!(ci_admin.role, "Administrator");
    assert_eq!(ci_admin.tokens.len(), 1, "{ci_admin:?}");
    assert!(ci_admin.tokens[0].revoked_at_ms.is_none());
    assert!(ci_admin.tokens[0].expires_at_ms.is_none());
    console_token(&c, &accounts[0].4).info().await.unwrap();
    // And everything happened to the ones it covers.
    assert_eq!(c.admin.user("view").await.unwrap().role, "Viewer");
    assert!(
        !c.admin
            .team("payments")
            .await
            .unwrap()
            .members
            .iter()
            .any(|m| m.member == "view" || m.member == "peer")
    );
    let (s, _, _) = api_error(console_token(&c, &accounts[1].4).info().await);
    assert_eq!(s, 401);
}
