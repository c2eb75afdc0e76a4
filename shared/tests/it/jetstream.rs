//! The outbox on JetStream: a relay killed mid-batch and a NATS server
//! killed mid-stream lose and repeat nothing; three replicas of a consumer
//! share twelve partitions, one is killed and its partitions move within
//! 10 s, and every event is applied exactly once, in order per tenant.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use crm_shared::{
    consumer::{Consumer, Transport as ConsumerTransport},
    jetstream::{EventsSettings, SEQUENCE_HEADER, Transport, relay::Relay},
    outbox::EventFeed,
};
use crm_testkit::{Backend, TestDatabase, db_test, eventually, eventually_within, nats::LocalNats};
use futures_util::StreamExt;
use tokio::{sync::watch, task::JoinHandle};

use crm_testkit::recorder::Recorder;

use crate::common::Side;

fn settings(nats: &LocalNats) -> EventsSettings {
    EventsSettings {
        nats_url: Some(nats.url()),
        ..Default::default()
    }
}

fn tenants(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i}")).collect()
}

/// A relay of the producer's outbox as replica `holder`, running until aborted or stopped.
fn relay(
    producer: &Side,
    transport: &Transport,
    holder: &str,
    stopping: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let feed = EventFeed::new(
        producer.db().clone(),
        "test",
        &producer.signal,
        stopping.clone(),
    );
    let relay = Relay::new(
        producer.db().clone(),
        feed,
        "test",
        transport.clone(),
        holder,
    );
    tokio::spawn(relay.run(stopping.clone()))
}

/// The outbox sequences the stream holds, in stream order.
async fn published(transport: &Transport) -> Vec<i64> {
    let mut stream = transport.stream("test").await.expect("the stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut sequences = Vec::new();
    if last == 0 {
        return sequences;
    }
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stream delivers")
            .expect("a message")
            .expect("no error");
        let header = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(SEQUENCE_HEADER))
            .expect("every message carries its outbox sequence");
        sequences.push(header.as_str().parse::<i64>().expect("a number"));
        if message.info().expect("jetstream info").stream_sequence >= last {
            break;
        }
    }
    sequences
}

async fn relay_loses_and_repeats_nothing(backend: Backend) {
    let Some(mut nats) = LocalNats::start() else {
        return;
    };
    let Some(producer) = Side::create(backend).await else {
        return;
    };
    crm_testkit::logs::capture();
    let transport = Transport::connect(&settings(&nats))
        .await
        .expect("connects");
    let (_stop, stopping) = watch::channel(false);
    let tenants = tenants(3);

    // Writes go on while the relay is killed mid-batch, again and again.
    let writing = {
        let producer = Side {
            resources: producer.resources.clone(),
            signal: producer.signal.clone(),
            _database: TestDatabase::create(Backend::Sqlite).await.expect("sqlite"),
        };
        let tenants = tenants.clone();
        tokio::spawn(async move { producer.write(&tenants, 0, 1500).await })
    };
    for round in 0..6u64 {
        let running = relay(&producer, &transport, "relay-a", &stopping);
        tokio::time::sleep(Duration::from_millis(120 + 70 * round)).await;
        running.abort();
        let _ = running.await;
    }
    // NATS dies while the relay publishes and the writes go on.
    let running = relay(&producer, &transport, "relay-a", &stopping);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.restart();
    writing.await.expect("the writer finishes");

    let outbox = producer.outbox_sequences().await;
    assert_eq!(outbox.len(), 1500);
    eventually_within(60, "the relay publishes every event", async || {
        published(&transport).await.last() == outbox.last()
    })
    .await;
    running.abort();
    assert_eq!(
        published(&transport).await,
        outbox,
        "the stream holds every committed event once, in sequence order"
    );
    // The relay's position holds back the outbox's pruning.
    let recorded = crm_shared::retention::reader_position(producer.db(), "jetstream")
        .await
        .expect("reads the position");
    assert!(recorded.is_some_and(|position| position > 0));

    // A producer whose database was reset (or another suite's) finds events
    // it never published in the stream, and publishes nothing after them.
    let Some(reset) = Side::create(backend).await else {
        return;
    };
    reset.write(&tenants, 0, 10).await;
    let stray = relay(&reset, &transport, "relay-b", &stopping);
    eventually("the stray relay refuses the stream", async || {
        !crm_testkit::logs::warnings_containing("holds events this database never published")
            .is_empty()
    })
    .await;
    stray.abort();
    assert_eq!(published(&transport).await, outbox);
}

db_test!(
    relay_survives_kills_and_nats_restarts,
    relay_loses_and_repeats_nothing
);

fn replica(
    consumer: &Side,
    transport: &Transport,
    holder: &str,
    stopping: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let consumer = Consumer::new(
        "test",
        ConsumerTransport::JetStream(Box::new(transport.clone())),
        12,
        Arc::new(Recorder::of(&["crm.test.v1.Thing"])),
        consumer.resources.clone(),
        holder,
    );
    tokio::spawn(consumer.run(stopping.clone()))
}

async fn replicas_share_partitions_exactly_once(backend: Backend) {
    let Some(nats) = LocalNats::start() else {
        return;
    };
    let Some(producer) = Side::create(backend).await else {
        return;
    };
    let Some(consumer) = Side::create(backend).await else {
        return;
    };
    crm_testkit::logs::capture();
    let transport = Transport::connect(&settings(&nats))
        .await
        .expect("connects");
    let (stop, stopping) = watch::channel(false);
    let tenants = tenants(20);
    let _relay = relay(&producer, &transport, "relay-a", &stopping);
    producer.write(&tenants, 0, 200).await;

    let mut replicas: Vec<JoinHandle<()>> = (0..3)
        .map(|i| replica(&consumer, &transport, &format!("replica-{i}"), &stopping))
        .collect();
    eventually("three replicas share the twelve partitions", async || {
        let holders = consumer.partition_holders().await;
        let live: std::collections::BTreeSet<&str> = holders
            .iter()
            .filter(|(_, _, live)| *live)
            .map(|(_, holder, _)| holder.as_str())
            .collect();
        holders.iter().filter(|(_, _, live)| *live).count() == 12 && live.len() == 3
    })
    .await;
    // Replicas starting together agree on the partition count without a
    // failed insert (on PostgreSQL one used to hold a replica back 10 s).
    assert!(crm_testkit::logs::warnings_containing("cannot read the partition count").is_empty());

    // Kill replica-1 (no goodbye) while events keep coming.
    let writing = {
        let producer = Side {
            resources: producer.resources.clone(),
            signal: producer.signal.clone(),
            _database: TestDatabase::create(Backend::Sqlite).await.expect("sqlite"),
        };
        let tenants = tenants.clone();
        tokio::spawn(async move { producer.write(&tenants, 200, 600).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    replicas[1].abort();
    let killed_at = tokio::time::Instant::now();
    eventually_within(
        10,
        "replica-1's partitions move to the others",
        async || {
            let holders = consumer.partition_holders().await;
            holders.len() == 12
                && holders
                    .iter()
                    .all(|(_, holder, live)| *live && holder != "replica-1")
        },
    )
    .await;
    eprintln!("partitions moved {:?} after the kill", killed_at.elapsed());
    writing.await.expect("the writer finishes");

    // replica-1 comes back and takes its share again.
    replicas[1] = replica(&consumer, &transport, "replica-1", &stopping);
    producer.write(&tenants, 800, 200).await;
    eventually_within(20, "replica-1 holds partitions again", async || {
        consumer
            .partition_holders()
            .await
            .iter()
            .any(|(_, holder, live)| *live && holder == "replica-1")
    })
    .await;
    producer.write(&tenants, 1000, 100).await;

    let total = producer.outbox_sequences().await.len() as i64;
    assert_eq!(total, 1100);
    eventually_within(60, "every event is applied", async || {
        consumer.count("SELECT COUNT(*) FROM applied").await == total
    })
    .await;
    assert_eq!(
        consumer
            .count("SELECT COUNT(*) FROM applied WHERE in_order = 0")
            .await,
        0,
        "each tenant's events were applied in order"
    );
    assert_eq!(
        consumer.count("SELECT COUNT(*) FROM parked_events").await,
        0,
        "nothing was applied twice (a second insert would fail and park)"
    );

    // A replica configured with another partition count applies nothing:
    // its tenants would fall into partitions whose positions are others'.
    let (_stop_odd, stopping_odd) = watch::channel(false);
    let odd = Consumer::new(
        "test",
        ConsumerTransport::JetStream(Box::new(transport.clone())),
        8,
        Arc::new(Recorder::of(&["crm.test.v1.Thing"])),
        consumer.resources.clone(),
        "replica-odd",
    );
    let odd = tokio::spawn(odd.run(stopping_odd));
    eventually("the odd replica refuses its partition count", async || {
        !crm_testkit::logs::warnings_containing("events.partitions differs").is_empty()
    })
    .await;
    assert!(
        consumer
            .partition_holders()
            .await
            .iter()
            .all(|(_, holder, _)| holder != "replica-odd")
    );
    odd.abort();

    // Shutting down gives every partition and membership up.
    stop.send(true).expect("stops");
    for replica in replicas {
        let _ = replica.await;
    }
    assert_eq!(
        consumer
            .count("SELECT COUNT(*) FROM consumer_members WHERE member <> 'replica-1'")
            .await,
        0
    );
}

db_test!(
    three_replicas_share_twelve_partitions,
    replicas_share_partitions_exactly_once
);
