//! Replaying a feed from a position, for a service that rebuilds what it
//! derived from the feed (a read model) beside its live consumer, and then
//! hands the live consumer over to the rebuilt copy.
//!
//! The rebuild reads batches with [`FeedSource::read_batch`] and records
//! its own position. When it has caught up, [`hand_over`] moves the live
//! consumer's cursor forward to the rebuild's position in the caller's
//! transaction: events the rebuild applied are then skipped by the live
//! consumer (its forward-only cursor), and an event the live consumer
//! applied beyond that position shows as a position ahead, so the caller
//! rolls back and replays further first. On PostgreSQL the update locks
//! the cursor row, so a live apply in flight finishes before or waits.

use crm_proto::events::{
    Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::OnConflict,
};

use super::{FeedSource, tables::cursor};
use crate::{client::Credentials, error::ApiError};

impl FeedSource {
    /// At most `max` events of `types` after `after`, without following:
    /// fewer than `max` means the feed's end (as it stood) was reached.
    pub async fn read_batch(
        &self,
        types: Vec<String>,
        after: i64,
        max: i32,
    ) -> Result<Vec<Event>, ApiError> {
        let credentials = Credentials::bearer(&self.identity.token()?)?;
        let request = credentials.subscription(StreamEventsRequest {
            after_sequence: after,
            follow: false,
            types,
            max_events: max,
        });
        let unavailable =
            |s: tonic::Status| ApiError::Unavailable(format!("feed: {}", s.message()));
        let mut stream = EventFeedServiceClient::new(self.channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
            .stream_events(request)
            .await
            .map_err(unavailable)?
            .into_inner();
        let mut events = Vec::new();
        while let Some(message) = stream.message().await.map_err(unavailable)? {
            events.extend(message.event);
        }
        Ok(events)
    }
}

/// Moves consumer `name`'s cursor, and its JetStream partitions' cursors
/// ("name/3"), forward to `position` in `txn` (creating its own there when
/// the consumer never ran); returns where the cursors stand after:
/// `position`, or further when the live consumer (or one of its partitions)
/// had already applied events beyond it.
pub async fn hand_over<C: ConnectionTrait>(
    txn: &C,
    name: &str,
    position: i64,
) -> Result<i64, DbErr> {
    cursor::Entity::insert(cursor::ActiveModel {
        consumer: Set(name.to_owned()),
        sequence: Set(position),
        update_time: Set(chrono::Utc::now()),
        lag_ms: Set(0),
        stream_sequence: Set(0),
    })
    .on_conflict(
        OnConflict::column(cursor::Column::Consumer)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    cursor::Entity::update_many()
        .set(cursor::ActiveModel {
            sequence: Set(position),
            ..Default::default()
        })
        .filter(own_and_partitions(name))
        .filter(cursor::Column::Sequence.lte(position))
        .exec(txn)
        .await?;
    let stands: Option<Option<i64>> = cursor::Entity::find()
        .select_only()
        .column_as(cursor::Column::Sequence.max(), "stands")
        .filter(own_and_partitions(name))
        .into_tuple()
        .one(txn)
        .await?;
    Ok(stands.flatten().unwrap_or(position))
}

/// Consumer `name`'s own cursor and its partitions' ("name/3").
fn own_and_partitions(name: &str) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(cursor::Column::Consumer.eq(name))
        .add(cursor::Column::Consumer.starts_with(format!("{name}/")))
}
