//! The sales harness: contacts and sales (one or more replicas) as real
//! processes on free ports, each service over its own throwaway database of
//! the same backend, through the suite's test kit.

#![allow(dead_code)]

use std::net::SocketAddr;

use crm_proto::{
    contacts::contacts_service_client::ContactsServiceClient,
    events::{
        StreamEventsRequest, consumer_admin_service_client::ConsumerAdminServiceClient,
        event_feed_service_client::EventFeedServiceClient,
    },
    sales::sales_service_client::SalesServiceClient,
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::*;
use tonic::Status;

pub type Sales = SalesServiceClient<Authed>;
pub type Contacts = ContactsServiceClient<Authed>;
pub type ConsumerAdmin = ConsumerAdminServiceClient<Authed>;

/// Contacts and sales, each over its own database of one backend.
pub struct Suite {
    pub contacts_db: TestDatabase,
    pub sales_db: TestDatabase,
    contacts: Option<ServiceProcess>,
    sales: Option<ServiceProcess>,
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
        let mut settings = settings("contacts", &self.contacts_db.url);
        settings.service.listen_addr = addr;
        self.contacts = Some(ServiceProcess::start(service(crm_contacts::build), settings).await);
    }

    /// Stops contacts; returns the address it listened on.
    pub async fn stop_contacts(&mut self) -> SocketAddr {
        let mut contacts = self.contacts.take().expect("contacts runs");
        contacts.stop().await;
        contacts.addr
    }

    /// The settings of a sales replica following this suite's contacts.
    pub fn sales_settings(&self) -> Settings {
        let contacts = self.contacts.as_ref().expect("contacts runs").addr;
        let mut settings = settings("sales", &self.sales_db.url);
        settings
            .peers
            .insert("contacts".into(), format!("http://{contacts}"));
        settings
    }

    /// Starts another sales replica over the same database.
    pub async fn sales_replica(&self) -> ServiceProcess {
        ServiceProcess::start(service(crm_sales::build), self.sales_settings()).await
    }

    /// Starts (or restarts) sales on its database.
    pub async fn start_sales(&mut self) {
        self.sales = Some(self.sales_replica().await);
    }

    /// Stops sales (gracefully, as on SIGTERM).
    pub async fn stop_sales(&mut self) {
        if let Some(mut sales) = self.sales.take() {
            sales.stop().await;
        }
    }

    /// The first sales replica.
    pub fn sales_process(&mut self) -> &mut ServiceProcess {
        self.sales.as_mut().expect("sales runs")
    }

    /// A sales client for `tenant` with `roles`.
    pub fn sales(&self, tenant: &str, roles: &[Role]) -> Sales {
        let addr = self.sales.as_ref().expect("sales runs").addr;
        SalesServiceClient::with_interceptor(channel_to(addr), bearer_for(tenant, roles))
    }

    /// The consumer admin of the sales replica at `addr`.
    pub fn consumer_admin(addr: SocketAddr, tenant: &str, roles: &[Role]) -> ConsumerAdmin {
        ConsumerAdminServiceClient::with_interceptor(channel_to(addr), bearer_for(tenant, roles))
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn contacts(&self, tenant: &str, roles: &[Role]) -> Contacts {
        let addr = self.contacts.as_ref().expect("contacts runs").addr;
        ContactsServiceClient::with_interceptor(channel_to(addr), bearer_for(tenant, roles))
    }

    /// Every event in sales' feed, oldest first.
    pub async fn sales_events(&self) -> Vec<crm_proto::events::Event> {
        let addr = self.sales.as_ref().expect("sales runs").addr;
        let mut feed =
            EventFeedServiceClient::with_interceptor(channel_to(addr), bearer_for(TENANT, SERVICE));
        collect_events(&mut feed, StreamEventsRequest::default()).await
    }

    /// Sales' audit log entries of [`TENANT`] matching `filter`, newest first.
    pub async fn sales_audit(&self, filter: &str) -> Vec<crm_proto::audit::AuditEntry> {
        let addr = self.sales.as_ref().expect("sales runs").addr;
        audit_entries(addr, TENANT, filter).await
    }

    /// The types of every event in sales' feed, oldest first.
    pub async fn sales_event_types(&self) -> Vec<String> {
        self.sales_events()
            .await
            .into_iter()
            .map(|event| event.r#type)
            .collect()
    }
}

/// Asserts INVALID_ARGUMENT naming exactly `field`.
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
