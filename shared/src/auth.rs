//! Authentication and authorization: JWT verification (HS256 with a shared
//! secret for local runs, RS256/ES256 with keys from a JWKS file in
//! production), the [`Principal`] a verified token becomes, the interceptor
//! services mount, and the role check each RPC makes.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, metadata::MetadataMap};

use crate::config::AuthSettings;
use crate::error::ApiError;

/// A role a user or service can hold; each RPC names the roles it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May do anything in its tenant, including erasure and data export.
    Admin,
    /// A sales or support lead: everything but tenant administration.
    Manager,
    /// A sales rep.
    Sales,
    /// A marketer.
    Marketing,
    /// A support agent.
    Support,
    /// Read-only.
    Viewer,
    /// Another service of the suite: may read every tenant's event feed and
    /// write system entries.
    Service,
}

impl Role {
    /// Every role that may write customer data.
    pub const WRITERS: &'static [Role] = &[
        Role::Admin,
        Role::Manager,
        Role::Sales,
        Role::Marketing,
        Role::Support,
        Role::Service,
    ];
    /// Every role, for reads.
    pub const READERS: &'static [Role] = &[
        Role::Admin,
        Role::Manager,
        Role::Sales,
        Role::Marketing,
        Role::Support,
        Role::Viewer,
        Role::Service,
    ];
}

/// Who is calling: the verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every read and write of this call is scoped to.
    pub tenant: String,
    /// The user or service id (`sub`).
    pub subject: String,
    /// The roles granted.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Fails with PERMISSION_DENIED unless the principal holds one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.roles.iter().any(|role| allowed.contains(role)) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "roles {:?} may not call this method",
                self.roles
            )))
        }
    }

    /// Whether this is another service of the suite.
    pub fn is_service(&self) -> bool {
        self.roles.contains(&Role::Service)
    }
}

/// The claims a token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The subject: a user or service id.
    pub sub: String,
    /// The tenant.
    pub tenant: String,
    /// The roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token was refused; every variant is UNAUTHENTICATED on the wire.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer ...` metadata.
    #[error("missing bearer token in the authorization metadata")]
    Missing,
    /// Signature, expiry, issuer, audience or shape is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The verifier was configured without any key.
    #[error("no token verification key is configured (set auth.hs256_secret or auth.jwks_file)")]
    NoKey,
    /// The JWKS file could not be read.
    #[error("cannot load JWKS file {path}: {reason}")]
    Jwks {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Verifies tokens; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    hs256: Option<DecodingKey>,
    /// Public keys by `kid`, with the algorithm each is for.
    jwks: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.inner.hs256.is_some())
            .field("jwks_keys", &self.inner.jwks.len())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier from the `[auth]` settings.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthError> {
        let hs256 = settings
            .hs256_secret
            .as_deref()
            .filter(|secret| !secret.is_empty())
            .map(|secret| DecodingKey::from_secret(secret.as_bytes()));
        let jwks = match &settings.jwks_file {
            Some(path) => load_jwks(path)?,
            None => HashMap::new(),
        };
        if hs256.is_none() && jwks.is_empty() {
            return Err(AuthError::NoKey);
        }
        Ok(Self {
            inner: Arc::new(VerifierInner {
                hs256,
                jwks,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
            }),
        })
    }

    /// Verifies a compact JWS and returns the principal it names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => (self.inner.hs256.as_ref(), Algorithm::HS256),
            _ => match header
                .kid
                .as_deref()
                .and_then(|kid| self.inner.jwks.get(kid))
            {
                Some((key, alg)) if *alg == header.alg => (Some(key), *alg),
                _ => (None, header.alg),
            },
        };
        let key = key.ok_or_else(|| {
            AuthError::Invalid(format!("no key for algorithm {algorithm:?} and this kid"))
        })?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        match &self.inner.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.inner.issuer {
            validation.set_issuer(&[iss]);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        if claims.tenant.is_empty() || claims.sub.is_empty() {
            return Err(AuthError::Invalid(
                "tenant and sub must not be empty".into(),
            ));
        }
        Ok(Principal {
            tenant: claims.tenant,
            subject: claims.sub,
            roles: claims.roles,
        })
    }

    /// Verifies the bearer token in request metadata.
    pub fn verify_metadata(&self, metadata: &MetadataMap) -> Result<Principal, AuthError> {
        self.verify(bearer_token(metadata).ok_or(AuthError::Missing)?)
    }

    /// Verifies the bearer token in HTTP headers (a proxy that does not
    /// decode the call).
    pub fn verify_headers(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.verify(value.and_then(bearer).ok_or(AuthError::Missing)?)
    }
}

fn load_jwks(path: &Path) -> Result<HashMap<String, (DecodingKey, Algorithm)>, AuthError> {
    let jwks_error = |reason: String| AuthError::Jwks {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| jwks_error(e.to_string()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| jwks_error(e.to_string()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| jwks_error("a key has no kid".into()))?;
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| jwks_error(e.to_string()))?;
        keys.insert(kid, (key, algorithm));
    }
    Ok(keys)
}

/// The token of an `authorization: Bearer <token>` entry.
pub fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    bearer(metadata.get("authorization")?.to_str().ok()?)
}

/// The token of a `Bearer <token>` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A tonic interceptor that verifies the token and puts the [`Principal`] into
/// the request's extensions; mount it on every service but health and reflection.
pub fn interceptor(
    verifier: Verifier,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let principal = verifier
            .verify_metadata(request.metadata())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The caller of a request after checking it holds one of `roles`, with the
/// tenant every query of the call is scoped to.
pub fn authorize<T>(
    request: &Request<T>,
    roles: &[Role],
) -> Result<(Principal, crate::db::Tenant), ApiError> {
    let principal = principal(request)?;
    principal.require(roles)?;
    let tenant = crate::db::Tenant::from(&principal);
    Ok((principal, tenant))
}

/// The principal the interceptor stored; UNAUTHENTICATED if it is missing
/// (a service mounted without the interceptor).
pub fn principal<T>(request: &Request<T>) -> Result<Principal, ApiError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no verified principal".into()))
}

/// Signs an HS256 token: for local runs (`make token`), tests and the service
/// identity in development.
pub fn sign_hs256(
    secret: &str,
    tenant: &str,
    subject: &str,
    roles: &[Role],
    ttl: std::time::Duration,
) -> Result<String, AuthError> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        tenant: tenant.to_owned(),
        roles: roles.to_vec(),
        exp: now + ttl.as_secs(),
        iat: now,
        iss: None,
        aud: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn verifier(secret: &str) -> Verifier {
        Verifier::from_settings(&AuthSettings {
            hs256_secret: Some(secret.into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_signed_token_becomes_its_principal() {
        let token = sign_hs256(
            "s3cret",
            "acme",
            "ada",
            &[Role::Sales],
            Duration::from_secs(60),
        );
        let principal = verifier("s3cret").verify(&token.unwrap()).unwrap();
        assert_eq!(principal.tenant, "acme");
        assert_eq!(principal.subject, "ada");
        assert_eq!(principal.roles, vec![Role::Sales]);
        assert!(principal.require(&[Role::Sales, Role::Admin]).is_ok());
        assert!(principal.require(&[Role::Admin]).is_err());
    }

    #[test]
    fn a_wrong_signature_or_an_expired_token_is_refused() {
        let token = sign_hs256(
            "other",
            "acme",
            "ada",
            &[Role::Admin],
            Duration::from_secs(60),
        );
        assert!(verifier("s3cret").verify(&token.unwrap()).is_err());
        let claims = Claims {
            sub: "ada".into(),
            tenant: "acme".into(),
            roles: vec![],
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            iat: 0,
            iss: None,
            aud: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(matches!(
            verifier("s3cret").verify(&expired),
            Err(AuthError::Invalid(_))
        ));
    }

    /// A P-256 key pair made for this test only (PKCS#8 private key, public JWK).
    const TEST_EC_PRIVATE_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9Ckaj8+4H0Mh10ZfiUkuzn5R1XKCKwqAVrr6sEWYedOhRANCAAS96AmP5rkWOqE0he91AJXxurnVROHWAChjurDXEWfd4DdU77EtD0bPm/vmvh9c2ads/AAWyQT5t7bRTE7gAH2U";
    const TEST_EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"test-es256","use":"sig","alg":"ES256","x":"vegJj-a5FjqhNIXvdQCV8bq51UTh1gAoY7qw1xFn3eA","y":"N1TvsS0PRs-b--a-H1zZp2z8ABbJBPm3ttFMTuAAfZQ"}]}"#;

    #[test]
    fn es256_tokens_verify_against_a_jwks_file_with_issuer_and_audience() {
        use base64::Engine;
        let folder = std::env::temp_dir().join(format!("crm-jwks-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&folder).unwrap();
        let jwks = folder.join("jwks.json");
        std::fs::write(&jwks, TEST_EC_JWKS).unwrap();
        let verifier = Verifier::from_settings(&AuthSettings {
            jwks_file: Some(jwks),
            issuer: Some("https://idp.example".into()),
            audience: Some("crm".into()),
            ..Default::default()
        })
        .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_EC_PRIVATE_PKCS8)
            .unwrap();
        let key = EncodingKey::from_ec_der(&der);
        let sign = |iss: &str, kid: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            let claims = Claims {
                sub: "svc".into(),
                tenant: "acme".into(),
                roles: vec![Role::Service],
                exp: jsonwebtoken::get_current_timestamp() + 60,
                iat: 0,
                iss: Some(iss.into()),
                aud: Some("crm".into()),
            };
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        let principal = verifier
            .verify(&sign("https://idp.example", "test-es256"))
            .unwrap();
        assert!(principal.is_service());
        assert!(
            verifier
                .verify(&sign("https://evil.example", "test-es256"))
                .is_err()
        );
        assert!(
            verifier
                .verify(&sign("https://idp.example", "unknown-kid"))
                .is_err()
        );
        // Without an HS256 secret configured, an HS256 token is refused.
        let hs = sign_hs256(
            "s3cret",
            "acme",
            "ada",
            &[Role::Admin],
            Duration::from_secs(60),
        );
        assert!(verifier.verify(&hs.unwrap()).is_err());
        std::fs::remove_dir_all(folder).unwrap();
    }

    #[test]
    fn bearer_token_is_read_from_metadata() {
        let mut metadata = MetadataMap::new();
        assert!(bearer_token(&metadata).is_none());
        metadata.insert("authorization", "Bearer abc.def".parse().unwrap());
        assert_eq!(bearer_token(&metadata), Some("abc.def"));
    }
}
