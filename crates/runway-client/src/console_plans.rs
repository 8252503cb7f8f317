//! Deployment plans on the console (`/_runway/console/v1/plans…`).

use reqwest::Method;
use runway_api::console::plans::{CreatePlan, PlanStatusView, PlanValidation, PlanView};

use crate::{ClientError, ConsoleClient, decode};

impl ConsoleClient {
    /// Plans, newest first, optionally to one target (name or key).
    pub async fn plans(&self, target: Option<&str>) -> Result<Vec<PlanView>, ClientError> {
        let mut url = self.api(&["plans"]);
        if let Some(t) = target {
            url.query_pairs_mut().append_pair("target", t);
        }
        let req = self.request(Method::GET, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    pub async fn plan(&self, key: &str) -> Result<PlanView, ClientError> {
        self.get(&["plans", key]).await
    }

    /// Saves a plan (status `saved`).
    pub async fn create_plan(&self, req: &CreatePlan) -> Result<PlanView, ClientError> {
        self.send_json(Method::POST, &["plans"], req).await
    }

    pub async fn validate_plan(&self, key: &str) -> Result<PlanValidation, ClientError> {
        self.post_empty(&["plans", key, "validate"]).await
    }

    /// Validates and starts a saved plan (`409 plan_conflicts` lists what
    /// blocks it; `409 target_busy` names the running plan).
    pub async fn start_plan(&self, key: &str) -> Result<PlanView, ClientError> {
        self.post_empty(&["plans", key, "start"]).await
    }

    /// Commits a two-step plan waiting prepared.
    pub async fn continue_plan(&self, key: &str) -> Result<PlanView, ClientError> {
        self.post_empty(&["plans", key, "continue"]).await
    }

    pub async fn abort_plan(&self, key: &str) -> Result<PlanView, ClientError> {
        self.post_empty(&["plans", key, "abort"]).await
    }

    pub async fn delete_plan(&self, key: &str) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &["plans", key]).await
    }

    /// The plan's status and its log rows after `after`.
    pub async fn plan_status(&self, key: &str, after: i64) -> Result<PlanStatusView, ClientError> {
        let mut url = self.api(&["plans", key, "status"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let req = self.request(Method::GET, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    async fn post_empty<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        let url = self.api(segments);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }
}
