//! The proxy: every call that is not the gateway's own health, reflection or
//! `/metrics` lands here. It authenticates the caller, applies the tenant's
//! rate limit, the in-flight limit and the deadline, and hands the undecoded
//! HTTP/2 request to a healthy replica of the owning service; the response
//! streams back unchanged, trailers and status details included.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use crm_shared::{auth::Verifier, error::ApiError};
use http::{HeaderMap, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::ServiceExt;

use crate::{
    access::{CallRecord, Metrics},
    body::{RequestBody, ResponseBody, oversize_status},
    limits::{SlotRefused, TenantLimiter, TenantSlot, TenantSlots},
    routing::{Catalogue, MethodKind, RouteError, RouteTable, UPSTREAM_HEADER},
    upstream::{CallOutcome, Replica, Upstream},
};

/// Identity headers the gateway sets for the upstream (after removing any a
/// client sent): the services still verify the token themselves.
const TENANT_HEADER: &str = "x-crm-tenant";
const SUBJECT_HEADER: &str = "x-crm-subject";
const REQUEST_ID_HEADER: &str = "x-request-id";
const TIMEOUT_HEADER: &str = "grpc-timeout";

/// The limits every call meets.
pub struct Limits {
    /// Per-tenant token buckets.
    pub tenants: TenantLimiter,
    /// Per-tenant caps on calls in flight and streams open.
    pub slots: TenantSlots,
    /// Failed authentications per client address: over the limit, the
    /// address's calls are refused before any token is verified.
    pub failed_auth: TenantLimiter,
    /// The most calls in flight.
    pub max_in_flight: usize,
    /// The longest a streaming call may last.
    pub max_stream: Duration,
    /// The largest request message.
    pub max_message_bytes: usize,
    /// The longest deadline a call may have.
    pub max_deadline: Duration,
    /// The deadline of a unary call that names none.
    pub default_unary_deadline: Duration,
}

/// Everything the proxy needs, shared by every call.
pub struct Gateway {
    catalogue: Catalogue,
    routes: RouteTable,
    verifier: Verifier,
    limits: Limits,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// What a call holds until it ends: its place under the gateway's limit
/// and under its tenant's.
pub struct CallPermits {
    _gateway: OwnedSemaphorePermit,
    _tenant: TenantSlot,
}

/// What a call was admitted with.
struct Admission {
    upstream: Arc<Upstream>,
    replica: Arc<Replica>,
    permits: CallPermits,
    deadline: Option<Instant>,
}

impl Gateway {
    /// The gateway state.
    pub fn new(
        catalogue: Catalogue,
        routes: RouteTable,
        verifier: Verifier,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            catalogue,
            routes,
            verifier,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
            metrics,
        }
    }

    /// Proxies one call and answers it.
    async fn forward(
        self: Arc<Self>,
        mut request: http::Request<axum::body::Body>,
    ) -> http::Response<axum::body::Body> {
        let path = request.uri().path().to_owned();
        let kind = self.catalogue.method(&path);
        let request_id = request_id(request.headers());
        let method = if kind.is_some() {
            path.clone()
        } else {
            "unknown".to_owned()
        };
        // Bounded: the path is the client's to choose.
        let shown_path = path.chars().take(200).collect();
        let mut record = CallRecord::start(method, shown_path, request_id, self.metrics.clone());
        let admission = match self.admit(&path, kind, &mut request, &mut record) {
            Ok(admission) => admission,
            Err(status) => return answer(status, record),
        };
        let Admission {
            upstream,
            replica,
            permits,
            deadline,
        } = admission;
        record.upstream = upstream.name().to_owned();
        let signals = record.signals.clone();
        let limit = self.limits.max_message_bytes;
        let request = request
            .map(|body| tonic::body::Body::new(RequestBody::new(body, limit, signals.clone())));
        let mut expiry = deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        let call = replica.channel().oneshot(request);
        let outcome = match expiry.as_mut() {
            Some(expiry) => tokio::select! {
                outcome = call => Some(outcome),
                () = expiry.as_mut() => None,
            },
            None => Some(call.await),
        };
        let expired = deadline.is_some_and(|at| Instant::now() >= at);
        match &outcome {
            Some(Ok(_)) => upstream.report(&replica, CallOutcome::Answered),
            Some(Err(error)) if !expired && signals.oversize().is_none() => {
                upstream.report(&replica, failure_kind(error));
            }
            _ => {}
        }
        match (outcome, signals.oversize()) {
            (None, _) => answer(deadline_exceeded(), record),
            (Some(_), Some(size)) => answer(oversize_status(size, limit), record),
            // The upstream enforces the deadline it was given, and may end
            // the stream a moment before the gateway's own timer fires.
            (Some(Err(_)), None) if expired => answer(deadline_exceeded(), record),
            (Some(Err(error)), None) => {
                // The replica's address and the error stay in the log: a
                // client learns nothing of the inside from an error.
                tracing::warn!(upstream = upstream.name(), addr = %replica.addr(),
                    error = error_chain(&error), "a call could not reach its replica");
                let status: Status = ApiError::Unavailable(format!(
                    "{} is unavailable; retry shortly",
                    upstream.name()
                ))
                .into();
                answer(status, record)
            }
            (Some(Ok(response)), None) => {
                let (parts, body) = response.into_parts();
                let body = ResponseBody::new(
                    body,
                    &parts.headers,
                    deadline.zip(expiry),
                    signals,
                    limit,
                    record,
                    permits,
                );
                http::Response::from_parts(parts, axum::body::Body::new(body))
            }
        }
    }

    /// Decides whether and where the call may go, and rewrites its headers
    /// for the upstream.
    fn admit(
        &self,
        path: &str,
        kind: Option<MethodKind>,
        request: &mut http::Request<axum::body::Body>,
        record: &mut CallRecord,
    ) -> Result<Admission, Status> {
        let client = client_address(request);
        let now = Instant::now();
        // Before any verification work: an address that keeps presenting bad
        // tokens is refused outright until its bucket refills.
        self.limits
            .failed_auth
            .check(&client, now)
            .map_err(|retry_after| {
                Status::from(ApiError::ResourceExhausted {
                    message: "too many failed authentications from this address".into(),
                    retry_after,
                })
            })?;
        let headers = request.headers_mut();
        let public = crm_shared::auth::is_public(path);
        let principal = if public {
            // Anyone may call it: the request carries its own proof, which
            // the service checks. Its limits apply per client address.
            crm_shared::auth::Principal {
                tenant: format!("public:{client}"),
                subject: String::new(),
                roles: Vec::new(),
            }
        } else {
            match self.verifier.verify_headers(headers) {
                Ok(principal) => principal,
                Err(error) => {
                    let _ = self.limits.failed_auth.try_acquire(&client, now);
                    return Err(ApiError::Unauthenticated(error.to_string()).into());
                }
            }
        };
        record.tenant = principal.tenant.clone();
        if principal.is_service() {
            // The service identity reads every tenant's feed: it stays inside,
            // where services call each other directly.
            return Err(ApiError::PermissionDenied(
                "the service identity is not accepted from outside; services call each other directly"
                    .into(),
            )
            .into());
        }
        let chosen = headers.get(UPSTREAM_HEADER).and_then(|v| v.to_str().ok());
        let upstream = self
            .routes
            .route(path, chosen)
            .map_err(route_status)?
            .clone();
        self.limits
            .tenants
            .try_acquire(&principal.tenant, now)
            .map_err(|retry_after| {
                Status::from(ApiError::ResourceExhausted {
                    message: format!("tenant {} is over its rate limit", principal.tenant),
                    retry_after,
                })
            })?;
        let stream = kind.is_some_and(|kind| !kind.is_unary());
        let tenant_slot = self
            .limits
            .slots
            .acquire(&principal.tenant, stream)
            .map_err(|refused| {
                let message = match refused {
                    SlotRefused::Calls(max) => {
                        format!(
                            "tenant {} has {max} calls in flight, its limit",
                            principal.tenant
                        )
                    }
                    SlotRefused::Streams(max) => {
                        format!(
                            "tenant {} has {max} streams open, its limit",
                            principal.tenant
                        )
                    }
                };
                Status::from(ApiError::ResourceExhausted {
                    message,
                    retry_after: Duration::from_secs(1),
                })
            })?;
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            Status::from(ApiError::ResourceExhausted {
                message: format!(
                    "the gateway is at its limit of {} calls in flight",
                    self.limits.max_in_flight
                ),
                retry_after: Duration::from_millis(200),
            })
        })?;
        let deadline = self.deadline(kind, headers)?;
        let replica = upstream.pick().ok_or_else(|| {
            Status::from(ApiError::Unavailable(format!(
                "no replica of {} is serving",
                upstream.name()
            )))
        })?;

        headers.remove(TENANT_HEADER);
        headers.remove(SUBJECT_HEADER);
        if !public {
            if let Ok(tenant) = HeaderValue::from_str(&principal.tenant) {
                headers.insert(TENANT_HEADER, tenant);
            }
            if let Ok(subject) = HeaderValue::from_str(&principal.subject) {
                headers.insert(SUBJECT_HEADER, subject);
            }
        }
        if let Ok(id) = HeaderValue::from_str(&record.request_id) {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        if let Some(at) = deadline {
            let left = at.saturating_duration_since(Instant::now());
            headers.insert(TIMEOUT_HEADER, encode_timeout(left));
        }
        crm_shared::telemetry::inject_trace_headers(headers);
        Ok(Admission {
            upstream,
            replica,
            permits: CallPermits {
                _gateway: permit,
                _tenant: tenant_slot,
            },
            deadline,
        })
    }

    /// The client's deadline cut to the ceiling (for streams, the longest a
    /// stream may last); for a call without one, the default for its kind.
    fn deadline(
        &self,
        kind: Option<MethodKind>,
        headers: &HeaderMap,
    ) -> Result<Option<Instant>, Status> {
        let asked = match headers.get(TIMEOUT_HEADER) {
            Some(value) => Some(parse_timeout(value).ok_or_else(|| {
                Status::from(ApiError::invalid(
                    TIMEOUT_HEADER,
                    "not a gRPC timeout (1 to 8 digits and a unit: H, M, S, m, u or n)",
                ))
            })?),
            None => None,
        };
        let unary = kind.is_none_or(MethodKind::is_unary);
        let (ceiling, default) = if unary {
            (self.limits.max_deadline, self.limits.default_unary_deadline)
        } else {
            (self.limits.max_stream, self.limits.max_stream)
        };
        let timeout = asked.unwrap_or(default).min(ceiling);
        Ok(Some(Instant::now() + timeout))
    }
}

/// The status of a call with nowhere to go.
fn route_status(error: RouteError) -> Status {
    match error {
        RouteError::UnknownService(path) => {
            Status::unimplemented(format!("no service behind this gateway serves {path}"))
        }
        RouteError::Ambiguous {
            package,
            candidates,
        } => ApiError::invalid(
            UPSTREAM_HEADER,
            format!(
                "several services serve {package} ({}); name one in the {UPSTREAM_HEADER} metadata",
                candidates.join(", ")
            ),
        )
        .into(),
        RouteError::NotServedBy { package, upstream } => ApiError::invalid(
            UPSTREAM_HEADER,
            format!("{upstream} does not serve {package}"),
        )
        .into(),
    }
}

/// The answer to a call whose deadline passed.
pub fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded (ended by the gateway)")
}

/// How a call failed before the replica answered: no connection could be
/// made at all (ejects at once), or the call or its connection broke.
fn failure_kind(error: &(dyn std::error::Error + 'static)) -> CallOutcome {
    let mut source = Some(error);
    while let Some(error) = source {
        // tonic wraps every failure to connect (refused, unreachable, the
        // connect timeout) in this.
        if error.is::<tonic::ConnectError>() {
            return CallOutcome::ConnectFailed;
        }
        source = error.source();
    }
    CallOutcome::Failed
}

/// An error with its causes, for the message a client sees.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A trailers-only answer from the gateway itself.
fn answer(status: Status, record: CallRecord) -> http::Response<axum::body::Body> {
    record.finish(status.code() as i32);
    status.into_http()
}

/// The client's IP address, as the key of its failed-authentication bucket.
fn client_address(request: &http::Request<axum::body::Body>) -> String {
    request
        .extensions()
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
        .map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string())
}

/// The client's request id when it sent a sensible one, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit.
pub fn parse_timeout(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Writes a `grpc-timeout` value in the finest unit that fits in 8 digits.
pub fn encode_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let (amount, unit) = [
        (timeout.as_nanos(), "n"),
        (timeout.as_micros(), "u"),
        (timeout.as_millis(), "m"),
        (u128::from(timeout.as_secs()), "S"),
        (u128::from(timeout.as_secs() / 60), "M"),
    ]
    .into_iter()
    .find(|(amount, _)| *amount <= MAX)
    .unwrap_or((u128::from(timeout.as_secs() / 3600).min(MAX), "H"));
    // Cannot fail: ASCII digits and one letter are always a valid header value.
    HeaderValue::from_str(&format!("{amount}{unit}")).expect("digits and a letter are a header")
}

/// The proxy as a tower service, for the router's fallback.
#[derive(Clone)]
pub struct Proxy(pub Arc<Gateway>);

impl tower::Service<http::Request<axum::body::Body>> for Proxy {
    type Response = http::Response<axum::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let gateway = self.0.clone();
        Box::pin(async move { Ok(gateway.forward(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip() {
        for (text, expected) in [
            ("1S", Duration::from_secs(1)),
            ("250m", Duration::from_millis(250)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("7u", Duration::from_micros(7)),
        ] {
            let parsed = parse_timeout(&HeaderValue::from_static(text)).unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(
                parse_timeout(&encode_timeout(parsed)),
                Some(parsed),
                "{text}"
            );
        }
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(
                parse_timeout(&HeaderValue::from_static(bad)),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(encode_timeout(Duration::from_secs(300)), "300000m");
    }
}
