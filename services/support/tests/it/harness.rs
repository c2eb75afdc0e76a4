//! The support harness: contacts and support as real processes on free
//! ports, each over its own throwaway database of the same backend, through
//! the suite's test kit.

#![allow(dead_code)]

use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EmailAddress, contacts_service_client::ContactsServiceClient,
    },
    support::support_service_client::SupportServiceClient,
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::*;

pub type Support = SupportServiceClient<Authed>;
pub type Contacts = ContactsServiceClient<Authed>;

/// An agent's roles.
pub const AGENT: &[Role] = &[Role::Support];

/// Contacts and support, each over its own database of one backend.
pub struct Suite {
    pub contacts_db: TestDatabase,
    pub support_db: TestDatabase,
    contacts: ServiceProcess,
    support: Option<ServiceProcess>,
}

impl Suite {
    /// Starts both; `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        let contacts_db = TestDatabase::create(backend).await?;
        let support_db = TestDatabase::create(backend).await?;
        let contacts = ServiceProcess::start(
            service(crm_contacts::build),
            settings("contacts", &contacts_db.url),
        )
        .await;
        let mut suite = Self {
            contacts_db,
            support_db,
            contacts,
            support: None,
        };
        suite.support = Some(suite.support_replica().await);
        Some(suite)
    }

    /// The settings of a support replica following this suite's contacts.
    pub fn support_settings(&self) -> Settings {
        let mut settings = settings("support", &self.support_db.url);
        settings
            .peers
            .insert("contacts".into(), format!("http://{}", self.contacts.addr));
        // The SLA scheduler looks often, so a test sees its work soon.
        settings
            .options
            .insert("sla_check_millis".into(), "200".into());
        settings
    }

    /// Starts another support replica over the same database.
    pub async fn support_replica(&self) -> ServiceProcess {
        ServiceProcess::start(service(crm_support::build), self.support_settings()).await
    }

    /// The first support replica.
    pub fn support_process(&mut self) -> &mut ServiceProcess {
        self.support.as_mut().expect("support runs")
    }

    /// A support client for `tenant` with `roles`, acting as `subject`'s
    /// token would (the test kit's tokens name the subject "tester").
    pub fn support(&self, tenant: &str, roles: &[Role]) -> Support {
        let addr = self.support.as_ref().expect("support runs").addr;
        SupportServiceClient::with_interceptor(channel_to(addr), bearer_for(tenant, roles))
            .max_decoding_message_size(16 * 1024 * 1024)
    }

    /// A support client of `replica` for an agent of [`TENANT`] named `subject`.
    pub fn agent_at(&self, replica: &ServiceProcess, subject: &str) -> Support {
        let token = crm_shared::auth::sign_hs256(
            SECRET,
            TENANT,
            subject,
            AGENT,
            std::time::Duration::from_secs(3600),
        )
        .expect("signing a test token");
        SupportServiceClient::with_interceptor(
            channel_to(replica.addr),
            bearer(Some(&format!("Bearer {token}"))),
        )
    }

    /// A support client of `replica` with no token at all (a customer's browser).
    pub fn anonymous_at(&self, replica: &ServiceProcess) -> Support {
        SupportServiceClient::with_interceptor(channel_to(replica.addr), bearer(None))
    }

    /// The first replica.
    pub fn first_replica(&self) -> &ServiceProcess {
        self.support.as_ref().expect("support runs")
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn contacts(&self, tenant: &str, roles: &[Role]) -> Contacts {
        ContactsServiceClient::with_interceptor(
            channel_to(self.contacts.addr),
            bearer_for(tenant, roles),
        )
    }

    /// Creates a contact with `email` in [`TENANT`]; its name.
    pub async fn contact(&self, name: &str, email: &str) -> String {
        self.contacts(TENANT, ADMIN)
            .create_contact(CreateContactRequest {
                contact: Some(Contact {
                    display_name: name.into(),
                    emails: vec![EmailAddress {
                        address: email.into(),
                        label: "work".into(),
                        primary: true,
                    }],
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateContact")
            .into_inner()
            .name
    }

    /// Every event in support's feed, oldest first.
    pub async fn support_events(&self) -> Vec<crm_proto::events::Event> {
        all_events(self.support.as_ref().expect("support runs").addr).await
    }
}
