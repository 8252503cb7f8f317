//! A typed client of the infrastructure console's API
//! (`/_runway/console/v1/…`), used by the CLI and the tests. Errors are the
//! same [`ClientError`] as the environment client's; an unreachable console
//! is [`ClientError::ConsoleConnect`].

use reqwest::{Method, RequestBuilder};
use runway_api::console::{
    AccountTokenCreated, AddEnvironment, ApplicationView, ConsoleInfo, CreateAccountToken,
    CreatePipeline, CreateServiceAccount, EnvironmentDetail, EnvironmentView, PipelineView,
    RemoveEnvironment, ServiceAccount, SetEnvironmentPipeline, TagVersion, VersionView,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    CONNECT_TIMEOUT, ClientError, REQUEST_TIMEOUT, api_error, decode, parse_base_url, root_cause,
    with_query, without_query,
};

/// A client of one console.
#[derive(Debug, Clone)]
pub struct ConsoleClient {
    http: reqwest::Client,
    base: Url,
    base_str: String,
    token: Option<String>,
}

impl ConsoleClient {
    /// `base_url` is the console's root, `http(s)://host[:port]`.
    pub fn new(base_url: &str, token: Option<String>) -> Result<ConsoleClient, ClientError> {
        let base = parse_base_url(base_url).map_err(|e| match e {
            ClientError::Other { message, source } => ClientError::Other {
                message: message.replace("environment URL", "console URL"),
                source,
            },
            other => other,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("runway-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Other {
                message: "cannot create the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        let base_str = base.as_str().trim_end_matches('/').to_owned();
        Ok(ConsoleClient {
            http,
            base,
            base_str,
            token,
        })
    }

    /// The console URL, `http://host:port` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_str
    }

    /// The console and the caller (checks the token).
    pub async fn info(&self) -> Result<ConsoleInfo, ClientError> {
        self.get(&["console"]).await
    }

    pub async fn service_accounts(&self) -> Result<Vec<ServiceAccount>, ClientError> {
        self.get(&["service-accounts"]).await
    }

    /// Creates a service account and its first token (shown once).
    pub async fn create_service_account(
        &self,
        req: &CreateServiceAccount,
    ) -> Result<AccountTokenCreated, ClientError> {
        self.send_json(Method::POST, &["service-accounts"], req)
            .await
    }

    /// Adds a token to a service account (shown once).
    pub async fn create_account_token(
        &self,
        account: &str,
        name: &str,
    ) -> Result<AccountTokenCreated, ClientError> {
        let req = CreateAccountToken {
            name: name.to_string(),
        };
        self.send_json(Method::POST, &["service-accounts", account, "tokens"], &req)
            .await
    }

    pub async fn revoke_account_token(&self, account: &str, id: i64) -> Result<(), ClientError> {
        self.send_empty(
            Method::DELETE,
            &["service-accounts", account, "tokens", &id.to_string()],
        )
        .await
    }

    /// Disables a service account and revokes all its tokens.
    pub async fn disable_service_account(&self, account: &str) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &["service-accounts", account])
            .await
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentView>, ClientError> {
        self.get(&["environments"]).await
    }

    pub async fn environment(&self, name_or_key: &str) -> Result<EnvironmentDetail, ClientError> {
        self.get(&["environments", name_or_key]).await
    }

    pub async fn add_environment(
        &self,
        req: &AddEnvironment,
    ) -> Result<EnvironmentView, ClientError> {
        self.send_json(Method::POST, &["environments"], req).await
    }

    /// Removes an environment; the console first revokes the credential it
    /// holds there (`force`: remove it even when that cannot be done).
    pub async fn remove_environment(
        &self,
        name_or_key: &str,
        query: &RemoveEnvironment,
    ) -> Result<(), ClientError> {
        let url = with_query(self.api(&["environments", name_or_key]), query)?;
        let req = self.request(Method::DELETE, url.clone());
        self.send(req, &url).await.map(drop)
    }

    pub async fn set_environment_pipeline(
        &self,
        name_or_key: &str,
        req: &SetEnvironmentPipeline,
    ) -> Result<EnvironmentView, ClientError> {
        self.send_json(Method::PUT, &["environments", name_or_key, "pipeline"], req)
            .await
    }

    pub async fn pipelines(&self) -> Result<Vec<PipelineView>, ClientError> {
        self.get(&["pipelines"]).await
    }

    pub async fn pipeline(&self, name_or_key: &str) -> Result<PipelineView, ClientError> {
        self.get(&["pipelines", name_or_key]).await
    }

    pub async fn create_pipeline(&self, req: &CreatePipeline) -> Result<PipelineView, ClientError> {
        self.send_json(Method::POST, &["pipelines"], req).await
    }

    pub async fn apps(&self) -> Result<Vec<ApplicationView>, ClientError> {
        self.get(&["apps"]).await
    }

    pub async fn app(&self, name_or_key: &str) -> Result<ApplicationView, ClientError> {
        self.get(&["apps", name_or_key]).await
    }

    pub async fn app_versions(&self, name_or_key: &str) -> Result<Vec<VersionView>, ClientError> {
        self.get(&["apps", name_or_key, "versions"]).await
    }

    pub async fn version(&self, key: &str) -> Result<VersionView, ClientError> {
        self.get(&["versions", key]).await
    }

    /// Records (tags) a version an environment has.
    pub async fn tag_version(
        &self,
        app: &str,
        req: &TagVersion,
    ) -> Result<VersionView, ClientError> {
        self.send_json(Method::POST, &["apps", app, "versions"], req)
            .await
    }

    // --- plumbing (also for the plan and LifeTime modules) ---------------------

    /// A URL under `/_runway/console/v1/`.
    pub(crate) fn api(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL can have path segments")
            .clear()
            .extend(["_runway", "console", "v1"])
            .extend(segments);
        url
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
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

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        let url = self.api(segments);
        let req = self.request(Method::GET, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    pub(crate) async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.api(segments);
        let req = self.request(method, url.clone()).json(body);
        decode(self.send(req, &url).await?, &url).await
    }

    pub(crate) async fn send_empty(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<(), ClientError> {
        let url = self.api(segments);
        let req = self.request(method, url.clone());
        self.send(req, &url).await.map(drop)
    }

    /// Sends `req`; non-2xx statuses become [`ClientError::Api`].
    pub(crate) async fn send(
        &self,
        req: RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::ConsoleConnect {
                    url: self.base_str.clone(),
                    reason: root_cause(&e),
                }
            } else {
                ClientError::Other {
                    message: format!(
                        "request to {} {}",
                        without_query(url),
                        if e.is_timeout() {
                            "timed out"
                        } else {
                            "failed"
                        }
                    ),
                    source: Some(Box::new(e)),
                }
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }
}
