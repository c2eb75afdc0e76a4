//! Every kind of call passes through unchanged: unary, client-, server- and
//! bidirectional streaming, errors with their details, identity and trace
//! headers on the way in.

use std::sync::atomic::Ordering;

use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EmailAddress, ExportContactsRequest, GetContactRequest,
        ImportContactsRequest, ImportOutcome,
    },
    events::{StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_testkit::Backend;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

fn person(given: &str, email: &str) -> Contact {
    Contact {
        given_name: given.into(),
        family_name: "Lovelace".into(),
        emails: vec![EmailAddress {
            address: email.into(),
            label: "work".into(),
            primary: true,
        }],
        ..Default::default()
    }
}

db_test!(
    every_kind_of_call_passes_through,
    every_kind_of_call_passes_through_on
);
async fn every_kind_of_call_passes_through_on(backend: Backend) {
    let Some((_contacts, gateway)) = suite(backend, gateway_settings()).await else {
        return;
    };
    let mut client = gateway.contacts(&token(TENANT, ADMIN));

    // Unary.
    let created = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Ada", "ada@example.com")),
            request_id: String::new(),
        })
        .await
        .expect("CreateContact through the gateway")
        .into_inner();
    let fetched = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .expect("GetContact through the gateway")
        .into_inner();
    assert_eq!(fetched, created);

    // An upstream error arrives with its code, message and details.
    let invalid = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Bad", "not-an-email")),
            request_id: String::new(),
        })
        .await
        .expect_err("an invalid email");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let violations = invalid
        .get_details_bad_request()
        .expect("BadRequest details");
    assert!(
        violations
            .field_violations
            .iter()
            .any(|v| v.field.contains("emails[0].address")),
        "{violations:?}"
    );

    // Bidirectional streaming: an import, a result per row.
    let rows = (0..25).map(|i| ImportContactsRequest {
        contact: Some(person(&format!("Row{i}"), &format!("row{i}@example.com"))),
    });
    let mut results = client
        .import_contacts(tokio_stream::iter(rows))
        .await
        .expect("ImportContacts through the gateway")
        .into_inner();
    let mut created_rows = 0;
    while let Some(batch) = results.next().await {
        for row in batch.expect("an import batch").results {
            assert_eq!(row.outcome(), ImportOutcome::Created, "{row:?}");
            created_rows += 1;
        }
    }
    assert_eq!(created_rows, 25);

    // Server streaming: the export sees all 26.
    let mut export = client
        .export_contacts(ExportContactsRequest::default())
        .await
        .expect("ExportContacts through the gateway")
        .into_inner();
    let mut exported = 0;
    while let Some(page) = export.next().await {
        exported += page.expect("an export page").contacts.len();
    }
    assert_eq!(exported, 26);

    // The event feed, read by the tenant's admin through the gateway (the
    // service identity is refused at the edge).
    let mut feed = EventFeedServiceClient::with_interceptor(
        gateway.channel(),
        bearer_token(&token(TENANT, ADMIN)),
    );
    let mut events = feed
        .stream_events(StreamEventsRequest {
            after_sequence: 0,
            follow: false,
            types: vec![],
            max_events: 0,
        })
        .await
        .expect("StreamEvents through the gateway")
        .into_inner();
    let mut types = Vec::new();
    while let Some(event) = events.next().await {
        types.push(event.expect("an event").event.expect("an event").r#type);
    }
    assert_eq!(types.len(), 26, "{types:?}");
}

#[tokio::test]
async fn client_streams_pass_through() {
    let probe = Probe::start().await;
    let mut section = gateway_settings();
    upstream(&mut section, "probe", "crm.test.v1", &[probe.addr]);
    let gateway = GatewayProcess::start(section).await;
    let counted = call_probe(
        gateway.channel(),
        "/crm.test.v1.Probe/Count",
        Some(&token(TENANT, ADMIN)),
        7,
        None,
    )
    .await
    .expect("a client-streaming call through the gateway");
    assert_eq!(
        counted, 7,
        "the upstream received every message of the stream"
    );
}

#[tokio::test]
async fn the_upstream_learns_who_calls_and_cannot_be_lied_to() {
    let probe = Probe::start().await;
    let mut section = gateway_settings();
    upstream(&mut section, "probe", "crm.test.v1", &[probe.addr]);
    let gateway = GatewayProcess::start(section).await;
    let token = token(TENANT, ADMIN);

    let mut grpc = tonic::client::Grpc::new(gateway.channel());
    grpc.ready().await.expect("ready");
    let mut request =
        tonic::Request::new(tokio_stream::iter(vec![prost_types::Duration::default()]));
    let metadata = request.metadata_mut();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    metadata.insert("x-crm-tenant", "globex".parse().unwrap());
    metadata.insert("x-request-id", "req-42".parse().unwrap());
    metadata.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let codec = tonic_prost::ProstCodec::<prost_types::Duration, prost_types::Duration>::default();
    grpc.client_streaming(
        request,
        http::uri::PathAndQuery::from_static("/crm.test.v1.Probe/Count"),
        codec,
    )
    .await
    .expect("the call");

    let headers = probe
        .seen
        .headers
        .lock()
        .unwrap()
        .clone()
        .expect("headers arrived");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("x-crm-tenant").as_deref(),
        Some(TENANT),
        "the verified tenant, not the claimed one"
    );
    assert_eq!(header("x-crm-subject").as_deref(), Some("tester"));
    assert_eq!(
        header("x-request-id").as_deref(),
        Some("req-42"),
        "the client's request id is kept"
    );
    assert_eq!(
        header("authorization"),
        Some(format!("Bearer {token}")),
        "the token is passed on for the service to verify"
    );
    let traceparent = header("traceparent").expect("trace context is passed on");
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the gateway continues the caller's trace: {traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "with the gateway's own span as the parent: {traceparent}"
    );
    assert_eq!(probe.seen.calls.load(Ordering::SeqCst), 1);
}
