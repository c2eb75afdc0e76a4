//! The real binary: configured by environment, stops cleanly on SIGTERM, and
//! loses nothing it reported when killed in the middle of an import.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    process::Stdio,
    time::Duration,
};

use crm_proto::{
    contacts::{
        BatchGetContactsRequest, GetContactRequest, ImportContactsRequest, ImportOutcome,
        ImportRowResult, contacts_service_client::ContactsServiceClient,
    },
    events::{StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_testkit::{Backend, TestDatabase};
use tokio::process::{Child, Command};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::*;

/// A contacts process started from the built binary.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    /// Starts the binary on `database_url` and waits until it is SERVING.
    async fn start(database_url: &str) -> Process {
        let addr: SocketAddr = crm_testkit::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_contacts"))
            .env("CRM_CONTACTS__LISTEN_ADDR", addr.to_string())
            .env("CRM_CONTACTS__DATABASE_URL", database_url)
            .env("CRM_AUTH__HS256_SECRET", SECRET)
            .env("CRM_AUTH__SERVICE_SECRET", SERVICE_SECRET)
            .env("CRM_PAGING_SECRET", "x")
            .env("CRM_TELEMETRY__FILTER", "warn")
            .env("CRM_CONFIG", "/nonexistent/crm-test-config")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the contacts binary");
        let channel = channel_to(addr);
        for _ in 0..3000 {
            if let Some(status) = child.try_wait().expect("polling the child") {
                panic!("the contacts binary exited before serving: {status}");
            }
            if matches!(
                health_status(&channel, SERVICE_NAME).await,
                Ok(ServingStatus::Serving)
            ) {
                return Process { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the contacts binary did not report SERVING within 60 s");
    }

    fn contacts(&self) -> Contacts {
        let authorization = format!("Bearer {}", token(TENANT, ADMIN));
        ContactsServiceClient::with_interceptor(channel_to(self.addr), bearer(Some(&authorization)))
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    fn feed(&self) -> Feed {
        let authorization = format!("Bearer {}", token(TENANT, SERVICE));
        EventFeedServiceClient::with_interceptor(
            channel_to(self.addr),
            bearer(Some(&authorization)),
        )
        .max_decoding_message_size(64 * 1024 * 1024)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the child is running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

async fn sigterm_exits_cleanly_on(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let mut process = Process::start(&db.url).await;
    let mut client = process.contacts();
    let created = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    // A follower is connected while the process stops: feeds must end, not hold it up.
    let mut feed = process.feed();
    let mut follower = feed
        .stream_events(StreamEventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .must("StreamEvents follow");
    let first = follower
        .message()
        .await
        .expect("the backlog arrives")
        .expect("one event")
        .event
        .expect("an event");
    assert_eq!(first.subject, created.name);

    process.signal("-TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), process.child.wait())
        .await
        .expect("the process exits within 30 s of SIGTERM")
        .expect("waiting for the process");
    assert!(
        status.success(),
        "SIGTERM ends the process with exit status 0, got {status}"
    );
    // The follower's stream ended with the process (it does not hang).
    let ended = tokio::time::timeout(Duration::from_secs(30), follower.message()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the followed stream ended with the process"
    );

    // The data survived the restart.
    let process = Process::start(&db.url).await;
    let mut client = process.contacts();
    let got = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetContact after the restart");
    assert_eq!(got.name, created.name);
}
db_test!(sigterm_exits_cleanly, sigterm_exits_cleanly_on);

async fn sigkill_mid_import_loses_nothing_reported_on(backend: Backend) {
    const ROWS: usize = 50_000;
    const BATCHES_BEFORE_KILL: usize = 3;
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let mut process = Process::start(&db.url).await;
    let mut client = process.contacts();
    let rows = futures_util::stream::iter((1..=ROWS).map(|i| ImportContactsRequest {
        contact: Some(person(
            "Killed",
            &format!("Import{i:05}"),
            &format!("kill{i}@example.com"),
        )),
    }));
    let mut responses = client.import_contacts(rows).await.must("ImportContacts");
    let mut reported: Vec<ImportRowResult> = Vec::new();
    let mut batches = 0;
    let mut finished = false;
    while batches < BATCHES_BEFORE_KILL {
        match responses.message().await {
            Ok(Some(batch)) => {
                batches += 1;
                reported.extend(batch.results);
            }
            Ok(None) => {
                finished = true;
                break;
            }
            Err(status) => panic!(
                "ImportContacts failed before the kill: {:?}: {}",
                status.code(),
                status.message()
            ),
        }
    }
    process.child.kill().await.expect("SIGKILL the process");
    // Whatever reached the client before the kill was reported too.
    if !finished {
        while let Ok(Ok(Some(batch))) =
            tokio::time::timeout(Duration::from_secs(30), responses.message()).await
        {
            reported.extend(batch.results);
        }
    }
    drop(responses);
    eprintln!(
        "{backend:?}: killed after {batches} batches (finished before the kill: {finished}); \
         {} rows reported",
        reported.len()
    );
    assert!(
        !reported.is_empty(),
        "some rows were reported before the kill"
    );
    let rows_reported: Vec<i64> = reported.iter().map(|r| r.row).collect();
    let expected: Vec<i64> = (1..=reported.len() as i64).collect();
    assert_eq!(
        rows_reported, expected,
        "results arrive in row order without gaps"
    );
    let not_created: Vec<&ImportRowResult> = reported
        .iter()
        .filter(|r| r.outcome != ImportOutcome::Created as i32)
        .take(5)
        .collect();
    assert!(
        not_created.is_empty(),
        "every valid new row is CREATED: {not_created:?}"
    );
    let created: Vec<String> = reported.iter().map(|r| r.contact.clone()).collect();

    // Restart on the same database.
    let process = Process::start(&db.url).await;
    let mut client = process.contacts();
    for chunk in created.chunks(1000) {
        let result = client
            .batch_get_contacts(BatchGetContactsRequest {
                names: chunk.to_vec(),
            })
            .await;
        if let Err(status) = result {
            let mut missing = Vec::new();
            for name in chunk {
                if client
                    .get_contact(GetContactRequest { name: name.clone() })
                    .await
                    .is_err()
                {
                    missing.push(name.clone());
                }
            }
            panic!(
                "reported CREATED rows are missing after the restart ({:?}: {}): {} missing, first {:?}",
                status.code(),
                status.message(),
                missing.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            );
        }
    }

    let in_db: Vec<String> = names(&list_all(&mut client, "", "", true).await);
    let in_db_set: HashSet<String> = in_db.iter().cloned().collect();
    assert_eq!(in_db_set.len(), in_db.len(), "no contact listed twice");
    let mut feed = process.feed();
    let events = collect_events(
        &mut feed,
        StreamEventsRequest {
            types: vec![event_type("ContactCreated")],
            ..Default::default()
        },
    )
    .await;
    let mut created_events: HashMap<String, usize> = HashMap::new();
    for event in &events {
        *created_events.entry(event.subject.clone()).or_default() += 1;
    }
    for name in &created {
        assert_eq!(
            created_events.get(name).copied().unwrap_or(0),
            1,
            "the reported contact {name} has exactly one ContactCreated event"
        );
    }
    let twice: Vec<_> = created_events
        .iter()
        .filter(|(_, n)| **n > 1)
        .take(5)
        .collect();
    assert!(
        twice.is_empty(),
        "no contact has two ContactCreated events: {twice:?}"
    );
    let subjects: HashSet<String> = created_events.keys().cloned().collect();
    let without_event: Vec<_> = in_db_set.difference(&subjects).take(5).collect();
    let without_contact: Vec<_> = subjects.difference(&in_db_set).take(5).collect();
    assert!(
        without_event.is_empty(),
        "contacts without a ContactCreated event: {without_event:?}"
    );
    assert!(
        without_contact.is_empty(),
        "ContactCreated events without a contact: {without_contact:?}"
    );
    assert!(
        in_db.len() >= created.len(),
        "{} contacts stored, {} reported",
        in_db.len(),
        created.len()
    );
    assert!(in_db.len() <= ROWS, "never more contacts than rows");
    eprintln!(
        "{backend:?}: {} contacts stored after the restart",
        in_db.len()
    );

    // The restarted process still works.
    let after = create(&mut client, person("After", "Restart", "after@example.com")).await;
    assert!(is_resource_name(&after.name, "contacts"));
}
db_test!(
    sigkill_mid_import_loses_nothing_reported,
    sigkill_mid_import_loses_nothing_reported_on
);

/// A caller's W3C trace context continues into the server's span and is
/// stored with the event the call caused (telemetry is set up by the binary).
async fn trace_context_reaches_the_event_on(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let process = Process::start(&db.url).await;
    let mut client = process.contacts();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(crm_proto::contacts::CreateContactRequest {
        contact: Some(person("Trace", "Able", "trace@example.com")),
        request_id: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("a metadata value"),
    );
    let created = client
        .create_contact(request)
        .await
        .must("CreateContact with a traceparent");
    let events = collect_events(&mut process.feed(), StreamEventsRequest::default()).await;
    let event = events_about(&events, &created.name)
        .into_iter()
        .next()
        .expect("the ContactCreated event");
    let parts: Vec<&str> = event.traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "a W3C traceparent: {:?}", event.traceparent);
    assert_eq!(parts[1], trace_id, "the event continues the caller's trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the event names the server's own span, a child of the caller's"
    );
}

db_test!(
    trace_context_reaches_the_event,
    trace_context_reaches_the_event_on
);
