//! A running suite switched from the built-in feed to JetStream and back by
//! restarting with the setting: the real contacts service and a service
//! built with the kit that records every ContactCreated it applies. Each
//! switch continues from where the other transport stood (nothing applied
//! twice, nothing missed); while NATS is down the consumer's health says
//! NOT_SERVING, the services keep serving, and what was written meanwhile
//! arrives once NATS is back.

use crm_proto::contacts::{
    Contact, CreateContactRequest, contacts_service_client::ContactsServiceClient,
};
use crm_proto::events::{
    ListConsumersRequest, consumer_admin_service_client::ConsumerAdminServiceClient,
};
use crm_testkit::{
    ADMIN, Backend, ServiceProcess, TENANT, TestDatabase, bearer_for, channel_to, db_test,
    eventually, eventually_within, health_status, nats::LocalNats, recorder::recorder, service,
    settings,
};
use tonic_health::pb::health_check_response::ServingStatus;

async fn create_contacts(contacts: &ServiceProcess, first: usize, count: usize) {
    let mut client = ContactsServiceClient::with_interceptor(
        channel_to(contacts.addr),
        bearer_for(TENANT, ADMIN),
    );
    for i in first..first + count {
        client
            .create_contact(CreateContactRequest {
                contact: Some(Contact {
                    given_name: format!("Person{i}"),
                    family_name: "Switch".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("CreateContact");
    }
}

async fn health(process: &ServiceProcess, name: &str) -> Option<ServingStatus> {
    health_status(&process.channel(), name).await.ok()
}

/// Restarts `process` with `nats_url` as its events setting.
async fn restart_with(process: &mut ServiceProcess, nats_url: Option<String>) {
    process.stop().await;
    process.settings.events.nats_url = nats_url;
    process.restart().await;
}

async fn switching_continues_from_the_right_position(backend: Backend) {
    let Some(mut nats) = LocalNats::start() else {
        return;
    };
    let Some(contacts_db) = TestDatabase::create(backend).await else {
        return;
    };
    let Some(recorder_db) = TestDatabase::create(backend).await else {
        return;
    };
    let mut contacts = ServiceProcess::start(
        service(crm_contacts::build),
        settings("contacts", &contacts_db.url),
    )
    .await;
    let mut recorder_settings = settings("recorder", &recorder_db.url);
    recorder_settings
        .peers
        .insert("contacts".into(), format!("http://{}", contacts.addr));
    let mut recorder = ServiceProcess::start(
        recorder("contacts", &["crm.contacts.v1.ContactCreated"]),
        recorder_settings,
    )
    .await;
    let db = crm_shared::db::Database::connect(&recorder_db.url, 2)
        .await
        .expect("connects");
    let count = async |sql: &str| -> i64 {
        use sea_orm::ConnectionTrait;
        db.conn
            .query_one_raw(sea_orm::Statement::from_string(db.backend(), sql))
            .await
            .expect("counts")
            .expect("a row")
            .try_get_by_index::<i64>(0)
            .expect("a count")
    };
    let applied = async |n: i64| count("SELECT COUNT(*) FROM applied").await == n;

    // The built-in feed.
    create_contacts(&contacts, 0, 5).await;
    eventually("5 contacts applied from the built-in feed", async || {
        applied(5).await
    })
    .await;

    // Switch to JetStream: the relay publishes the whole outbox, the
    // partitions start where the built-in consumer stood.
    restart_with(&mut contacts, Some(nats.url())).await;
    recorder
        .settings
        .peers
        .insert("contacts".into(), format!("http://{}", contacts.addr));
    restart_with(&mut recorder, Some(nats.url())).await;
    create_contacts(&contacts, 5, 5).await;
    eventually(
        "10 contacts applied, 5 of them through JetStream",
        async || applied(10).await,
    )
    .await;
    eventually("JetStream health is SERVING", async || {
        health(&recorder, "consumers/contacts").await == Some(ServingStatus::Serving)
            && health(&contacts, "jetstream").await == Some(ServingStatus::Serving)
    })
    .await;

    // ListConsumers shows each partition, who holds it and where it stands.
    let mut admin = ConsumerAdminServiceClient::with_interceptor(
        channel_to(recorder.addr),
        bearer_for(TENANT, ADMIN),
    );
    let listed = admin
        .list_consumers(ListConsumersRequest {})
        .await
        .expect("ListConsumers")
        .into_inner();
    let consumer = &listed.consumers[0];
    assert_eq!(consumer.partitions.len(), 12, "{consumer:?}");
    assert!(
        consumer
            .partitions
            .iter()
            .all(|p| !p.lease_holder.is_empty())
    );
    let tenant_partition = crm_shared::jetstream::tenant_partition(TENANT, 12) as usize;
    let applied_partition = &consumer.partitions[tenant_partition];
    assert!(
        applied_partition.stream_sequence > 0,
        "{applied_partition:?}"
    );
    assert_eq!(consumer.position, applied_partition.position);

    // NATS goes away: the consumer says so, the services keep serving and
    // contacts keeps its events until NATS is back.
    nats.kill();
    eventually("the consumer reports its transport down", async || {
        health(&recorder, "consumers/contacts").await == Some(ServingStatus::NotServing)
            && health(&contacts, "jetstream").await == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(health(&recorder, "").await, Some(ServingStatus::Serving));
    create_contacts(&contacts, 10, 3).await;
    nats.restart();
    let back = std::time::Instant::now();
    eventually_within(
        30,
        "what was written during the outage arrives",
        async || applied(13).await,
    )
    .await;
    eprintln!(
        "written during the outage, applied {:?} after NATS restarted",
        back.elapsed()
    );
    assert_eq!(
        health(&recorder, "consumers/contacts").await,
        Some(ServingStatus::Serving)
    );

    // And back to the built-in feed: what the partitions applied is skipped.
    restart_with(&mut contacts, None).await;
    recorder
        .settings
        .peers
        .insert("contacts".into(), format!("http://{}", contacts.addr));
    restart_with(&mut recorder, None).await;
    create_contacts(&contacts, 13, 2).await;
    eventually("15 contacts applied after switching back", async || {
        applied(15).await
    })
    .await;
    // A moment for anything wrongly re-applied to show up.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(count("SELECT COUNT(*) FROM applied").await, 15);
    assert_eq!(
        count("SELECT COUNT(*) FROM applied WHERE in_order = 0").await,
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM parked_events").await, 0);
}

db_test!(
    switching_transports,
    switching_continues_from_the_right_position
);
