//! grpc.health.v1 and server reflection, both without a token.

use crm_shared::testing::Backend;
use prost::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::*;

async fn health_says_serving_without_a_token_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for service in ["", SERVICE_NAME, "crm.events.v1.EventFeedService"] {
        let status = health_status(&app.channel(), service)
            .await
            .unwrap_or_else(|s| {
                panic!("Health/Check {service:?}: {:?}: {}", s.code(), s.message())
            });
        assert_eq!(status, ServingStatus::Serving, "Health/Check {service:?}");
    }
    let unknown = health_status(&app.channel(), "no.such.Service").await;
    assert_eq!(
        unknown.err().map(|s| s.code()),
        Some(Code::NotFound),
        "an unknown service is NOT_FOUND"
    );
}
db_test!(
    health_says_serving_without_a_token,
    health_says_serving_without_a_token_on
);

async fn reflection(app: &TestApp, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(app.channel());
    let requests = futures_util::stream::iter(vec![ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .must("ServerReflectionInfo");
    responses
        .message()
        .await
        .unwrap_or_else(|s| panic!("reflection stream: {:?}: {}", s.code(), s.message()))
        .expect("one reflection response")
        .message_response
        .expect("a reflection message_response")
}

async fn reflection_lists_the_services_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let MessageResponse::ListServicesResponse(list) =
        reflection(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices did not answer with a service list");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [SERVICE_NAME, "grpc.health.v1.Health"] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} is listed: {services:?}"
        );
    }

    let MessageResponse::FileDescriptorResponse(files) = reflection(
        &app,
        MessageRequest::FileContainingSymbol(SERVICE_NAME.into()),
    )
    .await
    else {
        panic!("FileContainingSymbol did not answer with file descriptors");
    };
    let descriptors: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("a file descriptor")
        })
        .collect();
    let contacts = descriptors
        .iter()
        .find(|f| f.name() == "crm/contacts/v1/contacts.proto")
        .expect("the descriptor of crm/contacts/v1/contacts.proto");
    let service = contacts
        .service
        .iter()
        .find(|s| s.name() == "ContactsService")
        .expect("ContactsService in its file");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for method in [
        "CreateContact",
        "ImportContacts",
        "EraseContact",
        "ListTimeline",
    ] {
        assert!(
            methods.contains(&method),
            "{method} is described: {methods:?}"
        );
    }
}
db_test!(
    reflection_lists_the_services,
    reflection_lists_the_services_on
);
