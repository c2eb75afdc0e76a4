//! Sales follows the contacts feed: a merged contact's references move to the
//! survivor, an erased contact's data is erased from the leads that copied
//! it. The cursor is kept in sales' own database, in the same transaction as
//! the effect, so nothing is applied twice or skipped across restarts of
//! either side; while contacts is down, the consumer waits and reconnects.

use std::time::Duration;

use crm_proto::{
    contacts::{ContactErased, ContactMerged},
    events::{Event, StreamEventsRequest, event_feed_service_client::EventFeedServiceClient},
};
use crm_shared::{client::Credentials, db::Tenant, error::ApiError};
use prost::Message;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::store::Store;

/// The feed's name in the cursor table.
pub const SOURCE: &str = "contacts";
const MERGED: &str = "crm.contacts.v1.ContactMerged";
const ERASED: &str = "crm.contacts.v1.ContactErased";

/// Mints the service identity's token for each connection.
pub type TokenSource = Box<dyn Fn() -> Result<String, ApiError> + Send + Sync>;

/// Follows the contacts feed until `stopping` turns true.
pub async fn follow_contacts(
    store: Store,
    channel: Channel,
    token: TokenSource,
    mut stopping: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = tokio::select! {
            outcome = follow_once(&store, channel.clone(), &token) => outcome,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        match outcome {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(%error, ?backoff, "contacts feed interrupted; reconnecting");
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// One connection: reads from the stored cursor until the stream ends.
async fn follow_once(store: &Store, channel: Channel, token: &TokenSource) -> Result<(), ApiError> {
    let after = store.feed_cursor(SOURCE).await?;
    let credentials = Credentials::bearer(&token()?)?;
    let request = credentials.subscription(StreamEventsRequest {
        after_sequence: after,
        follow: true,
        types: vec![MERGED.into(), ERASED.into()],
        max_events: 0,
    });
    let mut stream = EventFeedServiceClient::new(channel)
        .stream_events(request)
        .await
        .map_err(|s| ApiError::Unavailable(format!("contacts feed: {s}")))?
        .into_inner();
    tracing::info!(after, "following the contacts feed");
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| ApiError::Unavailable(format!("contacts feed: {s}")))?
    {
        if let Some(event) = message.event {
            apply(store, &event).await?;
        }
    }
    Ok(())
}

/// Applies one event with its cursor.
pub async fn apply(store: &Store, event: &Event) -> Result<(), ApiError> {
    let tenant = Tenant::new(event.tenant.clone());
    let payload = event
        .payload
        .as_ref()
        .map(|any| any.value.as_slice())
        .unwrap_or_default();
    let undecodable =
        |e: prost::DecodeError| ApiError::Internal(format!("{} payload: {e}", event.r#type));
    match event.r#type.as_str() {
        MERGED => {
            let merged = ContactMerged::decode(payload).map_err(undecodable)?;
            let changed = store
                .apply_contact_merged(
                    &tenant,
                    &merged.survivor,
                    &merged.merged,
                    SOURCE,
                    event.sequence,
                )
                .await?;
            tracing::info!(survivor = %merged.survivor, changed, "contact merge applied");
        }
        ERASED => {
            let erased = ContactErased::decode(payload).map_err(undecodable)?;
            let changed = store
                .apply_contact_erased(&tenant, &erased.contact, SOURCE, event.sequence)
                .await?;
            tracing::info!(contact = %erased.contact, changed, "contact erasure applied");
        }
        _ => store.skip_event(SOURCE, event.sequence).await?,
    }
    Ok(())
}
