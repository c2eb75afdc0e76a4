//! Authentication and authorization: JWT verification (HS256 with a shared
//! secret for local runs, RS256/ES256 with keys from a JWKS file in
//! production, read again on a schedule and on an unknown key id so a key
//! rotation needs no restart; the service identity with a key of its own),
//! the [`Principal`] a verified token becomes, and the role rules
//! ([`RoleRules`]) the kit checks every call against.

use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use tonic::{Request, metadata::MetadataMap};

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

impl std::str::FromStr for Role {
    type Err = String;

    /// A role by its name in tokens (`admin`, `sales`, ...).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(name.trim().to_owned())).map_err(|_| {
            format!(
                "{name:?} is not a role: admin, manager, sales, marketing, support, viewer or service"
            )
        })
    }
}

impl Role {
    /// The rule of a method in [`PUBLIC_METHODS`]: no role, no token.
    pub const PUBLIC: &'static [Role] = &[];

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

    /// The principal with the tenant a service's call acts for, when it
    /// names one in [`ACTING_TENANT_HEADER`]; anyone else's header is
    /// ignored (only a token signed with the service key has the role).
    pub fn acting_for(mut self, headers: &http::HeaderMap) -> Self {
        let named = headers
            .get(ACTING_TENANT_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|tenant| !tenant.is_empty());
        if let Some(tenant) = named
            && self.is_service()
        {
            self.tenant = tenant.to_owned();
        }
        self
    }
}

/// The header naming the tenant a call of the service identity acts for. A
/// service works across tenants (event feeds, scheduled jobs); a call it
/// makes for one tenant's data (marketing reading a segment's contacts while
/// it sends) names that tenant, and the call is scoped to it like a user's.
pub const ACTING_TENANT_HEADER: &str = "x-crm-acting-tenant";

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
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Audience: one, or several (Keycloak and Auth0 send an array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A token's `aud`: a string or an array of them (RFC 7519, 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "crm"`.
    One(String),
    /// `"aud": ["crm", "account"]`.
    Many(Vec<String>),
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
    /// The service key is the users' HS256 secret too.
    #[error(
        "auth.service_secret must differ from auth.hs256_secret: users' tokens would pass for the service's"
    )]
    SharedServiceKey,
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
    /// Signs the service identity and nothing else (`auth.service_secret`).
    service_key: Option<DecodingKey>,
    jwks: Option<JwksFile>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Public keys by `kid`, with the algorithm each is for.
type Keys = HashMap<String, (DecodingKey, Algorithm)>;

/// The least time between two reads of the JWKS file caused by unknown key
/// ids, so a flood of tokens with made-up ids does not become a flood of reads.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(10);
/// How often the JWKS file is read again by default.
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// The identity provider's keys from a file, read again when they are older
/// than `refresh` or a token names a key id they lack (at most once per
/// [`UNKNOWN_KID_RELOAD`]). A failed read keeps the keys already held.
struct JwksFile {
    path: PathBuf,
    refresh: Duration,
    state: RwLock<JwksState>,
}

struct JwksState {
    keys: Keys,
    loaded_at: Instant,
    /// When an unknown key id last caused a read.
    unknown_read_at: Option<Instant>,
    /// Reads after the first, for tests and logs.
    reloads: u64,
}

impl JwksFile {
    fn open(path: &Path, refresh: Duration) -> Result<Self, AuthError> {
        Ok(Self {
            path: path.to_owned(),
            refresh,
            state: RwLock::new(JwksState {
                keys: load_jwks(path)?,
                loaded_at: Instant::now(),
                unknown_read_at: None,
                reloads: 0,
            }),
        })
    }

    /// The key with id `kid`, reading the file again if it is due.
    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let fresh = state.loaded_at.elapsed() < self.refresh;
            match state.keys.get(kid) {
                Some(found) if fresh => return Some(found.clone()),
                None if fresh
                    && state
                        .unknown_read_at
                        .is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD) =>
                {
                    return None;
                }
                _ => {}
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if !state.keys.contains_key(kid) {
            state.unknown_read_at = Some(Instant::now());
        }
        match load_jwks(&self.path) {
            Ok(keys) => {
                state.keys = keys;
                state.reloads += 1;
            }
            Err(error) => tracing::warn!(%error, "keeping the keys already loaded"),
        }
        // Fresh or not, try again only after `refresh`.
        state.loaded_at = Instant::now();
        state.keys.get(kid).cloned()
    }

    #[cfg(test)]
    fn reloads(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).reloads
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.inner.hs256.is_some())
            .field(
                "jwks_file",
                &self.inner.jwks.as_ref().map(|jwks| &jwks.path),
            )
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
        let refresh = settings
            .jwks_refresh_seconds
            .map_or(JWKS_REFRESH, Duration::from_secs);
        let jwks = match &settings.jwks_file {
            Some(path) => Some(JwksFile::open(path, refresh)?),
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            return Err(AuthError::NoKey);
        }
        let service_secret = settings
            .service_secret
            .as_deref()
            .filter(|secret| !secret.is_empty());
        if service_secret.is_some() && service_secret == settings.hs256_secret.as_deref() {
            return Err(AuthError::SharedServiceKey);
        }
        let service_key = service_secret.map(|secret| DecodingKey::from_secret(secret.as_bytes()));
        Ok(Self {
            inner: Arc::new(VerifierInner {
                hs256,
                service_key,
                jwks,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
            }),
        })
    }

    /// Verifies a compact JWS and returns the principal it names. The
    /// `service` role is accepted only from a token signed with the service
    /// key, and the service key signs nothing else: whoever issues users'
    /// tokens cannot make a service identity.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg == Algorithm::HS256
            && let Some(service_key) = &self.inner.service_key
        {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 30;
            validation.validate_nbf = true;
            validation.validate_aud = false;
            match jsonwebtoken::decode::<Claims>(token, service_key, &validation) {
                Ok(data) if data.claims.roles == [Role::Service] => {
                    return principal_of(data.claims);
                }
                Ok(_) => {
                    return Err(AuthError::Invalid(
                        "the service key signs only the service identity".into(),
                    ));
                }
                Err(error)
                    if !matches!(
                        error.kind(),
                        jsonwebtoken::errors::ErrorKind::InvalidSignature
                    ) =>
                {
                    return Err(AuthError::Invalid(error.to_string()));
                }
                // Not the service key's: a user's token, verified below.
                Err(_) => {}
            }
        }
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => (
                self.inner.hs256.as_ref().map(Cow::Borrowed),
                Algorithm::HS256,
            ),
            alg => match (&self.inner.jwks, header.kid.as_deref()) {
                (Some(jwks), Some(kid)) => match jwks.key(kid) {
                    Some((key, key_alg)) if key_alg == alg => (Some(Cow::Owned(key)), alg),
                    _ => (None, alg),
                },
                _ => (None, alg),
            },
        };
        let key = key.ok_or_else(|| {
            AuthError::Invalid(format!("no key for algorithm {algorithm:?} and this kid"))
        })?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.validate_nbf = true;
        // A configured audience or issuer is required, not only checked when
        // present: jsonwebtoken lets a token without the claim through.
        let mut required = vec!["exp"];
        match &self.inner.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.inner.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        if claims.roles.contains(&Role::Service) {
            return Err(AuthError::Invalid(
                "the service role is accepted only in tokens signed with the service key".into(),
            ));
        }
        principal_of(claims)
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

fn principal_of(claims: Claims) -> Result<Principal, AuthError> {
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

fn load_jwks(path: &Path) -> Result<Keys, AuthError> {
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

/// Who may call each method of one gRPC service, by method name:
/// `("CreateContact", Role::WRITERS)`. The only place roles are decided: the
/// kit checks every call against its service's rules before the handler runs,
/// and a method missing from them is refused to everyone.
pub type RoleRules = &'static [(&'static str, &'static [Role])];

/// The methods of the suite anyone may call without a bearer token, by full
/// path: each carries its own proof in the request (a signed, expiring
/// token of the resource it acts on) and checks it itself. Their rule in the
/// service's [`RoleRules`] is [`Role::PUBLIC`]; the services and the gateway
/// both read this list, so a public method is public everywhere or nowhere.
pub const PUBLIC_METHODS: &[&str] = &[
    "/crm.support.v1.SupportService/SubmitSatisfactionRating",
    "/crm.support.v1.SupportService/ConnectCustomerChat",
    "/crm.marketing.v1.MarketingService/Unsubscribe",
];

/// Whether the method at `path` (`/package.Service/Method`) is public.
pub fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.contains(&path)
}

/// The roles `rules` allow to call `method`, if it has a rule.
pub fn allowed_roles(rules: RoleRules, method: &str) -> Option<&'static [Role]> {
    rules
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, roles)| *roles)
}

/// The caller the kit admitted (its token verified and its roles checked
/// against the method's rule), with the tenant every query of the call is
/// scoped to.
pub fn admitted<T>(request: &Request<T>) -> Result<(Principal, crate::db::Tenant), ApiError> {
    let principal = principal(request)?;
    let tenant = crate::db::Tenant::from(&principal);
    Ok((principal, tenant))
}

/// The principal the kit's guard stored; UNAUTHENTICATED if it is missing
/// (a service mounted without the guard).
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
        nbf: None,
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
mod acting_tenant_tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            tenant: "suite".into(),
            subject: "marketing".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn only_the_service_identity_acts_for_a_tenant() {
        let mut headers = http::HeaderMap::new();
        headers.insert(ACTING_TENANT_HEADER, " acme ".parse().unwrap());
        assert_eq!(
            principal(&[Role::Service]).acting_for(&headers).tenant,
            "acme"
        );
        assert_eq!(
            principal(&[Role::Admin]).acting_for(&headers).tenant,
            "suite"
        );
        assert_eq!(
            principal(&[Role::Service])
                .acting_for(&http::HeaderMap::new())
                .tenant,
            "suite"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_parse_by_their_token_names() {
        assert_eq!("admin".parse::<super::Role>(), Ok(super::Role::Admin));
        assert_eq!(" viewer".parse::<super::Role>(), Ok(super::Role::Viewer));
        let error = "root".parse::<super::Role>().unwrap_err();
        assert!(error.contains("\"root\" is not a role"), "{error}");
    }

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
            nbf: None,
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
                roles: vec![Role::Admin],
                exp: jsonwebtoken::get_current_timestamp() + 60,
                iat: 0,
                iss: Some(iss.into()),
                nbf: None,
                aud: Some(Audience::One("crm".into())),
            };
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        let principal = verifier
            .verify(&sign("https://idp.example", "test-es256"))
            .unwrap();
        assert_eq!(principal.roles, vec![Role::Admin]);
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

    fn hs256(claims: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap()
    }

    fn claims() -> Claims {
        Claims {
            sub: "ada".into(),
            tenant: "acme".into(),
            roles: vec![Role::Admin],
            exp: jsonwebtoken::get_current_timestamp() + 600,
            iat: 0,
            iss: None,
            nbf: None,
            aud: None,
        }
    }

    #[test]
    fn an_audience_may_be_an_array_and_must_name_ours() {
        let verifier = Verifier::from_settings(&AuthSettings {
            hs256_secret: Some("s3cret".into()),
            audience: Some("crm".into()),
            ..Default::default()
        })
        .unwrap();
        let with = |aud| Claims {
            aud: Some(aud),
            ..claims()
        };
        let many = |names: &[&str]| Audience::Many(names.iter().map(|n| (*n).into()).collect());
        assert!(
            verifier
                .verify(&hs256(&with(many(&["account", "crm"]))))
                .is_ok()
        );
        assert!(
            verifier
                .verify(&hs256(&with(Audience::One("crm".into()))))
                .is_ok()
        );
        assert!(verifier.verify(&hs256(&with(many(&["account"])))).is_err());
        assert!(
            verifier
                .verify(&hs256(&with(Audience::One("other".into()))))
                .is_err()
        );
        assert!(verifier.verify(&hs256(&claims())).is_err(), "no aud at all");
    }

    #[test]
    fn only_the_service_key_makes_a_service_identity() {
        let both = Verifier::from_settings(&AuthSettings {
            hs256_secret: Some("s3cret".into()),
            service_secret: Some("service-key".into()),
            ..Default::default()
        })
        .unwrap();
        let ttl = Duration::from_secs(60);
        let service = sign_hs256("service-key", "suite", "sales", &[Role::Service], ttl).unwrap();
        assert!(both.verify(&service).unwrap().is_service());
        // The users' issuer cannot mint one...
        let minted = sign_hs256("s3cret", "acme", "eve", &[Role::Service], ttl).unwrap();
        assert!(both.verify(&minted).is_err());
        // ...and the service key signs nothing else.
        let admin = sign_hs256("service-key", "acme", "eve", &[Role::Admin], ttl).unwrap();
        assert!(both.verify(&admin).is_err());
        let user = sign_hs256("s3cret", "acme", "ada", &[Role::Admin], ttl).unwrap();
        assert_eq!(both.verify(&user).unwrap().roles, vec![Role::Admin]);
        // Without a service key, no service identity verifies at all.
        let no_key = verifier("s3cret");
        assert!(no_key.verify(&service).is_err());
        assert!(no_key.verify(&minted).is_err());
        assert!(matches!(
            Verifier::from_settings(&AuthSettings {
                hs256_secret: Some("same".into()),
                service_secret: Some("same".into()),
                ..Default::default()
            }),
            Err(AuthError::SharedServiceKey)
        ));
    }

    #[test]
    fn a_configured_issuer_is_required() {
        let verifier = Verifier::from_settings(&AuthSettings {
            hs256_secret: Some("s3cret".into()),
            issuer: Some("https://idp.example".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(verifier.verify(&hs256(&claims())).is_err(), "no iss at all");
        let issued = Claims {
            iss: Some("https://idp.example".into()),
            ..claims()
        };
        assert!(verifier.verify(&hs256(&issued)).is_ok());
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let later = Claims {
            nbf: Some(now + 300),
            ..claims()
        };
        assert!(matches!(
            verifier("s3cret").verify(&hs256(&later)),
            Err(AuthError::Invalid(message)) if message.contains("ImmatureSignature")
        ));
        let started = Claims {
            nbf: Some(now - 10),
            ..claims()
        };
        assert!(verifier("s3cret").verify(&hs256(&started)).is_ok());
    }

    /// A second P-256 key pair, the one the identity provider rotates to.
    const NEXT_EC_PRIVATE_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTYCVhZV6L4rVMy3PNlSo/geYKkLb/54uADVbjlw1G9ehRANCAAQ4KQdhBVi3AbZM+sTlmCURLs5dTmLGxFIOjAAr6jU1rXAKHn8uiBTM8fAO03/el4bW7SDC+f60cb7tupG+HerP";
    const NEXT_EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"next-es256","use":"sig","alg":"ES256","x":"OCkHYQVYtwG2TPrE5ZglES7OXU5ixsRSDowAK-o1Na0","y":"cAoefy6IFMzx8A7Tf96XhtbtIML5_rRxvu26kb4d6s8"}"#;

    #[test]
    fn a_key_rotation_is_picked_up_without_a_restart() {
        use base64::Engine;
        let folder = std::env::temp_dir().join(format!("crm-jwks-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("jwks.json");
        std::fs::write(&path, TEST_EC_JWKS).unwrap();
        let verifier = Verifier::from_settings(&AuthSettings {
            jwks_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        let sign = |pkcs8: &str, kid: &str| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(pkcs8)
                .unwrap();
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_ec_der(&der)).unwrap()
        };
        let old = sign(TEST_EC_PRIVATE_PKCS8, "test-es256");
        let next = sign(NEXT_EC_PRIVATE_PKCS8, "next-es256");
        assert!(verifier.verify(&old).is_ok());
        let jwks = verifier.inner.jwks.as_ref().unwrap();
        assert_eq!(jwks.reloads(), 0, "a known key needs no read");

        // The provider publishes the next key, then signs with it.
        let both = TEST_EC_JWKS.replace("}]}", &format!("}},{NEXT_EC_JWK}]}}"));
        std::fs::write(&path, both).unwrap();
        assert!(
            verifier.verify(&next).is_ok(),
            "an unknown kid reads the file again"
        );
        assert!(verifier.verify(&old).is_ok());
        assert_eq!(jwks.reloads(), 1);

        // Made-up key ids do not make the verifier read the file each time.
        for i in 0..20 {
            assert!(
                verifier
                    .verify(&sign(NEXT_EC_PRIVATE_PKCS8, &format!("made-up-{i}")))
                    .is_err()
            );
        }
        assert_eq!(jwks.reloads(), 1);
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
