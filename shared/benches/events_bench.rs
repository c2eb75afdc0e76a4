//! Events end to end, on the built-in feed and on NATS JetStream, with one
//! and with three replicas of the consuming service, beside raw JetStream.
//!
//! Each scenario runs a producer built with the kit (its outbox, its
//! `StreamEvents` feed and, on JetStream, its relay) and one or three
//! replicas of the testkit's recorder service following it (each event
//! applied in its own transaction with its cursor, as every consumer of the
//! suite does), all on PostgreSQL (three replicas share one database; SQLite
//! is a one-process database), each scenario with a fresh `nats-server` and
//! fresh databases. The benchmark commits events straight into the
//! producer's outbox (PostgreSQL's NOTIFY wakes the producer as its own
//! commits would):
//! - **throughput**: N events from 4 writers, 20 per transaction, over 100
//!   tenants; from the first commit until the consumers applied the last
//!   (the writers alone are reported too);
//! - **latency**: then 100 events a second, one per transaction, for a
//!   while: commit at the producer to the effect's insert at the consumer,
//!   p50/p95/p99 (both clocks are this machine's).
//!
//! The baseline is raw JetStream on the same server: the same N messages
//! (the encoded events, same subjects and headers) published with 500 acks
//! in flight, then read back by one ordered consumer.
//!
//! `cargo bench -p crm-shared --bench events_bench` runs N = 20,000 and 10 s
//! of latency; `-- events=<n>` sets N. A plain run (`cargo test --benches`)
//! makes a smoke pass with N = 300. Without PostgreSQL or `nats-server` it
//! says so and stops (under CI it fails).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, context::PublishAckFuture, stream};
use bytes::Bytes;
use crm_proto::events::Event;
use crm_shared::{
    config::Settings,
    convert::to_timestamp,
    db::{Database, Tenant},
    jetstream::{SEQUENCE_HEADER, subject},
    kit::{ServiceInfo, ServiceKit},
    outbox::{CommitSignal, NewEvent},
    store::Resources,
};
use crm_testkit::{
    Backend, ServiceProcess, TestDatabase,
    nats::LocalNats,
    recorder::{RecorderMigrator, recorder},
    service, settings,
};
use futures_util::StreamExt;
use prost::Message;
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

static PRODUCER: ServiceInfo = ServiceInfo {
    name: "bench",
    package: "crm.bench.v1",
    default_port: 0,
};

const WRITERS: usize = 4;
const EVENTS_PER_TXN: usize = 20;
const TENANTS: usize = 100;
/// Payload bytes per event (about a contact's).
const PAYLOAD: usize = 300;
const LATENCY_RATE: u64 = 100;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let events = args
        .iter()
        .find_map(|a| a.strip_prefix("events="))
        .map(|n| n.replace('_', "").parse::<usize>().expect("events=<n>"))
        .unwrap_or(if full { 20_000 } else { 300 });
    let latency_for = Duration::from_secs(if full { 10 } else { 1 });
    let Some(probe) = TestDatabase::create(Backend::Postgres).await else {
        println!("events_bench: no PostgreSQL here; skipped");
        return;
    };
    drop(probe);
    let Some(raw_nats) = LocalNats::start() else {
        println!("events_bench: no nats-server here; skipped");
        return;
    };
    let raw = raw_jetstream(&raw_nats, events).await;
    drop(raw_nats);

    let mut rows = Vec::new();
    for (on_jetstream, replicas) in [(false, 1), (false, 3), (true, 1), (true, 3)] {
        rows.push(scenario(on_jetstream, replicas, events, latency_for).await);
    }
    println!();
    println!(
        "{events} events ({PAYLOAD}-byte payloads, {TENANTS} tenants), PostgreSQL, one nats-server, this machine's {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| transport | consumer replicas | end to end events/s | writers alone events/s | latency p50 / p95 / p99 (ms, {LATENCY_RATE} events/s) |"
    );
    println!("|---|---:|---:|---:|---|");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} / {:.1} / {:.1} |",
            row.transport,
            row.replicas,
            row.end_to_end,
            row.writers,
            row.latency[0],
            row.latency[1],
            row.latency[2]
        );
    }
    println!(
        "| raw JetStream publish (500 acks in flight) | - | {:.0} | - | - |",
        raw.publish
    );
    println!(
        "| raw JetStream read (one ordered consumer) | - | {:.0} | - | - |",
        raw.consume
    );
}

struct Row {
    transport: &'static str,
    replicas: usize,
    end_to_end: f64,
    writers: f64,
    latency: [f64; 3],
}

/// The producer's database, written to directly.
struct Producer {
    resources: Resources,
}

impl Producer {
    async fn write_batch(&self, first: usize, count: usize) {
        let txn = self
            .resources
            .db
            .begin_write()
            .await
            .expect("a transaction");
        let tenant = Tenant::new(format!("tenant-{}", first % TENANTS));
        let events = (first..first + count).map(thing).collect();
        self.resources
            .commit(txn, &tenant, events)
            .await
            .expect("commits");
    }
}

fn thing(i: usize) -> NewEvent {
    NewEvent {
        name: "Thing",
        subject: format!("things/{i}"),
        payload: prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.BytesValue".into(),
            value: vec![(i % 251) as u8; PAYLOAD],
        },
        actor: "bench".into(),
    }
}

async fn scenario(
    on_jetstream: bool,
    replicas: usize,
    events: usize,
    latency_for: Duration,
) -> Row {
    let transport = if on_jetstream {
        "JetStream"
    } else {
        "built-in feed"
    };
    eprintln!("scenario: {transport}, {replicas} consumer replica(s)");
    let nats = if on_jetstream {
        LocalNats::start()
    } else {
        None
    };
    let producer_db = TestDatabase::create(Backend::Postgres)
        .await
        .expect("PostgreSQL");
    let consumer_db = TestDatabase::create(Backend::Postgres)
        .await
        .expect("PostgreSQL");
    let with_nats = |mut s: Settings| {
        s.events.nats_url = nats.as_ref().map(LocalNats::url);
        s
    };
    let producer_process = ServiceProcess::start(
        service(|settings| async move {
            ServiceKit::<RecorderMigrator>::build(&PRODUCER, settings).await
        }),
        with_nats(settings("bench", &producer_db.url)),
    )
    .await;
    let mut consumers = Vec::new();
    for _ in 0..replicas {
        let mut s = with_nats(settings("recorder", &consumer_db.url));
        s.peers
            .insert("bench".into(), format!("http://{}", producer_process.addr));
        consumers.push(ServiceProcess::start(recorder("bench", &["crm.bench.v1.Thing"]), s).await);
    }
    let db = Database::connect(&producer_db.url, 8)
        .await
        .expect("connects");
    let producer = Producer {
        resources: Resources::new(
            db,
            CommitSignal::default(),
            "crm.bench.v1",
            Duration::from_secs(3600),
        ),
    };
    let sink = Database::connect(&consumer_db.url, 2)
        .await
        .expect("connects");
    if on_jetstream && replicas > 1 {
        wait_until(
            &sink,
            "SELECT COUNT(DISTINCT holder) FROM consumer_leases WHERE consumer LIKE 'bench/%'",
            replicas as i64,
        )
        .await;
    }

    // Throughput.
    let started = Instant::now();
    let per_writer = events / WRITERS;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let producer = Producer {
                resources: producer.resources.clone(),
            };
            tokio::spawn(async move {
                let mut i = w * per_writer;
                let end = i + per_writer;
                while i < end {
                    let count = EVENTS_PER_TXN.min(end - i);
                    producer.write_batch(i, count).await;
                    i += count;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer");
    }
    let written = started.elapsed();
    let total = (per_writer * WRITERS) as i64;
    wait_until(&sink, "SELECT COUNT(*) FROM applied", total).await;
    let end_to_end = started.elapsed();

    // Latency at a steady rate.
    let first_steady = count(&sink, "SELECT COALESCE(MAX(applied_ms), 0) FROM applied").await;
    let steady = (LATENCY_RATE * latency_for.as_secs()) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / LATENCY_RATE));
    for i in 0..steady {
        tick.tick().await;
        producer.write_batch(1_000_000_000 + i, 1).await;
    }
    wait_until(&sink, "SELECT COUNT(*) FROM applied", total + steady as i64).await;
    let latencies = latencies(&sink, first_steady).await;
    let disordered = count(&sink, "SELECT COUNT(*) FROM applied WHERE in_order = 0").await;
    assert_eq!(disordered, 0, "every tenant's events applied in order");
    drop(consumers);
    drop(producer_process);
    Row {
        transport,
        replicas,
        end_to_end: total as f64 / end_to_end.as_secs_f64(),
        writers: total as f64 / written.as_secs_f64(),
        latency: [
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
        ],
    }
}

async fn count(db: &Database, sql: &str) -> i64 {
    db.conn
        .query_one_raw(Statement::from_string(db.backend(), sql))
        .await
        .expect("counts")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a number")
}

async fn wait_until(db: &Database, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = count(db, sql).await;
        if now >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {now} of {expected} after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Commit-to-effect milliseconds of the events applied after `after_ms`, sorted.
async fn latencies(db: &Database, after_ms: i64) -> Vec<f64> {
    let rows = db
        .conn
        .query_all_raw(Statement::from_string(
            db.backend(),
            format!(
                "SELECT applied_ms - committed_ms AS ms FROM applied WHERE applied_ms > {after_ms} \
                 AND sequence > 0 ORDER BY 1"
            ),
        ))
        .await
        .expect("latencies");
    rows.iter()
        .map(|row| row.try_get::<i64>("", "ms").expect("ms") as f64)
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Raw {
    publish: f64,
    consume: f64,
}

/// The same messages straight through JetStream: published with 500 acks in
/// flight, then read back by one ordered consumer.
async fn raw_jetstream(nats: &LocalNats, events: usize) -> Raw {
    let client = async_nats::connect(nats.url()).await.expect("connects");
    let context = jetstream::new(client);
    let mut stream = context
        .get_or_create_stream(stream::Config {
            name: "RAW".into(),
            subjects: vec!["crm.bench.>".into()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .expect("a stream");
    let messages: Vec<(String, Event)> = (0..events)
        .map(|i| {
            let new = thing(i);
            let tenant = format!("tenant-{}", i % TENANTS);
            let event = Event {
                id: Uuid::now_v7().to_string(),
                sequence: i as i64 + 1,
                r#type: "crm.bench.v1.Thing".into(),
                source: "bench".into(),
                subject: new.subject,
                tenant: tenant.clone(),
                time: Some(to_timestamp(chrono::Utc::now())),
                payload: Some(new.payload),
                traceparent: String::new(),
                actor: new.actor,
            };
            (subject("bench", &tenant, &event.r#type), event)
        })
        .collect();
    let started = Instant::now();
    for window in messages.chunks(500) {
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(window.len());
        for (subject, event) in window {
            let message = jetstream::message::PublishMessage::build()
                .payload(Bytes::from(event.encode_to_vec()))
                .message_id(&event.id)
                .header(SEQUENCE_HEADER, event.sequence.to_string().as_str());
            acks.push(
                context
                    .send_publish(subject.clone(), message)
                    .await
                    .expect("publishes"),
            );
        }
        for ack in acks {
            ack.await.expect("acknowledged");
        }
    }
    let publish = events as f64 / started.elapsed().as_secs_f64();
    let last = stream.info().await.expect("info").state.last_sequence;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(pull::OrderedConfig::default())
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    while let Some(message) = messages.next().await {
        let message = message.expect("a message");
        let event = Event::decode(message.payload.clone()).expect("an event");
        assert!(event.sequence > 0);
        if message.info().expect("info").stream_sequence >= last {
            break;
        }
    }
    let consume = events as f64 / started.elapsed().as_secs_f64();
    Raw { publish, consume }
}
