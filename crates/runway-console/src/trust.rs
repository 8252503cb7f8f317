//! Environments trust the console (issue 9 part 6): the console's Ed25519
//! signing keys, the short-lived tokens it issues for one environment, and
//! pushing its public keys to every environment.
//!
//! * **Keys.** One current key signs; rotating (`runway console rotate-key`,
//!   the right to manage users, or the admin token) makes a new one current
//!   and keeps the old one published until its last token has expired
//!   ([`MAX_TOKEN_TTL_SECS`] + leeway). Private keys are sealed at rest with
//!   the console key, as environment credentials are. Generation and
//!   signatures are `ring`'s, the JWT encoding `jsonwebtoken`'s.
//! * **Tokens.** `POST /_runway/console/v1/environments/{env}/token` gives a
//!   logged-in user (or any principal) a JWT for that environment: `aud` =
//!   the environment's key on this console, `iss` = `runway-console:<console
//!   key>`, `sub` = the principal's name, `lvl` = its environment-wide level
//!   ([`env_levels`]), `apps` = per-app raises, `exp` = 5 minutes
//!   ([`TOKEN_TTL`]). No access: 403 naming the level.
//! * **Push.** The environment learns the keys through its API
//!   (`PUT /_runway/api/v1/console-trust`, the console's own credential) at
//!   registration (refused registration if it fails), on rotation, and after
//!   a health poll whenever the last push this process made to it is not of
//!   the current key set.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use runway_api::trust::{
    EnvironmentToken, ISSUER_PREFIX, MAX_TOKEN_TTL_SECS, SigningKeys, TOKEN_LEEWAY_SECS,
    TokenClaims, TrustLevel, TrustedKey,
};
use runway_client::Client;
use runway_store::console::environments::EnvironmentRecord;
use runway_store::now_ms;

use crate::Console;
use crate::access::Level;
use crate::auth::{AdminCaller, Caller, Myself};
use crate::error::{ApiError, ApiResult};

/// How long an issued token lives (at most [`MAX_TOKEN_TTL_SECS`]).
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long pushing the keys to one environment may take on a rotation.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The current signing key, decoded, and the public keys to publish.
struct Signer {
    kid: String,
    encoding: EncodingKey,
    keys: Vec<TrustedKey>,
}

/// The console's signing state, in memory.
#[derive(Default)]
pub(crate) struct TrustState {
    signer: RwLock<Option<Arc<Signer>>>,
    /// Per environment key: the key set (kids) last pushed there by this process.
    pushed: Mutex<HashMap<String, String>>,
    /// Serializes rotations and first-key creation.
    rotating: tokio::sync::Mutex<()>,
}

/// What identifies a published key set (its kids and not-afters).
fn fingerprint(keys: &[TrustedKey]) -> String {
    keys.iter()
        .map(|k| format!("{}@{:?}", k.kid, k.not_after_ms))
        .collect::<Vec<_>>()
        .join(",")
}

/// The levels a console-issued token carries for `env`: the caller's own
/// level there and its per-app raises from teams, decided by the one access
/// function of the console ([`crate::auth::env_levels`]).
pub async fn env_levels(
    console: &Console,
    caller: &Caller,
    env: &EnvironmentRecord,
) -> ApiResult<(Level, BTreeMap<String, Level>)> {
    crate::auth::env_levels(console, &caller.principal, &env.name).await
}

/// A console level as a token carries it.
pub fn wire_level(level: Level) -> TrustLevel {
    match level {
        Level::NoAccess => TrustLevel::NoAccess,
        Level::Monitor => TrustLevel::Monitor,
        Level::ChangeAndDeploy => TrustLevel::ChangeAndDeploy,
        Level::FullControl => TrustLevel::FullControl,
    }
}

/// A new Ed25519 key pair: (kid, public key base64url, PKCS#8 hex).
fn generate() -> ApiResult<(String, String, String)> {
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| ApiError::internal(format!("cannot generate an Ed25519 key: {e}")))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| ApiError::internal(format!("cannot read the new Ed25519 key: {e}")))?;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
    let kid: [u8; 8] = rand::random();
    Ok((
        format!("k{}", hex::encode(kid)),
        public,
        hex::encode(pkcs8.as_ref()),
    ))
}

/// When a key retired now stops being accepted: after the last token it
/// signed has expired, clocks' leeway included.
fn retired_not_after(now: i64) -> i64 {
    now + ((MAX_TOKEN_TTL_SECS + TOKEN_LEEWAY_SECS) * 1000) as i64
}

impl Console {
    fn trust(&self) -> &TrustState {
        &self.inner.trust
    }

    /// Reads the current key (creating the first one) into memory.
    async fn load_signer(&self) -> ApiResult<Arc<Signer>> {
        let store = self.store();
        let current = match store.current_signing_key().await? {
            Some(current) => current,
            None => {
                let _one = self.trust().rotating.lock().await;
                if store.current_signing_key().await?.is_none() {
                    let (kid, public, private) = generate()?;
                    store
                        .rotate_signing_key(&kid, &public, &private, retired_not_after(now_ms()))
                        .await?;
                    tracing::info!(%kid, "created the console's first signing key");
                }
                store.current_signing_key().await?.ok_or_else(|| {
                    ApiError::internal("the signing key just created cannot be read back")
                })?
            }
        };
        let der = hex::decode(&current.private_pkcs8_hex).map_err(|e| {
            ApiError::internal(format!(
                "signing key {} is not hex: {e}",
                current.record.kid
            ))
        })?;
        let keys = store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| TrustedKey {
                kid: k.kid,
                public_key: k.public_key,
                not_after_ms: k.not_after_ms,
            })
            .collect();
        let signer = Arc::new(Signer {
            kid: current.record.kid.clone(),
            encoding: EncodingKey::from_ed_der(&der),
            keys,
        });
        *self
            .trust()
            .signer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(signer.clone());
        Ok(signer)
    }

    async fn signer(&self) -> ApiResult<Arc<Signer>> {
        let cached = self
            .trust()
            .signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match cached {
            // Retired keys past their not-after are dropped from what is
            // published at the next load.
            Some(s)
                if s.keys
                    .iter()
                    .all(|k| k.not_after_ms.is_none_or(|t| t > now_ms())) =>
            {
                Ok(s)
            }
            _ => self.load_signer().await,
        }
    }

    /// The keys environments must accept now.
    pub async fn published_keys(&self) -> ApiResult<Vec<TrustedKey>> {
        Ok(self.signer().await?.keys.clone())
    }

    /// Pushes the console's keys to the environment at `address` with
    /// `credential`, for audience `environment_id`.
    pub(crate) async fn push_keys_with(
        &self,
        environment_id: &str,
        address: &str,
        credential: String,
    ) -> Result<(), String> {
        let keys = self.published_keys().await.map_err(|e| e.to_string())?;
        let client = Client::new(address, Some(credential)).map_err(|e| e.to_string())?;
        let trust = runway_api::trust::ConsoleTrust {
            console: self.store().id().to_string(),
            audience: environment_id.to_string(),
            keys: keys.clone(),
        };
        client
            .set_console_trust(&trust)
            .await
            .map_err(|e| e.to_string())?;
        self.trust()
            .pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(environment_id.to_string(), fingerprint(&keys));
        Ok(())
    }

    /// Pushes the keys to a registered environment.
    pub async fn push_keys(&self, env: &EnvironmentRecord) -> Result<(), String> {
        let credential = self
            .store()
            .environment_credential(&env.id)
            .await
            .map_err(|e| e.to_string())?;
        self.push_keys_with(&env.id, &env.address, credential).await
    }

    /// Pushes the keys to `env` unless this process already pushed the
    /// current set there (after each successful health poll).
    pub async fn push_keys_if_stale(&self, env: &EnvironmentRecord) {
        let current = match self.published_keys().await {
            Ok(keys) => fingerprint(&keys),
            Err(e) => {
                tracing::warn!("cannot read the console's signing keys: {e}");
                return;
            }
        };
        let pushed = self
            .trust()
            .pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&env.id)
            .cloned();
        if pushed.as_deref() == Some(current.as_str()) {
            return;
        }
        if let Err(e) = self.push_keys(env).await {
            tracing::warn!(environment = %env.name, "cannot push the console's keys: {e}");
        }
    }

    /// Forgets what was pushed to an environment (removed).
    pub(crate) fn forget_pushed(&self, environment_id: &str) {
        self.trust()
            .pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(environment_id);
    }

    /// Makes a new signing key current and pushes the keys everywhere;
    /// returns the environments that could not be reached.
    pub async fn rotate_signing_key(&self) -> ApiResult<SigningKeys> {
        // Create the first key if there is none, so there is one to retire.
        let _ = self.signer().await?;
        {
            let _one = self.trust().rotating.lock().await;
            let (kid, public, private) = generate()?;
            self.store()
                .rotate_signing_key(&kid, &public, &private, retired_not_after(now_ms()))
                .await?;
            tracing::info!(%kid, "rotated the console's signing key");
        }
        let signer = self.load_signer().await?;
        // Every environment at once, each with its own time limit: a dead
        // one neither stalls nor fails the others.
        let mut pushes = tokio::task::JoinSet::new();
        for env in self.store().environments().await? {
            let console = self.clone();
            pushes.spawn(async move {
                let outcome = tokio::time::timeout(PUSH_TIMEOUT, console.push_keys(&env))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("no answer within {} s", PUSH_TIMEOUT.as_secs()))
                    });
                (env.name, outcome)
            });
        }
        let mut not_pushed = Vec::new();
        while let Some(joined) = pushes.join_next().await {
            let (name, outcome) = joined.map_err(ApiError::internal)?;
            if let Err(e) = outcome {
                tracing::warn!(environment = %name, "cannot push the new keys (the health poller retries): {e}");
                not_pushed.push(name);
            }
        }
        not_pushed.sort();
        Ok(SigningKeys {
            current: signer.kid.clone(),
            keys: signer.keys.clone(),
            not_pushed,
        })
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(issue_token, list_keys, rotate_key))]
pub(crate) struct TrustDoc;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route(
            "/_runway/console/v1/environments/{env}/token",
            post(issue_token),
        )
        .route("/_runway/console/v1/signing-keys", get(list_keys))
        .route("/_runway/console/v1/signing-keys/rotate", post(rotate_key))
}

#[utoipa::path(post, path = "/_runway/console/v1/environments/{env}/token", params(("env" = String, Path, description = "name or key")), responses((status = 200, body = EnvironmentToken), (status = 403, body = runway_api::ErrorBody, description = "no access to that environment"), (status = 404, body = runway_api::ErrorBody)))]
async fn issue_token(
    State(console): State<Console>,
    Myself(caller): Myself,
    Path(env): Path<String>,
) -> ApiResult<Json<EnvironmentToken>> {
    mint(&console, &caller, &env, TOKEN_TTL).await.map(Json)
}

/// A token for environment `env` (name or key) with `caller`'s levels there,
/// living `ttl` (at most [`MAX_TOKEN_TTL_SECS`]); 403 without access. The one
/// place console tokens are minted (the API and the dashboard sign-on).
pub(crate) async fn mint(
    console: &Console,
    caller: &crate::auth::Caller,
    env: &str,
    ttl: Duration,
) -> ApiResult<EnvironmentToken> {
    let console = console.clone();
    let env = crate::environments::find_environment(&console, env).await?;
    let (level, apps) = env_levels(&console, caller, &env).await?;
    if level == Level::NoAccess && apps.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} '{}' has no access to environment {}: a token for it needs at least \
                 monitor; ask an administrator for a role with a level there",
                caller.principal.kind.as_str().replace('_', " "),
                caller.principal.name,
                env.name
            ),
        ));
    }
    let signer = console.signer().await?;
    let now = (now_ms() / 1000) as u64;
    let exp = now + ttl.as_secs().clamp(1, MAX_TOKEN_TTL_SECS);
    let jti: [u8; 16] = rand::random();
    let claims = TokenClaims {
        iss: format!("{ISSUER_PREFIX}{}", console.store().id()),
        aud: env.id.clone(),
        sub: caller.principal.name.clone(),
        kind: caller.principal.kind.as_str().to_string(),
        lvl: wire_level(level),
        apps: apps
            .iter()
            .map(|(app, l)| (app.clone(), wire_level(*l)))
            .collect(),
        iat: now,
        nbf: now,
        exp,
        jti: hex::encode(jti),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(signer.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &signer.encoding)
        .map_err(|e| ApiError::internal(format!("cannot sign a token: {e}")))?;
    Ok(EnvironmentToken {
        token,
        environment: env.name,
        address: env.address,
        level: claims.lvl,
        apps: claims.apps,
        expires_at_ms: (exp * 1000) as i64,
    })
}

#[utoipa::path(get, path = "/_runway/console/v1/signing-keys", responses((status = 200, body = SigningKeys)))]
async fn list_keys(
    State(console): State<Console>,
    _caller: Myself,
) -> ApiResult<Json<SigningKeys>> {
    let signer = console.signer().await?;
    Ok(Json(SigningKeys {
        current: signer.kid.clone(),
        keys: signer.keys.clone(),
        not_pushed: Vec::new(),
    }))
}

#[utoipa::path(post, path = "/_runway/console/v1/signing-keys/rotate", responses((status = 200, body = SigningKeys), (status = 403, body = runway_api::ErrorBody)))]
async fn rotate_key(
    State(console): State<Console>,
    _admin: AdminCaller,
) -> ApiResult<Json<SigningKeys>> {
    Ok(Json(console.rotate_signing_key().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_tokens_their_public_key_verifies() {
        let (kid, public, private) = generate().unwrap();
        let encoding = EncodingKey::from_ed_der(&hex::decode(private).unwrap());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        let claims = TokenClaims {
            iss: "runway-console:c".into(),
            aud: "e".into(),
            sub: "ada".into(),
            kind: "user".into(),
            lvl: TrustLevel::Monitor,
            apps: BTreeMap::new(),
            iat: 1,
            nbf: 1,
            exp: u64::MAX / 2,
            jti: "j".into(),
        };
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
        let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(public)
            .unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_ed_der(&public);
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["e"]);
        let got = jsonwebtoken::decode::<TokenClaims>(&token, &decoding, &validation).unwrap();
        assert_eq!(got.claims, claims);
        let (_, other, _) = generate().unwrap();
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(other)
            .unwrap();
        let wrong = jsonwebtoken::DecodingKey::from_ed_der(&other);
        assert!(jsonwebtoken::decode::<TokenClaims>(&token, &wrong, &validation).is_err());
    }
}
