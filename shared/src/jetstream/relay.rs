//! The relay: publishes a service's committed outbox events to its JetStream
//! stream, in sequence order, on one replica at a time.
//!
//! - **One publisher**: the relay runs under a lease (`relay:jetstream`, the
//!   consumers' lease table); another replica takes over within seconds when
//!   the holder dies.
//! - **Nothing lost, nothing twice, nothing reordered**: the stream itself
//!   says how far the relay got: its last message carries the event's outbox
//!   sequence ([`SEQUENCE_HEADER`]), and a relay resumes right after it. Each
//!   publish carries the event id as `Nats-Msg-Id` (the server drops a
//!   repeat within two minutes) and the stream sequence it expects to follow
//!   (`Nats-Expected-Last-Sequence`): in a window of publishes sent before
//!   their acks, a failed one makes every later one fail too, so a retry can
//!   never put events out of order, and a second relay (a lease that ran
//!   out) cannot interleave with the first.
//! - **Committed only**: it reads what the built-in feed serves (on
//!   PostgreSQL only below the oldest running transaction), so an event is
//!   never published before one with a lower sequence.
//! - **The outbox is pruned behind it**: it records its position as the feed
//!   reader `jetstream`, which holds back the outbox's pruning like any
//!   consumer (see `retention`).

use std::time::Duration;

use async_nats::jetstream::{context::PublishAckFuture, message::PublishMessage, stream};
use bytes::Bytes;
use crm_proto::events::Event;
use opentelemetry::{KeyValue, global};
use prost::Message;
use tokio::sync::watch;

use super::{JetStreamError, SEQUENCE_HEADER, Transport, subject};
use crate::{
    consumer::lease::{self, Lease},
    db::Database,
    outbox::EventFeed,
};

/// The relay's name among the outbox's readers (`feed_readers`).
pub const READER: &str = "jetstream";
/// How often the relay records its position while idle.
const RECORD_EVERY: Duration = Duration::from_secs(10);

/// Publishes one service's outbox to JetStream; see the module docs.
pub struct Relay {
    db: Database,
    feed: EventFeed,
    service: &'static str,
    transport: Transport,
    lease: Lease,
}

impl Relay {
    /// The relay of `service`'s outbox (read through `feed`), as replica `holder`.
    pub fn new(
        db: Database,
        feed: EventFeed,
        service: &'static str,
        transport: Transport,
        holder: &str,
    ) -> Self {
        let lease = Lease::new(db.clone(), "relay:jetstream", holder);
        Self {
            db,
            feed,
            service,
            transport,
            lease,
        }
    }

    /// The connection it publishes on.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Publishes while holding the lease, until `stopping` turns true; then
    /// gives the lease up.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            match self.lease.try_acquire().await {
                Ok(true) => {
                    tracing::info!(
                        service = self.service,
                        "relay lease acquired; publishing the outbox to JetStream"
                    );
                    let stopped = tokio::select! {
                        _ = self.publish_forever() => false,
                        _ = self.lease.until_lost() => {
                            tracing::warn!(service = self.service, "relay lease lost; stopped publishing");
                            false
                        }
                        _ = stopping.wait_for(|stop| *stop) => true,
                    };
                    if stopped {
                        if let Err(error) = self.lease.release().await {
                            tracing::warn!(%error, "could not release the relay lease");
                        }
                        return;
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read the relay lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(lease::POLL_EVERY) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Publishes, resuming from the stream after every failure; never returns.
    async fn publish_forever(&self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = tokio::time::Instant::now();
            if let Err(error) = self.publish_session().await {
                // A session that ran a while failed afresh: start small again.
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(200);
                }
                tracing::warn!(service = self.service, %error, ?backoff, "relay interrupted; resuming from the stream");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// Resumes after the stream's last event and publishes what commits,
    /// until a call fails.
    async fn publish_session(&self) -> Result<(), JetStreamError> {
        let mut stream = self.transport.ensure_stream(self.service).await?;
        let (mut last_stream_sequence, mut position) = self.resume(&mut stream).await?;
        tracing::info!(
            service = self.service,
            position,
            last_stream_sequence,
            "relay resuming"
        );
        // Recorded before the first publish: a stream with events but no
        // recorded position was filled from another database (see `resume`).
        crate::retention::record_reader(&self.db, READER, position)
            .await
            .map_err(JetStreamError::call)?;
        let commits = self.feed.commits();
        let mut recorded_at = Some(tokio::time::Instant::now());
        loop {
            let committed = commits.notified();
            let (events, held_back) = self
                .feed
                .committed_after(position)
                .await
                .map_err(JetStreamError::call)?;
            if !events.is_empty() {
                (last_stream_sequence, position) =
                    self.publish(&events, last_stream_sequence).await?;
                self.report(&events);
            }
            if recorded_at.is_none_or(|at| at.elapsed() >= RECORD_EVERY) {
                crate::retention::record_reader(&self.db, READER, position)
                    .await
                    .map_err(JetStreamError::call)?;
                recorded_at = Some(tokio::time::Instant::now());
            }
            if events.is_empty() {
                tokio::select! {
                    _ = committed => {}
                    _ = tokio::time::sleep(EventFeed::commit_wait(held_back)) => {}
                }
            }
        }
    }

    /// The stream's last sequence and the outbox sequence of its last event:
    /// from the event's header, else (the event expired or was deleted) the
    /// position the relay last recorded.
    async fn resume(&self, stream: &mut stream::Stream) -> Result<(u64, i64), JetStreamError> {
        let state = stream
            .info()
            .await
            .map_err(JetStreamError::call)?
            .state
            .clone();
        let last = state.last_sequence;
        let recorded = crate::retention::reader_position(&self.db, READER)
            .await
            .map_err(JetStreamError::call)?;
        if last == 0 {
            return Ok((0, 0));
        }
        // Everything in the stream aged out (or was never there): nothing
        // can be skipped by publishing what the outbox still holds.
        if state.messages == 0 && recorded.is_none() {
            return Ok((last, 0));
        }
        let Some(recorded) = recorded else {
            // Resuming after its events would skip this database's own.
            return Err(JetStreamError::Call(format!(
                "the stream {} holds events this database never published (its data was \
                 reset, or another suite shares this NATS): remove the stream \
                 (`nats stream rm {}`) or use a NATS of this suite's own",
                super::stream_name(self.service),
                super::stream_name(self.service)
            )));
        };
        let from_header = match stream.get_raw_message(last).await {
            Ok(message) => message
                .headers
                .get(SEQUENCE_HEADER)
                .and_then(|value| value.as_str().parse::<i64>().ok()),
            Err(_) => None,
        };
        let position = from_header.unwrap_or(recorded);
        Ok((last, position))
    }

    /// Publishes `events` after stream sequence `last`: every publish is sent
    /// before the first ack is awaited, each expecting the one before it, so
    /// a failure anywhere fails the rest of the window. Returns the stream
    /// sequence and the outbox sequence of the last event published.
    async fn publish(&self, events: &[Event], last: u64) -> Result<(u64, i64), JetStreamError> {
        let mut acks: Vec<(PublishAckFuture, i64)> = Vec::with_capacity(events.len());
        for (offset, event) in (0u64..).zip(events) {
            let message = PublishMessage::build()
                .payload(Bytes::from(event.encode_to_vec()))
                .message_id(&event.id)
                .expected_last_sequence(last + offset)
                .header(SEQUENCE_HEADER, event.sequence.to_string().as_str());
            let ack = self
                .transport
                .context()
                .send_publish(subject(self.service, &event.tenant, &event.r#type), message)
                .await
                .map_err(JetStreamError::call)?;
            acks.push((ack, event.sequence));
        }
        let mut published = (last, 0);
        for (ack, sequence) in acks {
            let ack = ack.await.map_err(JetStreamError::call)?;
            published = (ack.sequence, sequence);
        }
        Ok(published)
    }

    fn report(&self, events: &[Event]) {
        let meter = global::meter("crm");
        let service = [KeyValue::new("service", self.service)];
        meter
            .u64_counter("crm.relay.published")
            .build()
            .add(events.len() as u64, &service);
        if let Some(last) = events.last() {
            meter
                .f64_gauge("crm.relay.lag")
                .with_unit("s")
                .build()
                .record(crate::consumer::lag(last).as_secs_f64(), &service);
        }
    }
}
