//! What marketing does with the feeds it follows, applied by the shared
//! consumer (`crm_shared::consumer`).
//!
//! Sales: leads that name a campaign, and the deals converted from them
//! that are won, attribute leads and revenue to the campaign; a new lead
//! and a won deal enrol their person in the journeys they trigger.
//!
//! Support: a solved ticket enrols its requester in the journeys it
//! triggers.
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
    marketing::{EmailEngagement, JourneyEnrollmentChanged},
    sales::{Lead, LeadSource, Opportunity, OpportunityStageChanged, OpportunityState},
    support::TicketStatusChanged,
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};
use prost::{Message, Name};

use crate::{
    domain::journey::Trigger,
    store::{Deal, Store},
};

/// The contacts source.
pub const CONTACTS: &str = "contacts";
/// The sales source.
pub const SALES: &str = "sales";
/// The support source.
pub const SUPPORT: &str = "support";
/// Who the feeds' enrolments are recorded as.
const FEED_ACTOR: &str = "marketing/feeds";
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

/// An engagement event without the link clicked or the relay's words; an
/// enrolment's without its reason and step outcomes (which may quote an
/// address or a person's words); the other payloads name contacts by id only.
fn scrub_payload(payload: &prost_types::Any) -> Option<prost_types::Any> {
    if payload.type_url == EmailEngagement::type_url() {
        let mut engagement = EmailEngagement::decode(payload.value.as_slice()).ok()?;
        engagement.detail.clear();
        return Some(to_any(&engagement));
    }
    if payload.type_url == JourneyEnrollmentChanged::type_url() {
        let mut changed = JourneyEnrollmentChanged::decode(payload.value.as_slice()).ok()?;
        if let Some(e) = changed.enrollment.as_mut() {
            e.reason.clear();
            for run in &mut e.history {
                run.outcome.clear();
            }
        }
        return Some(to_any(&changed));
    }
    None
}

/// A new lead (it may trigger journeys).
const LEAD_CREATED: &str = "crm.sales.v1.LeadCreated";
/// Lead events (their payload: the lead).
const LEAD_EVENTS: &[&str] = &[
    LEAD_CREATED,
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
            if kind != LEAD_CREATED || lead.email.is_empty() {
                return Ok(Vec::new());
            }
            let source = LeadSource::try_from(lead.source)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("LEAD_SOURCE_")
                        .to_owned()
                })
                .unwrap_or_default();
            let wanted = |trigger: &Trigger| matches!(trigger, Trigger::LeadCreated { source: wanted } if wanted.is_empty() || *wanted == source);
            let person = Person::Email(&lead.email);
            let entry = format!("lead:{}", lead.name);
            return enroll_where(&self.store, txn, &tenant, wanted, person, kind, &entry).await;
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
        let contact = opportunity.contact.clone();
        let is_won = won.is_some();
        let deal = Deal {
            opportunity: opportunity.name,
            source_lead: opportunity.source_lead,
            won,
        };
        self.store.apply_deal(txn, &tenant, &deal).await?;
        if !is_won || contact.is_empty() {
            return Ok(Vec::new());
        }
        // Once per deal, however often it is won again after a reopening.
        let entry = format!("deal:{}", deal.opportunity);
        let wanted = |trigger: &Trigger| matches!(trigger, Trigger::DealWon);
        let person = Person::Contact(&contact);
        enroll_where(&self.store, txn, &tenant, wanted, person, "DealWon", &entry).await
    }
}

/// Who a trigger names.
enum Person<'a> {
    /// A contact.
    Contact(&'a str),
    /// A lead's address, whose contact the runner finds.
    Email(&'a str),
}

/// Enrols `person` in every active journey of `tenant` whose trigger is
/// `wanted`, once for the trigger `entry` (as each journey's re-entry rule
/// allows); the `JourneyEnrolled` events.
async fn enroll_where(
    store: &Store,
    txn: &WriteTxn,
    tenant: &Tenant,
    wanted: impl Fn(&Trigger) -> bool,
    person: Person<'_>,
    source: &str,
    entry: &str,
) -> Result<Vec<NewEvent>, EffectError> {
    let (contact, email) = match person {
        Person::Contact(contact) => (contact, ""),
        Person::Email(email) => ("", email),
    };
    let mut events = Vec::new();
    for journey in store.active_journeys(&**txn, tenant).await? {
        if !wanted(&journey.draft.trigger) {
            continue;
        }
        let (_, mut enrolled) = store
            .enroll_in(
                txn, tenant, &journey, contact, email, source, entry, FEED_ACTOR,
            )
            .await?;
        events.append(&mut enrolled);
    }
    Ok(events)
}

/// Marketing's handler of the support feed: solved tickets trigger journeys.
pub struct SupportFeed {
    store: Store,
}

impl SupportFeed {
    /// The handler writing through `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

const TICKET_SOLVED: &str = "crm.support.v1.TicketSolved";

#[tonic::async_trait]
impl EventHandler for SupportFeed {
    fn event_types(&self) -> Vec<String> {
        vec![TICKET_SOLVED.into()]
    }

    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError> {
        if event.r#type != TICKET_SOLVED {
            return Ok(Vec::new());
        }
        let tenant = Tenant::new(event.tenant.clone());
        // TicketSolved carries the status change, with the ticket inside.
        let changed: TicketStatusChanged = EffectError::decode(event)?;
        let ticket = changed.ticket.unwrap_or_default();
        if ticket.requester.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = |trigger: &Trigger| matches!(trigger, Trigger::TicketSolved);
        let person = Person::Contact(&ticket.requester);
        let entry = format!("event:{}", event.id);
        enroll_where(
            &self.store,
            txn,
            &tenant,
            wanted,
            person,
            "TicketSolved",
            &entry,
        )
        .await
    }
}
