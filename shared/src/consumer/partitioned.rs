//! A consumer on JetStream whose work spreads across replicas: the source's
//! tenants are split into partitions ([`crate::jetstream::partition`]) and
//! each partition is applied by one replica at a time, in order.
//!
//! - **Membership**: every replica renews its row in `consumer_members`
//!   each [`TICK`]; a row not renewed for [`lease::TTL`] is gone.
//! - **Assignment**: rendezvous hashing over the live members: partition
//!   `p` belongs to the member with the highest hash of (member, p), so a
//!   join or a death moves only the partitions that must move, and every
//!   replica computes the same answer without talking to the others.
//! - **Ownership**: a replica applies a partition's events only while it
//!   holds that partition's lease (`contacts/3` in `consumer_leases`); it
//!   gives up partitions that now belong to another member between two
//!   events, and takes up its own once their lease is free or has run out.
//!   A killed replica's partitions move when its member row and leases run
//!   out (about [`lease::TTL`] plus a tick, under 10 s).
//! - **Exactly once, in order**: each partition has its own cursor row
//!   (`contacts/3`) holding the outbox sequence and the stream sequence of
//!   the last event applied; the effect moves it forward in its own
//!   transaction, exactly as on the built-in feed, so an event applied by a
//!   replica that just lost the partition is skipped by the next.
//!
//! One replica reads the stream once for all the partitions it holds (an
//! ordered consumer from the lowest stream position among them) and skips
//! the other partitions' events, so reading costs each replica the whole
//! stream while applying costs it only its share. A new partition cursor
//! starts where the built-in feed's cursor stands, so a suite switched from
//! the built-in feed continues from the right event.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use chrono::Utc;
use crm_proto::events::Event;
use futures_util::StreamExt;
use opentelemetry::{KeyValue, global};
use prost::Message;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Statement,
    Value, sea_query::OnConflict,
};
use tokio::sync::watch;

use super::{
    At, ConsumerCore,
    lease::{self, Exclusion, Lease},
    tables::{member, partitioning},
};
use crate::{
    error::ApiError,
    jetstream::{JetStreamError, SEQUENCE_HEADER, Transport, partition, tenant_token},
};

/// How often a replica renews its membership and leases and looks at the
/// assignment.
pub const TICK: Duration = Duration::from_secs(1);

/// One partition this replica holds.
struct Held {
    lease: Lease,
    /// The cursor row's name ("contacts/3").
    cursor: String,
    /// The outbox sequence applied so far (events at or below are skipped).
    position: i64,
    /// The stream sequence of the last event applied (0: none yet).
    stream_sequence: i64,
    /// That event's outbox sequence: the message at `stream_sequence` must
    /// still carry it for the reader to resume after it.
    stream_position: i64,
    /// When the lease was last taken or renewed.
    renewed_at: tokio::time::Instant,
}

impl Held {
    /// Whether the lease is surely still this replica's: renewed within the
    /// TTL less a margin for the event being applied.
    fn fresh(&self) -> bool {
        self.renewed_at.elapsed() + LEASE_MARGIN < lease::TTL
    }
}

/// How long before its lease could run out a replica stops applying a
/// partition's events (until it has renewed the lease).
const LEASE_MARGIN: Duration = Duration::from_secs(3);

/// The ordered consumer's messages.
type Messages = pull::Ordered;

/// What woke the reading loop.
enum Step {
    Message(Option<Result<Box<jetstream::Message>, String>>),
    Tick,
    Stop,
}

/// One replica's share of one consumer; see the module docs.
pub(crate) struct Partitioned {
    core: Arc<ConsumerCore>,
    transport: Transport,
    partitions: u32,
    holder: String,
    wanted: HashSet<String>,
}

impl Partitioned {
    pub(crate) fn new(
        core: Arc<ConsumerCore>,
        transport: Transport,
        partitions: u32,
        holder: &str,
    ) -> Self {
        let wanted = core.handler.event_types().into_iter().collect();
        Self {
            core,
            transport,
            partitions,
            holder: holder.to_owned(),
            wanted,
        }
    }

    /// Takes part until `stopping` turns true; then gives its partitions and
    /// membership up, so the others take over at once.
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        if !self.agree_on_partition_count(&mut stopping).await {
            return;
        }
        let mut held: BTreeMap<u32, Held> = BTreeMap::new();
        let mut reader: Option<Messages> = None;
        // How long to wait before reading again after the reader failed.
        let mut backoff = Duration::ZERO;
        // The connection count when the reader was opened.
        let mut opened_on = 0;
        loop {
            let before: Vec<u32> = held.keys().copied().collect();
            if let Err(error) = self.rebalance(&mut held).await {
                tracing::warn!(consumer = %self.core.name, %error, "cannot renew membership or partitions");
                // Stop applying what may soon be another replica's.
                held.retain(|_, held| held.fresh());
            }
            // A partition taken up (even by a rebalance that then failed)
            // may be behind the reader: read again from the lowest position.
            if !held.keys().copied().eq(before.iter().copied()) {
                tracing::info!(consumer = %self.core.name, holder = %self.holder, partitions = ?held.keys().collect::<Vec<_>>(), "partitions assigned");
                global::meter("crm")
                    .u64_gauge("crm.consumer.partitions")
                    .build()
                    .record(
                        held.len() as u64,
                        &[KeyValue::new("consumer", self.core.name.clone())],
                    );
                reader = None;
            }
            // An ephemeral consumer does not outlive its server's restart:
            // after a reconnect a fresh one is made.
            if reader.is_some() && self.transport.connects() != opened_on {
                reader = None;
            }
            if reader.is_none() && !held.is_empty() {
                let connects = self.transport.connects();
                match self.open(&mut held).await {
                    Ok(messages) => {
                        reader = Some(messages);
                        opened_on = connects;
                    }
                    Err(error) => {
                        backoff = (backoff * 2).clamp(TICK, Duration::from_secs(2));
                        tracing::warn!(consumer = %self.core.name, %error, ?backoff, "cannot read the stream");
                    }
                }
            }
            let tick = tokio::time::Instant::now() + TICK.max(backoff);
            loop {
                let next = async {
                    match reader.as_mut() {
                        Some(messages) => messages.next().await.map(|message| {
                            message.map(Box::new).map_err(|error| error.to_string())
                        }),
                        None => std::future::pending().await,
                    }
                };
                let step = tokio::select! {
                    biased;
                    _ = stopping.wait_for(|stop| *stop) => Step::Stop,
                    _ = tokio::time::sleep_until(tick) => Step::Tick,
                    message = next => Step::Message(message),
                };
                let failure = match step {
                    Step::Stop => {
                        self.leave(held).await;
                        return;
                    }
                    Step::Tick => break,
                    Step::Message(Some(Ok(message))) => {
                        match self.process(&message, &mut held).await {
                            Ok(()) => {
                                backoff = Duration::ZERO;
                                continue;
                            }
                            Err(error) => format!("event not applied: {error}"),
                        }
                    }
                    Step::Message(Some(Err(error))) => format!("stream interrupted: {error}"),
                    Step::Message(None) => "stream ended".to_owned(),
                };
                // Read again after a pause (growing while it keeps failing), so
                // a reader that fails at once cannot spin.
                backoff = (backoff * 2).clamp(TICK, Duration::from_secs(2));
                tracing::warn!(consumer = %self.core.name, failure, ?backoff, "reading again");
                reader = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping.wait_for(|stop| *stop) => {}
                }
                break;
            }
        }
    }

    /// Records the partition count on first use and checks it after: with
    /// another count, tenants would move between partitions whose positions
    /// no longer describe them (events skipped or applied twice). Waits,
    /// saying why, until the configuration matches; false when stopped.
    async fn agree_on_partition_count(&self, stopping: &mut watch::Receiver<bool>) -> bool {
        loop {
            match self.stored_partition_count().await {
                Ok(stored) if stored == self.partitions => return true,
                Ok(stored) => tracing::error!(
                    consumer = %self.core.name, configured = self.partitions, stored,
                    "events.partitions differs from the count this consumer's partitions were made with; \
                     applying nothing until it is set back (changing it needs every replica stopped and \
                     the consumer's partition rows removed)"
                ),
                Err(error) => {
                    tracing::warn!(consumer = %self.core.name, %error, "cannot read the partition count")
                }
            }
            // A misconfiguration lasts until a restart; a database error may pass sooner.
            tokio::select! {
                _ = tokio::time::sleep(TICK * 5) => {}
                _ = stopping.wait_for(|stop| *stop) => return false,
            }
        }
    }

    /// The consumer's partition count, recorded as this replica's when none is.
    /// Replicas starting together all insert; the first one's count stands.
    async fn stored_partition_count(&self) -> Result<u32, DbErr> {
        let db = &self.core.resources.db;
        let txn = db.begin_write().await?;
        partitioning::Entity::insert(partitioning::ActiveModel {
            consumer: Set(self.core.name.clone()),
            partitions: Set(self.partitions as i32),
        })
        .on_conflict(
            OnConflict::column(partitioning::Column::Consumer)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
        let stored = partitioning::Entity::find_by_id(self.core.name.clone())
            .one(&*txn)
            .await?
            .map_or(self.partitions as i32, |row| row.partitions);
        txn.commit().await?;
        Ok(u32::try_from(stored).unwrap_or_default())
    }

    /// Renews membership and leases, gives up partitions that belong to
    /// another member now, takes up its own.
    async fn rebalance(&self, held: &mut BTreeMap<u32, Held>) -> Result<(), ApiError> {
        let members = self.heartbeat().await?;
        let mine: HashSet<u32> = (0..self.partitions)
            .filter(|p| owner(*p, &members) == Some(self.holder.as_str()))
            .collect();
        let held_now: Vec<u32> = held.keys().copied().collect();
        for p in held_now {
            let keep = mine.contains(&p);
            let renewed = keep && matches!(held[&p].lease.renew().await, Ok(true));
            if renewed && let Some(held) = held.get_mut(&p) {
                held.renewed_at = tokio::time::Instant::now();
            } else {
                if let Some(gone) = held.remove(&p) {
                    if keep {
                        tracing::warn!(consumer = %self.core.name, partition = p, "partition lease lost");
                    } else if let Err(error) = gone.lease.release().await {
                        tracing::warn!(consumer = %self.core.name, partition = p, %error, "could not give a partition up");
                    }
                }
            }
        }
        for p in mine {
            if held.contains_key(&p) {
                continue;
            }
            let cursor = format!("{}/{p}", self.core.name);
            let lease = Lease::new(self.core.resources.db.clone(), &cursor, &self.holder)
                .excluding(Exclusion::Own(self.core.name.clone()));
            if !lease.try_acquire().await? {
                continue;
            }
            let (position, stream_sequence, stream_position) = self.position(&cursor).await?;
            held.insert(
                p,
                Held {
                    lease,
                    cursor,
                    position,
                    stream_sequence,
                    stream_position,
                    renewed_at: tokio::time::Instant::now(),
                },
            );
        }
        Ok(())
    }

    /// Renews this replica's membership; returns the live members.
    async fn heartbeat(&self) -> Result<Vec<String>, DbErr> {
        let db = &self.core.resources.db;
        let now = Utc::now().timestamp_millis();
        let expire = now + lease::TTL.as_millis() as i64;
        let txn = db.begin_write().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            db.backend(),
            "INSERT INTO consumer_members (consumer, member, expire_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, member) DO UPDATE SET expire_ms = excluded.expire_ms",
            vec![
                Value::from(self.core.name.as_str()),
                Value::from(self.holder.as_str()),
                Value::from(expire),
            ],
        ))
        .await?;
        // Members gone for a minute are forgotten.
        member::Entity::delete_many()
            .filter(member::Column::Consumer.eq(&self.core.name))
            .filter(member::Column::ExpireMs.lt(now - 60_000))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        let live = member::Entity::find()
            .filter(member::Column::Consumer.eq(&self.core.name))
            .filter(member::Column::ExpireMs.gt(now))
            .all(&db.conn)
            .await?;
        Ok(live.into_iter().map(|row| row.member).collect())
    }

    /// Where partition cursor `cursor` stands (made at the built-in feed's
    /// position when new; the built-in feed's position when it is further,
    /// after a switch back and forth): the position, the stream sequence of
    /// the last event applied and that event's outbox sequence.
    async fn position(&self, cursor: &str) -> Result<(i64, i64, i64), DbErr> {
        let own = self.core.cursor(&self.core.name).await?;
        let base = own.map_or(0, |row| row.sequence);
        self.core.ensure_cursor(cursor, base).await?;
        let row = self.core.cursor(cursor).await?;
        Ok(row.map_or((base, 0, 0), |row| {
            (row.sequence.max(base), row.stream_sequence, row.sequence)
        }))
    }

    /// An ordered consumer on the source's stream from the lowest position
    /// among the held partitions. A partition resumes after the message it
    /// last applied only if that message is still there with the event it
    /// applied; otherwise (the stream was recreated, or the message aged out)
    /// from the stream's first message, skipping by outbox sequence.
    async fn open(&self, held: &mut BTreeMap<u32, Held>) -> Result<Messages, JetStreamError> {
        let mut stream = self.transport.stream(&self.core.name).await?;
        let first = stream
            .info()
            .await
            .map_err(JetStreamError::call)?
            .state
            .first_sequence;
        for (p, held) in held.iter_mut() {
            if held.stream_sequence == 0 {
                continue;
            }
            let applied = stream
                .get_raw_message(held.stream_sequence as u64)
                .await
                .ok()
                .and_then(|message| {
                    let header = message.headers.get(SEQUENCE_HEADER)?;
                    header.as_str().parse::<i64>().ok()
                });
            if applied != Some(held.stream_position) {
                if (held.stream_sequence as u64) + 1 < first {
                    tracing::warn!(
                        consumer = %self.core.name, partition = p, first,
                        "events aged out of the stream before this partition read them; \
                         raise events.stream_max_age_days above the longest consumer outage"
                    );
                } else {
                    tracing::warn!(consumer = %self.core.name, partition = p, "the stream is not the one this partition read (recreated?); reading it from its start");
                }
                held.stream_sequence = 0;
            }
        }
        let start = held
            .values()
            .map(|h| h.stream_sequence + 1)
            .min()
            .unwrap_or(1)
            .max(1) as u64;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("crm.{}.>", self.core.name),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(JetStreamError::call)?;
        tracing::info!(consumer = %self.core.name, start, "reading the stream");
        consumer.messages().await.map_err(JetStreamError::call)
    }

    /// Applies `message` if it is a held partition's next event of a wanted
    /// type. An error means it could not even be parked: read again.
    async fn process(
        &self,
        message: &jetstream::Message,
        held: &mut BTreeMap<u32, Held>,
    ) -> Result<(), ApiError> {
        let Some(token) = tenant_token(&message.subject) else {
            return Ok(());
        };
        let Some(held) = held.get_mut(&partition(token, self.partitions)) else {
            return Ok(());
        };
        let stream_sequence = message
            .info()
            .map(|info| info.stream_sequence as i64)
            .unwrap_or(held.stream_sequence);
        let event = match Event::decode(message.payload.clone()) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(consumer = %self.core.name, subject = %message.subject, %error, "not an event; skipped");
                return Ok(());
            }
        };
        if event.sequence <= held.position || !self.wanted.contains(&event.r#type) {
            return Ok(());
        }
        if !held.fresh() {
            return Err(ApiError::Unavailable(format!(
                "the lease of {} is due for renewal",
                held.cursor
            )));
        }
        let at = At {
            cursor: held.cursor.clone(),
            stream_sequence: Some(stream_sequence),
        };
        self.core.handle(&at, &event).await?;
        held.position = event.sequence;
        held.stream_sequence = stream_sequence;
        held.stream_position = event.sequence;
        Ok(())
    }

    /// Gives every partition and the membership up.
    async fn leave(&self, held: BTreeMap<u32, Held>) {
        for (p, held) in held {
            if let Err(error) = held.lease.release().await {
                tracing::warn!(consumer = %self.core.name, partition = p, %error, "could not give a partition up");
            }
        }
        let left = async {
            let txn = self.core.resources.db.begin_write().await?;
            member::Entity::delete_many()
                .filter(member::Column::Consumer.eq(&self.core.name))
                .filter(member::Column::Member.eq(&self.holder))
                .exec(&*txn)
                .await?;
            txn.commit().await
        };
        if let Err(error) = left.await {
            tracing::warn!(consumer = %self.core.name, %error, "could not leave the members");
        }
    }
}

/// The member partition `p` belongs to: the highest rendezvous score.
fn owner(p: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by_key(|member| (score(member, p), member.as_str()))
        .map(String::as_str)
}

/// A well-mixed 64-bit hash of (member, partition), the same in every
/// process and build (FNV-1a, then splitmix64's finaliser).
fn score(member: &str, p: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes().chain(p.to_be_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn every_partition_has_one_owner_and_moves_only_when_it_must() {
        let three = members(&["pod-a", "pod-b", "pod-c"]);
        let owners: Vec<&str> = (0..12).map(|p| owner(p, &three).unwrap()).collect();
        for member in &three {
            let share = owners.iter().filter(|o| *o == member).count();
            assert!(share >= 1, "{member} owns nothing of {owners:?}");
        }
        // pod-b dies: only its partitions move.
        let two = members(&["pod-a", "pod-c"]);
        for p in 0..12 {
            let before = owner(p, &three).unwrap();
            let after = owner(p, &two).unwrap();
            if before != "pod-b" {
                assert_eq!(before, after, "partition {p} moved needlessly");
            }
        }
        // The order of the members does not matter.
        let shuffled = members(&["pod-c", "pod-a", "pod-b"]);
        for p in 0..12 {
            assert_eq!(owner(p, &three), owner(p, &shuffled));
        }
        assert_eq!(owner(0, &[]), None);
    }
}
