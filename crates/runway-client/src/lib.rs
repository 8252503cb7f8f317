//! `runway-client`: a typed HTTP client for a Runway environment's REST API
//! (`/_runway/api/v1/…`), used by the CLI and the end-to-end tests.
//!
//! Every method returns the `runway_api::v1` shape of the endpoint. Error
//! responses become [`ClientError::Api`], which keeps the body's stable `code`
//! and its human `message`; an unreachable environment becomes
//! [`ClientError::Connect`], naming the URL.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode};
use runway_api::ErrorBody;
use runway_api::v1::{
    AppDetail, AppSummary, ConfigPatch, CreateToken, DeployRequest, Deployment,
    DeploymentQueryParams, DeploymentRequest, DryRun, EnvironmentInfo, FrontendList, Health,
    JobList, JobQuery, JobView, LogEntry, LogQueryParams, PropertyView, PublishResult, TimerQuery,
    TimerRunRequested, TimerScheduleChange, TimerSettingsView, TimerStatus, TokenCreated,
    TokenInfo, VersionSummary,
};
use runway_api::v1::{
    EmailList, EmailQuery, EmailSettingsChange, EmailSettingsView, EmailTestRequest,
    EmailTestResult, EmailView,
};
use serde::de::DeserializeOwned;
use url::Url;

pub mod console;
mod console_identity;
mod console_plans;
mod trust;
mod zones;
pub use console::ConsoleClient;

/// Media type of a `.rwp` package upload.
pub const PACKAGE_CONTENT_TYPE: &str = "application/vnd.runway.package";
/// Size of the chunks a package is uploaded in (each one reports progress).
pub const UPLOAD_CHUNK: usize = 64 * 1024;
/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole request, except publishing.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a publish (upload, validation, compilation, deployment).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(300);

/// Called with `(bytes sent, total bytes)` while a package uploads.
pub type Progress = Box<dyn Fn(u64, u64) + Send + Sync>;

/// Why a call to the environment failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The environment answered with an error status; `code` and `message`
    /// come from its `{code, message, details}` body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No connection could be made (refused, DNS, TLS, connect timeout).
    /// `reason` is the innermost cause, e.g. "Connection refused (os error 111)".
    #[error("cannot reach the environment at {url}: {reason}; is `runway up` running?")]
    Connect { url: String, reason: String },
    /// No connection could be made to the infrastructure console.
    #[error(
        "cannot reach the console at {url}: {reason}; is `runway console serve` (or `runway up`) running?"
    )]
    ConsoleConnect { url: String, reason: String },
    /// The environment answered 2xx with a body that is not the expected shape.
    #[error("unexpected response from {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// Anything else: an invalid environment URL, a timeout, a broken connection.
    #[error("{message}")]
    Other {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ClientError {
    /// The HTTP status of an [`ClientError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable error code of an [`ClientError::Api`] error (`not_found`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    fn other(message: String) -> ClientError {
        ClientError::Other {
            message,
            source: None,
        }
    }
}

/// A client of one environment.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// `base` as shown to people: `http://host:port`, no trailing slash.
    base_str: String,
    token: Option<String>,
}

impl Client {
    /// `base_url` is the environment's root, `http(s)://host[:port]`, without a path.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = parse_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("runway-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Other {
                message: "cannot create the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        let base_str = base.as_str().trim_end_matches('/').to_owned();
        Ok(Client {
            http,
            base,
            base_str,
            token,
        })
    }

    /// The environment URL, `http://host:port` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_str
    }

    /// `GET /_runway/health`: the process is up.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let url = self.url(&["_runway", "health"]);
        self.get_json(url).await
    }

    /// `GET /_runway/ready`: the environment serves its committed table (503 otherwise).
    pub async fn ready(&self) -> Result<Health, ClientError> {
        let url = self.url(&["_runway", "ready"]);
        self.get_json(url).await
    }

    pub async fn environment(&self) -> Result<EnvironmentInfo, ClientError> {
        self.get_json(self.api(&["environment"])).await
    }

    /// Uploads a `.rwp` package; `deploy` also makes it the running version.
    /// Returns the result and whether the server created it (HTTP 201).
    pub async fn publish(
        &self,
        package: Vec<u8>,
        deploy: bool,
        progress: Option<Progress>,
    ) -> Result<(PublishResult, bool), ClientError> {
        let mut url = self.api(&["packages"]);
        url.query_pairs_mut()
            .append_pair("deploy", if deploy { "true" } else { "false" });
        let total = package.len() as u64;
        let body = upload_body(Bytes::from(package), progress);
        let req = self
            .request(Method::POST, url.clone())
            .timeout(PUBLISH_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, PACKAGE_CONTENT_TYPE)
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(body);
        let resp = self.send(req, &url).await?;
        let created = resp.status() == StatusCode::CREATED;
        let result = decode(resp, &url).await?;
        Ok((result, created))
    }

    pub async fn apps(&self) -> Result<Vec<AppSummary>, ClientError> {
        self.get_json(self.api(&["apps"])).await
    }

    pub async fn app(&self, name: &str) -> Result<AppDetail, ClientError> {
        self.get_json(self.api(&["apps", name])).await
    }

    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>, ClientError> {
        self.get_json(self.api(&["apps", name, "versions"])).await
    }

    /// Makes `version` the running version of `name`.
    pub async fn deploy(&self, name: &str, version: &str) -> Result<Deployment, ClientError> {
        self.deploy_with(name, version, false).await
    }

    /// [`Client::deploy`]; with `disable_failed_frontends`, front-ends that
    /// fail to stage are disabled instead of failing the deployment.
    pub async fn deploy_with(
        &self,
        name: &str,
        version: &str,
        disable_failed_frontends: bool,
    ) -> Result<Deployment, ClientError> {
        let url = self.api(&["apps", name, "deployments"]);
        let body = DeployRequest {
            version: version.to_owned(),
            disable_failed_frontends,
        };
        let req = self.request(Method::POST, url.clone()).json(&body);
        decode(self.send(req, &url).await?, &url).await
    }

    pub async fn delete_version(&self, name: &str, version: &str) -> Result<(), ClientError> {
        let url = self.api(&["apps", name, "versions", version]);
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    pub async fn config(&self, name: &str) -> Result<Vec<PropertyView>, ClientError> {
        self.get_json(self.api(&["apps", name, "config"])).await
    }

    /// Sets (`Some`) or unsets (`None`) properties; returns the resulting configuration.
    pub async fn set_config(
        &self,
        name: &str,
        patch: &ConfigPatch,
    ) -> Result<Vec<PropertyView>, ClientError> {
        let url = self.api(&["apps", name, "config"]);
        let req = self.request(Method::PATCH, url.clone()).json(patch);
        decode(self.send(req, &url).await?, &url).await
    }

    /// Un-marks a property that was secret in an earlier version (admin):
    /// its value is shown and stored in plaintext from then on.
    pub async fn unmark_secret(
        &self,
        name: &str,
        key: &str,
    ) -> Result<Vec<PropertyView>, ClientError> {
        let url = self.api(&["apps", name, "config", key, "unmark-secret"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// Recent deployments, newest first, optionally of one app.
    pub async fn deployments(
        &self,
        app: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Deployment>, ClientError> {
        let params = DeploymentQueryParams {
            app: app.map(str::to_owned),
            limit: limit.map(i64::from),
        };
        self.get_json(with_query(self.api(&["deployments"]), &params)?)
            .await
    }

    /// `GET /deployments/{id}`.
    pub async fn deployment(&self, id: i64) -> Result<Deployment, ClientError> {
        self.get_json(self.api(&["deployments", &id.to_string()]))
            .await
    }

    /// `POST /deployments`: validates like [`Client::dry_run`] (a problem is
    /// `409 deployment_conflict`), then runs the deployment to its end, or,
    /// with `prepare`, stages it and stops (`prepared`).
    pub async fn create_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> Result<Deployment, ClientError> {
        let url = self.api(&["deployments"]);
        let req = self
            .request(Method::POST, url.clone())
            .timeout(PUBLISH_TIMEOUT)
            .json(request);
        decode(self.send(req, &url).await?, &url).await
    }

    /// `POST /deployments/dry-run`: what would block `request`; changes nothing.
    pub async fn dry_run(&self, request: &DeploymentRequest) -> Result<DryRun, ClientError> {
        let url = self.api(&["deployments", "dry-run"]);
        let req = self.request(Method::POST, url.clone()).json(request);
        decode(self.send(req, &url).await?, &url).await
    }

    /// `POST /deployments/{id}/commit`: switches a prepared deployment.
    pub async fn commit_deployment(&self, id: i64) -> Result<Deployment, ClientError> {
        let url = self.api(&["deployments", &id.to_string(), "commit"]);
        let req = self
            .request(Method::POST, url.clone())
            .timeout(PUBLISH_TIMEOUT);
        decode(self.send(req, &url).await?, &url).await
    }

    /// `POST /deployments/{id}/abort`: drops a prepared deployment; the
    /// environment serves exactly what it served before.
    pub async fn abort_deployment(&self, id: i64) -> Result<Deployment, ClientError> {
        let url = self.api(&["deployments", &id.to_string(), "abort"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// `DELETE /apps/{app}/deployment`: removes `app` from the routing table
    /// (its versions, data and properties stay).
    pub async fn undeploy(&self, app: &str) -> Result<Deployment, ClientError> {
        let url = self.api(&["apps", app, "deployment"]);
        let req = self
            .request(Method::DELETE, url.clone())
            .timeout(PUBLISH_TIMEOUT);
        decode(self.send(req, &url).await?, &url).await
    }

    /// `GET /packages/{digest}`: the exact `.rwp` bytes that were published.
    pub async fn package(&self, digest: &str) -> Result<Bytes, ClientError> {
        let url = self.api(&["packages", digest]);
        let req = self
            .request(Method::GET, url.clone())
            .timeout(PUBLISH_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/octet-stream");
        let resp = self.send(req, &url).await?;
        resp.bytes().await.map_err(|e| ClientError::Other {
            message: format!("reading the package from {} failed", without_query(&url)),
            source: Some(Box::new(e)),
        })
    }

    /// `HEAD /packages/{digest}`: whether the environment holds that package.
    pub async fn has_package(&self, digest: &str) -> Result<bool, ClientError> {
        let url = self.api(&["packages", digest]);
        let req = self.request(Method::HEAD, url.clone());
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(e, &url))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            // A HEAD answer has no body: the status is all there is.
            s => Err(api_error(s, b"")),
        }
    }

    /// `PUT /packages/{digest}`: imports a package published elsewhere. The
    /// environment refuses bytes whose digest is not `digest`
    /// (`400 digest_mismatch`); it never deploys.
    pub async fn import_package(
        &self,
        digest: &str,
        package: Bytes,
    ) -> Result<PublishResult, ClientError> {
        let url = self.api(&["packages", digest]);
        let total = package.len() as u64;
        let req = self
            .request(Method::PUT, url.clone())
            .timeout(PUBLISH_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, PACKAGE_CONTENT_TYPE)
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(upload_body(package, None));
        decode(self.send(req, &url).await?, &url).await
    }

    pub async fn logs(&self, params: &LogQueryParams) -> Result<Vec<LogEntry>, ClientError> {
        self.get_json(with_query(self.api(&["logs"]), params)?)
            .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.get_json(self.api(&["tokens"])).await
    }

    /// Creates a token; the response is the only time its secret is shown.
    pub async fn create_token(&self, req: &CreateToken) -> Result<TokenCreated, ClientError> {
        let url = self.api(&["tokens"]);
        let r = self.request(Method::POST, url.clone()).json(req);
        decode(self.send(r, &url).await?, &url).await
    }

    /// Revokes a token by id or by name.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<(), ClientError> {
        let url = self.api(&["tokens", id_or_name]);
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    /// Revokes the token this client authenticates with (its holder gives it
    /// back; the last admin token is refused).
    pub async fn revoke_own_token(&self) -> Result<(), ClientError> {
        let url = self.api(&["token"]);
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    pub async fn frontends(&self) -> Result<FrontendList, ClientError> {
        self.get_json(self.api(&["frontends"])).await
    }

    /// Enables (`true`) or disables a front-end: a disabled one is drained by
    /// balancers and skipped by deployments.
    pub async fn set_frontend_enabled(&self, name: &str, enabled: bool) -> Result<(), ClientError> {
        let action = if enabled { "enable" } else { "disable" };
        let url = self.api(&["frontends", name, action]);
        let req = self.request(Method::POST, url.clone());
        self.send(req, &url).await.map(drop)
    }

    /// Forgets an offline front-end.
    pub async fn remove_frontend(&self, name: &str) -> Result<(), ClientError> {
        let url = self.api(&["frontends", name]);
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    // --- timers ---------------------------------------------------------------

    /// The timers of running apps (of `app` only, if given).
    pub async fn timers(&self, app: Option<&str>) -> Result<Vec<TimerStatus>, ClientError> {
        let query = TimerQuery {
            app: app.map(str::to_string),
        };
        self.get_json(with_query(self.api(&["timers"]), &query)?)
            .await
    }

    /// Asks for one run of a timer now ("Run Now").
    pub async fn run_timer(
        &self,
        app: &str,
        timer: &str,
    ) -> Result<TimerRunRequested, ClientError> {
        let url = self.api(&["timers", app, timer, "run"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// Sets this environment's schedule of a timer (see [`TimerScheduleChange`]).
    pub async fn schedule_timer(
        &self,
        app: &str,
        timer: &str,
        change: &TimerScheduleChange,
    ) -> Result<TimerStatus, ClientError> {
        let url = self.api(&["timers", app, timer, "schedule"]);
        let req = self.request(Method::PUT, url.clone()).json(change);
        decode(self.send(req, &url).await?, &url).await
    }

    /// The environment's time zone for timer schedules.
    pub async fn timer_settings(&self) -> Result<TimerSettingsView, ClientError> {
        self.get_json(self.api(&["timer-settings"])).await
    }

    /// Sets the environment's time zone for timer schedules.
    pub async fn set_timer_settings(
        &self,
        settings: &TimerSettingsView,
    ) -> Result<TimerSettingsView, ClientError> {
        let url = self.api(&["timer-settings"]);
        let req = self.request(Method::PUT, url.clone()).json(settings);
        decode(self.send(req, &url).await?, &url).await
    }

    /// Background jobs, newest first (see [`JobQuery`]), and the apps whose
    /// waiting jobs stay queued because they are not deployed.
    pub async fn jobs(&self, query: &JobQuery) -> Result<JobList, ClientError> {
        self.get_json(with_query(self.api(&["jobs"]), query)?).await
    }

    /// One background job.
    pub async fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.get_json(self.api(&["jobs", id])).await
    }

    /// Queues a failed or cancelled job again (its attempts start over).
    pub async fn retry_job(&self, id: &str) -> Result<JobView, ClientError> {
        let url = self.api(&["jobs", id, "retry"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// Cancels a job that waits (queued or retrying).
    pub async fn cancel_job(&self, id: &str) -> Result<JobView, ClientError> {
        let url = self.api(&["jobs", id, "cancel"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// The environment's SMTP settings (never the password).
    pub async fn email_settings(&self) -> Result<EmailSettingsView, ClientError> {
        self.get_json(self.api(&["email", "settings"])).await
    }

    /// Replaces the environment's SMTP settings.
    pub async fn set_email_settings(
        &self,
        change: &EmailSettingsChange,
    ) -> Result<EmailSettingsView, ClientError> {
        let url = self.api(&["email", "settings"]);
        let req = self.request(Method::PUT, url.clone()).json(change);
        decode(self.send(req, &url).await?, &url).await
    }

    /// Sends a test message to `to` now, with the stored settings.
    pub async fn test_email(&self, to: &str) -> Result<EmailTestResult, ClientError> {
        let url = self.api(&["email", "test"]);
        let req = self
            .request(Method::POST, url.clone())
            .json(&EmailTestRequest { to: to.to_string() });
        decode(self.send(req, &url).await?, &url).await
    }

    /// Emails, newest first (see [`EmailQuery`]).
    pub async fn emails(&self, query: &EmailQuery) -> Result<EmailList, ClientError> {
        self.get_json(with_query(self.api(&["email"]), query)?)
            .await
    }

    /// One email.
    pub async fn email(&self, id: &str) -> Result<EmailView, ClientError> {
        self.get_json(self.api(&["email", id])).await
    }

    /// Queues a copy of a sent or failed email; returns the copy.
    pub async fn resend_email(&self, id: &str) -> Result<EmailView, ClientError> {
        let url = self.api(&["email", id, "resend"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    // --- plumbing -------------------------------------------------------------

    /// The base URL with `segments` as its path, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL can have path segments")
            .clear()
            .extend(segments);
        url
    }

    /// A URL under `/_runway/api/v1/`.
    fn api(&self, segments: &[&str]) -> Url {
        let mut all = vec!["_runway", "api", "v1"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self
            .http
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        let req = self.request(Method::GET, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// Sends `req`; non-2xx statuses become [`ClientError::Api`].
    async fn send(&self, req: RequestBuilder, url: &Url) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e, url))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    fn transport_error(&self, e: reqwest::Error, url: &Url) -> ClientError {
        if e.is_connect() {
            return ClientError::Connect {
                url: self.base_str.clone(),
                reason: root_cause(&e),
            };
        }
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        ClientError::Other {
            message: format!("request to {} {what}", without_query(url)),
            source: Some(Box::new(e)),
        }
    }
}

/// Checks and normalises an environment URL: `http(s)://host[:port]`, nothing else.
fn parse_base_url(s: &str) -> Result<Url, ClientError> {
    let bad = |why: &str| {
        ClientError::other(format!(
            "invalid environment URL {s:?}: {why}; expected http://host:port"
        ))
    };
    let url = Url::parse(s.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(&format!("unsupported scheme {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not supported (use a token)",
        ));
    }
    if url.path() != "/" {
        return Err(bad(&format!("it has a path ({})", url.path())));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    Ok(url)
}

/// The package body, in [`UPLOAD_CHUNK`]-sized pieces; `progress` is told as
/// each piece is handed to the connection.
fn upload_body(bytes: Bytes, progress: Option<Progress>) -> reqwest::Body {
    let total = bytes.len() as u64;
    let chunks = (0..bytes.len()).step_by(UPLOAD_CHUNK).map(move |start| {
        let end = (start + UPLOAD_CHUNK).min(bytes.len());
        if let Some(p) = &progress {
            p(end as u64, total);
        }
        Ok::<Bytes, std::io::Error>(bytes.slice(start..end))
    });
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response, url: &Url) -> Result<T, ClientError> {
    let body = resp.bytes().await.map_err(|e| ClientError::Other {
        message: format!("reading the response from {} failed", without_query(url)),
        source: Some(Box::new(e)),
    })?;
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        url: without_query(url),
        source,
    })
}

/// Turns an error response into [`ClientError::Api`]; bodies that are not an
/// [`ErrorBody`] (a proxy's HTML page, a bare 503) still give a useful message.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return ClientError::Api {
            status: status.as_u16(),
            code: e.code,
            message: e.message,
        };
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() || text.starts_with('<') {
        format!("the environment answered {reason}")
    } else {
        let mut t: String = text.chars().take(200).collect();
        if t.len() < text.len() {
            t.push('…');
        }
        format!("the environment answered {reason}: {t}")
    };
    ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// `url` with `params` as its query string, encoded by serde from the wire
/// type itself (so no field can be forgotten).
pub(crate) fn with_query<Q: serde::Serialize>(
    mut url: Url,
    params: &Q,
) -> Result<Url, ClientError> {
    let query = serde_urlencoded::to_string(params).map_err(|e| ClientError::Other {
        message: format!("cannot encode the query of {}", without_query(&url)),
        source: Some(Box::new(e)),
    })?;
    url.set_query((!query.is_empty()).then_some(query.as_str()));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_validation() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "https://runway.example.com",
        ] {
            let c = Client::new(ok, None).unwrap();
            assert!(!c.base_url().ends_with('/'), "{ok}");
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://host",
            "http://host:8080/api",
            "http://host?x=1",
            "",
            "http://user:pw@host",
        ] {
            let e = Client::new(bad, None).unwrap_err().to_string();
            assert!(e.starts_with("invalid environment URL"), "{bad}: {e}");
            assert!(e.ends_with("expected http://host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(
            c.api(&["apps", "a/b c", "versions", "1.0.0+x"]).as_str(),
            "http://h:1/_runway/api/v1/apps/a%2Fb%20c/versions/1.0.0+x"
        );
        assert_eq!(c.url(&["_runway", "health"]).path(), "/_runway/health");
    }

    #[test]
    fn api_errors_keep_code_and_message() {
        let body = br#"{"code":"not_found","message":"no app named \"x\""}"#;
        let e = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(e.to_string(), "no app named \"x\" (not_found, HTTP 404)");
        assert_eq!(e.code(), Some("not_found"));
        let e = api_error(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(
            e.to_string(),
            "the environment answered Service Unavailable (service_unavailable, HTTP 503)"
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>oops</html>");
        assert_eq!(e.status(), Some(502));
        assert!(!e.to_string().contains("html"));
    }

    #[tokio::test]
    async fn upload_body_reports_progress_per_chunk() {
        use futures::StreamExt;
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let data = Bytes::from(vec![7u8; UPLOAD_CHUNK * 2 + 10]);
        let progress: Progress =
            Box::new(move |sent, total| s2.lock().unwrap().push((sent, total)));
        let body = upload_body(data.clone(), Some(progress));
        let mut stream = http_body_util_stream(body);
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
        let total = data.len() as u64;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (UPLOAD_CHUNK as u64, total),
                (2 * UPLOAD_CHUNK as u64, total),
                (total, total)
            ]
        );
    }

    fn http_body_util_stream(
        body: reqwest::Body,
    ) -> impl futures::Stream<Item = Result<Bytes, reqwest::Error>> {
        // reqwest 0.12 has no public stream accessor on Body; go through a
        // Response built from an http::Response, which exposes bytes_stream().
        let resp = reqwest::Response::from(http::Response::new(body));
        resp.bytes_stream()
    }

    #[tokio::test]
    async fn unreachable_environment_is_a_connect_error() {
        let c = Client::new("http://127.0.0.1:1", Some("t".into())).unwrap();
        let e = c.apps().await.unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("cannot reach the environment at http://127.0.0.1:1: "),
            "{msg}"
        );
        assert!(msg.ends_with("is `runway up` running?"), "{msg}");
    }
}
