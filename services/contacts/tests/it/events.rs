//! The StreamEvents change feed: order and envelope, after_sequence, types,
//! max_events, follow, tenant scoping and roles.

use std::time::Duration;

use crm_proto::{
    contacts::{Activity, ActivityKind, Contact, DeleteContactRequest, UpdateContactRequest},
    events::{Event, StreamEventsRequest},
};
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::activities::{activity, log};
use crate::support::*;

async fn feed_records_changes_in_order_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let mut change = created.clone();
    change.job_title = "Analyst".into();
    let updated = client
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must("UpdateContact");
    let logged = log(
        &mut client,
        activity(ActivityKind::Note, &created.name, "note", ""),
    )
    .await;
    client
        .delete_contact(DeleteContactRequest {
            name: created.name.clone(),
            etag: String::new(),
        })
        .await
        .must("DeleteContact");

    let events = app.all_events().await;
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.r#type.clone(), e.subject.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (event_type("ContactCreated"), created.name.clone()),
            (event_type("ContactUpdated"), created.name.clone()),
            (event_type("ActivityLogged"), logged.name.clone()),
            (event_type("ContactDeleted"), created.name.clone()),
        ],
        "the feed, in commit order"
    );
    for pair in events.windows(2) {
        assert!(
            pair[0].sequence < pair[1].sequence,
            "sequences strictly increase"
        );
    }
    for event in &events {
        assert!(event.sequence > 0);
        assert!(
            uuid::Uuid::parse_str(&event.id).is_ok(),
            "id is a UUID: {}",
            event.id
        );
        assert_eq!(event.source, "contacts");
        assert_eq!(event.tenant, TENANT);
        assert_eq!(event.actor, "tester");
        assert!(event.time.is_some());
    }
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");

    let type_url = |e: &Event| {
        e.payload
            .as_ref()
            .map(|p| p.type_url.clone())
            .unwrap_or_default()
    };
    assert!(
        type_url(&events[0]).ends_with("crm.contacts.v1.Contact"),
        "{}",
        type_url(&events[0])
    );
    let first: Contact = payload(&events[0]);
    assert_eq!(first.name, created.name);
    assert_eq!(first.given_name, "Ada");
    let second: Contact = payload(&events[1]);
    assert_eq!(
        second.job_title, "Analyst",
        "the payload is the contact after the change"
    );
    assert_eq!(second.etag, updated.etag);
    assert!(
        type_url(&events[2]).ends_with("crm.contacts.v1.Activity"),
        "{}",
        type_url(&events[2])
    );
    let third: Activity = payload(&events[2]);
    assert_eq!(third.name, logged.name);
    let fourth: Contact = payload(&events[3]);
    assert!(
        fourth.delete_time.is_some(),
        "the deleted contact, with delete_time"
    );

    // after_sequence, types and max_events.
    let mut feed = app.feed(TENANT, SERVICE);
    let after = collect_events(
        &mut feed,
        StreamEventsRequest {
            after_sequence: events[1].sequence,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        after.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![events[2].sequence, events[3].sequence],
        "only events after after_sequence"
    );
    let updates = collect_events(
        &mut feed,
        StreamEventsRequest {
            types: vec![event_type("ContactUpdated"), event_type("ContactDeleted")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        updates.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![events[1].id.clone(), events[3].id.clone()],
        "only the asked types"
    );
    let two = collect_events(
        &mut feed,
        StreamEventsRequest {
            max_events: 2,
            follow: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        two.len(),
        2,
        "max_events ends the stream, even when following"
    );
    assert_eq!(two[0].id, events[0].id);

    let status = feed
        .stream_events(StreamEventsRequest {
            after_sequence: -1,
            ..Default::default()
        })
        .await
        .must_fail("StreamEvents after_sequence -1");
    assert_invalid_field(&status, "after_sequence", "StreamEvents after_sequence -1");
}
db_test!(
    feed_records_changes_in_order,
    feed_records_changes_in_order_on
);

async fn follow_receives_new_events_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let before = create(
        &mut client,
        person("Before", "Subscribe", "before@example.com"),
    )
    .await;
    let backlog = app.all_events().await;
    let last = backlog.last().expect("one event so far").sequence;

    let mut feed = app.feed(TENANT, SERVICE);
    let mut stream = feed
        .stream_events(StreamEventsRequest {
            after_sequence: last,
            follow: true,
            ..Default::default()
        })
        .await
        .must("StreamEvents follow");

    let after = create(
        &mut client,
        person("After", "Subscribe", "after@example.com"),
    )
    .await;
    // A guard against hanging forever, not a timing assertion.
    let next = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("a followed stream delivers an event committed after subscribing")
        .unwrap_or_else(|s| panic!("StreamEvents broke: {:?}: {}", s.code(), s.message()))
        .expect("the followed stream stays open")
        .event
        .expect("an event");
    assert_eq!(next.r#type, event_type("ContactCreated"));
    assert_eq!(next.subject, after.name);
    assert!(next.sequence > last);
    assert_ne!(next.subject, before.name);

    // And the next one too.
    let mut change = after.clone();
    change.job_title = "Follower".into();
    client
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must("UpdateContact");
    let next2 = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("a second event arrives")
        .unwrap_or_else(|s| panic!("StreamEvents broke: {:?}: {}", s.code(), s.message()))
        .expect("the followed stream stays open")
        .event
        .expect("an event");
    assert_eq!(next2.r#type, event_type("ContactUpdated"));
    assert!(next2.sequence > next.sequence);
}
db_test!(follow_receives_new_events, follow_receives_new_events_on);

async fn feed_is_scoped_by_tenant_and_role_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ours = app.admin();
    let mut theirs = app.client(OTHER_TENANT, ADMIN);
    let mine = create(&mut ours, person("Ada", "Lovelace", "ada@example.com")).await;
    let other = create(&mut theirs, person("Alan", "Turing", "alan@example.com")).await;

    for (roles, who) in [(ADMIN, "admin"), (MANAGER, "manager")] {
        let mut feed = app.feed(TENANT, roles);
        let events = collect_events(&mut feed, StreamEventsRequest::default()).await;
        assert!(
            events.iter().all(|e| e.tenant == TENANT),
            "{who} sees only its tenant"
        );
        assert!(
            events.iter().any(|e| e.subject == mine.name),
            "{who} sees its own events"
        );
        assert!(
            !events.iter().any(|e| e.subject == other.name),
            "{who} never sees another tenant's"
        );
    }
    let mut feed = app.feed(OTHER_TENANT, ADMIN);
    let events = collect_events(&mut feed, StreamEventsRequest::default()).await;
    assert_eq!(
        events.iter().map(|e| e.subject.clone()).collect::<Vec<_>>(),
        vec![other.name.clone()]
    );

    let all = app.all_events().await;
    assert!(
        all.iter().any(|e| e.subject == mine.name),
        "the service identity sees every tenant"
    );
    assert!(
        all.iter().any(|e| e.subject == other.name),
        "the service identity sees every tenant"
    );

    for (roles, who) in [(SALES, "sales"), (VIEWER, "viewer")] {
        let mut feed = app.feed(TENANT, roles);
        feed.stream_events(StreamEventsRequest::default())
            .await
            .must_fail_with(Code::PermissionDenied, &format!("StreamEvents by {who}"));
    }
    let mut anonymous = app.feed_with_authorization(None);
    anonymous
        .stream_events(StreamEventsRequest::default())
        .await
        .must_fail_with(Code::Unauthenticated, "StreamEvents without a token");
}
db_test!(
    feed_is_scoped_by_tenant_and_role,
    feed_is_scoped_by_tenant_and_role_on
);

/// Many writers commit concurrently (in any order) while a follower reads the
/// feed: the follower receives every event exactly once, in strictly
/// increasing sequence, never one below a sequence it already saw.
async fn concurrent_writers_reach_a_follower_in_order_on(backend: Backend) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut feed = app.feed(TENANT, SERVICE);
    let mut follower = feed
        .stream_events(StreamEventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .must("StreamEvents follow");
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = app.admin();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let email = format!("w{writer}.{i}@example.com");
                create(
                    &mut client,
                    person("Writer", &format!("{writer}-{i}"), &email),
                )
                .await;
            }
        }));
    }
    let mut seen = Vec::new();
    while seen.len() < WRITERS * EACH {
        let event = tokio::time::timeout(Duration::from_secs(60), follower.message())
            .await
            .expect("the follower keeps receiving events")
            .expect("the stream stays healthy")
            .expect("the stream stays open")
            .event
            .expect("an event");
        seen.push((event.sequence, event.subject));
    }
    for writer in writers {
        writer.await.expect("a writer finished");
    }
    assert!(
        seen.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "sequences strictly increase along the feed"
    );
    let backlog: Vec<(i64, String)> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| (e.sequence, e.subject))
        .collect();
    assert_eq!(
        seen, backlog,
        "the follower saw exactly the committed events"
    );
}

db_test!(
    concurrent_writers_reach_a_follower_in_order,
    concurrent_writers_reach_a_follower_in_order_on
);

/// A follower connected to one replica hears of a commit on another at once:
/// PostgreSQL's LISTEN/NOTIFY wakes it. (Followers also look on their own
/// every 10 s, for notifications lost while a listener reconnects; arriving
/// within 5 s shows the notification did it.)
#[tokio::test]
async fn a_follower_on_one_replica_hears_of_commits_on_another() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let first = ServiceProcess::start(service(crm_contacts::build), settings(&db.url)).await;
    let second = ServiceProcess::start(service(crm_contacts::build), settings(&db.url)).await;
    let mut feed =
        crm_proto::events::event_feed_service_client::EventFeedServiceClient::with_interceptor(
            first.channel(),
            bearer_for(TENANT, ADMIN),
        );
    let mut events = feed
        .stream_events(StreamEventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .must("StreamEvents on the first replica");
    let mut writer =
        crm_proto::contacts::contacts_service_client::ContactsServiceClient::with_interceptor(
            second.channel(),
            bearer_for(TENANT, ADMIN),
        );
    for round in 0..3 {
        let created = create(&mut writer, person("Far", &format!("Away{round}"), "")).await;
        let heard = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no event within 5 s of the commit"))
            .expect("the stream")
            .expect("an event")
            .event
            .expect("an event");
        assert_eq!(heard.subject, created.name);
        // Idle for longer than the old polling interval between rounds.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// Events are pruned once older than the retention window and applied by
/// every consumer seen within it: a service reading the feed records how far
/// it has applied, and holds back pruning behind that point; a consumer not
/// seen for a window no longer does.
async fn events_are_pruned_behind_every_consumer_on(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    for i in 0..3 {
        create(&mut client, person("Kept", &format!("K{i}"), "")).await;
    }
    let events = app.all_events().await;
    assert_eq!(events.len(), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Sales reads the feed after the second event: it has applied the first two.
    let mut sales_feed = app.feed(TENANT, SERVICE);
    collect_events(
        &mut sales_feed,
        StreamEventsRequest {
            after_sequence: events[1].sequence,
            ..Default::default()
        },
    )
    .await;
    let db = crm_shared::db::Database::connect(&app.db.url, 2)
        .await
        .expect("connect");
    let window = Duration::from_secs(1);
    let pruned = crm_shared::retention::prune_outbox(&db, window)
        .await
        .expect("prune");
    assert_eq!(
        pruned, 2,
        "the events every consumer has applied, and old enough"
    );
    let left: Vec<i64> = app.all_events().await.iter().map(|e| e.sequence).collect();
    assert_eq!(
        left,
        vec![events[2].sequence],
        "what a consumer still needs is kept"
    );

    // A consumer not seen within the window no longer holds anything back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pruned = crm_shared::retention::prune_outbox(&db, window)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let readers = db
        .conn
        .query_one_raw(sea_orm::Statement::from_string(
            db.backend(),
            "SELECT COUNT(*) FROM feed_readers",
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count");
    assert_eq!(readers, 0, "the stale reader is forgotten");
}
db_test!(
    events_are_pruned_behind_every_consumer,
    events_are_pruned_behind_every_consumer_on
);
