//! What marketing does with the contacts feed, applied by the shared
//! consumer (`crm_shared::consumer`): a merged contact's list memberships
//! move to the survivor; an erased person leaves every list and the send
//! ledger forgets their address, and an `ErasureCompleted` event confirms
//! it. Consent needs no copy here: the sender reads it from contacts at
//! send time.

use crm_proto::{
    contacts::{ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};

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
                tracing::info!(contact = %erased.contact, erased = resources.len(), "contact erasure applied");
                let confirmation = to_any(&ErasureCompleted {
                    contact: erased.contact.clone(),
                    service: "marketing".into(),
                    erased_resources: resources,
                    // Marketing's events name contacts by id only: nothing to scrub.
                    scrubbed_events: 0,
                });
                Ok(vec![
                    self.store.erasure_completed(&erased.contact, confirmation),
                ])
            }
            _ => Ok(Vec::new()),
        }
    }
}
