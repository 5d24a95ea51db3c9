//! Bearer JWT authentication and roles.
//!
//! HS256 with a shared secret (generated into the data directory by default), or RS256 with a
//! configured public key. Only the configured algorithm is accepted, so `alg: none` and
//! algorithm-confusion tokens fail. `iss`, `aud`, `sub`, `iat` and `exp` are required; `nbf` is
//! honoured when present; a token claiming a lifetime (`exp - iat`) longer than
//! `auth.max_token_lifetime`, or issued in the future, is refused however well signed.
//! Failed attempts are rate limited per client address.

use std::{path::Path, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};
use serde::{Deserialize, Serialize};

use super::{AppState, errors::ApiError, rate_limit::client_ip};
use crate::config::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An applicant: uploads and reads their own documents.
    User,
    /// A KYC reviewer: reads any document, decides reviews.
    Reviewer,
    /// An operator: erases documents, manages deliveries.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "reviewer" => Ok(Self::Reviewer),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role `{other}` (user, reviewer, admin)")),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    pub jti: String,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: String,
    pub role: Role,
}

impl Subject {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role may not do this"))
        }
    }

    /// Reviewers and admins see every document; users only their own.
    pub fn can_read(&self, owner: &str) -> bool {
        matches!(self.role, Role::Reviewer | Role::Admin) || self.id == owner
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("invalid key: {0}")]
    Key(String),
    #[error("cannot mint tokens: RS256 mode needs auth.jwt_private_key_file")]
    NoSigningKey,
    #[error("subject must be 1–128 characters of letters, digits, `.`, `_`, `:` or `-`")]
    BadSubject,
    #[error("token encoding failed: {0}")]
    Encode(String),
    #[error("a token may live at most {0} s (auth.max_token_lifetime)")]
    TooLong(i64),
}

pub struct AuthKeys {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithm: Algorithm,
    validation: Validation,
    issuer: String,
    audience: String,
    max_lifetime: i64,
    leeway: i64,
}

fn valid_subject(sub: &str) -> bool {
    (1..=128).contains(&sub.len())
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl AuthKeys {
    /// HS256 with the configured/generated secret, or RS256 when a public key file is set.
    pub fn from_settings(settings: &Settings) -> Result<Self, AuthError> {
        let auth = &settings.auth;
        let (algorithm, decoding, encoding) = match &auth.jwt_public_key_file {
            Some(public) => {
                let pem = read(public)?;
                let decoding =
                    DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthError::Key(e.to_string()))?;
                let encoding = match &auth.jwt_private_key_file {
                    Some(private) => Some(
                        EncodingKey::from_rsa_pem(&read(private)?)
                            .map_err(|e| AuthError::Key(e.to_string()))?,
                    ),
                    None => None,
                };
                (Algorithm::RS256, decoding, encoding)
            }
            None => {
                let secret = crate::secrets::jwt_secret(settings)
                    .map_err(|e| AuthError::Key(e.to_string()))?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(&secret),
                    Some(EncodingKey::from_secret(&secret)),
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = auth.leeway.as_secs();
        validation.set_issuer(&[auth.issuer.as_str()]);
        validation.set_audience(&[auth.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(Self {
            decoding,
            encoding,
            algorithm,
            validation,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            max_lifetime: i64::try_from(auth.max_token_lifetime.as_secs()).unwrap_or(i64::MAX),
            leeway: i64::try_from(auth.leeway.as_secs()).unwrap_or(0),
        })
    }

    pub fn verify(&self, token: &str) -> Option<Subject> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        let now = chrono::Utc::now().timestamp();
        let lifetime_ok = c.exp.saturating_sub(c.iat) <= self.max_lifetime;
        let issued_ok = c.iat <= now.saturating_add(self.leeway);
        (lifetime_ok && issued_ok && valid_subject(&c.sub)).then_some(Subject {
            id: c.sub,
            role: c.role,
        })
    }

    pub fn mint(&self, sub: &str, role: Role, ttl: Duration) -> Result<String, AuthError> {
        if !valid_subject(sub) {
            return Err(AuthError::BadSubject);
        }
        let key = self.encoding.as_ref().ok_or(AuthError::NoSigningKey)?;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if ttl > self.max_lifetime {
            return Err(AuthError::TooLong(self.max_lifetime));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: Some(now),
            exp: now + ttl,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| AuthError::Encode(e.to_string()))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|e| AuthError::KeyFile(path.display().to_string(), e))
}

/// `Authorization: Bearer <JWT>`; mint one with `filot token --sub alice --role user`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Subject);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Subject> {
    let state = req
        .data::<std::sync::Arc<AppState>>()
        .ok_or(ApiError::Internal)?;
    let ip = client_ip(req, &state.limits.trusted);
    let Some(subject) = state.auth.verify(&bearer.token) else {
        state.limits.auth_failure(&ip).await?;
        return Err(ApiError::Unauthorized("invalid or expired token").into());
    };
    state.limits.request(&subject.id).await?;
    Ok(subject)
}
