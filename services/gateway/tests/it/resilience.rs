//! Upstreams that die and come back, and replicas sharing the load.

use std::{sync::atomic::Ordering, time::Duration};

use crm_proto::contacts::{Contact, CreateContactRequest, GetContactRequest};
use crm_testkit::Backend;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::*;

const COUNT: &str = "/crm.test.v1.Probe/Count";

db_test!(
    a_killed_upstream_is_unavailable_then_back_after_restart,
    killed_upstream_on
);
async fn killed_upstream_on(backend: Backend) {
    let Some((mut contacts, gateway)) = suite(backend, gateway_settings()).await else {
        return;
    };
    let mut client = gateway.contacts(&token(TENANT, ADMIN));
    let created = client
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "Grace".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("a call while contacts is up")
        .into_inner();
    const CONTACTS: &str = "crm.contacts.v1.ContactsService";
    eventually("the gateway reports contacts SERVING", async || {
        gateway.health(CONTACTS).await == Some(ServingStatus::Serving)
    })
    .await;

    contacts.kill();
    let get = GetContactRequest {
        name: created.name.clone(),
    };
    for _ in 0..3 {
        let outcome = tokio::time::timeout(Duration::from_secs(5), client.get_contact(get.clone()))
            .await
            .expect("a call to a dead upstream fails fast, it does not hang");
        let status = outcome.expect_err("contacts is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            !status.message().contains(&contacts.addr.port().to_string()),
            "no internal address in errors: {status:?}"
        );
        assert!(
            retry_delay(&status).is_some(),
            "UNAVAILABLE says when to retry: {status:?}"
        );
    }
    eventually("the gateway reports contacts NOT_SERVING", async || {
        gateway.health(CONTACTS).await == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(
        gateway.health("").await,
        Some(ServingStatus::Serving),
        "the gateway itself still serves"
    );

    contacts.restart().await;
    eventually("calls succeed again after the restart", async || {
        client.get_contact(get.clone()).await.is_ok()
    })
    .await;
    let fetched = client
        .get_contact(get.clone())
        .await
        .expect("GetContact")
        .into_inner();
    assert_eq!(
        fetched.name, created.name,
        "what was written before the kill is there"
    );
    eventually("the gateway reports contacts SERVING again", async || {
        gateway.health(CONTACTS).await == Some(ServingStatus::Serving)
    })
    .await;
}

#[tokio::test]
async fn calls_spread_over_replicas_and_avoid_a_dead_one() {
    let first = Probe::start().await;
    let mut second = Probe::start().await;
    let mut section = gateway_settings();
    upstream(
        &mut section,
        "probe",
        "crm.test.v1",
        &[first.addr, second.addr],
    );
    let gateway = GatewayProcess::start(section).await;
    let token = token(TENANT, ADMIN);
    for _ in 0..10 {
        call_probe(gateway.channel(), COUNT, Some(&token), 1, None)
            .await
            .expect("a call");
    }
    let (a, b) = (
        first.seen.calls.load(Ordering::SeqCst),
        second.seen.calls.load(Ordering::SeqCst),
    );
    assert_eq!((a, b), (5, 5), "round-robin over two replicas");

    second.stop();
    // At most the call that finds it dead fails; the health check takes it out.
    let mut failures = 0;
    for _ in 0..20 {
        if call_probe(gateway.channel(), COUNT, Some(&token), 1, None)
            .await
            .is_err()
        {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        failures <= 2,
        "{failures} calls failed with a healthy replica left"
    );
    assert!(first.seen.calls.load(Ordering::SeqCst) >= 5 + 18);
}

#[tokio::test]
async fn a_package_served_by_several_upstreams_needs_a_choice() {
    let first = Probe::start().await;
    let second = Probe::start().await;
    let mut section = gateway_settings();
    upstream(&mut section, "one", "crm.test.v1", &[first.addr]);
    upstream(&mut section, "two", "crm.test.v1", &[second.addr]);
    let gateway = GatewayProcess::start(section).await;
    let token = token(TENANT, ADMIN);
    let ambiguous = call_probe(gateway.channel(), COUNT, Some(&token), 1, None)
        .await
        .expect_err("no upstream named");
    assert_eq!(ambiguous.code(), Code::InvalidArgument, "{ambiguous:?}");
    assert!(names_field(&ambiguous, "x-crm-upstream"), "{ambiguous:?}");

    let mut grpc = tonic::client::Grpc::new(gateway.channel());
    grpc.ready().await.unwrap();
    let mut request =
        tonic::Request::new(tokio_stream::iter(vec![prost_types::Duration::default()]));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .metadata_mut()
        .insert("x-crm-upstream", "two".parse().unwrap());
    grpc.client_streaming(
        request,
        http::uri::PathAndQuery::from_static(COUNT),
        tonic_prost::ProstCodec::<prost_types::Duration, prost_types::Duration>::default(),
    )
    .await
    .expect("the named upstream answers");
    assert_eq!(second.seen.calls.load(Ordering::SeqCst), 1);
    assert_eq!(first.seen.calls.load(Ordering::SeqCst), 0);
}
