//! Running a service process: health (NOT_SERVING until the service says it is
//! ready, and again from the moment shutdown begins), server reflection in
//! both protocol versions, per-RPC telemetry, and graceful shutdown on
//! SIGTERM/SIGINT (stop accepting, end the event feeds, drain in-flight calls).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm_migration::MigratorTrait;
use tokio::{net::TcpListener, sync::watch};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_web::GrpcWebLayer;
use tower::util::option_layer;
use tower_http::{cors::CorsLayer, set_header::SetResponseHeaderLayer};

use crate::auth::{self, RoleRules, Verifier};
use crate::telemetry::RpcLayer;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tracing::Instrument;

/// Errors that stop a server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not read the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The migrations failed.
    #[error("migrating the database: {0}")]
    Migration(#[from] sea_orm::DbErr),
}

/// A listen address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: std::net::SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Binds a listen address (port 0 picks a free one).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Whether the service has finished starting (its migrations are applied).
/// Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    health: HealthReporter,
    served: Arc<Vec<String>>,
    ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Reports every served service (and the server as a whole) SERVING or
    /// NOT_SERVING, as the database comes and goes; `liveness` is untouched.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in self.served.iter().map(String::as_str).chain([""]) {
            self.health.set_service_status(name, status).await;
        }
    }

    /// Reports one part of the service (`jetstream`, `consumers/contacts`)
    /// under its own health name, so an operator sees it fail while the
    /// service's own status, which routes calls, is untouched.
    pub async fn set_part(&self, name: &str, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status(name, status).await;
    }

    /// Marks every served service SERVING and lets calls through.
    pub async fn set_ready(&self) {
        for name in self.served.iter().map(String::as_str).chain([""]) {
            self.health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Guards a service's own RPCs: UNAVAILABLE until ready (health answers
    /// NOT_SERVING meanwhile), then the token check, then the method's rule
    /// in `rules`; the admitted [`auth::Principal`] goes into the request's
    /// extensions for the handler ([`auth::admitted`]).
    pub fn guard<S>(&self, service: S, verifier: Verifier, rules: RoleRules) -> Guarded<S> {
        Guarded {
            inner: service,
            verifier,
            rules,
            ready: self.ready.clone(),
        }
    }
}

/// A service behind [`Readiness::guard`].
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    verifier: Verifier,
    rules: RoleRules,
    ready: Arc<AtomicBool>,
}

impl<S> Guarded<S> {
    /// Decides whether the call may reach the handler.
    fn admit(&self, request: &mut http::Request<tonic::body::Body>) -> Result<(), Status> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(Status::unavailable(
                "starting: migrations are running; retry shortly",
            ));
        }
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        if auth::is_public(request.uri().path()) {
            // No principal: the handler checks the proof the request carries.
            return match auth::allowed_roles(self.rules, method) {
                Some([]) => Ok(()),
                _ => Err(Status::internal(format!(
                    "{method} is public but its rule is not Role::PUBLIC"
                ))),
            };
        }
        let principal = self
            .verifier
            .verify_headers(request.headers())
            .map_err(|e| Status::unauthenticated(e.to_string()))?
            .acting_for(request.headers());
        // No rule: not a method of this service, or one nobody gave a rule
        // (which the authorization matrix test reports); either way, no call.
        let roles = auth::allowed_roles(self.rules, method).ok_or_else(|| {
            Status::unimplemented(format!("{method} is not a method of this service"))
        })?;
        principal.require(roles).map_err(Status::from)?;
        request.extensions_mut().insert(principal);
        Ok(())
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Guarded<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        match self.admit(&mut request) {
            Ok(()) => {
                let call = crate::audit::Call {
                    method: request.uri().path().to_owned(),
                    request_id: request
                        .headers()
                        .get("x-request-id")
                        .and_then(|id| id.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                };
                Box::pin(call.scope(self.inner.call(request)))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// The health service name a liveness probe asks for.
pub const LIVENESS: &str = "liveness";

/// The process-wide parts of one gRPC server, made before the service's own
/// handlers so they can watch for shutdown.
pub struct Host {
    /// Reports health per service name.
    pub health: HealthReporter,
    /// The health service, until the service takes it with [`Host::routes`].
    base: Option<Routes>,
    stopping: watch::Sender<bool>,
    served: Vec<String>,
    ready: Arc<AtomicBool>,
    /// Reflection lists every service in the descriptor sets, not only `served`.
    reflect_all: bool,
    /// gRPC-Web (and HTTP/1) accepted, with these CORS rules if any.
    grpc_web: Option<Option<CorsLayer>>,
    /// The access log is written by the server's own code.
    log_calls: bool,
    /// Each call runs to its end in its own task, even when its client goes away.
    run_calls_to_completion: bool,
}

impl Host {
    /// A host for the fully-qualified gRPC service names in `served`, each
    /// NOT_SERVING until [`Host::set_ready`].
    pub async fn new(served: &[&str]) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        // For a liveness probe: SERVING while the process runs, whatever its
        // database does (a restart would not bring that back).
        health
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        let served: Vec<String> = served.iter().map(|s| (*s).to_owned()).collect();
        for name in served.iter().map(String::as_str).chain([""]) {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let (stopping, _) = watch::channel(false);
        Self {
            health,
            base: Some(Routes::new(health_service)),
            stopping,
            served,
            ready: Arc::new(AtomicBool::new(false)),
            reflect_all: false,
            grpc_web: None,
            log_calls: true,
            run_calls_to_completion: true,
        }
    }

    /// Adds a fully-qualified gRPC service name to those served: NOT_SERVING
    /// until [`Host::set_ready`](Readiness::set_ready), listed by reflection.
    pub async fn add_served(&mut self, name: &str) {
        self.health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
        self.served.push(name.to_owned());
    }

    /// Reflection describes every service of the suite (for the gateway,
    /// which serves them all through its proxy).
    pub fn reflect_every_service(&mut self) {
        self.reflect_all = true;
    }

    /// Accepts gRPC-Web over HTTP/1 and HTTP/2 for browsers, with `cors`
    /// answering their preflight requests when set.
    pub fn accept_grpc_web(&mut self, cors: Option<CorsLayer>) {
        self.grpc_web = Some(cors);
    }

    /// Leaves the per-call log line to the service (spans and the duration
    /// histogram stay).
    pub fn without_call_log(&mut self) {
        self.log_calls = false;
    }

    /// Calls end the moment their client cancels them or their deadline
    /// passes, rather than running to their end (for the gateway, whose calls
    /// hold no transaction and should reset the upstream stream at once).
    pub fn end_calls_with_their_client(&mut self) {
        self.run_calls_to_completion = false;
    }

    /// The handle that turns the service ready once it has migrated.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            health: self.health.clone(),
            served: Arc::new(self.served.clone()),
            ready: self.ready.clone(),
        }
    }

    /// The routes to add the service's own services to: health is already
    /// in them, reflection is added by [`Host::serve`].
    pub fn routes(&mut self) -> Routes {
        self.base.take().unwrap_or_default()
    }

    /// Turns true when shutdown begins; long-lived streams end on it.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Serves `routes` (from [`Host::routes`], with the service's own added)
    /// plus reflection on `listener` until `shutdown` resolves, then drains for
    /// at most `grace`.
    pub async fn serve(
        self,
        service: &'static str,
        listener: TcpListener,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
        grace: Duration,
    ) -> Result<(), ServeError> {
        let mut reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        // List only what this process serves, not every service in the
        // suite's protos (unless it serves them all, as the gateway does).
        if !self.reflect_all {
            for name in self
                .served
                .iter()
                .map(String::as_str)
                .chain(["grpc.health.v1.Health"])
            {
                reflection_v1 = reflection_v1.with_service_name(name);
                reflection_v1alpha = reflection_v1alpha.with_service_name(name);
            }
        }
        let routes = routes
            .add_service(reflection_v1.build_v1()?)
            .add_service(reflection_v1alpha.build_v1alpha()?);
        let health = self.health;
        let served = self.served;
        let stopping = self.stopping;
        let (drain_started, mut drain_deadline) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: not serving, ending feeds, draining calls");
            for name in served.iter().map(String::as_str).chain([""]) {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            let _ = stopping.send(true);
            let _ = drain_started.send(true);
        };
        // Without TCP_NODELAY a response written in several small frames
        // (headers, message, trailers) can wait out the peer's delayed ACK:
        // a 40 ms tail seen in the benchmark.
        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let rpc_layer = if self.log_calls {
            RpcLayer::new(service)
        } else {
            RpcLayer::new(service).without_log()
        };
        let calls = TaskTracker::new();
        let (grpc_web, cors) = match self.grpc_web {
            Some(cors) => (Some(GrpcWebLayer::new()), cors),
            None => (None, None),
        };
        let server = http2::configure(tonic::transport::Server::builder())
            .accept_http1(grpc_web.is_some())
            .layer(version_header())
            // CORS outside the call's span and metrics: a browser's preflight
            // is answered here and is not a call.
            .layer(option_layer(cors))
            .layer(rpc_layer)
            .layer(option_layer(grpc_web))
            // Innermost, so that neither a reset stream nor tonic's own
            // deadline timer (outside every layer) can drop a handler mid-way.
            .layer(option_layer(self.run_calls_to_completion.then(|| {
                RunToCompletionLayer {
                    calls: calls.clone(),
                }
            })))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal);
        // Drained once the connections have closed and the calls whose
        // clients left have finished too.
        let drained = async move {
            server.await?;
            calls.close();
            calls.wait().await;
            Ok::<_, ServeError>(())
        };
        let deadline = async move {
            let _ = drain_deadline.wait_for(|started| *started).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = drained => result?,
            _ = deadline => tracing::warn!(?grace, "calls still in flight after the grace period; stopping anyway"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The name of the response header that says which version answered.
pub const VERSION_HEADER: &str = "x-crm-version";

/// Adds `x-crm-version` to every response, unless one is there already: a
/// response the gateway proxies keeps the version of the replica that made it.
fn version_header() -> SetResponseHeaderLayer<http::HeaderValue> {
    let version = http::HeaderValue::from_str(crate::version())
        .unwrap_or_else(|_| http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    SetResponseHeaderLayer::if_not_present(http::HeaderName::from_static(VERSION_HEADER), version)
}

impl Host {
    /// [`Host::serve`] while `db` migrates with `M`: health says NOT_SERVING
    /// and calls get UNAVAILABLE (rather than a refused connection) until the
    /// migrations are done; then everything turns SERVING and `on_ready` runs
    /// (to start work that needs the schema). Its result is returned once the
    /// server has stopped; `None` when it stopped before the migrations ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn serve_migrated<M: MigratorTrait, R>(
        self,
        service: &'static str,
        listener: TcpListener,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
        grace: Duration,
        db: &crate::db::Database,
        on_ready: impl FnOnce() -> R,
    ) -> Result<Option<R>, ServeError> {
        let readiness = self.readiness();
        let serve = self.serve(service, listener, routes, shutdown, grace);
        tokio::pin!(serve);
        let migrate = async {
            db.migrate::<M>().await?;
            readiness.set_ready().await;
            tracing::info!("migrations applied; serving");
            Ok::<_, ServeError>(())
        };
        tokio::select! {
            stopped = &mut serve => return stopped.map(|()| None),
            migrated = migrate => migrated?,
        }
        let ready = on_ready();
        serve.await?;
        Ok(Some(ready))
    }
}

/// The HTTP/2 settings of every server in the suite, the gateway included
/// (README, "HTTP/2 settings", says why each is what it is).
///
/// hyper closes a connection (GOAWAY `ENHANCE_YOUR_CALM`, "too_many_data_frames")
/// when the DATA frames it holds unread cost more than a budget of half the
/// connection window, each frame under 256 bytes costing 256 minus its size.
/// grpcio sends every message in its own frame, so a 100-byte row costs 156,
/// and a stream stalled with a full window of them costs 1.5 times the window.
/// With hyper's defaults (1 MiB for a stream and for the connection) one
/// stream the service stopped reading for a moment held up to 10,000 frames,
/// three times the budget. Here a stalled stream costs at most 370 KiB of the
/// 8 MiB budget: 22 imports of tiny rows can stall at once on one connection
/// (the gateway's to a replica carries every client's), and the gateway
/// gathers frames into full-size ones when it can. Streaming handlers keep
/// reading while they write (ImportContacts), so streams rarely stall at all.
pub mod http2 {
    use std::time::Duration;

    use tonic::transport::{Endpoint, Server};

    /// What one call may send before the service reads it: 256 KiB, still
    /// 2.6 MB/s for one upload over a 100 ms round trip.
    pub const STREAM_WINDOW: u32 = 256 * 1024;
    /// What all calls of one connection may leave unread: 16 MiB, so the
    /// small-frame budget (half of it) outlasts 22 stalled streams.
    pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
    /// Calls at once on one connection; the gateway's calls to a replica
    /// share one connection, and queue in the gateway beyond this.
    pub const MAX_CONCURRENT_STREAMS: u32 = 256;
    /// Streams a client may reset before the server has even accepted them
    /// (the "rapid reset" guard; hyper's default is 20): a load generator
    /// stopping with 32 calls in flight must not cost its connection.
    pub const MAX_PENDING_ACCEPT_RESETS: usize = 128;
    /// A ping on an idle connection, so a dead peer is noticed.
    pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

    /// Applies the settings to a server.
    pub fn configure(server: Server) -> Server {
        server
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_adaptive_window(Some(false))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESETS))
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
    }

    /// Applies the receiving side of the settings to a client's endpoint.
    pub fn configure_client(endpoint: Endpoint) -> Endpoint {
        endpoint
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_adaptive_window(false)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
    }
}

/// Runs every call in a task of its own, so a call whose client cancels it
/// (or whose deadline passes) still finishes what it started: a transaction
/// commits or rolls back before its connection goes back to the pool, rather
/// than being dropped between `BEGIN` and its answer, which sqlx does not
/// undo (the connection was then handed to the next call still inside a
/// transaction). The answer of such a call is dropped.
/// Shutdown waits for these tasks too (within the grace period).
#[derive(Clone)]
pub struct RunToCompletionLayer {
    calls: TaskTracker,
}

impl<S> tower::Layer<S> for RunToCompletionLayer {
    type Service = RunToCompletion<S>;
    fn layer(&self, inner: S) -> RunToCompletion<S> {
        RunToCompletion {
            inner,
            calls: self.calls.clone(),
        }
    }
}

/// The service [`RunToCompletionLayer`] wraps around the routes.
#[derive(Clone)]
pub struct RunToCompletion<S> {
    inner: S,
    calls: TaskTracker,
}

impl<S, B> tower::Service<http::Request<B>> for RunToCompletion<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.calls.spawn(crate::db::statements::carried(
            self.inner.call(request).in_current_span(),
        ));
        Box::pin(async move {
            match call.await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::error!(%error, "a call's task failed");
                    Ok(Status::internal("the call failed inside the service").into_http())
                }
            }
        })
    }
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
