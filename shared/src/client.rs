//! Calling another service of the suite: the caller's token and trace
//! context passed on, a deadline on every call, and retries only for calls
//! that are safe to repeat.

use std::{future::Future, sync::Arc, time::Duration};

use tonic::{
    Code, Request, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::{Channel, Endpoint},
};

use crate::{
    auth::{Role, sign_hs256},
    config::AuthSettings,
    error::ApiError,
};

/// How long one call to another service may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a call that is safe to repeat.
const ATTEMPTS: u32 = 3;

/// A lazily connecting channel to another service at `url` (`http://host:port`).
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    Ok(crate::server::http2::configure_client(endpoint).connect_lazy())
}

/// The credentials a call to another service carries: the caller's own
/// `authorization` value, so the other service applies the caller's tenant
/// and roles; or the service identity's, acting for one tenant.
#[derive(Clone, Debug)]
pub struct Credentials {
    authorization: AsciiMetadataValue,
    /// The tenant a service identity acts for ([`crate::auth::ACTING_TENANT_HEADER`]).
    acting_tenant: Option<AsciiMetadataValue>,
}

impl Credentials {
    /// The `authorization` of an incoming request, and the tenant a service
    /// caller acts for (passed on as it came: the next service honours it
    /// for the service role only, as this one did); UNAUTHENTICATED without
    /// a token.
    pub fn of(metadata: &MetadataMap) -> Result<Self, ApiError> {
        let authorization = metadata
            .get("authorization")
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated("no token to pass on".into()))?;
        Ok(Self {
            authorization,
            acting_tenant: metadata.get(crate::auth::ACTING_TENANT_HEADER).cloned(),
        })
    }

    /// `Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self, ApiError> {
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|_| ApiError::Internal("a token is not a header value".into()))?;
        Ok(Self {
            authorization,
            acting_tenant: None,
        })
    }

    /// The service identity's `token`, acting for `tenant`.
    pub fn service_acting_for(token: &str, tenant: &str) -> Result<Self, ApiError> {
        let acting_tenant = tenant
            .parse()
            .map_err(|_| ApiError::Internal(format!("tenant {tenant:?} is not a header value")))?;
        Ok(Self {
            acting_tenant: Some(acting_tenant),
            ..Self::bearer(token)?
        })
    }

    /// `message` as a request with these credentials, the current trace
    /// context and the call deadline.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = self.subscription(message);
        request.set_timeout(CALL_TIMEOUT);
        request
    }

    /// `message` as a request with these credentials and the current trace
    /// context, without a deadline: for a subscription (an event feed) that
    /// runs until either side ends it.
    pub fn subscription<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        if let Some(tenant) = &self.acting_tenant {
            request
                .metadata_mut()
                .insert(crate::auth::ACTING_TENANT_HEADER, tenant.clone());
        }
        crate::telemetry::inject_trace_context(request.metadata_mut());
        request
    }
}

/// The token a service presents when it calls another as itself (the
/// `service` role, across tenants): the configured one, or, for local runs,
/// a fresh one signed with the HS256 secret for each connection.
#[derive(Clone)]
pub struct ServiceIdentity(Arc<dyn Fn() -> Result<String, ApiError> + Send + Sync>);

impl std::fmt::Debug for ServiceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceIdentity")
    }
}

impl ServiceIdentity {
    /// `service`'s identity: `token` when configured (it must be signed with
    /// the service key to be accepted), else one signed with `auth`'s service
    /// key; `None` when there is neither.
    pub fn new(service: &str, token: Option<String>, auth: &AuthSettings) -> Option<Self> {
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Some(Self(Arc::new(move || Ok(token.clone()))));
        }
        let secret = auth.service_secret.clone().filter(|s| !s.is_empty())?;
        let service = service.to_owned();
        Some(Self(Arc::new(move || {
            sign_hs256(
                &secret,
                "suite",
                &service,
                &[Role::Service],
                Duration::from_secs(3600),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))
        })))
    }

    /// A token to present now.
    pub fn token(&self) -> Result<String, ApiError> {
        (self.0)()
    }
}

/// Runs `call` and, when it fails in a way a retry can fix (UNAVAILABLE), runs
/// it again after a short pause, up to three attempts. Only for calls that are
/// safe to repeat: reads, and creates that carry a request id.
pub async fn retry_idempotent<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(status) if status.code() == Code::Unavailable && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// What a failed call to another service means for our caller: its
/// client errors stand (they concern the caller's own data), anything else is
/// UNAVAILABLE, naming the service.
pub fn upstream_error(service: &str, status: Status) -> ApiError {
    match status.code() {
        Code::NotFound => ApiError::NotFound(status.message().to_owned()),
        Code::PermissionDenied => ApiError::PermissionDenied(status.message().to_owned()),
        Code::Unauthenticated => ApiError::Unauthenticated(status.message().to_owned()),
        Code::InvalidArgument => ApiError::FailedPrecondition(format!(
            "{service} refused the data: {}",
            status.message()
        )),
        _ => ApiError::Unavailable(format!(
            "{service} is unavailable ({:?}: {}); retry later",
            status.code(),
            status.message()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn passed_on_credentials_keep_the_acting_tenant() {
        let incoming = Credentials::service_acting_for("t0ken", "acme")
            .unwrap()
            .request(());
        let passed_on = Credentials::of(incoming.metadata()).unwrap().request(());
        let metadata = passed_on.metadata();
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer t0ken");
        assert_eq!(
            metadata.get(crate::auth::ACTING_TENANT_HEADER).unwrap(),
            "acme"
        );
        let user = Credentials::bearer("user").unwrap().request(());
        let passed_on = Credentials::of(user.metadata()).unwrap().request(());
        assert!(
            passed_on
                .metadata()
                .get(crate::auth::ACTING_TENANT_HEADER)
                .is_none()
        );
    }

    #[tokio::test]
    async fn unavailable_is_retried_and_other_errors_are_not() {
        let calls = AtomicU32::new(0);
        let outcome = retry_idempotent(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Status::unavailable("down")),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let outcome: Result<(), Status> = retry_idempotent(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(outcome.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn requests_carry_the_credentials_and_a_deadline() {
        let credentials = Credentials::bearer("abc").unwrap();
        let request = credentials.request(());
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer abc"
        );
        assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "5000000u");
    }
}
