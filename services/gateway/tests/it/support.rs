//! The harness: the real contacts service and the real gateway on free ports,
//! a test upstream for what contacts cannot show (a slow call, a client
//! stream, what headers arrive), and clients that go through the gateway.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Buf, Bytes};
use crm_gateway::config::{GatewaySettings, Section, UpstreamSettings};
use crm_proto::contacts::contacts_service_client::ContactsServiceClient;
use crm_shared::config::{AuthSettings, LogFormat, TelemetrySettings};
pub use crm_testkit::{
    ADMIN, Backend, Bearer, OTHER_TENANT, SECRET, ServiceProcess, TENANT, TestDatabase, bearer,
    channel_to, db_test, eventually, service, token,
};
use http_body_util::BodyExt;
use prost::Message;
use tokio::sync::oneshot;
use tonic::{Request, Status, service::interceptor::InterceptedService, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A gateway client's credentials: `Bearer <token>` on every call.
pub fn bearer_token(token: &str) -> Bearer {
    bearer(Some(&format!("Bearer {token}")))
}

/// A contacts client that goes through the gateway.
pub type Contacts = ContactsServiceClient<InterceptedService<Channel, Bearer>>;

/// The contacts service as a process of its own (the test kit's), which a
/// test can kill outright and start again on the same port and database.
pub struct ContactsProcess {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    process: ServiceProcess,
}

impl ContactsProcess {
    /// Starts contacts on a fresh database of `backend`; `None` when that
    /// backend is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        let db = TestDatabase::create(backend).await?;
        let process = ServiceProcess::start(
            service(crm_contacts::build),
            crm_testkit::settings("contacts", &db.url),
        )
        .await;
        Some(Self {
            addr: process.addr,
            db,
            process,
        })
    }

    /// Kills the service: no drain, no goodbye.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same address and database.
    pub async fn restart(&mut self) {
        self.process.restart().await;
    }
}

fn auth() -> AuthSettings {
    AuthSettings {
        hs256_secret: Some(SECRET.into()),
        ..Default::default()
    }
}

fn telemetry() -> TelemetrySettings {
    TelemetrySettings {
        format: LogFormat::Pretty,
        filter: "warn".into(),
    }
}

/// Gateway settings with generous limits and no upstreams; tests add theirs.
pub fn gateway_settings() -> Section {
    Section {
        listen_addr: "127.0.0.1:0".parse().expect("an address"),
        metrics_addr: "127.0.0.1:0".parse().expect("an address"),
        shutdown_grace_seconds: 2,
        upstreams: BTreeMap::new(),
        rate_per_tenant: 10_000.0,
        burst_per_tenant: 10_000.0,
        tenant_limits: String::new(),
        max_message_bytes: 4 * 1024 * 1024,
        max_calls_in_flight: 1000,
        max_calls_in_flight_per_tenant: 1000,
        max_streams_per_tenant: 100,
        max_stream_seconds: 3600,
        failed_auth_rate: 100.0,
        failed_auth_burst: 100.0,
        max_deadline_seconds: 300,
        default_unary_deadline_seconds: 30,
        cors_allowed_origins: "https://app.example.com".into(),
        health_check_interval_ms: 100,
        dns_refresh_seconds: 10,
    }
}

/// Routes `packages` to `addresses`.
pub fn upstream(section: &mut Section, name: &str, packages: &str, addresses: &[SocketAddr]) {
    section.upstreams.insert(
        name.to_owned(),
        UpstreamSettings {
            packages: packages.to_owned(),
            addresses: addresses
                .iter()
                .map(|addr| format!("http://{addr}"))
                .collect::<Vec<_>>()
                .join(","),
        },
    );
}

/// A running gateway.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl GatewayProcess {
    /// Starts a gateway with `section`.
    pub async fn start(section: Section) -> Self {
        Self::start_with_auth(section, auth()).await
    }

    /// Starts a gateway with `section`, verifying tokens by `auth`.
    pub async fn start_with_auth(section: Section, auth: AuthSettings) -> Self {
        // The real subscriber and tracer, so spans carry trace context.
        crm_testkit::logs::capture();
        let app = crm_gateway::Application::build(GatewaySettings {
            gateway: section,
            auth,
            telemetry: telemetry(),
        })
        .await
        .expect("the gateway builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            stop: Some(stop),
        }
    }

    /// A contacts client through the gateway with `token`.
    pub fn contacts(&self, token: &str) -> Contacts {
        ContactsServiceClient::with_interceptor(channel_to(self.addr), bearer_token(token))
    }

    /// A channel to the gateway.
    pub fn channel(&self) -> Channel {
        channel_to(self.addr)
    }

    /// The gateway's health for `service` (an upstream's gRPC service, or
    /// "" for the gateway itself).
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let mut health = HealthClient::new(self.channel());
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let response = health.check(request).await.ok()?;
        Some(response.into_inner().status())
    }

    /// The text of its `/metrics`.
    pub async fn metrics(&self) -> String {
        let request = "GET /metrics HTTP/1.1\nhost: gateway\nconnection: close\n\n";
        let response = http1(self.metrics_addr, request, b"").await;
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Waits until the gateway has found a healthy replica of `service`.
    pub async fn wait_until_serving(&self, service: &str) {
        eventually(
            &format!("the gateway reports {service} SERVING"),
            async || self.health(service).await == Some(ServingStatus::Serving),
        )
        .await;
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Contacts on `backend` behind a gateway with `section`'s limits.
pub async fn suite(
    backend: Backend,
    mut section: Section,
) -> Option<(ContactsProcess, GatewayProcess)> {
    let contacts = ContactsProcess::start(backend).await?;
    upstream(
        &mut section,
        "contacts",
        "crm.contacts.v1,crm.events.v1",
        &[contacts.addr],
    );
    let gateway = GatewayProcess::start(section).await;
    gateway
        .wait_until_serving("crm.contacts.v1.ContactsService")
        .await;
    Some((contacts, gateway))
}

/// One HTTP/1.1 exchange on a fresh connection; answers the raw response.
pub async fn http1(addr: SocketAddr, head: &str, body: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = head.replace('\n', "\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .unwrap();
    response
}

/// What the test upstream saw.
#[derive(Default)]
pub struct Seen {
    /// Calls that arrived.
    pub calls: AtomicUsize,
    /// Calls whose handler was dropped before it finished (cancelled).
    pub cancelled: AtomicUsize,
    /// The headers of the last call.
    pub headers: Mutex<Option<http::HeaderMap>>,
}

/// A gRPC server that knows no protobuf, for what contacts cannot show:
/// `/crm.test.v1.Probe/Count` answers how many messages the client streamed
/// (as a `google.protobuf.Duration` with that many seconds);
/// `/crm.test.v1.Probe/Sleep` takes 30 s unless cancelled. It serves health.
pub struct Probe {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Option<oneshot::Sender<()>>,
}

impl Probe {
    /// Starts a probe on a free port.
    pub async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let handler_seen = seen.clone();
        let handler = tower::service_fn(move |request: http::Request<axum::body::Body>| {
            let seen = handler_seen.clone();
            async move { Ok::<_, Infallible>(probe(seen, request).await) }
        });
        let (_, health) = tonic_health::server::health_reporter();
        let router = tonic::service::Routes::new(health)
            .into_axum_router()
            .fallback_service(handler);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(router.into())
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = stopped.await;
                    },
                ),
        );
        Self {
            addr,
            seen,
            stop: Some(stop),
        }
    }

    /// Stops serving (connections close; in-flight calls end).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets a flag unless disarmed: dropped mid-call means cancelled.
struct CancelGuard(Option<Arc<Seen>>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(seen) = self.0.take() {
            seen.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn probe(
    seen: Arc<Seen>,
    request: http::Request<axum::body::Body>,
) -> http::Response<axum::body::Body> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    *seen.headers.lock().expect("lock") = Some(request.headers().clone());
    let path = request.uri().path().to_owned();
    let mut guard = CancelGuard(Some(seen.clone()));
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Status::cancelled("request stream broke").into_http(),
    };
    let response = match path.as_str() {
        "/crm.test.v1.Probe/Count" => {
            let count = count_messages(body);
            grpc_ok(prost_types::Duration {
                seconds: count,
                nanos: 0,
            })
        }
        "/crm.test.v1.Probe/Sleep" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            grpc_ok(prost_types::Duration::default())
        }
        _ => Status::unimplemented(path).into_http(),
    };
    guard.0 = None;
    response
}

fn count_messages(mut body: Bytes) -> i64 {
    let mut count = 0;
    while body.remaining() >= 5 {
        let _compressed = body.get_u8();
        let len = body.get_u32() as usize;
        body.advance(len.min(body.remaining()));
        count += 1;
    }
    count
}

/// One message and an OK status, as a gRPC server writes them.
fn grpc_ok(message: impl Message) -> http::Response<axum::body::Body> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(&payload);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = http_body_util::StreamBody::new(futures_util::stream::iter([
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(framed))),
        Ok(http_body::Frame::trailers(trailers)),
    ]));
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(axum::body::Body::new(body))
        .expect("a response")
}

/// Calls `path` on `channel` with `messages` empty messages streamed, with
/// `token` and an optional deadline; answers the Duration's seconds.
pub async fn call_probe(
    channel: Channel,
    path: &'static str,
    token: Option<&str>,
    messages: usize,
    timeout: Option<Duration>,
) -> Result<i64, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let stream = tokio_stream::iter(vec![prost_types::Duration::default(); messages]);
    let mut request = Request::new(stream);
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    if let Some(timeout) = timeout {
        // Written by hand: tonic's `set_timeout` would also start a timer in
        // this client, which races the gateway's; the test is about the gateway.
        request.metadata_mut().insert(
            "grpc-timeout",
            format!("{}m", timeout.as_millis()).parse().expect("ascii"),
        );
    }
    let codec = tonic_prost::ProstCodec::<prost_types::Duration, prost_types::Duration>::default();
    let response = grpc
        .client_streaming(request, http::uri::PathAndQuery::from_static(path), codec)
        .await?;
    Ok(response.into_inner().seconds)
}

/// Whether `status` carries a RetryInfo, and its delay.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt;
    status.get_details_retry_info()?.retry_delay
}

/// Whether `status` names `field` in a BadRequest violation.
pub fn names_field(status: &Status, field: &str) -> bool {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .is_some_and(|bad| bad.field_violations.iter().any(|v| v.field == field))
}

/// Whether an [`AtomicBool`] is set.
pub fn is_set(flag: &AtomicBool) -> bool {
    flag.load(Ordering::SeqCst)
}
