//! grpc.health.v1 and server reflection, both without a token.

use crm_testkit::Backend;
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

/// While migrations cannot finish (another session holds the database), the
/// server answers: health says NOT_SERVING and calls get UNAVAILABLE. Once the
/// database is free, it migrates and turns SERVING.
async fn not_serving_until_migrated_on(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let Some(db) = crm_testkit::TestDatabase::create(backend).await else {
        return;
    };
    // Hold what the migration needs: the migration lock on PostgreSQL, the
    // write lock of the file on SQLite.
    // One connection: a session lock is released only by the session holding it.
    let mut options = sea_orm::ConnectOptions::new(db.url.clone());
    options.max_connections(1).min_connections(1);
    let blocker = sea_orm::Database::connect(options).await.expect("connect");
    let hold = match backend {
        Backend::Postgres => "SELECT pg_advisory_lock(7461626, hashtext(current_database()))",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    };
    if backend == Backend::Sqlite {
        // The service's own journal mode, so opening the file needs no lock.
        blocker
            .execute_unprepared("PRAGMA journal_mode = WAL")
            .await
            .expect("WAL");
    }
    blocker
        .execute_unprepared(hold)
        .await
        .expect("take the lock");

    let app = crm_contacts::build(settings(&db.url)).await.expect("build");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let channel = channel_to(addr);
    let mut health = None;
    for _ in 0..500 {
        if let Ok(status) = health_status(&channel, SERVICE_NAME).await {
            health = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        health,
        Some(ServingStatus::NotServing),
        "NOT_SERVING while migrating"
    );
    let authorization = format!("Bearer {}", token(TENANT, ADMIN));
    let mut client =
        crm_proto::contacts::contacts_service_client::ContactsServiceClient::with_interceptor(
            channel.clone(),
            bearer(Some(&authorization)),
        );
    let early = client
        .list_contacts(crm_proto::contacts::ListContactsRequest::default())
        .await
        .expect_err("no calls before the migrations are done");
    assert_eq!(early.code(), Code::Unavailable, "{}", early.message());

    let release = match backend {
        Backend::Postgres => "SELECT pg_advisory_unlock(7461626, hashtext(current_database()))",
        Backend::Sqlite => "COMMIT",
    };
    blocker
        .execute_unprepared(release)
        .await
        .expect("release the lock");
    let mut serving = false;
    for _ in 0..1500 {
        if matches!(
            health_status(&channel, SERVICE_NAME).await,
            Ok(ServingStatus::Serving)
        ) {
            serving = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(serving, "SERVING once migrated");
    client
        .list_contacts(crm_proto::contacts::ListContactsRequest::default())
        .await
        .expect("calls work once migrated");
    let _ = stop.send(());
    task.await.expect("join").expect("a clean stop");
    let _ = blocker.close().await;
}

db_test!(not_serving_until_migrated, not_serving_until_migrated_on);

/// The database goes away under a running service (its connections are
/// terminated and new ones refused, as while PostgreSQL restarts): calls fail
/// with UNAVAILABLE, never INTERNAL; health turns NOT_SERVING (liveness stays
/// SERVING, so nothing restarts the process); once the database is back the
/// same process serves again, with everything written before.
#[tokio::test]
async fn a_database_outage_is_unavailable_then_recovered_without_a_restart() {
    use sea_orm::ConnectionTrait;
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let mut client = app.admin();
    let before = create(
        &mut client,
        person("Before", "Outage", "before@outage.example"),
    )
    .await;
    let name = app
        .db
        .url
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    let admin = sea_orm::Database::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("the server");
    let outage = |allow: bool| {
        let (admin, name) = (admin.clone(), name.clone());
        async move {
            admin
                .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
                .await
                .expect("ALTER DATABASE");
            if !allow {
                admin
                    .execute_unprepared(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    ))
                    .await
                    .expect("terminate");
            }
        }
    };

    outage(false).await;
    for attempt in 0..5 {
        let status = client
            .get_contact(crm_proto::contacts::GetContactRequest {
                name: before.name.clone(),
            })
            .await
            .expect_err("the database is gone");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "attempt {attempt}: {status:?}"
        );
        let status = client
            .create_contact(crm_proto::contacts::CreateContactRequest {
                contact: Some(person("During", "Outage", "")),
                request_id: String::new(),
            })
            .await
            .expect_err("the database is gone");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "attempt {attempt}: {status:?}"
        );
    }
    eventually("health turns NOT_SERVING", async || {
        health_status(&app.channel(), "").await.ok() == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(
        health_status(&app.channel(), "liveness").await.ok(),
        Some(ServingStatus::Serving),
        "the process is alive"
    );

    outage(true).await;
    eventually("health turns SERVING again", async || {
        health_status(&app.channel(), SERVICE_NAME).await.ok() == Some(ServingStatus::Serving)
    })
    .await;
    let fetched = client
        .get_contact(crm_proto::contacts::GetContactRequest {
            name: before.name.clone(),
        })
        .await
        .must("GetContact after the outage");
    assert_eq!(fetched.name, before.name);
    create(
        &mut client,
        person("After", "Outage", "after@outage.example"),
    )
    .await;
}

/// A production database URL asks for TLS (`sslmode=require`); the service
/// must be able to speak it (sqlx is built with rustls). PostgreSQL only:
/// SQLite is a file.
#[tokio::test]
async fn postgres_connections_use_tls_when_the_url_requires_it() {
    use sea_orm::ConnectionTrait;
    let Some(db) = crm_testkit::TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}sslmode=require", db.url);
    let conn = crm_shared::db::Database::connect(&url, 1)
        .await
        .expect("a TLS connection (the test server has SSL on, as Debian's does)");
    let row = conn
        .conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .expect("the query")
        .expect("a row");
    let ssl: bool = row.try_get("", "ssl").expect("the ssl column");
    assert!(ssl, "the connection is encrypted");
}
