//! The one way a service follows another service's events.
//!
//! A [`Consumer`] reads one source's `StreamEvents` feed and hands each event
//! to the service's [`EventHandler`]. What it guarantees, on SQLite and
//! PostgreSQL, however many replicas run:
//! - **One active reader** per (service, source): a lease ([`lease`]) held by
//!   one replica, taken over within 10 s when it dies.
//! - **Each event applied once.** The effect, the events it raises and the
//!   cursor move commit in one transaction; the cursor moves only forward
//!   (`UPDATE ... WHERE sequence < $event`), so an event that a second reader
//!   already applied is skipped, never applied twice, and a lagging replica
//!   cannot move the cursor back.
//! - **Never stuck.** An event that does not decode is parked at once; one
//!   whose effect keeps failing is retried with backoff and parked after
//!   [`ATTEMPTS`]. Parking moves the cursor on in the same transaction.
//!   Admins list, retry and discard parked events ([`admin`]).
//! - **Visible.** Lag and parked counts are metrics
//!   (`crm.consumer.lag`, `crm.consumer.parked`, `crm.consumer.events`) and
//!   log lines; `ListConsumers` shows them per consumer.
//!
//! Effects must write the rows they change only if their version is still
//! the one read (`Resources::save_versioned`), so they never undo a user's
//! concurrent change: a conflict is an error, and the event is tried again.

pub mod admin;
pub mod lease;
pub mod partitioned;
pub mod replay;
pub mod tables;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::Utc;
use crm_proto::events::{
    Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient,
};
use opentelemetry::{KeyValue, global};
use prost::Message;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::{
    client::{Credentials, ServiceIdentity},
    db::{Tenant, WriteTxn},
    error::ApiError,
    outbox::NewEvent,
    store::Resources,
};
use lease::Lease;
use tables::{cursor, parked};

/// Tries of an effect before its event is parked.
pub const ATTEMPTS: i32 = 5;
/// The pause after the first failed try; it doubles with each.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How long one connection to a feed lasts before the consumer resumes on a
/// new one, which records its position with the producer.
const RECONNECT_EVERY: Duration = Duration::from_secs(300);

/// Why an event's effect failed.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// The payload is not what its type says: trying again cannot help.
    #[error("undecodable {event_type} payload: {reason}")]
    Undecodable {
        /// The event type.
        event_type: String,
        /// The decode error.
        reason: String,
    },
    /// The effect failed; it may succeed when tried again.
    #[error(transparent)]
    Failed(#[from] ApiError),
}

impl From<DbErr> for EffectError {
    fn from(error: DbErr) -> Self {
        Self::Failed(error.into())
    }
}

impl EffectError {
    /// Decodes `event`'s payload as `M`, or says why it cannot be.
    pub fn decode<M: Message + Default>(event: &Event) -> Result<M, Self> {
        let bytes = event
            .payload
            .as_ref()
            .map(|any| any.value.as_slice())
            .unwrap_or_default();
        M::decode(bytes).map_err(|error| Self::Undecodable {
            event_type: event.r#type.clone(),
            reason: error.to_string(),
        })
    }
}

/// What a consuming service does with one source's events.
#[tonic::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// The full event types it applies ("crm.contacts.v1.ContactMerged");
    /// only these are fetched from the source.
    fn event_types(&self) -> Vec<String>;

    /// Applies `event` in `txn` and returns the events the change raises in
    /// this service; the consumer appends them, moves its cursor and commits,
    /// all in `txn`. An error rolls everything back.
    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError>;
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    /// Another reader applied or parked it first.
    AlreadyDone,
}

/// The cursor an event moves: the consumer's own on the built-in feed, or
/// one partition's ("contacts/3") on JetStream, with the stream sequence the
/// event was read at (where that partition's reader resumes).
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub(crate) cursor: String,
    pub(crate) stream_sequence: Option<i64>,
}

/// A consumer's state and its effects, shared by its follow loop and the
/// admin service.
pub(crate) struct ConsumerCore {
    /// The consumer's name: its source ("contacts").
    pub(crate) name: String,
    /// Whether it reads JetStream (partitioned) rather than the built-in feed.
    pub(crate) on_jetstream: bool,
    handler: Arc<dyn EventHandler>,
    resources: Resources,
}

impl ConsumerCore {
    /// The built-in feed's cursor.
    fn own(&self) -> At {
        At {
            cursor: self.name.clone(),
            stream_sequence: None,
        }
    }

    /// Makes sure the cursor row `key` exists (at `start` when new), so the
    /// forward-only update has a row to compare with.
    pub(crate) async fn ensure_cursor(&self, key: &str, start: i64) -> Result<(), DbErr> {
        let exists = cursor::Entity::find_by_id(key.to_owned())
            .count(&self.resources.db.conn)
            .await?
            > 0;
        if exists {
            return Ok(());
        }
        // In a write transaction, as every write (SQLite's one writer).
        let txn = self.resources.db.begin_write().await?;
        let inserted = cursor::Entity::insert(cursor::ActiveModel {
            consumer: Set(key.to_owned()),
            sequence: Set(start),
            update_time: Set(Utc::now()),
            lag_ms: Set(0),
            stream_sequence: Set(0),
        })
        .exec_without_returning(&*txn)
        .await;
        match inserted {
            Ok(_) => txn.commit().await,
            // A replica starting at the same moment inserted it.
            Err(error) if error.sql_err().is_some() => txn.rollback().await,
            Err(error) => Err(error),
        }
    }

    /// The cursor row `key`, if it exists.
    pub(crate) async fn cursor(&self, key: &str) -> Result<Option<cursor::Model>, DbErr> {
        cursor::Entity::find_by_id(key.to_owned())
            .one(&self.resources.db.conn)
            .await
    }

    /// The partition count and the positions of this consumer's JetStream
    /// partitions ("contacts/3"), by partition: the built-in feed skips what
    /// they applied (a suite switched back from JetStream).
    async fn partition_positions(&self) -> Result<(u32, HashMap<u32, i64>), DbErr> {
        let Some(count) = tables::partitioning::Entity::find_by_id(self.name.clone())
            .one(&self.resources.db.conn)
            .await?
        else {
            return Ok((1, HashMap::new()));
        };
        let prefix = format!("{}/", self.name);
        let rows = cursor::Entity::find()
            .filter(cursor::Column::Consumer.starts_with(&prefix))
            .all(&self.resources.db.conn)
            .await?;
        let positions = rows
            .into_iter()
            .filter_map(|row| {
                let partition = row.consumer.strip_prefix(&prefix)?.parse().ok()?;
                Some((partition, row.sequence))
            })
            .collect();
        Ok((u32::try_from(count.partitions).unwrap_or(1), positions))
    }

    /// Moves the cursor `at` to `event` in `txn` if it is still behind it;
    /// false when it is not (the event was applied already). On PostgreSQL
    /// the update locks the row, so a concurrent reader of the same event
    /// waits for this transaction and then finds the cursor moved.
    async fn advance<C: ConnectionTrait>(
        &self,
        txn: &C,
        at: &At,
        event: &Event,
    ) -> Result<bool, DbErr> {
        let lag_ms = lag(event).as_millis().min(i64::MAX as u128) as i64;
        let moved = cursor::Entity::update_many()
            .set(cursor::ActiveModel {
                sequence: Set(event.sequence),
                update_time: Set(Utc::now()),
                lag_ms: Set(lag_ms),
                stream_sequence: at.stream_sequence.map_or(NotSet, Set),
                ..Default::default()
            })
            .filter(cursor::Column::Consumer.eq(&at.cursor))
            .filter(cursor::Column::Sequence.lt(event.sequence))
            .exec(txn)
            .await?;
        Ok(moved.rows_affected == 1)
    }

    /// One try, as a call the audit log names "consume <event type>".
    async fn apply_once(&self, at: &At, event: &Event) -> Result<Outcome, EffectError> {
        let call = crate::audit::Call {
            method: format!("consume {}", event.r#type),
            request_id: event.id.clone(),
        };
        call.scope(self.apply_and_advance(at, event)).await
    }

    /// The effect, its events and the cursor in one transaction.
    async fn apply_and_advance(&self, at: &At, event: &Event) -> Result<Outcome, EffectError> {
        let txn = self.resources.db.begin_write().await?;
        if !self.advance(&*txn, at, event).await? {
            txn.rollback().await?;
            return Ok(Outcome::AlreadyDone);
        }
        match self.handler.apply(&txn, event).await {
            Ok(events) => {
                let tenant = Tenant::new(event.tenant.clone());
                self.resources.commit(txn, &tenant, events).await?;
                Ok(Outcome::Applied)
            }
            Err(error) => {
                txn.rollback().await?;
                Err(error)
            }
        }
    }

    /// Applies `event`, retrying a failing effect with backoff and parking it
    /// when it cannot be decoded or still fails after [`ATTEMPTS`]. An error
    /// means the database could not even record the parking: the caller
    /// reconnects and the event comes again.
    pub(crate) async fn handle(&self, at: &At, event: &Event) -> Result<(), ApiError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let error = loop {
            match self.apply_once(at, event).await {
                Ok(outcome) => {
                    self.record(at, event, outcome);
                    return Ok(());
                }
                Err(error @ EffectError::Undecodable { .. }) => break error,
                Err(error) if attempt >= ATTEMPTS => break error,
                Err(error) => {
                    tracing::debug!(consumer = %self.name, event = %event.id, %error, attempt, "effect failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        };
        self.park(at, event, &error.to_string(), attempt).await
    }

    /// Parks `event` and moves the cursor past it, in one transaction.
    async fn park(
        &self,
        at: &At,
        event: &Event,
        error: &str,
        attempts: i32,
    ) -> Result<(), ApiError> {
        let txn = self.resources.db.begin_write().await?;
        if !self.advance(&*txn, at, event).await? {
            txn.rollback().await?;
            return Ok(());
        }
        let now = Utc::now();
        parked::Entity::insert(parked::ActiveModel {
            consumer: Set(self.name.clone()),
            event_id: Set(event.id.clone()),
            tenant: Set(event.tenant.clone()),
            sequence: Set(event.sequence),
            event_type: Set(event.r#type.clone()),
            event: Set(event.encode_to_vec()),
            error: Set(error.to_owned()),
            attempts: Set(attempts),
            park_time: Set(now),
            last_attempt_time: Set(now),
        })
        .exec_without_returning(&*txn)
        .await?;
        txn.commit().await?;
        tracing::warn!(
            consumer = %self.name, event = %event.id, sequence = event.sequence,
            r#type = %event.r#type, tenant = %event.tenant, attempts, %error,
            "event parked; the consumer moves on (see ListParkedEvents)"
        );
        global::meter("crm")
            .u64_counter("crm.consumer.events")
            .build()
            .add(1, &self.attributes("parked"));
        self.report_parked().await;
        Ok(())
    }

    /// Records the parked count of this consumer as a metric.
    pub(crate) async fn report_parked(&self) {
        let count = parked::Entity::find()
            .filter(parked::Column::Consumer.eq(&self.name))
            .count(&self.resources.db.conn)
            .await;
        if let Ok(count) = count {
            global::meter("crm")
                .u64_gauge("crm.consumer.parked")
                .build()
                .record(count, &[KeyValue::new("consumer", self.name.clone())]);
        }
    }

    fn record(&self, at: &At, event: &Event, outcome: Outcome) {
        let label = match outcome {
            Outcome::Applied => "applied",
            Outcome::AlreadyDone => "skipped",
        };
        let meter = global::meter("crm");
        meter
            .u64_counter("crm.consumer.events")
            .build()
            .add(1, &self.attributes(label));
        let behind = lag(event);
        meter
            .f64_gauge("crm.consumer.lag")
            .with_unit("s")
            .build()
            .record(
                behind.as_secs_f64(),
                &[
                    KeyValue::new("consumer", self.name.clone()),
                    KeyValue::new("cursor", at.cursor.clone()),
                ],
            );
        if behind > Duration::from_secs(30) {
            tracing::info!(consumer = %at.cursor, sequence = event.sequence, lag_seconds = behind.as_secs(), "consumer is behind its source");
        }
    }

    fn attributes(&self, outcome: &'static str) -> [KeyValue; 2] {
        [
            KeyValue::new("consumer", self.name.clone()),
            KeyValue::new("outcome", outcome),
        ]
    }

    /// Applies a parked event now, without touching the cursor: it leaves
    /// the parked table in the same transaction, so of two concurrent retries
    /// one applies it and the other finds it gone.
    pub(crate) async fn retry(&self, row: &parked::Model, event: &Event) -> Result<(), ApiError> {
        let txn = self.resources.db.begin_write().await?;
        let removed = parked::Entity::delete_many()
            .filter(parked::Column::Consumer.eq(&row.consumer))
            .filter(parked::Column::EventId.eq(&row.event_id))
            .exec(&*txn)
            .await?;
        if removed.rows_affected != 1 {
            txn.rollback().await?;
            return Err(ApiError::NotFound(parked_name(row)));
        }
        match self.handler.apply(&txn, event).await {
            Ok(events) => {
                let tenant = Tenant::new(event.tenant.clone());
                self.resources.commit(txn, &tenant, events).await?;
                tracing::info!(consumer = %self.name, event = %event.id, "parked event applied on retry");
                self.report_parked().await;
                Ok(())
            }
            Err(error) => {
                txn.rollback().await?;
                let message = error.to_string();
                parked::Entity::update_many()
                    .set(parked::ActiveModel {
                        error: Set(message.clone()),
                        attempts: Set(row.attempts.saturating_add(1)),
                        last_attempt_time: Set(Utc::now()),
                        ..Default::default()
                    })
                    .filter(parked::Column::Consumer.eq(&row.consumer))
                    .filter(parked::Column::EventId.eq(&row.event_id))
                    .exec(&self.resources.db.conn)
                    .await?;
                Err(ApiError::FailedPrecondition(format!(
                    "the event still fails and stays parked: {message}"
                )))
            }
        }
    }
}

/// "consumers/{consumer}/parkedEvents/{event id}".
pub(crate) fn parked_name(row: &parked::Model) -> String {
    format!("consumers/{}/parkedEvents/{}", row.consumer, row.event_id)
}

/// How long ago `event` committed at its source.
pub(crate) fn lag(event: &Event) -> Duration {
    let committed = event
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    committed
        .and_then(|t| (Utc::now() - t).to_std().ok())
        .unwrap_or_default()
}

/// Where a consumer reads its source's events: the source's `StreamEvents`
/// feed, called with the service identity.
#[derive(Clone)]
pub struct FeedSource {
    channel: Channel,
    identity: ServiceIdentity,
}

impl FeedSource {
    /// The feed served at `channel`, read as `identity`.
    pub fn new(channel: Channel, identity: ServiceIdentity) -> Self {
        Self { channel, identity }
    }
}

/// How a consumer receives its source's events.
pub enum Transport {
    /// The source's own `StreamEvents` feed, one replica at a time.
    Feed(FeedSource),
    /// The source's JetStream stream, partitioned by tenant across replicas
    /// (see [`partitioned`]).
    JetStream(Box<crate::jetstream::Transport>),
}

/// Follows one source's feed for one service; see the module docs.
pub struct Consumer {
    core: Arc<ConsumerCore>,
    transport: Transport,
    /// Partitions of the source's tenants: on JetStream each is applied by
    /// one replica; on the built-in feed, what each applied is skipped.
    partitions: u32,
    holder: String,
}

impl Consumer {
    /// A consumer named after `source` that applies its events with
    /// `handler` to `resources`, as replica `holder`, receiving them by
    /// `transport` and (whichever it is) splitting tenants into `partitions`.
    pub fn new(
        source_name: &str,
        transport: Transport,
        partitions: u32,
        handler: Arc<dyn EventHandler>,
        resources: Resources,
        holder: &str,
    ) -> Self {
        Self {
            core: Arc::new(ConsumerCore {
                name: source_name.to_owned(),
                on_jetstream: matches!(transport, Transport::JetStream(_)),
                handler,
                resources,
            }),
            transport,
            partitions: partitions.max(1),
            holder: holder.to_owned(),
        }
    }

    pub(crate) fn core(&self) -> Arc<ConsumerCore> {
        self.core.clone()
    }

    /// Follows the source until `stopping` turns true.
    pub async fn run(self, stopping: watch::Receiver<bool>) {
        match &self.transport {
            Transport::Feed(source) => {
                let follower = FeedFollower {
                    core: self.core.clone(),
                    source: source.clone(),
                };
                let lease = Lease::new(
                    self.core.resources.db.clone(),
                    &self.core.name,
                    &self.holder,
                )
                .excluding(lease::Exclusion::Partitions(self.core.name.clone()));
                follower.run(lease, stopping).await;
            }
            Transport::JetStream(transport) => {
                partitioned::Partitioned::new(
                    self.core.clone(),
                    (**transport).clone(),
                    self.partitions,
                    &self.holder,
                )
                .run(stopping)
                .await
            }
        }
    }
}

/// Follows the built-in feed on the replica holding the consumer's lease.
struct FeedFollower {
    core: Arc<ConsumerCore>,
    source: FeedSource,
}

impl FeedFollower {
    /// Waits for the lease, follows while holding it (reconnecting after
    /// errors), gives it up on shutdown.
    async fn run(self, lease: Lease, mut stopping: watch::Receiver<bool>) {
        let name = self.core.name.clone();
        loop {
            match lease.try_acquire().await {
                Ok(true) => {
                    tracing::info!(consumer = %name, "lease acquired; following the feed");
                    let stopped = tokio::select! {
                        _ = self.follow() => false,
                        _ = lease.until_lost() => {
                            tracing::warn!(consumer = %name, "lease lost; stopped following");
                            false
                        }
                        _ = stopping.wait_for(|stop| *stop) => true,
                    };
                    if stopped {
                        if let Err(error) = lease.release().await {
                            tracing::warn!(consumer = %name, %error, "could not release the lease");
                        }
                        return;
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(consumer = %name, %error, "cannot read the lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(lease::POLL_EVERY) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Follows the feed, reconnecting with backoff; never returns.
    async fn follow(&self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.follow_once().await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(error) => {
                    tracing::warn!(consumer = %self.core.name, %error, ?backoff, "feed interrupted; reconnecting");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// One connection: reads after the stored cursor until the stream ends.
    async fn follow_once(&self) -> Result<(), ApiError> {
        let own = self.core.own();
        self.core.ensure_cursor(&own.cursor, 0).await?;
        let after = self
            .core
            .cursor(&own.cursor)
            .await?
            .map_or(0, |row| row.sequence);
        let (partitions, applied_on_jetstream) = self.core.partition_positions().await?;
        let credentials = Credentials::bearer(&self.source.identity.token()?)?;
        let request = credentials.subscription(StreamEventsRequest {
            after_sequence: after,
            follow: true,
            types: self.core.handler.event_types(),
            max_events: 0,
        });
        let unavailable = |s: tonic::Status| {
            ApiError::Unavailable(format!("{} feed: {}", self.core.name, s.message()))
        };
        let mut stream = EventFeedServiceClient::new(self.source.channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
            .stream_events(request)
            .await
            .map_err(unavailable)?
            .into_inner();
        tracing::info!(consumer = %self.core.name, after, "following");
        // Reconnecting now and then tells the producer how far this consumer
        // has applied, so it can prune behind it (see `retention`). Only the
        // wait for the next event is cut short, never an event being applied.
        let reconnect_at = tokio::time::Instant::now() + RECONNECT_EVERY;
        loop {
            let message = tokio::select! {
                message = stream.message() => message.map_err(unavailable)?,
                _ = tokio::time::sleep_until(reconnect_at) => return Ok(()),
            };
            let Some(message) = message else {
                return Ok(());
            };
            let Some(event) = message.event else {
                continue;
            };
            let partition = crate::jetstream::tenant_partition(&event.tenant, partitions);
            if applied_on_jetstream
                .get(&partition)
                .is_some_and(|applied| event.sequence <= *applied)
            {
                continue;
            }
            self.core.handle(&own, &event).await?;
        }
    }
}
