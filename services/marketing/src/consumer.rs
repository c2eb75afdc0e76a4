//! What marketing does with the feeds it follows, applied by the shared
//! consumer (`crm_shared::consumer`).
//!
//! Sales: leads that name a campaign, and the deals converted from them
//! that are won, attribute leads and revenue to the campaign.
//!
//! Contacts: a merged contact's list memberships
//! move to the survivor; an erased person leaves every list, the send
//! ledger forgets their address, their engagements (and the events about
//! them) the links and relays' words, and an `ErasureCompleted` event
//! confirms it. Consent needs no copy here: the sender reads it from contacts at
//! send time.

use crm_proto::{
    contacts::{ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
    marketing::EmailEngagement,
    sales::{Lead, Opportunity, OpportunityStageChanged, OpportunityState},
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};
use prost::{Message, Name};

use crate::store::{Deal, Store};

/// The contacts source.
pub const CONTACTS: &str = "contacts";
/// The sales source.
pub const SALES: &str = "sales";
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

/// Lead events (their payload: the lead).
const LEAD_EVENTS: &[&str] = &[
    "crm.sales.v1.LeadCreated",
    "crm.sales.v1.LeadUpdated",
    "crm.sales.v1.LeadDeleted",
    "crm.sales.v1.LeadUndeleted",
];
/// Opportunity events whose payload is the opportunity.
const OPPORTUNITY_EVENTS: &[&str] = &[
    "crm.sales.v1.OpportunityCreated",
    "crm.sales.v1.OpportunityUpdated",
    "crm.sales.v1.OpportunityDeleted",
    "crm.sales.v1.OpportunityUndeleted",
];
/// A move between stages (payload: the opportunity after it).
const STAGE_CHANGED: &str = "crm.sales.v1.OpportunityStageChanged";

/// Marketing's handler of the sales feed: attribution.
pub struct SalesFeed {
    store: Store,
}

impl SalesFeed {
    /// The handler writing through `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl EventHandler for SalesFeed {
    fn event_types(&self) -> Vec<String> {
        LEAD_EVENTS
            .iter()
            .chain(OPPORTUNITY_EVENTS)
            .chain([&STAGE_CHANGED])
            .map(|t| (*t).to_owned())
            .collect()
    }

    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError> {
        let tenant = Tenant::new(event.tenant.clone());
        let kind = event.r#type.as_str();
        if LEAD_EVENTS.contains(&kind) {
            let lead: Lead = EffectError::decode(event)?;
            // A campaign that is not one of ours' names is no attribution.
            let campaign = lead
                .campaign
                .strip_prefix("campaigns/")
                .and_then(|id| id.parse().ok())
                .filter(|_| lead.delete_time.is_none());
            self.store
                .apply_lead(txn, &tenant, &lead.name, campaign)
                .await?;
            return Ok(Vec::new());
        }
        let opportunity = if kind == STAGE_CHANGED {
            let changed: OpportunityStageChanged = EffectError::decode(event)?;
            changed.opportunity.unwrap_or_default()
        } else if OPPORTUNITY_EVENTS.contains(&kind) {
            EffectError::decode::<Opportunity>(event)?
        } else {
            return Ok(Vec::new());
        };
        let won = (opportunity.state() == OpportunityState::Won
            && opportunity.delete_time.is_none())
        .then(|| {
            let when = opportunity
                .close_time
                .as_ref()
                .or(event.time.as_ref())
                .and_then(|t| crm_shared::convert::from_timestamp(t, "close_time").ok())
                .unwrap_or_else(chrono::Utc::now);
            (opportunity.amount.clone().map(Into::into), when)
        });
        let deal = Deal {
            opportunity: opportunity.name,
            source_lead: opportunity.source_lead,
            won,
        };
        self.store.apply_deal(txn, &tenant, &deal).await?;
        Ok(Vec::new())
    }
}
