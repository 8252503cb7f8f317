//! IT users and login sessions on the console (`/_runway/console/v1/users…`,
//! `/_runway/console/v1/sessions…`).

use reqwest::Method;
use runway_api::console::identity::{
    ChangePassword, CreateUser, Login, PasswordChanged, SessionCreated, SessionsEnded, UserCreated,
    UserView,
};

use crate::{ClientError, ConsoleClient};

impl ConsoleClient {
    /// Logs in (no token needed): a session token, shown once.
    pub async fn login(&self, user: &str, password: &str) -> Result<SessionCreated, ClientError> {
        let req = Login {
            user: user.to_string(),
            password: password.to_string(),
        };
        self.send_json(Method::POST, &["sessions"], &req).await
    }

    /// Ends the session this client's token is.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &["sessions", "current"])
            .await
    }

    /// Ends every session of the caller (this one included).
    pub async fn logout_everywhere(&self) -> Result<SessionsEnded, ClientError> {
        let url = self.api(&["sessions"]);
        let req = self.request(Method::DELETE, url.clone());
        crate::decode(self.send(req, &url).await?, &url).await
    }

    pub async fn users(&self) -> Result<Vec<UserView>, ClientError> {
        self.get(&["users"]).await
    }

    pub async fn user(&self, name_or_key: &str) -> Result<UserView, ClientError> {
        self.get(&["users", name_or_key]).await
    }

    /// Creates a user; without a password in `req`, the console generates
    /// one and returns it (once).
    pub async fn create_user(&self, req: &CreateUser) -> Result<UserCreated, ClientError> {
        self.send_json(Method::POST, &["users"], req).await
    }

    /// `action`: `disable`, `enable` or `unlock`.
    pub async fn user_action(
        &self,
        name_or_key: &str,
        action: &str,
    ) -> Result<UserView, ClientError> {
        self.send_json(
            Method::POST,
            &["users", name_or_key, action],
            &serde_json::json!({}),
        )
        .await
    }

    /// Changes a password: one's own (`current` required) or, as an
    /// administrator, anyone's (`new` absent: the console generates one).
    pub async fn change_password(
        &self,
        name_or_key: &str,
        req: &ChangePassword,
    ) -> Result<PasswordChanged, ClientError> {
        self.send_json(Method::POST, &["users", name_or_key, "password"], req)
            .await
    }
}
