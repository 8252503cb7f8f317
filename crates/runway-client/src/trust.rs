//! Console-issued tokens (issue 9 part 6): asking the console for a token
//! for one environment, rotating its signing key; on an environment, the
//! console it trusts and its audit log.

use reqwest::Method;
use runway_api::trust::{AuditEntry, AuditQuery, ConsoleTrust, EnvironmentToken, SigningKeys};

use crate::{Client, ClientError, ConsoleClient, decode, with_query};

impl ConsoleClient {
    /// A token for environment `env` (name or key), valid a few minutes.
    pub async fn environment_token(&self, env: &str) -> Result<EnvironmentToken, ClientError> {
        let url = self.api(&["environments", env, "token"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }

    /// The console's signing keys.
    pub async fn signing_keys(&self) -> Result<SigningKeys, ClientError> {
        self.get(&["signing-keys"]).await
    }

    /// Rotates the console's signing key and pushes the keys to every
    /// environment.
    pub async fn rotate_signing_key(&self) -> Result<SigningKeys, ClientError> {
        let url = self.api(&["signing-keys", "rotate"]);
        let req = self.request(Method::POST, url.clone());
        decode(self.send(req, &url).await?, &url).await
    }
}

impl Client {
    /// The console this environment trusts and its keys.
    pub async fn console_trust(&self) -> Result<ConsoleTrust, ClientError> {
        self.get_json(self.api(&["console-trust"])).await
    }

    /// Replaces the console this environment trusts (scope console).
    pub async fn set_console_trust(
        &self,
        trust: &ConsoleTrust,
    ) -> Result<ConsoleTrust, ClientError> {
        let url = self.api(&["console-trust"]);
        let req = self.request(Method::PUT, url.clone()).json(trust);
        decode(self.send(req, &url).await?, &url).await
    }

    /// The environment's audit log, newest first (scope admin).
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, ClientError> {
        self.get_json(with_query(self.api(&["audit"]), query)?)
            .await
    }
}
