//! The infrastructure console in a browser (issue 11, the LifeTime pages):
//! a real console and real standalone environments over real sockets, a
//! real headless Chromium for the flows a user clicks through, and plain
//! HTTP (reqwest, no JavaScript) for what the server must refuse.

use std::collections::BTreeMap;
use std::time::Duration;

use fantoccini::Locator;
use runway_api::console::identity::{CreateRole, CreateUser, RoleLevel};
use runway_api::console::{AddEnvironment, CreatePipeline};
use runway_client::ConsoleClient;
use runway_console::users::IdentityConfig;
use runway_console::{ConsoleConfig, ConsoleServer};

use crate::browser::{wait_css, wait_text, with_browser};
use crate::support::{TestEnv, package};

/// A console with dev → test → prod in pipeline `main` (hello 0.1.0 runs
/// in dev), polled once.
struct Infra {
    server: ConsoleServer,
    url: String,
    admin: ConsoleClient,
    admin_password: String,
    _envs: Vec<TestEnv>,
    _dir: tempfile::TempDir,
}

async fn start_console() -> (ConsoleServer, tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::new(dir.path().join("console"), "127.0.0.1:0".parse().unwrap());
    config.poll_interval = Duration::from_secs(3600);
    config.identity = IdentityConfig {
        login_delay: Duration::ZERO,
        ..IdentityConfig::default()
    };
    let server = ConsoleServer::start(config).await.expect("console starts");
    let url = format!("http://{}", server.addr());
    let password = server.admin_password().unwrap().to_string();
    (server, dir, url, password)
}

impl Infra {
    async fn start() -> Infra {
        let (server, dir, url, admin_password) = start_console().await;
        let session = ConsoleClient::new(&url, None)
            .unwrap()
            .login("administrator", &admin_password)
            .await
            .expect("the administrator logs in");
        let admin = ConsoleClient::new(&url, Some(session.token)).unwrap();
        admin
            .create_pipeline(&CreatePipeline {
                name: "main".into(),
                description: String::new(),
            })
            .await
            .unwrap();
        let envs = vec![
            TestEnv::start().await,
            TestEnv::start().await,
            TestEnv::start().await,
        ];
        envs[0].publish(&package("examples/hello")).await;
        for (i, name) in ["dev", "test", "prod"].into_iter().enumerate() {
            admin
                .add_environment(&AddEnvironment {
                    name: name.into(),
                    address: envs[i].url.clone(),
                    token: envs[i].token.clone(),
                    pipeline: Some("main".into()),
                    order: Some(i as i64 + 1),
                    allow_insecure: false,
                    two_step: false,
                })
                .await
                .unwrap_or_else(|e| panic!("add {name}: {e}"));
        }
        let infra = Infra {
            server,
            url,
            admin,
            admin_password,
            _envs: envs,
            _dir: dir,
        };
        infra.poll().await;
        infra
    }

    async fn poll(&self) {
        let console = self.server.console();
        for env in self.admin.environments().await.unwrap() {
            let _ = console.poll_once(&env.key).await;
        }
    }

    /// A user with a custom role that may look at prod but not deploy there.
    async fn tester(&self) -> (String, String) {
        let level = |scope: &str, level: &str| RoleLevel {
            scope: scope.into(),
            level: level.into(),
        };
        self.admin
            .create_role(&CreateRole {
                name: "QA".into(),
                levels: vec![
                    level("@dev", "monitor"),
                    level("@test", "change-and-deploy"),
                    level("@prod", "monitor"),
                ],
                manage_infrastructure: false,
                manage_users: false,
            })
            .await
            .unwrap();
        let password = "Quartz-Lantern-Meadow-71".to_string();
        self.admin
            .create_user(&CreateUser {
                name: "tess".into(),
                email: "tess@example.com".into(),
                role: "QA".into(),
                display_name: "<script>alert('tess')</script>".into(),
                password: Some(password.clone()),
            })
            .await
            .unwrap();
        ("tess".into(), password)
    }
}

/// A browser-less client of the pages: keeps its cookies, follows no
/// redirect (tests look at them).
struct Web {
    url: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden `_csrf` input.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="_csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body));
        let rest = &self.body[at + r#"name="_csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Web {
    fn new(url: &str) -> Web {
        Web {
            url: url.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.url));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.url)).form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.send(request).await
    }

    /// Signs in through the form; returns the answer to the POST.
    async fn login(&mut self, user: &str, password: &str, next: &str) -> Answer {
        let page = self.get(&format!("/login?next={next}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post(
            "/login",
            &[
                ("_csrf", &csrf),
                ("user", user),
                ("password", password),
                ("next", next),
            ],
            None,
        )
        .await
    }
}

/// Waits until a plan in the console's API leaves the states under way.
async fn plans_of(admin: &ConsoleClient) -> usize {
    admin.plans(None).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_manager_promotes_an_app_with_the_wizard_in_a_browser() {
    let infra = Infra::start().await;
    let url = infra.url.clone();
    let password = infra.admin_password.clone();
    let admin = infra.admin.clone();
    let console = infra.server.console().clone();
    with_browser("web_console_promote", |b| async move {
        b.goto(&format!("{url}/applications")).await.unwrap();
        // Not signed in: the sign-in form, which brings us back.
        wait_css(&b, "form[action='/login']").await;
        assert!(
            b.current_url()
                .await
                .unwrap()
                .as_str()
                .contains("next=%2Fapplications")
        );
        b.find(Locator::Css("#user"))
            .await
            .unwrap()
            .send_keys("administrator")
            .await
            .unwrap();
        b.find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(&password)
            .await
            .unwrap();
        b.find(Locator::Css("form[action='/login'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_css(&b, "#matrix").await;
        let row = b
            .find(Locator::XPath(
                "//table[@id='matrix']//tr[th/a[text()='hello']]",
            ))
            .await
            .expect("hello is in the matrix");
        let dev = row
            .find(Locator::Css("td[data-env='dev']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let test = row
            .find(Locator::Css("td[data-env='test']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(dev.contains("0.1.0"), "dev shows {dev:?}");
        assert!(!test.contains("0.1.0"), "test shows {test:?}");
        assert!(test.contains('≠'), "test differs from dev: {test:?}");

        // Infrastructure: a Deploy… link from dev to test.
        b.goto(&format!("{url}/")).await.unwrap();
        wait_css(&b, ".pipeline").await;
        b.find(Locator::Css("a[href='/deploy?source=dev&target=test']"))
            .await
            .expect("a Deploy… link between dev and test")
            .click()
            .await
            .unwrap();
        wait_css(&b, "#wizard-apps").await;
        b.find(Locator::Css("#app-hello"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.find(Locator::Css("#notes"))
            .await
            .unwrap()
            .send_keys("promote hello")
            .await
            .unwrap();
        b.find(Locator::Css("button[value='start']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The progress page polls until the plan is over.
        wait_css(&b, "#live").await;
        wait_text(&b, "finished successfully", 60).await;
        wait_text(&b, "succeeded", 5).await;

        // Two-step, test → prod: the page follows the plan by itself. It
        // waits prepared; the plan is continued elsewhere (the API), and the
        // open page shows the end without a reload (htmx polls the fragment).
        for env in admin.environments().await.unwrap() {
            let _ = console.poll_once(&env.key).await;
        }
        b.goto(&format!("{url}/deploy?source=test&target=prod"))
            .await
            .unwrap();
        wait_css(&b, "#wizard-apps").await;
        b.find(Locator::Css("#app-hello"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.find(Locator::Css("input[name='mode'][value='prepare']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.find(Locator::Css("button[value='start']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&b, "prepared: waiting for continue or abort", 60).await;
        wait_css(&b, "form[action$='/continue'] button").await;
        let key = b
            .current_url()
            .await
            .unwrap()
            .path()
            .trim_start_matches("/plans/")
            .to_string();
        let marker = "the page was not reloaded";
        b.execute(
            "document.body.setAttribute('data-marker', arguments[0]);",
            vec![serde_json::json!(marker)],
        )
        .await
        .unwrap();
        admin
            .continue_plan(&key)
            .await
            .expect("continue through the API");
        wait_text(&b, "finished successfully", 60).await;
        let still = b
            .execute("return document.body.getAttribute('data-marker');", vec![])
            .await
            .unwrap();
        assert_eq!(
            still,
            serde_json::json!(marker),
            "the fragment was polled, not the page reloaded"
        );
    })
    .await;
    infra.poll().await;
    // The matrix shows the new version in test (read over plain HTTP: the
    // page is complete without JavaScript).
    let mut web = Web::new(&infra.url);
    let answer = web
        .login("administrator", &infra.admin_password, "/applications")
        .await;
    assert_eq!(answer.status, 303);
    let matrix = web.get("/applications").await;
    let row_start = matrix.body.find(">hello</a>").expect("hello row");
    let row = &matrix.body[row_start..row_start + matrix.body[row_start..].find("</tr>").unwrap()];
    assert!(
        row.matches("0.1.0").count() >= 2,
        "hello 0.1.0 runs in dev and test now: {row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tester_gets_no_prod_deploy_and_the_server_refuses_one() {
    let infra = Infra::start().await;
    let (user, password) = infra.tester().await;
    let mut web = Web::new(&infra.url);
    assert_eq!(web.login(&user, &password, "/").await.status, 303);
    let home = web.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("prod"), "prod is visible to a monitor");
    assert!(
        home.body.contains("/deploy?source=dev&amp;target=test"),
        "dev → test is offered: {}",
        home.body
    );
    assert!(
        !home.body.contains("target=prod"),
        "no deploy action to prod is offered"
    );
    let wizard = web.get("/deploy?source=test&target=prod").await;
    let targets = wizard.body[wizard.body.find(r#"id="target""#).expect("a target choice")..]
        .split("</select>")
        .next()
        .unwrap();
    assert!(targets.contains(r#"value="test""#), "{targets}");
    assert!(
        !targets.contains(r#"value="prod""#),
        "prod is no target: {targets}"
    );
    assert!(
        !wizard.body.contains("wizard-apps"),
        "no app table for prod"
    );
    // The escaped display name in the header.
    assert!(
        home.body
            .contains("&lt;script&gt;alert('tess')&lt;/script&gt;")
    );
    assert!(!home.body.contains("<script>alert('tess')"));
    // A direct POST of the wizard's form, with a valid session and token.
    let csrf = home.csrf();
    let refused = web
        .post(
            "/deploy",
            &[
                ("_csrf", &csrf),
                ("source", "dev"),
                ("target", "prod"),
                ("app", "hello"),
                ("version:hello", "0.1.0"),
                ("mode", "now"),
                ("action", "start"),
            ],
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("cannot create a deployment plan")
            && refused.body.contains("change &amp; deploy"),
        "{}",
        refused.body
    );
    assert_eq!(plans_of(&infra.admin).await, 0, "no plan was made");
    // The security pages are not offered, and refused.
    assert!(!home.body.contains("/security/users"));
    assert_eq!(web.get("/security/users").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forms_without_this_sessions_csrf_token_or_from_another_site_are_refused() {
    let infra = Infra::start().await;
    let mut web = Web::new(&infra.url);
    assert_eq!(
        web.login("administrator", &infra.admin_password, "/")
            .await
            .status,
        303
    );
    let mut other = Web::new(&infra.url);
    assert_eq!(
        other
            .login("administrator", &infra.admin_password, "/")
            .await
            .status,
        303
    );
    let others_token = other.get("/").await.csrf();
    let mine = web.get("/").await.csrf();
    assert_ne!(mine, others_token, "tokens are bound to their session");
    let form = |token: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("_csrf", token),
            ("source", "dev"),
            ("target", "test"),
            ("app", "hello"),
            ("version:hello", "0.1.0"),
            ("mode", "now"),
            ("action", "start"),
        ]
    };
    let without: Vec<_> = form("")
        .into_iter()
        .filter(|(k, _)| *k != "_csrf")
        .collect();
    let r = web.post("/deploy", &without, None).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("has no `_csrf` token"), "{}", r.body);
    let others: &'static str = Box::leak(others_token.into_boxed_str());
    let r = web.post("/deploy", &form(others), None).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("does not belong to your session"),
        "{}",
        r.body
    );
    let mine: &'static str = Box::leak(mine.into_boxed_str());
    let r = web
        .post("/deploy", &form(mine), Some("http://evil.example"))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("another site"), "{}", r.body);
    // Sign-out without the token does not end the session.
    assert_eq!(web.post("/logout", &[], None).await.status, 403);
    assert_eq!(web.get("/").await.status, 200, "still signed in");
    assert_eq!(plans_of(&infra.admin).await, 0, "nothing was changed");
    // The refusals are in the audit log.
    let audit = web.get("/security/audit?outcome=refused").await;
    assert!(audit.body.contains("page form refused"), "{}", audit.body);
    // With the token, the same form works; sign-out with it ends the session.
    let r = web.post("/deploy", &form(mine), None).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(plans_of(&infra.admin).await, 1);
    assert_eq!(
        web.post("/logout", &[("_csrf", mine)], None).await.status,
        303
    );
    let after = web.get("/").await;
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/login?next=%2F"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_carry_security_headers_escape_values_and_read_without_javascript() {
    let infra = Infra::start().await;
    infra.tester().await;
    let mut web = Web::new(&infra.url);
    let login = web
        .login("administrator", &infra.admin_password, "//evil.example")
        .await;
    assert_eq!(login.status, 303);
    assert_eq!(
        login.location(),
        "/",
        "next=//evil.example stays on the console"
    );
    let cookie = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("runway_console=rws_"))
        .expect("the session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{cookie} has no Max-Age"));
    assert!(
        (43_000..=43_200).contains(&max_age),
        "Max-Age is the session's 12 h: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure");
    let page = web.get("/security/users").await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.headers.contains_key("server-timing"));
    assert!(
        page.body
            .contains("&lt;script&gt;alert('tess')&lt;/script&gt;")
    );
    assert!(
        !page.body.contains("<script>alert"),
        "a value is never markup"
    );
    // Without JavaScript: the app page has the data.
    let app = web.get("/applications/hello").await;
    assert_eq!(app.status, 200, "{}", app.body);
    assert!(app.body.contains("0.1.0") && app.body.contains("Dependencies"));
    // Over HTTPS (a proxy says so), the cookie is Secure.
    let mut tls = Web::new(&infra.url);
    let page = tls.get("/login").await;
    let csrf = page.csrf();
    let request = tls
        .http
        .post(format!("{}/login", infra.url))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("_csrf", csrf.as_str()),
            ("user", "administrator"),
            ("password", infra.admin_password.as_str()),
            ("next", "/"),
        ]);
    let answer = tls.send(request).await;
    assert_eq!(answer.status, 303);
    assert!(
        answer.headers.get_all("set-cookie").iter().any(|c| c
            .to_str()
            .unwrap()
            .starts_with("runway_console=rws_")
            && c.to_str().unwrap().contains("Secure"))
    );
    // A wrong password is told without saying which part was wrong.
    let mut bad = Web::new(&infra.url);
    let r = bad
        .login("administrator", "not-the-password-at-all", "/")
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("wrong username or password"), "{}", r.body);
    // The JSON API and its JSON 404 are unchanged.
    let api = reqwest::get(format!("{}/_runway/console/v1/nope", infra.url))
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// Speed: 100 apps × 4 environments in the console's catalog, as the
/// poller records them; the matrix and an app page are rendered and their
/// server time printed (`Server-Timing`). Asserted only in release builds
/// (a debug build is several times slower).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_matrix_and_an_app_page_render_fast_with_100_apps_in_4_environments() {
    use runway_api::v1::{AppStatus, FrontendState};
    use runway_store::console::apps::{ObservedApp, Poll};
    use runway_store::console::environments::{FrontendSnapshot, NewEnvironment};

    let (server, _dir, url, password) = start_console().await;
    let store = server.console().store().clone();
    let pipeline = store.create_pipeline("main", "", None).await.unwrap();
    for (i, name) in ["dev", "test", "uat", "prod"].into_iter().enumerate() {
        let env = store
            .add_environment(&NewEnvironment {
                id: runway_store::console::new_key(),
                name: name.into(),
                // Nothing listens there: the app page's live questions fail
                // at once, as an unreachable environment's would.
                address: "http://127.0.0.1:9".into(),
                pipeline: Some((pipeline.name.clone(), i as i64 + 1)),
                allow_insecure: false,
                two_step: false,
                credential: "rwt_seeded".into(),
                credential_name: "console:seeded".into(),
                created_by: None,
            })
            .await
            .unwrap();
        let apps = (0..100)
            .map(|n| ObservedApp {
                name: format!("app-{n:03}"),
                description: None,
                version: Some(format!("1.{}.0", (n + i) % 3)),
                digest: Some(format!("sha256:{:064x}", n * 10 + (n + i) % 3)),
                status: AppStatus::Running,
                deployed_at_ms: Some(runway_store::now_ms()),
            })
            .collect();
        store
            .record_poll(
                &env.id,
                &Poll {
                    runway_version: "test".into(),
                    environment_name: name.into(),
                    generation: 7,
                    frontends: vec![FrontendSnapshot {
                        name: "fe-1".into(),
                        address: "127.0.0.1:1".into(),
                        state: FrontendState::Ready,
                        generation: 7,
                        enabled: true,
                    }],
                    apps,
                },
            )
            .await
            .unwrap();
    }
    let mut web = Web::new(&url);
    assert_eq!(web.login("administrator", &password, "/").await.status, 303);
    let timing = |a: &Answer| -> f64 {
        a.headers["server-timing"]
            .to_str()
            .unwrap()
            .trim_start_matches("page;dur=")
            .parse()
            .unwrap()
    };
    let mut worst = BTreeMap::new();
    for path in ["/applications", "/applications/app-042", "/", "/plans"] {
        // The first request warms the catalog's connections; the best of
        // five is the server's time for the page.
        let mut best = f64::MAX;
        for _ in 0..5 {
            let answer = web.get(path).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            best = best.min(timing(&answer));
            if path == "/applications" {
                assert_eq!(
                    answer.body.matches("<tr").count(),
                    101,
                    "100 apps and a header"
                );
            }
        }
        println!("{path}: {best:.1} ms server time (100 apps × 4 environments)");
        worst.insert(path, best);
    }
    if !cfg!(debug_assertions) {
        for (path, ms) in &worst {
            assert!(*ms <= 100.0, "{path} took {ms:.1} ms (> 100 ms)");
        }
    }
}
