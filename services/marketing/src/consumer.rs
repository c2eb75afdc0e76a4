//! What marketing does with the contacts feed, applied by the shared
//! consumer (`crm_shared::consumer`): a merged contact's list memberships
//! move to the survivor; an erased person leaves every list, the send
//! ledger forgets their address, their engagements (and the events about
//! them) the links and relays' words, and an `ErasureCompleted` event
//! confirms it. Consent needs no copy here: the sender reads it from contacts at
//! send time.

use crm_proto::{
    contacts::{ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
    marketing::EmailEngagement,
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};
use prost::{Message, Name};

use crate::store::Store;

/// The source marketing follows.
pub const SOURCE: &str = "contacts";
const MERGED: &str = "crm.contacts.v1.ContactMerged";
const ERASED: &str = "crm.contacts.v1.ContactErased";

/// Marketing's handler of the contacts feed.
pub struct ContactsFeed {
    store: Store,
}

impl ContactsFeed {
    /// The handler writing through `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl EventHandler for ContactsFeed {
    fn event_types(&self) -> Vec<String> {
        vec![MERGED.into(), ERASED.into()]
    }

    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError> {
        let tenant = Tenant::new(event.tenant.clone());
        match event.r#type.as_str() {
            MERGED => {
                let merged: ContactMerged = EffectError::decode(event)?;
                self.store
                    .apply_contact_merged(txn, &tenant, &merged.survivor, &merged.merged)
                    .await?;
                Ok(Vec::new())
            }
            ERASED => {
                let erased: ContactErased = EffectError::decode(event)?;
                let contacts: Vec<String> = std::iter::once(erased.contact.clone())
                    .chain(erased.merged)
                    .collect();
                let resources = self
                    .store
                    .apply_contact_erased(txn, &tenant, &contacts)
                    .await?;
                let scrubbed =
                    crm_shared::outbox::scrub(&**txn, &tenant, &resources, scrub_payload).await?;
                crm_shared::audit::forget(&**txn, &tenant, &resources).await?;
                tracing::info!(contact = %erased.contact, erased = resources.len(), "contact erasure applied");
                let confirmation = to_any(&ErasureCompleted {
                    contact: erased.contact.clone(),
                    service: "marketing".into(),
                    erased_resources: resources,
                    scrubbed_events: scrubbed,
                });
                Ok(vec![
                    self.store.erasure_completed(&erased.contact, confirmation),
                ])
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// An engagement event without the link clicked or the relay's words; the
/// other payloads name contacts by id only.
fn scrub_payload(payload: &prost_types::Any) -> Option<prost_types::Any> {
    if payload.type_url != EmailEngagement::type_url() {
        return None;
    }
    let mut engagement = EmailEngagement::decode(payload.value.as_slice()).ok()?;
    engagement.detail.clear();
    Some(to_any(&engagement))
}
