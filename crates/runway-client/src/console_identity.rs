//! IT users and login sessions on the console (`/_runway/console/v1/users…`,
//! `/_runway/console/v1/sessions…`).

use reqwest::Method;
use runway_api::console::identity::{
    AuditEntry, AuditQuery, ChangePassword, CreateRole, CreateTeam, CreateUser, Login,
    PasswordChanged, RoleView, SessionCreated, SessionsEnded, SetRole, TeamApp, TeamMember,
    TeamView, UserCreated, UserView,
};

use runway_api::console::{AccountTokenCreated, RotateAccountTokens, ServiceAccount};

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

    /// Gives a user another role.
    pub async fn set_user_role(&self, user: &str, role: &str) -> Result<UserView, ClientError> {
        let req = SetRole {
            role: role.to_string(),
        };
        self.send_json(Method::POST, &["users", user, "role"], &req)
            .await
    }

    /// Built-in roles first, then custom ones.
    pub async fn roles(&self) -> Result<Vec<RoleView>, ClientError> {
        self.get(&["roles"]).await
    }

    pub async fn role(&self, name: &str) -> Result<RoleView, ClientError> {
        self.get(&["roles", name]).await
    }

    pub async fn create_role(&self, req: &CreateRole) -> Result<RoleView, ClientError> {
        self.send_json(Method::POST, &["roles"], req).await
    }

    pub async fn delete_role(&self, name: &str) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &["roles", name]).await
    }

    pub async fn teams(&self) -> Result<Vec<TeamView>, ClientError> {
        self.get(&["teams"]).await
    }

    pub async fn team(&self, name_or_key: &str) -> Result<TeamView, ClientError> {
        self.get(&["teams", name_or_key]).await
    }

    pub async fn create_team(&self, req: &CreateTeam) -> Result<TeamView, ClientError> {
        self.send_json(Method::POST, &["teams"], req).await
    }

    pub async fn delete_team(&self, name_or_key: &str) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, &["teams", name_or_key])
            .await
    }

    pub async fn add_team_app(&self, team: &str, app: &str) -> Result<TeamView, ClientError> {
        let req = TeamApp {
            app: app.to_string(),
        };
        self.send_json(Method::POST, &["teams", team, "apps"], &req)
            .await
    }

    pub async fn remove_team_app(&self, team: &str, app: &str) -> Result<TeamView, ClientError> {
        let url = self.api(&["teams", team, "apps", app]);
        let req = self.request(Method::DELETE, url.clone());
        crate::decode(self.send(req, &url).await?, &url).await
    }

    /// Adds a member to a team, or changes its role there.
    pub async fn set_team_member(
        &self,
        team: &str,
        member: &TeamMember,
    ) -> Result<TeamView, ClientError> {
        self.send_json(Method::POST, &["teams", team, "members"], member)
            .await
    }

    pub async fn remove_team_member(
        &self,
        team: &str,
        member: &str,
    ) -> Result<TeamView, ClientError> {
        let url = self.api(&["teams", team, "members", member]);
        let req = self.request(Method::DELETE, url.clone());
        crate::decode(self.send(req, &url).await?, &url).await
    }

    /// Rotates a service account's tokens: a new one (shown once); the
    /// others keep working `grace_s` seconds more.
    pub async fn rotate_account_tokens(
        &self,
        account: &str,
        grace_s: u64,
    ) -> Result<AccountTokenCreated, ClientError> {
        self.send_json(
            Method::POST,
            &["service-accounts", account, "rotate"],
            &RotateAccountTokens { grace_s },
        )
        .await
    }

    /// Gives a service account another role.
    pub async fn set_account_role(
        &self,
        account: &str,
        role: &str,
    ) -> Result<ServiceAccount, ClientError> {
        let req = SetRole {
            role: role.to_string(),
        };
        self.send_json(Method::POST, &["service-accounts", account, "role"], &req)
            .await
    }

    /// Audit rows matching `query`, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, ClientError> {
        let url = crate::with_query(self.api(&["audit"]), query)?;
        let req = self.request(Method::GET, url.clone());
        crate::decode(self.send(req, &url).await?, &url).await
    }
}
