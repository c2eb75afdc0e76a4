//! The one test kit of the suite (a dev-dependency only): throwaway
//! databases ([`TestDatabase`], the [`db_test!`] macro running a test on
//! SQLite and PostgreSQL), any service started as a [`ServiceProcess`] on an
//! ephemeral port in a runtime of its own (so a test can stop it gracefully
//! or kill it outright, as SIGKILL would), tokens, clients and the
//! assertions every service's tests share.

pub mod bench;
mod database;
pub mod logs;
pub mod nats;
mod process;
pub mod raw;
pub mod recorder;
pub mod smtp;
pub mod spawned;
pub mod statements;

use std::{future::Future, net::SocketAddr, time::Duration};

pub use database::{Backend, TestDatabase};
pub use process::{Launch, ServiceProcess, service};

use crm_proto::{
    audit::{AuditEntry, ListAuditEntriesRequest, audit_log_service_client::AuditLogServiceClient},
    events::{Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_shared::{
    auth::{Role, sign_hs256},
    config::{AuthSettings, LogFormat, ServiceSettings, Settings, TelemetrySettings},
};
use tonic::{
    Code, Request, Status,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

/// The HS256 secret every test server verifies tokens with.
pub const SECRET: &str = "test-secret";
/// The services' own key, which signs the service identity only.
pub const SERVICE_SECRET: &str = "test-service-secret";
/// The tenant most tests work in.
pub const TENANT: &str = "acme";
/// Another tenant, for isolation tests.
pub const OTHER_TENANT: &str = "globex";

pub const ADMIN: &[Role] = &[Role::Admin];
pub const MANAGER: &[Role] = &[Role::Manager];
pub const SALES: &[Role] = &[Role::Sales];
pub const VIEWER: &[Role] = &[Role::Viewer];
pub const SERVICE: &[Role] = &[Role::Service];

/// A loopback address with a port nothing listens on now, for a listener a
/// test or benchmark starts (a service's tracking port, an SMTP server).
pub fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// A token for `tenant` with `roles`, valid for an hour: signed with
/// [`SERVICE_SECRET`] for the service identity, else with [`SECRET`].
pub fn token(tenant: &str, roles: &[Role]) -> String {
    let secret = if roles == [Role::Service] {
        SERVICE_SECRET
    } else {
        SECRET
    };
    sign_hs256(secret, tenant, "tester", roles, Duration::from_secs(3600))
        .expect("signing a test token")
}

/// Adds `authorization: <value>` to every call (or nothing, for `None`).
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `authorization: <value>`, or no such header.
pub fn bearer(value: Option<&str>) -> Bearer {
    Bearer(value.map(|v| v.parse().expect("an ASCII authorization value")))
}

/// `authorization: Bearer <a token for tenant with roles>`.
pub fn bearer_for(tenant: &str, roles: &[Role]) -> Bearer {
    bearer(Some(&format!("Bearer {}", token(tenant, roles))))
}

/// A channel whose every call carries a bearer token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// An event feed client with a token.
pub type Feed = EventFeedServiceClient<Authed>;

/// A lazily connecting channel to `addr`.
pub fn channel_to(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint URI")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

/// The settings of a test server of `service` on `database_url`, on a free
/// port, verifying tokens signed with [`SECRET`].
pub fn settings(service: &str, database_url: &str) -> Settings {
    Settings {
        service_name: service.into(),
        service: ServiceSettings {
            listen_addr: "127.0.0.1:0".parse().expect("a socket address"),
            database_url: database_url.to_owned(),
            max_connections: 5,
            shutdown_grace_seconds: 5,
            request_id_hours: 24,
            event_retention_days: 30,
            audit_retention_days: 730,
        },
        auth: AuthSettings {
            hs256_secret: Some(SECRET.into()),
            service_secret: Some(SERVICE_SECRET.into()),
            ..Default::default()
        },
        telemetry: telemetry(),
        paging_secret: "paging".into(),
        peers: Default::default(),
        service_token: None,
        options: Default::default(),
        events: Default::default(),
    }
}

/// Quiet logs: warnings only.
pub fn telemetry() -> TelemetrySettings {
    TelemetrySettings {
        format: LogFormat::Pretty,
        filter: std::env::var("CRM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
    }
}

/// The health of `service` as the server at `channel` reports it.
pub async fn health_status(channel: &Channel, service: &str) -> Result<ServingStatus, Status> {
    let mut health = HealthClient::new(channel.clone());
    let response = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    ServingStatus::try_from(response.status)
        .map_err(|_| Status::unknown(format!("unknown serving status {}", response.status)))
}

/// Waits until `check` holds, for at most `seconds`.
pub async fn eventually_within(seconds: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {seconds} s waiting until {what}");
}

/// Waits until `check` holds, for at most 10 s.
pub async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    eventually_within(10, what, check).await;
}

/// Reads a StreamEvents stream to its end.
pub async fn collect_events(feed: &mut Feed, request: StreamEventsRequest) -> Vec<Event> {
    let mut stream = feed.stream_events(request).await.must("StreamEvents");
    let mut events = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => events.push(message.event.expect("a StreamEventsResponse event")),
            Ok(None) => return events,
            Err(status) => panic!(
                "StreamEvents broke after {} events: {:?}: {}",
                events.len(),
                status.code(),
                status.message()
            ),
        }
    }
}

/// Every event of the feed at `addr`, read with the service identity.
pub async fn all_events(addr: SocketAddr) -> Vec<Event> {
    let mut feed =
        EventFeedServiceClient::with_interceptor(channel_to(addr), bearer_for(TENANT, SERVICE))
            .max_decoding_message_size(64 * 1024 * 1024);
    collect_events(&mut feed, StreamEventsRequest::default()).await
}

/// Every audit log entry of `tenant` at `addr` matching `filter`, newest
/// first, read by an admin page by page.
pub async fn audit_entries(addr: SocketAddr, tenant: &str, filter: &str) -> Vec<AuditEntry> {
    let mut log =
        AuditLogServiceClient::with_interceptor(channel_to(addr), bearer_for(tenant, ADMIN));
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = log
            .list_audit_entries(ListAuditEntriesRequest {
                filter: filter.into(),
                page_size: 100,
                page_token,
            })
            .await
            .must(&format!("ListAuditEntries filter={filter:?}"));
        entries.extend(page.audit_entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}

/// The payload of `event`, decoded as `M`.
pub fn payload<M: prost::Message + Default>(event: &Event) -> M {
    let any = event
        .payload
        .as_ref()
        .unwrap_or_else(|| panic!("event {} {} has no payload", event.r#type, event.subject));
    M::decode(any.value.as_slice()).unwrap_or_else(|error| {
        panic!(
            "payload of {} {} does not decode: {error}",
            event.r#type, event.subject
        )
    })
}

/// Unwraps gRPC results with a message that says what failed and how.
pub trait Must<T> {
    /// The response, or a panic naming `what` and the status.
    fn must(self, what: &str) -> T;
    /// The status of a call that must fail, or a panic naming `what`.
    fn must_fail(self, what: &str) -> Status;
    /// The status of a call that must fail with `code`.
    fn must_fail_with(self, code: Code, what: &str) -> Status;
}

impl<T> Must<T> for Result<tonic::Response<T>, Status> {
    fn must(self, what: &str) -> T {
        match self {
            Ok(response) => response.into_inner(),
            Err(status) => panic!(
                "{what} failed: {:?}: {} ({:?})",
                status.code(),
                status.message(),
                status.get_error_details().bad_request()
            ),
        }
    }

    fn must_fail(self, what: &str) -> Status {
        match self {
            Ok(_) => panic!("{what} succeeded but must fail"),
            Err(status) => status,
        }
    }

    fn must_fail_with(self, code: Code, what: &str) -> Status {
        let status = self.must_fail(what);
        assert_eq!(
            status.code(),
            code,
            "{what}: expected {code:?}, got {:?}: {}",
            status.code(),
            status.message()
        );
        status
    }
}

/// What is wrong with `result` when it should be INVALID_ARGUMENT with a
/// BadRequest field violation naming `field`; `None` when it is right.
pub fn invalid_field_problem<T>(
    result: Result<tonic::Response<T>, Status>,
    field: &str,
    what: &str,
) -> Option<String> {
    let status = match result {
        Ok(_) => return Some(format!("{what}: succeeded, must be INVALID_ARGUMENT")),
        Err(status) => status,
    };
    if status.code() != Code::InvalidArgument {
        return Some(format!(
            "{what}: expected INVALID_ARGUMENT, got {:?}: {}",
            status.code(),
            status.message()
        ));
    }
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else {
        return Some(format!(
            "{what}: no BadRequest details: {}",
            status.message()
        ));
    };
    if bad_request
        .field_violations
        .iter()
        .any(|v| v.field.contains(field))
    {
        None
    } else {
        Some(format!(
            "{what}: no field violation names {field:?}: {:?}",
            bad_request.field_violations
        ))
    }
}

/// Asserts INVALID_ARGUMENT with a BadRequest field violation whose field
/// mentions `field`.
pub fn assert_invalid_field(status: &Status, field: &str, what: &str) {
    let problem = invalid_field_problem::<()>(Err(status.clone()), field, what);
    assert!(problem.is_none(), "{}", problem.unwrap_or_default());
}

/// Runs `future` to completion on a fresh runtime on a plain thread: for
/// work a `Drop` must finish, or that must not run on the test's runtime.
pub fn block_on_thread<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    })
    .join()
    .expect("the thread")
}

/// Sets TCP_NODELAY on a raw sqlx connection to PostgreSQL, as the
/// service's pool does (`crm_shared::db::nodelay`): benchmarks' baselines
/// are then measured as the service connects. Nothing on SQLite.
pub async fn nodelay(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "PostgreSQL" {
        use crm_shared::db::nodelay;
        let (client, server) =
            sqlx::query_as::<_, (Option<i32>, Option<i32>)>(nodelay::PORTS_QUERY)
                .fetch_one(conn)
                .await?;
        nodelay::set_for_ports(client, server);
    }
    Ok(())
}

/// A process's peak resident memory in MiB (Linux `VmHWM`), for benchmarks
/// that run a service as a child process; NaN when it cannot be read.
pub fn peak_memory_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A process's resident memory now, in MiB (Linux `VmRSS`); NaN when it
/// cannot be read.
pub fn resident_memory_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The CPU time (user + system) a process and the children it lists in
/// `/proc` (nginx's workers, say) have used so far, in microseconds; NaN when
/// the process cannot be read. Ticks are Linux's fixed USER_HZ of 100.
pub fn cpu_micros(pid: u32) -> f64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the ")" closing the command name: state is the
            // first, utime and stime the 12th and 13th.
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 * 10_000.0)
        })
        .unwrap_or(f64::NAN);
    own + children(pid).into_iter().map(cpu_micros).sum::<f64>()
}

/// The live children of `pid`, from every thread's `children` list.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::{os::unix::process::CommandExt, time::Duration};

    /// A shell whose child spins: the parent's own CPU is near zero, so the
    /// child's must be counted for the total to grow.
    #[test]
    fn cpu_time_counts_the_children() {
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sh -c 'while :; do :; done' & sleep 60"])
            .process_group(0)
            .spawn()
            .expect("a shell");
        let pid = parent.id();
        let started = std::time::Instant::now();
        let mut used = 0.0;
        while used < 50_000.0 && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
            used = super::cpu_micros(pid);
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = parent.wait();
        assert!(
            used >= 50_000.0,
            "the spinning child's CPU is counted: {used} µs"
        );
        assert!(super::cpu_micros(u32::MAX).is_nan(), "no such process");
    }
}
