//! The harness: a real contacts server on a free port over a throwaway
//! database, clients that carry a bearer token, and small helpers.

#![allow(dead_code)]

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use crm_shared::kit::KitError as StartError;
use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EmailAddress, ListContactsRequest, PhoneNumber,
        contacts_service_client::ContactsServiceClient,
    },
    events::{Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_shared::{
    auth::{Role, sign_hs256},
    config::{AuthSettings, LogFormat, ServiceSettings, Settings, TelemetrySettings},
    testing::{Backend, TestDatabase},
};
use prost_types::Timestamp;
use tokio::{sync::oneshot, task::JoinHandle};
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

/// The HS256 secret the test servers verify tokens with.
pub const SECRET: &str = "test-secret";
/// The tenant most tests work in.
pub const TENANT: &str = "acme";
/// Another tenant, for isolation tests.
pub const OTHER_TENANT: &str = "globex";
/// The gRPC name of the service under test.
pub const SERVICE_NAME: &str = "crm.contacts.v1.ContactsService";

pub const ADMIN: &[Role] = &[Role::Admin];
pub const MANAGER: &[Role] = &[Role::Manager];
pub const SALES: &[Role] = &[Role::Sales];
pub const VIEWER: &[Role] = &[Role::Viewer];
pub const SERVICE: &[Role] = &[Role::Service];

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

/// A contacts client with a token.
pub type Contacts = ContactsServiceClient<InterceptedService<Channel, Bearer>>;
/// An event feed client with a token.
pub type Feed = EventFeedServiceClient<InterceptedService<Channel, Bearer>>;

/// A token signed with [`SECRET`] for `tenant` with `roles`, valid for an hour.
pub fn token(tenant: &str, roles: &[Role]) -> String {
    sign_hs256(SECRET, tenant, "tester", roles, Duration::from_secs(3600))
        .expect("signing a test token")
}

/// The settings of an in-process test server on `database_url`.
pub fn settings(database_url: &str) -> Settings {
    Settings {
        service_name: "contacts".into(),
        service: ServiceSettings {
            listen_addr: "127.0.0.1:0".parse().expect("a socket address"),
            database_url: database_url.to_owned(),
            max_connections: 5,
            shutdown_grace_seconds: 5,
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

/// A running contacts server over its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StartError>>,
}

impl TestApp {
    /// Starts a server on a fresh database of `backend` and waits until its
    /// health check says SERVING; `None` when that backend is not available.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let db = TestDatabase::create(backend).await?;
        let app = crm_contacts::build(settings(&db.url))
            .await
            .unwrap_or_else(|error| panic!("crm_contacts::build on {backend:?} failed: {error}"));
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let channel = channel_to(addr);
        let mut app = TestApp {
            addr,
            db,
            channel,
            stop: Some(stop),
            task,
        };
        app.wait_until_serving().await;
        Some(app)
    }

    async fn wait_until_serving(&mut self) {
        for _ in 0..1500 {
            if self.task.is_finished() {
                let outcome = match (&mut self.task).await {
                    Ok(Ok(())) => "it returned Ok".to_owned(),
                    Ok(Err(error)) => format!("{error}"),
                    Err(error) => format!("it panicked: {error}"),
                };
                panic!("the server stopped before it was SERVING: {outcome}");
            }
            if matches!(
                health_status(&self.channel, SERVICE_NAME).await,
                Ok(ServingStatus::Serving)
            ) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not report SERVING within 30 s");
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = &mut self.task;
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("the server stopped with an error: {error}"),
            Err(error) => panic!("the server task panicked: {error}"),
        }
    }

    /// The raw channel to the server, without credentials.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
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

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A lazily connecting channel to `addr`.
pub fn channel_to(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint URI")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

pub fn bearer(value: Option<&str>) -> Bearer {
    Bearer(value.map(|v| v.parse().expect("an ASCII authorization value")))
}

/// The health of `service` as the server reports it (no token sent).
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
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{what}: expected INVALID_ARGUMENT, got {:?}: {}",
        status.code(),
        status.message()
    );
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| {
        panic!(
            "{what}: INVALID_ARGUMENT without BadRequest details: {}",
            status.message()
        )
    });
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|v| v.field.contains(field)),
        "{what}: no field violation names {field:?}: {:?}",
        bad_request.field_violations
    );
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

/// The full event type of a contacts event name, "crm.contacts.v1.<name>".
pub fn event_type(name: &str) -> String {
    format!("crm.contacts.v1.{name}")
}

/// The events about `subject`, in feed order.
pub fn events_about<'a>(events: &'a [Event], subject: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.subject == subject).collect()
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
