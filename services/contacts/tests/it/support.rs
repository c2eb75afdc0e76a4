//! The contacts harness: the real contacts service on a free port over a
//! throwaway database (through the suite's test kit), clients that carry a
//! bearer token, and contacts-specific helpers.

#![allow(dead_code)]

use std::collections::BTreeMap;

use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EmailAddress, ListContactsRequest, PhoneNumber,
        contacts_service_client::ContactsServiceClient,
    },
    events::{Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_shared::{auth::Role, config::Settings};
pub use crm_testkit::*;
use prost_types::Timestamp;
use tonic::transport::Channel;

/// The gRPC name of the service under test.
pub const SERVICE_NAME: &str = "crm.contacts.v1.ContactsService";

/// A contacts client with a token.
pub type Contacts = ContactsServiceClient<Authed>;

/// The settings of a contacts test server on `database_url`.
pub fn settings(database_url: &str) -> Settings {
    crm_testkit::settings("contacts", database_url)
}

/// A running contacts server over its own database.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub db: TestDatabase,
    process: ServiceProcess,
}

impl TestApp {
    /// Starts a server on a fresh database of `backend` and waits until its
    /// health check says SERVING; `None` when that backend is not available.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let db = TestDatabase::create(backend).await?;
        let process = ServiceProcess::start(service(crm_contacts::build), settings(&db.url)).await;
        Some(TestApp {
            addr: process.addr,
            db,
            process,
        })
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.process.stop().await;
    }

    /// The raw channel to the server, without credentials.
    pub fn channel(&self) -> Channel {
        self.process.channel()
    }

    /// A contacts client for `tenant` with `roles`.
    pub fn client(&self, tenant: &str, roles: &[Role]) -> Contacts {
        self.client_with_authorization(Some(&format!("Bearer {}", token(tenant, roles))))
    }

    /// An admin of [`TENANT`].
    pub fn admin(&self) -> Contacts {
        self.client(TENANT, ADMIN)
    }

    /// A contacts client sending `authorization: <value>`, or no such header.
    pub fn client_with_authorization(&self, value: Option<&str>) -> Contacts {
        ContactsServiceClient::with_interceptor(self.channel(), bearer(value))
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// An event feed client for `tenant` with `roles`.
    pub fn feed(&self, tenant: &str, roles: &[Role]) -> Feed {
        self.feed_with_authorization(Some(&format!("Bearer {}", token(tenant, roles))))
    }

    /// An event feed client sending `authorization: <value>`, or none.
    pub fn feed_with_authorization(&self, value: Option<&str>) -> Feed {
        EventFeedServiceClient::with_interceptor(self.channel(), bearer(value))
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Every event of the feed, read with the service identity (all tenants).
    pub async fn all_events(&self) -> Vec<Event> {
        let mut feed = self.feed(TENANT, SERVICE);
        collect_events(&mut feed, StreamEventsRequest::default()).await
    }
}

/// A contact with a given name, a family name and (unless empty) one email.
pub fn person(given: &str, family: &str, email: &str) -> Contact {
    Contact {
        given_name: given.into(),
        family_name: family.into(),
        emails: if email.is_empty() {
            vec![]
        } else {
            vec![email_address(email)]
        },
        ..Default::default()
    }
}

pub fn email_address(address: &str) -> EmailAddress {
    EmailAddress {
        address: address.into(),
        label: "work".into(),
        primary: false,
    }
}

pub fn phone_number(number: &str) -> PhoneNumber {
    PhoneNumber {
        number: number.into(),
        label: "mobile".into(),
        primary: false,
        normalized_number: String::new(),
    }
}

/// Creates `contact` and returns what the server made of it.
pub async fn create(client: &mut Contacts, contact: Contact) -> Contact {
    let what = format!(
        "CreateContact {} {}",
        contact.given_name, contact.family_name
    );
    client
        .create_contact(CreateContactRequest {
            contact: Some(contact),
            request_id: String::new(),
        })
        .await
        .must(&what)
}

/// Every contact matching `filter` in `order_by`, following page tokens.
pub async fn list_all(
    client: &mut Contacts,
    filter: &str,
    order_by: &str,
    show_deleted: bool,
) -> Vec<Contact> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10_000 {
        let page = client
            .list_contacts(ListContactsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                filter: filter.into(),
                order_by: order_by.into(),
                show_deleted,
                include_total_size: false,
            })
            .await
            .must(&format!(
                "ListContacts filter={filter:?} order_by={order_by:?}"
            ));
        all.extend(page.contacts);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
    panic!("ListContacts never returned an empty next_page_token");
}

/// How many contacts the tenant of `client` holds, soft-deleted ones included.
pub async fn count_contacts(client: &mut Contacts) -> usize {
    list_all(client, "", "", true).await.len()
}

/// The resource names of `contacts`.
pub fn names(contacts: &[Contact]) -> Vec<String> {
    contacts.iter().map(|c| c.name.clone()).collect()
}

/// The full event type of a contacts event name, "crm.contacts.v1.<name>".
pub fn event_type(name: &str) -> String {
    format!("crm.contacts.v1.{name}")
}

/// The events about `subject`, in feed order.
pub fn events_about<'a>(events: &'a [Event], subject: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.subject == subject).collect()
}

/// Counts events per type.
pub fn type_counts(events: &[&Event]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(event.r#type.clone()).or_default() += 1;
    }
    counts
}

/// A timestamp from RFC 3339 text.
pub fn timestamp(rfc3339: &str) -> Timestamp {
    let time = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("an RFC 3339 time");
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// A fresh client-chosen request id.
pub fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `name` is "{collection}/{uuid}".
pub fn is_resource_name(name: &str, collection: &str) -> bool {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// A resource name of `collection` that does not exist.
pub fn unknown_name(collection: &str) -> String {
    format!("{collection}/{}", uuid::Uuid::now_v7())
}
