//! The gateway: one address for every client of the suite.
//!
//! Reads top-down: [`Application`] wires the parts; `proxy` admits each call
//! (token, tenant rate limit, in-flight limit, deadline) and streams it,
//! undecoded, to a healthy replica of the service that owns its package
//! (`routing`, `upstream`); `body` watches the two directions of a call;
//! `access` logs and counts it. Health and reflection (for the whole suite)
//! are the gateway's own and need no token; `/metrics` has a port of its own.

mod access;
mod admin;
mod body;
pub mod config;
mod limits;
mod proxy;
mod routing;
mod upstream;

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use crm_proto::gateway::gateway_admin_service_server::GatewayAdminServiceServer;
use crm_shared::{auth::Verifier, server::Host};
use http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    access::Metrics,
    config::{GatewaySettings, list},
    limits::{Limit, TenantLimiter, TenantSlots},
    proxy::{Gateway, Limits, Proxy},
    routing::{Catalogue, RouteTable, UPSTREAM_HEADER},
    upstream::{AddressError, Upstream},
};

/// Who may call the gateway's own admin service.
pub use admin::ROLE_RULES as ADMIN_ROLE_RULES;

/// The gateway's name: its config section and log name.
pub const SERVICE: &str = "gateway";
/// The port it listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50051;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No usable token verification settings.
    #[error("auth: {0}")]
    Auth(#[from] crm_shared::auth::AuthError),
    /// An upstream address is malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The compiled-in descriptor sets do not decode (a build problem).
    #[error("descriptor set: {0}")]
    Descriptors(#[from] prost::DecodeError),
    /// `tenant_limits` does not parse.
    #[error("tenant_limits: {0}")]
    TenantLimits(String),
    /// A CORS origin is not `scheme://host[:port]`.
    #[error("cors_allowed_origins: {0:?} is not an origin; write scheme://host[:port], no path")]
    Origin(String),
    /// The listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] crm_shared::server::BindError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] crm_shared::server::ServeError),
}

/// A built, bound, not yet serving gateway.
pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    gateway: Arc<Gateway>,
    verifier: Verifier,
    upstreams: Vec<Arc<Upstream>>,
    metrics: Arc<Metrics>,
    cors: Option<CorsLayer>,
    settings: config::Section,
}

impl Application {
    /// Reads the route table and binds the listen address (port 0 picks a free one).
    pub async fn build(settings: GatewaySettings) -> Result<Self, StartError> {
        crm_shared::error::set_domain("gateway.crm");
        let section = settings.gateway;
        let verifier = Verifier::from_settings(&settings.auth)?;
        let catalogue = Catalogue::from_descriptor_sets(&[crm_proto::FILE_DESCRIPTOR_SET])?;
        let mut upstreams = Vec::new();
        let mut owned = Vec::new();
        for (name, upstream) in &section.upstreams {
            let packages = upstream.packages_of(name);
            let services = packages
                .iter()
                .flat_map(|package| catalogue.services_in(package))
                .map(str::to_owned)
                .collect();
            let upstream = Arc::new(Upstream::new(name, list(&upstream.addresses), services)?);
            upstreams.push(upstream.clone());
            owned.push((upstream, packages));
        }
        let limits = Limits {
            tenants: TenantLimiter::new(
                Limit {
                    rate: section.rate_per_tenant,
                    burst: section.burst_per_tenant,
                },
                limits::parse_overrides(&section.tenant_limits)
                    .map_err(StartError::TenantLimits)?,
            ),
            slots: TenantSlots::new(
                section.max_calls_in_flight_per_tenant,
                section.max_streams_per_tenant,
            ),
            failed_auth: TenantLimiter::new(
                Limit {
                    rate: section.failed_auth_rate,
                    burst: section.failed_auth_burst,
                },
                HashMap::new(),
            ),
            max_in_flight: section.max_calls_in_flight.max(1),
            max_stream: Duration::from_secs(section.max_stream_seconds.max(1)),
            max_message_bytes: section.max_message_bytes,
            max_deadline: section.max_deadline(),
            default_unary_deadline: Duration::from_secs(section.default_unary_deadline_seconds),
        };
        let metrics = Arc::new(Metrics::default());
        let gateway = Gateway::new(
            catalogue,
            RouteTable::new(&owned),
            verifier.clone(),
            limits,
            metrics.clone(),
        );
        let cors = cors_layer(&section.cors_allowed_origins)?;
        let addr = section.listen_addr;
        let listener = crm_shared::server::bind(addr).await?;
        let addr = section.metrics_addr;
        let metrics_listener = crm_shared::server::bind(addr).await?;
        Ok(Self {
            listener,
            metrics_listener,
            gateway: Arc::new(gateway),
            verifier,
            upstreams,
            metrics,
            cors,
            settings: section,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// Serves until `shutdown` resolves; then drains in-flight calls.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let addr = self.local_addr();
        let metrics_addr = self.metrics_addr();
        let mut host = Host::new(&[
            <GatewayAdminServiceServer<admin::Admin> as tonic::server::NamedService>::NAME,
        ])
        .await;
        host.reflect_every_service();
        host.accept_grpc_web(self.cors);
        host.without_call_log();
        host.end_calls_with_their_client();
        for upstream in &self.upstreams {
            let known = upstream.replica_states().known();
            tracing::info!(upstream = upstream.name(), replicas = known, "routing");
            tokio::spawn(upstream.clone().watch(
                host.health.clone(),
                Duration::from_millis(self.settings.health_check_interval_ms.max(50)),
                Duration::from_secs(self.settings.dns_refresh_seconds.max(1)),
                host.stopping(),
            ));
        }
        let metrics = self.metrics.clone();
        let upstreams = self.upstreams.clone();
        let metrics_router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = metrics.render(&upstreams);
                async move { text }
            }),
        );
        let mut metrics_stopping = host.stopping();
        tokio::spawn(async move {
            let serve = axum::serve(self.metrics_listener, metrics_router).with_graceful_shutdown(
                async move {
                    let _ = metrics_stopping.wait_for(|stop| *stop).await;
                },
            );
            if let Err(error) = serve.await {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        });
        let admin = GatewayAdminServiceServer::new(admin::Admin {
            upstreams: self.upstreams.clone(),
        });
        let admin = host
            .readiness()
            .guard(admin, self.verifier, admin::ROLE_RULES);
        let router = host
            .routes()
            .add_service(admin)
            .into_axum_router()
            .fallback_service(Proxy(self.gateway));
        host.readiness().set_ready().await;
        tracing::info!(%addr, %metrics_addr, "gateway listening; metrics at /metrics");
        let grace = Duration::from_secs(self.settings.shutdown_grace_seconds);
        host.serve(SERVICE, self.listener, router.into(), shutdown, grace)
            .await?;
        Ok(())
    }
}

/// An origin as browsers send it, `scheme://host[:port]`: anything else
/// (a trailing slash, a path, no scheme) would never match one, so it is
/// refused at start rather than failing every browser call.
fn origin(text: &str) -> Option<HeaderValue> {
    let uri: http::Uri = text.parse().ok()?;
    let exact = uri.scheme().is_some()
        && uri.authority().is_some()
        && format!("{}://{}", uri.scheme_str()?, uri.authority()?) == text;
    exact.then(|| HeaderValue::from_str(text).ok()).flatten()
}

/// The CORS rules for browsers calling through gRPC-Web, or none.
fn cors_layer(origins: &str) -> Result<Option<CorsLayer>, StartError> {
    let origins: Vec<&str> = list(origins).collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .map(|o| origin(o).ok_or_else(|| StartError::Origin((*o).to_owned())))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("x-request-id"),
                header(UPSTREAM_HEADER),
                // Sent by OpenTelemetry's browser instrumentation.
                header("traceparent"),
                header("tracestate"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-request-id"),
                header(crm_shared::server::VERSION_HEADER),
            ])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_only_what_a_browser_sends() {
        for good in ["https://app.example.com", "http://127.0.0.1:8080"] {
            assert!(super::origin(good).is_some(), "{good}");
        }
        for bad in [
            "http://127.0.0.1:8080/",
            "127.0.0.1:8080",
            "https://app.example.com/x",
            "app",
        ] {
            assert!(super::origin(bad).is_none(), "{bad}");
        }
    }
}
