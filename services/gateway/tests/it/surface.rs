//! What the gateway answers itself: auth failures, unknown services,
//! reflection and health for the whole suite, gRPC-Web with CORS, metrics.

use std::time::Duration;

use crm_proto::contacts::{Contact, CreateContactRequest, GetContactRequest, ListContactsRequest};
use crm_shared::auth::{Role, sign_hs256};
use crm_testkit::Backend;
use prost::Message;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::support::*;

#[tokio::test]
async fn calls_without_a_valid_token_never_reach_a_service() {
    let probe = Probe::start().await;
    let mut section = gateway_settings();
    upstream(&mut section, "probe", "crm.test.v1", &[probe.addr]);
    let gateway = GatewayProcess::start(section).await;
    const COUNT: &str = "/crm.test.v1.Probe/Count";

    let missing = call_probe(gateway.channel(), COUNT, None, 1, None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");

    let forged = sign_hs256(
        "another-secret",
        TENANT,
        "mallory",
        &[Role::Admin],
        Duration::from_secs(60),
    )
    .unwrap();
    let forged = call_probe(gateway.channel(), COUNT, Some(&forged), 1, None)
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");

    let expired = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let now = jsonwebtoken::get_current_timestamp();
        let claims = crm_shared::auth::Claims {
            sub: "ada".into(),
            tenant: TENANT.into(),
            roles: vec![Role::Admin],
            exp: now - 3600,
            iat: now - 7200,
            iss: None,
            nbf: None,
            aud: None,
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let expired = call_probe(gateway.channel(), COUNT, Some(&expired), 1, None)
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated, "{expired:?}");

    assert_eq!(
        probe.seen.calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream never saw an unauthenticated call"
    );
}

#[tokio::test]
async fn an_unknown_service_is_unimplemented() {
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, gateway_settings()).await else {
        return;
    };
    let token = token(TENANT, ADMIN);
    let unknown = call_probe(
        gateway.channel(),
        "/crm.nothing.v1.Nothing/Do",
        Some(&token),
        1,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented, "{unknown:?}");
    // A method the owning service lacks: its own UNIMPLEMENTED comes back.
    let missing_method = call_probe(
        gateway.channel(),
        "/crm.contacts.v1.ContactsService/NoSuchMethod",
        Some(&token),
        1,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        missing_method.code(),
        Code::Unimplemented,
        "{missing_method:?}"
    );
}

async fn list_v1(gateway: &GatewayProcess) -> Vec<String> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(gateway.channel());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1 without a token")
        .into_inner();
    match responses.message().await.unwrap().unwrap().message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

async fn list_v1alpha(gateway: &GatewayProcess) -> Vec<String> {
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(gateway.channel());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha without a token")
        .into_inner();
    match responses.message().await.unwrap().unwrap().message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_and_health_cover_the_suite() {
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, gateway_settings()).await else {
        return;
    };
    for services in [list_v1(&gateway).await, list_v1alpha(&gateway).await] {
        for expected in [
            "crm.contacts.v1.ContactsService",
            "crm.events.v1.EventFeedService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} in {services:?}"
            );
        }
    }
    let mut health = HealthClient::new(gateway.channel());
    for service in [
        "",
        "crm.contacts.v1.ContactsService",
        "crm.events.v1.EventFeedService",
    ] {
        let mut status = None;
        eventually(&format!("{service:?} is SERVING"), async || {
            status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .ok()
                .map(|r| r.into_inner().status());
            status == Some(ServingStatus::Serving)
        })
        .await;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_browser_calls_through_grpc_web() {
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, gateway_settings()).await else {
        return;
    };
    let mut client = gateway.contacts(&token(TENANT, ADMIN));
    let created = client
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "Web".into(),
                family_name: "Browser".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    let message = GetContactRequest {
        name: created.name.clone(),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let head = format!(
        "POST /crm.contacts.v1.ContactsService/GetContact HTTP/1.1\n\
         host: gateway\n\
         origin: https://app.example.com\n\
         content-type: application/grpc-web+proto\n\
         x-grpc-web: 1\n\
         authorization: Bearer {}\n\
         content-length: {}\n\
         connection: close\n\n",
        token(TENANT, ADMIN),
        framed.len()
    );
    let response = http1(gateway.addr, &head, &framed).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(find(&response, b"application/grpc-web"), "{text}");
    assert!(
        find(
            &response,
            b"access-control-allow-origin: https://app.example.com"
        ),
        "{text}"
    );
    assert!(
        find(&response, b"Browser"),
        "the contact is in the body: {text}"
    );
    assert!(
        find(&response, b"grpc-status:0"),
        "the trailer frame carries OK: {text}"
    );

    let preflight = http1(
        gateway.addr,
        "OPTIONS /crm.contacts.v1.ContactsService/GetContact HTTP/1.1\n\
         host: gateway\n\
         origin: https://app.example.com\n\
         access-control-request-method: POST\n\
         access-control-request-headers: authorization,content-type,x-grpc-web\n\
         connection: close\n\n",
        b"",
    )
    .await;
    let text = String::from_utf8_lossy(&preflight);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        find(
            &preflight,
            b"access-control-allow-origin: https://app.example.com"
        ),
        "{text}"
    );

    let foreign = http1(
        gateway.addr,
        "OPTIONS /crm.contacts.v1.ContactsService/GetContact HTTP/1.1\n\
         host: gateway\n\
         origin: https://evil.example.net\n\
         access-control-request-method: POST\n\
         connection: close\n\n",
        b"",
    )
    .await;
    assert!(
        !find(&foreign, b"access-control-allow-origin"),
        "another origin is not allowed: {}",
        String::from_utf8_lossy(&foreign)
    );
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_status() {
    let Some((_contacts, gateway)) = suite(Backend::Sqlite, gateway_settings()).await else {
        return;
    };
    let mut client = gateway.contacts(&token(TENANT, ADMIN));
    client
        .list_contacts(ListContactsRequest::default())
        .await
        .unwrap();
    client
        .list_contacts(ListContactsRequest::default())
        .await
        .unwrap();
    let missing = client
        .get_contact(GetContactRequest {
            name: "contacts/0190f0a0-0000-7000-8000-000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let mut text = String::new();
    eventually("both calls are counted", async || {
        text = gateway.metrics().await;
        text.contains(r#"crm_gateway_calls_total{method="/crm.contacts.v1.ContactsService/ListContacts",code="OK"} 2"#)
    })
    .await;
    assert!(
        text.contains(r#"crm_gateway_calls_total{method="/crm.contacts.v1.ContactsService/GetContact",code="NOT_FOUND"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"crm_gateway_upstream_replicas{upstream="contacts",state="healthy"} 1"#),
        "{text}"
    );
}
