//! What sales does with the contacts feed, applied by the shared consumer
//! (`crm_shared::consumer`): a merged contact's references move to the
//! survivor; an erased person's copies are erased from every lead that holds
//! them and from the titles conversions gave their deals, sales' own earlier
//! events about those leads and deals are scrubbed, and an `ErasureCompleted`
//! event confirms it.

use std::collections::BTreeMap;

use crm_proto::{
    contacts::{ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
    sales as pb,
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};
use prost::{Message, Name};

use crate::{domain::erasure::ErasedPerson, store::Store};

/// The source sales follows.
pub const SOURCE: &str = "contacts";
const MERGED: &str = "crm.contacts.v1.ContactMerged";
const ERASED: &str = "crm.contacts.v1.ContactErased";

/// Sales' handler of the contacts feed.
pub struct ContactsFeed {
    store: Store,
}

impl ContactsFeed {
    /// The handler writing through `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn erased(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        erased: ContactErased,
    ) -> Result<Vec<NewEvent>, EffectError> {
        let person = ErasedPerson {
            contacts: std::iter::once(erased.contact.clone())
                .chain(erased.merged)
                .collect(),
            contact: erased.contact,
            email_fingerprints: erased.email_fingerprints.into_iter().collect(),
            phone_fingerprints: erased.phone_fingerprints.into_iter().collect(),
        };
        let mut done = self
            .store
            .apply_contact_erased(txn, tenant, &person)
            .await?;
        let deals: Vec<String> = done.deal_titles.keys().cloned().collect();
        let scrubbed = crm_shared::outbox::scrub(&**txn, tenant, &done.leads, scrub_payload)
            .await?
            + crm_shared::outbox::scrub(&**txn, tenant, &deals, |payload| {
                retitle_payload(payload, &done.deal_titles)
            })
            .await?;
        // The deals' log keeps its entries but loses its values, the title
        // that named the person among them (the log has no per-field forget).
        let mut erased_resources = done.leads;
        erased_resources.extend(deals);
        crm_shared::audit::forget(&**txn, tenant, &erased_resources).await?;
        tracing::info!(contact = %person.contact, resources = erased_resources.len(), scrubbed, "contact erasure applied");
        let confirmation = to_any(&ErasureCompleted {
            contact: person.contact.clone(),
            service: "sales".into(),
            erased_resources,
            scrubbed_events: scrubbed,
        });
        done.events
            .push(self.store.erasure_completed(&person.contact, confirmation));
        Ok(done.events)
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
                let events = self
                    .store
                    .apply_contact_merged(txn, &tenant, &merged.survivor, &merged.merged)
                    .await?;
                tracing::info!(survivor = %merged.survivor, changed = events.len(), "contact merge applied");
                Ok(events)
            }
            ERASED => self.erased(txn, &tenant, EffectError::decode(event)?).await,
            _ => Ok(Vec::new()),
        }
    }
}

/// The payload without the person's data, for payloads that carry some
/// (a lead, or a conversion with its lead); `None` for the others.
fn scrub_payload(payload: &prost_types::Any) -> Option<prost_types::Any> {
    if payload.type_url == pb::Lead::type_url() {
        let mut lead = pb::Lead::decode(payload.value.as_slice()).ok()?;
        scrub_lead(&mut lead);
        Some(to_any(&lead))
    } else if payload.type_url == pb::LeadConverted::type_url() {
        let mut converted = pb::LeadConverted::decode(payload.value.as_slice()).ok()?;
        if let Some(lead) = converted.lead.as_mut() {
            scrub_lead(lead);
        }
        Some(to_any(&converted))
    } else {
        None
    }
}

/// An opportunity's payload (its own events, or a stage change carrying it)
/// with a title that named the person replaced; `None` for the others.
fn retitle_payload(
    payload: &prost_types::Any,
    titles: &BTreeMap<String, (String, String)>,
) -> Option<prost_types::Any> {
    let retitle = |o: &mut pb::Opportunity| match titles.get(&o.name) {
        Some((before, after)) if o.display_name == *before => {
            after.clone_into(&mut o.display_name);
            true
        }
        _ => false,
    };
    if payload.type_url == pb::Opportunity::type_url() {
        let mut o = pb::Opportunity::decode(payload.value.as_slice()).ok()?;
        retitle(&mut o).then(|| to_any(&o))
    } else if payload.type_url == pb::OpportunityStageChanged::type_url() {
        let mut changed = pb::OpportunityStageChanged::decode(payload.value.as_slice()).ok()?;
        retitle(changed.opportunity.as_mut()?).then(|| to_any(&changed))
    } else {
        None
    }
}

/// The fields of a lead message that name the person (as
/// `Lead::erase_personal_data` does for the stored lead).
fn scrub_lead(lead: &mut pb::Lead) {
    lead.given_name.clear();
    lead.family_name.clear();
    lead.email.clear();
    lead.phone.clear();
    lead.title.clear();
    lead.possible_duplicates.clear();
}
