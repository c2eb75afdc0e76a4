//! The harness: contacts and sales on free ports, each over its own
//! throwaway database of the same backend, and clients with tokens.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use crm_proto::{
    contacts::contacts_service_client::ContactsServiceClient,
    events::{StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
    sales::sales_service_client::SalesServiceClient,
};
use crm_shared::{
    auth::{Role, sign_hs256},
    config::{AuthSettings, LogFormat, ServiceSettings, Settings, TelemetrySettings},
    testing::{Backend, TestDatabase},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

pub const SECRET: &str = "test-secret";
pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "globex";
pub const ADMIN: &[Role] = &[Role::Admin];
pub const SALES: &[Role] = &[Role::Sales];
pub const VIEWER: &[Role] = &[Role::Viewer];

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Sales = SalesServiceClient<InterceptedService<Channel, Bearer>>;
pub type Contacts = ContactsServiceClient<InterceptedService<Channel, Bearer>>;

pub fn token(tenant: &str, roles: &[Role]) -> String {
    sign_hs256(SECRET, tenant, "tester", roles, Duration::from_secs(3600)).expect("a token")
}

fn bearer(tenant: &str, roles: &[Role]) -> Bearer {
    Bearer(
        format!("Bearer {}", token(tenant, roles))
            .parse()
            .expect("ascii"),
    )
}

pub fn channel_to(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect_lazy()
}

fn settings(service: &str, database_url: &str, addr: SocketAddr) -> Settings {
    Settings {
        service_name: service.into(),
        service: ServiceSettings {
            listen_addr: addr,
            database_url: database_url.to_owned(),
            max_connections: 5,
            shutdown_grace_seconds: 2,
        },
        auth: AuthSettings {
            hs256_secret: Some(SECRET.into()),
            ..Default::default()
        },
        telemetry: TelemetrySettings {
            format: LogFormat::Pretty,
            filter: "warn".into(),
        },
        paging_secret: "paging".into(),
        peers: Default::default(),
        service_token: None,
    }
}

/// A server task and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

async fn wait_serving(addr: SocketAddr) {
    let mut health = HealthClient::new(channel_to(addr));
    for _ in 0..600 {
        if let Ok(r) = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            && r.into_inner().status == 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} never became SERVING");
}

/// Contacts and sales, each over its own database of one backend.
pub struct Suite {
    pub contacts_db: TestDatabase,
    pub sales_db: TestDatabase,
    contacts: Option<Running>,
    sales: Option<Running>,
}

impl Suite {
    /// Starts both; `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let sales_db = TestDatabase::create(backend).await?;
        let mut suite = Self {
            contacts_db,
            sales_db,
            contacts: None,
            sales: None,
        };
        suite.start_contacts("127.0.0.1:0".parse().unwrap()).await;
        suite.start_sales().await;
        Some(suite)
    }

    /// Starts contacts on `addr` (port 0: any) over its database.
    pub async fn start_contacts(&mut self, addr: SocketAddr) {
        let mut built = None;
        // A port just released may take a moment to bind again.
        for _ in 0..50 {
            match crm_contacts::build(settings(
                "contacts",
                &self.contacts_db.url,
                addr,
            ))
            .await
            {
                Ok(app) => {
                    built = Some(app);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let app = built.expect("contacts builds");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        wait_serving(addr).await;
        self.contacts = Some(Running {
            addr,
            stop: Some(stop),
            task,
        });
    }

    /// Stops contacts; returns the address it listened on.
    pub async fn stop_contacts(&mut self) -> SocketAddr {
        let contacts = self.contacts.take().expect("contacts runs");
        let addr = contacts.addr;
        contacts.stop().await;
        addr
    }

    /// Starts (or restarts) sales on its database.
    pub async fn start_sales(&mut self) {
        let contacts = self.contacts.as_ref().expect("contacts runs").addr;
        let mut settings = settings("sales", &self.sales_db.url, "127.0.0.1:0".parse().unwrap());
        settings
            .peers
            .insert("contacts".into(), format!("http://{contacts}"));
        let app = crm_sales::build(settings).await.expect("sales builds");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        wait_serving(addr).await;
        self.sales = Some(Running {
            addr,
            stop: Some(stop),
            task,
        });
    }

    /// Stops sales (gracefully, as on SIGTERM).
    pub async fn stop_sales(&mut self) {
        if let Some(sales) = self.sales.take() {
            sales.stop().await;
        }
    }

    /// A sales client for `tenant` with `roles`.
    pub fn sales(&self, tenant: &str, roles: &[Role]) -> Sales {
        let addr = self.sales.as_ref().expect("sales runs").addr;
        SalesServiceClient::with_interceptor(channel_to(addr), bearer(tenant, roles))
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn contacts(&self, tenant: &str, roles: &[Role]) -> Contacts {
        let addr = self.contacts.as_ref().expect("contacts runs").addr;
        ContactsServiceClient::with_interceptor(channel_to(addr), bearer(tenant, roles))
    }

    /// The types of every event in sales' feed, oldest first.
    pub async fn sales_event_types(&self) -> Vec<String> {
        let addr = self.sales.as_ref().expect("sales runs").addr;
        let mut feed = EventFeedServiceClient::with_interceptor(
            channel_to(addr),
            bearer(TENANT, &[Role::Service]),
        );
        let mut stream = feed
            .stream_events(StreamEventsRequest {
                after_sequence: 0,
                follow: false,
                types: vec![],
                max_events: 0,
            })
            .await
            .expect("the sales feed")
            .into_inner();
        let mut types = Vec::new();
        while let Some(message) = stream.message().await.expect("an event") {
            types.push(message.event.expect("an event").r#type);
        }
        types
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        for running in [self.sales.take(), self.contacts.take()]
            .into_iter()
            .flatten()
        {
            if let Some(stop) = running.stop {
                let _ = stop.send(());
            }
            running.task.abort();
        }
    }
}

/// Waits until `check` holds, for at most 10 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Asserts INVALID_ARGUMENT naming `field`.
pub fn assert_names_field(status: &Status, field: &str) {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "no violation names {field}: {:?}",
        bad.field_violations
    );
}
