//! The environment trusts its console (issue 9 part 6): the console pushes
//! its public Ed25519 keys and this environment's audience
//! (`PUT /_runway/api/v1/console-trust`, scope console), and the identity
//! service accepts the JWTs the console signs with them.
//!
//! A token is accepted when its header names a known key (`kid`), its
//! EdDSA signature verifies with it, its `iss` is the trusted console, its
//! `aud` this environment's key on that console, it is within `nbf`..`exp`
//! (30 s leeway), it lives at most 10 minutes, and, when signed by a
//! retired key, that key's `not_after` has not passed.
//!
//! Verification is cheap: the decoded keys are cached in memory
//! ([`TrustCache`]), so a request costs one signature check and no
//! catalog access. The cache is replaced on each push, and re-read from the
//! catalog (at most every [`RELOAD_EVERY`]) when a token names a key it does
//! not hold, so a standby that takes over sees keys pushed to its
//! predecessor. A token that verified is remembered (the exact token text,
//! at most [`MAX_VERIFIED`] of them) until its `exp` or its key's
//! `not_after`, whichever is first, so the CLI's repeated use of one token
//! costs a map lookup, not a signature check; every push forgets them all.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use runway_api::trust::{
    AuditEntry, AuditQuery, ConsoleTrust, ISSUER_PREFIX, MAX_TOKEN_TTL_SECS, TOKEN_LEEWAY_SECS,
    TokenClaims, TrustLevel, TrustedKey,
};
use runway_store::{AuditFilter, ConsoleTrustRecord, TrustedKeyRecord, now_ms};

use crate::Controller;
use crate::controller_error::{ControllerError, ControllerResult};
use crate::error::ApiResult;
use crate::identity::{Admin, Caller, Console, Read};

#[derive(utoipa::OpenApi)]
#[openapi(paths(get_console_trust, put_console_trust, audit))]
pub(crate) struct TrustDoc;

/// How often, at most, an unknown key makes the cache re-read the catalog.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Most keys a console may push at once.
const MAX_KEYS: usize = 16;
/// Most verified tokens remembered at once; beyond it the memory is cleared
/// (tokens live at most 10 minutes, so it refills with the live ones).
pub const MAX_VERIFIED: usize = 4096;

/// A caller authenticated by a console-issued token.
#[derive(Debug, Clone)]
pub struct ConsoleCaller {
    /// The principal's name on the console.
    pub sub: String,
    /// `user`, `service_account` or `admin`.
    pub kind: String,
    /// Environment-wide level.
    pub level: TrustLevel,
    /// Higher levels on some apps.
    pub apps: BTreeMap<String, TrustLevel>,
    /// The token's id.
    pub jti: String,
    pub kid: String,
}

impl ConsoleCaller {
    /// The level on `app` (the environment-wide level when the route names
    /// no app, or the token raises none for it).
    pub fn level_for_app(&self, app: Option<&str>) -> TrustLevel {
        app.and_then(|a| self.apps.get(a))
            .map_or(self.level, |raised| (*raised).max(self.level))
    }
}

struct Key {
    decoding: DecodingKey,
    not_after_ms: Option<i64>,
}

/// The trusted console, decoded.
struct TrustState {
    issuer: String,
    audience: String,
    keys: HashMap<String, Key>,
}

/// The decoded keys of the trusted console, in memory.
#[derive(Default)]
pub struct TrustCache {
    state: RwLock<Option<(Arc<Option<TrustState>>, Instant)>>,
    /// Tokens that verified against `state`, with the time (ms since the
    /// epoch) until which they stay good.
    verified: RwLock<HashMap<String, (ConsoleCaller, i64)>>,
}

impl TrustCache {
    fn get(&self) -> Option<(Arc<Option<TrustState>>, Instant)> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn put(&self, state: Option<TrustState>) -> Arc<Option<TrustState>> {
        let state = Arc::new(state);
        let mut slot = self.state.write().unwrap_or_else(|p| p.into_inner());
        // Forgotten under the state's lock: nothing verified against the old
        // keys survives a push.
        self.verified
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *slot = Some((state.clone(), Instant::now()));
        state
    }

    /// The caller of a token that verified before and is still good at `now`.
    fn verified(&self, token: &str, now: i64) -> Option<ConsoleCaller> {
        let verified = self.verified.read().unwrap_or_else(|p| p.into_inner());
        verified
            .get(token)
            .filter(|(_, until)| now < *until)
            .map(|(caller, _)| caller.clone())
    }

    /// Remembers a token verified against `against`, unless a push replaced
    /// that state meanwhile.
    fn remember(
        &self,
        against: &Arc<Option<TrustState>>,
        token: &str,
        caller: &ConsoleCaller,
        until: i64,
    ) {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if !state
            .as_ref()
            .is_some_and(|(current, _)| Arc::ptr_eq(current, against))
        {
            return;
        }
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(token.to_string(), (caller.clone(), until));
    }
}

/// Whether a bearer credential is a JWT (three base64url parts), not an
/// environment token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("ey") && token.matches('.').count() == 2
}

fn decode_public_key(kid: &str, public_key: &str) -> Result<DecodingKey, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public_key.trim())
        .map_err(|e| format!("key {kid:?}: public_key is not base64url without padding ({e})"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "key {kid:?}: public_key holds {} bytes; an Ed25519 public key is 32",
            bytes.len()
        ));
    }
    Ok(DecodingKey::from_ed_der(&bytes))
}

fn decode_state(record: &ConsoleTrustRecord) -> TrustState {
    let keys = record
        .keys
        .iter()
        .filter_map(|k| match decode_public_key(&k.kid, &k.public_key) {
            Ok(decoding) => Some((
                k.kid.clone(),
                Key {
                    decoding,
                    not_after_ms: k.not_after_ms,
                },
            )),
            Err(e) => {
                tracing::warn!("ignoring a stored console key: {e}");
                None
            }
        })
        .collect();
    TrustState {
        issuer: format!("{ISSUER_PREFIX}{}", record.console_id),
        audience: record.audience.clone(),
        keys,
    }
}

async fn load(controller: &Controller) -> ControllerResult<Arc<Option<TrustState>>> {
    let record = controller.store().console_trust().await?;
    Ok(controller
        .trust_cache()
        .put(record.as_ref().map(decode_state)))
}

/// The cached state; read from the catalog the first time, and again when
/// `kid` is not in it (at most every [`RELOAD_EVERY`]).
async fn state_with(
    controller: &Controller,
    kid: &str,
) -> ControllerResult<Arc<Option<TrustState>>> {
    match controller.trust_cache().get() {
        Some((state, _))
            if state
                .as_ref()
                .as_ref()
                .is_some_and(|s| s.keys.contains_key(kid)) =>
        {
            Ok(state)
        }
        Some((state, loaded)) if loaded.elapsed() < RELOAD_EVERY => Ok(state),
        _ => load(controller).await,
    }
}

fn refused(message: String) -> ControllerError {
    ControllerError::unauthenticated(format!(
        "{message}; get a new token from the console (the CLI does when logged in: \
         `runway login CONSOLE --user NAME`)"
    ))
}

/// Verifies a console-issued token (see the module's documentation).
pub async fn verify(controller: &Controller, token: &str) -> ControllerResult<ConsoleCaller> {
    if let Some(caller) = controller.trust_cache().verified(token, now_ms()) {
        return Ok(caller);
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| refused(format!("malformed console token ({e})")))?;
    if header.alg != Algorithm::EdDSA {
        return Err(refused(format!(
            "console token signed with {:?}; this environment accepts only EdDSA (Ed25519)",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| refused("console token has no key id (kid) in its header".into()))?;
    let state_arc = state_with(controller, &kid).await?;
    let Some(state) = state_arc.as_ref() else {
        return Err(refused(
            "this environment trusts no console yet: register it on one (`runway env add`), \
             which teaches it the console's keys"
                .into(),
        ));
    };
    let key = state.keys.get(&kid).ok_or_else(|| {
        refused(format!(
            "console token signed with key {kid:?}, which this environment does not know: \
             the console retired it longer ago than its tokens live, or it is another \
             console's key"
        ))
    })?;
    let now = now_ms();
    if let Some(not_after) = key.not_after_ms
        && now > not_after + (TOKEN_LEEWAY_SECS * 1000) as i64
    {
        return Err(refused(format!(
            "console token signed with key {kid:?}, which the console rotated out: tokens \
             it signed were accepted until {not_after} (ms since the epoch)"
        )));
    }
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = TOKEN_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_audience(&[&state.audience]);
    validation.set_issuer(&[&state.issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data =
        jsonwebtoken::decode::<TokenClaims>(token, &key.decoding, &validation).map_err(|e| {
            refused(match e.kind() {
                ErrorKind::InvalidSignature => {
                    format!("console token's signature does not verify with key {kid:?}")
                }
                ErrorKind::ExpiredSignature => "console token has expired".to_string(),
                ErrorKind::ImmatureSignature => {
                    "console token is not valid yet (nbf in the future)".to_string()
                }
                ErrorKind::InvalidAudience => format!(
                    "console token was issued for another environment (aud is not {:?}, this \
                     environment's key on its console)",
                    state.audience
                ),
                ErrorKind::InvalidIssuer => format!(
                    "console token was issued by another console (iss is not {:?})",
                    state.issuer
                ),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("console token lacks the claim {claim:?}")
                }
                _ => format!("invalid console token ({e})"),
            })
        })?;
    let claims = data.claims;
    if claims.exp.saturating_sub(claims.nbf.min(claims.iat)) > MAX_TOKEN_TTL_SECS {
        return Err(refused(format!(
            "console token lives {} s; this environment accepts at most {MAX_TOKEN_TTL_SECS} s",
            claims.exp.saturating_sub(claims.nbf.min(claims.iat))
        )));
    }
    let until = key
        .not_after_ms
        .map(|not_after| not_after + (TOKEN_LEEWAY_SECS * 1000) as i64)
        .unwrap_or(i64::MAX)
        .min(
            i64::try_from(claims.exp)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        );
    let caller = ConsoleCaller {
        sub: claims.sub,
        kind: claims.kind,
        level: claims.lvl,
        apps: claims.apps,
        jti: claims.jti,
        kid,
    };
    controller
        .trust_cache()
        .remember(&state_arc, token, &caller, until);
    Ok(caller)
}

pub(crate) fn routes() -> Router<Controller> {
    Router::new()
        .route(
            "/console-trust",
            get(get_console_trust).put(put_console_trust),
        )
        .route("/audit", get(audit))
}

fn view(record: ConsoleTrustRecord) -> ConsoleTrust {
    ConsoleTrust {
        console: record.console_id,
        audience: record.audience,
        keys: record
            .keys
            .into_iter()
            .map(|k| TrustedKey {
                kid: k.kid,
                public_key: k.public_key,
                not_after_ms: k.not_after_ms,
            })
            .collect(),
    }
}

/// The console this environment trusts (404 when none pushed its keys).
#[utoipa::path(get, path = "/_runway/api/v1/console-trust", responses((status = 200, body = ConsoleTrust), (status = 404, body = runway_api::ErrorBody)))]
async fn get_console_trust(
    State(c): State<Controller>,
    _caller: Caller<Read>,
) -> ApiResult<Json<ConsoleTrust>> {
    let record = c.store().console_trust().await?.ok_or_else(|| {
        ControllerError::not_found(
            "this environment trusts no console: registering it on a console (`runway env \
             add`) pushes the console's keys",
        )
    })?;
    Ok(Json(view(record)))
}

fn invalid(message: String) -> ControllerError {
    ControllerError::invalid("invalid_console_trust", format!("console trust: {message}"))
}

/// Replaces the trusted console and its keys (the console's own call, at
/// registration, rotation and when its last push is stale).
#[utoipa::path(put, path = "/_runway/api/v1/console-trust", request_body = ConsoleTrust, responses((status = 200, body = ConsoleTrust), (status = 400, body = runway_api::ErrorBody)))]
async fn put_console_trust(
    State(c): State<Controller>,
    _caller: Caller<Console>,
    Json(trust): Json<ConsoleTrust>,
) -> ApiResult<Json<ConsoleTrust>> {
    let text_ok = |s: &str| !s.is_empty() && s.len() <= 128 && !s.contains(['\0', ' ']);
    if !text_ok(&trust.console) {
        return Err(invalid(format!("console {:?} is not a console key", trust.console)).into());
    }
    if !text_ok(&trust.audience) {
        return Err(invalid(format!(
            "audience {:?} is not an environment key",
            trust.audience
        ))
        .into());
    }
    if trust.keys.is_empty() || trust.keys.len() > MAX_KEYS {
        return Err(invalid(format!(
            "{} keys given; give 1–{MAX_KEYS}",
            trust.keys.len()
        ))
        .into());
    }
    let mut keys = Vec::new();
    for key in &trust.keys {
        if !text_ok(&key.kid) {
            return Err(invalid(format!("kid {:?} is not valid", key.kid)).into());
        }
        if keys.iter().any(|k: &TrustedKeyRecord| k.kid == key.kid) {
            return Err(invalid(format!("kid {:?} is given twice", key.kid)).into());
        }
        decode_public_key(&key.kid, &key.public_key).map_err(invalid)?;
        keys.push(TrustedKeyRecord {
            kid: key.kid.clone(),
            public_key: key.public_key.trim().to_string(),
            not_after_ms: key.not_after_ms,
        });
    }
    let record = c
        .store()
        .set_console_trust(&trust.console, &trust.audience, &keys)
        .await?;
    c.trust_cache().put(Some(decode_state(&record)));
    tracing::info!(console = %record.console_id, keys = record.keys.len(), "recorded the console's keys");
    Ok(Json(view(record)))
}

/// The environment's audit log, newest first.
#[utoipa::path(get, path = "/_runway/api/v1/audit", params(AuditQuery), responses((status = 200, body = Vec<AuditEntry>)))]
async fn audit(
    State(c): State<Controller>,
    _caller: Caller<Admin>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let rows = c
        .store()
        .audit(&AuditFilter {
            actor: query.actor,
            actors: query
                .user
                .map(|u| vec![format!("console:{u}"), format!("token:{u}")])
                .unwrap_or_default(),
            outcome: query.outcome,
            action: query.action,
            app: query.app,
            since_ms: query.since_ms,
            until_ms: query.until_ms,
            limit: query.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at_ms: r.at_ms,
                actor: r.actor,
                credential: r.credential,
                address: r.address,
                action: r.action,
                target: r.target,
                status: r.status,
                outcome: r.outcome,
                detail: r.detail,
                before: r.before.and_then(|s| serde_json::from_str(&s).ok()),
                after: r.after.and_then(|s| serde_json::from_str(&s).ok()),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Option<TrustState> {
        Some(TrustState {
            issuer: "runway-console:c".into(),
            audience: "env".into(),
            keys: HashMap::new(),
        })
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_or_the_keys_change() {
        let cache = TrustCache::default();
        let caller = ConsoleCaller {
            sub: "ada".into(),
            kind: "user".into(),
            level: TrustLevel::Monitor,
            apps: BTreeMap::new(),
            jti: "j".into(),
            kid: "k".into(),
        };
        let first = cache.put(state());
        cache.remember(&first, "tok", &caller, 1_000);
        assert_eq!(
            cache.verified("tok", 999).map(|c| c.sub),
            Some("ada".into())
        );
        assert!(cache.verified("tok", 1_000).is_none(), "kept past its end");
        assert!(cache.verified("other", 999).is_none());

        // A push forgets every verified token.
        let second = cache.put(state());
        assert!(cache.verified("tok", 999).is_none(), "kept across a push");
        // A token verified against the keys before a push is not remembered.
        cache.remember(&first, "late", &caller, 1_000);
        assert!(cache.verified("late", 999).is_none());
        cache.remember(&second, "late", &caller, 1_000);
        assert!(cache.verified("late", 999).is_some());
    }

    #[test]
    fn per_app_raises_apply_only_to_their_app() {
        let caller = ConsoleCaller {
            sub: "ada".into(),
            kind: "user".into(),
            level: TrustLevel::Monitor,
            apps: [("billing".to_string(), TrustLevel::ChangeAndDeploy)].into(),
            jti: "j".into(),
            kid: "k".into(),
        };
        assert_eq!(
            caller.level_for_app(Some("billing")),
            TrustLevel::ChangeAndDeploy
        );
        assert_eq!(caller.level_for_app(Some("notes")), TrustLevel::Monitor);
        assert_eq!(caller.level_for_app(None), TrustLevel::Monitor);
    }

    #[test]
    fn only_jwts_are_taken_for_console_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("rwt_0123"));
        assert!(!looks_like_jwt("eyJ.only-one"));
    }

    #[test]
    fn public_keys_must_be_32_bytes_of_base64url() {
        assert!(decode_public_key("k", &"A".repeat(43)).is_ok());
        let Err(e) = decode_public_key("k", "AAAA") else {
            panic!("a 3-byte key is refused");
        };
        assert!(e.contains("3 bytes"), "{e}");
        assert!(decode_public_key("k", "!!").is_err());
    }
}
