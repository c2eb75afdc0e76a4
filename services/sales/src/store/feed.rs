//! What other services' events ask of sales. Each function runs inside the
//! shared consumer's transaction (`crm_shared::consumer`), which also moves
//! the feed's cursor and appends the returned events, so an event is applied
//! exactly once. Rows are written only if their version is still the one
//! read: a concurrent user change is never undone (the consumer tries again).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    outbox::NewEvent,
};
use sea_orm::{ColumnTrait, Condition, QueryFilter, QuerySelect};

use super::{
    Store,
    entities::{lead, opportunity, task},
};
use crate::domain::{
    conversion::deal_title,
    erasure::ErasedPerson,
    lead::{Lead, LeadStatus},
    opportunity::Opportunity,
    task::Task,
};

/// Who the feed's changes are recorded as.
const FEED_ACTOR: &str = "sales/contacts-feed";

/// What an erasure changed in sales.
pub struct Erased {
    /// The leads whose personal fields were erased.
    pub leads: Vec<String>,
    /// The deals converted from them, whose title the conversion may have
    /// made from the person's name: deal -> (that title, its replacement).
    pub deal_titles: BTreeMap<String, (String, String)>,
    /// The events the change raises.
    pub events: Vec<NewEvent>,
}

impl Store {
    /// A merge in contacts: every lead, opportunity and task pointing at a
    /// merged contact points at the survivor instead.
    pub async fn apply_contact_merged(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
    ) -> Result<Vec<NewEvent>, ApiError> {
        let now = Utc::now();
        let mut events: Vec<NewEvent> = Vec::new();
        let leads = lead::Entity::find_in(tenant)
            .filter(lead::Column::ConvertedContact.is_in(merged.to_vec()))
            .all(&**txn)
            .await?;
        for row in leads {
            let mut l = Lead::try_from(row)?;
            let stored = l.version;
            l.converted_contact = survivor.to_owned();
            l.version += 1;
            l.update_time = now;
            self.overwrite_lead(txn, tenant, &l, stored).await?;
            events.push(self.event("LeadUpdated", l.name(), self.payloads.lead(&l), FEED_ACTOR));
        }
        let deals = opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::Contact.is_in(merged.to_vec()))
            .all(&**txn)
            .await?;
        for row in deals {
            let mut o = Opportunity::try_from(row)?;
            let stored = o.version;
            o.draft.contact = survivor.to_owned();
            o.version += 1;
            o.update_time = now;
            self.overwrite_opportunity(txn, tenant, &o, stored).await?;
            events.push(self.event(
                "OpportunityUpdated",
                o.name(),
                self.payloads.opportunity(&o),
                FEED_ACTOR,
            ));
        }
        let tasks = task::Entity::find_in(tenant)
            .filter(task::Column::Contact.is_in(merged.to_vec()))
            .all(&**txn)
            .await?;
        for row in tasks {
            let mut t = Task::try_from(row)?;
            let stored = t.version;
            t.draft.contact = survivor.to_owned();
            t.version += 1;
            t.update_time = now;
            self.overwrite_task(txn, tenant, &t, stored).await?;
            events.push(self.event("TaskUpdated", t.name(), self.payloads.task(&t), FEED_ACTOR));
        }
        Ok(events)
    }

    /// An erasure in contacts: every lead holding a copy of the person (by
    /// link, or by an address or number they had) has its personal fields
    /// erased, and the deals converted from it that are still titled after
    /// the person are retitled. The caller scrubs the earlier events.
    pub async fn apply_contact_erased(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        person: &ErasedPerson,
    ) -> Result<Erased, ApiError> {
        let now = Utc::now();
        // Only the columns that can match, of the leads that can match: a
        // fingerprint has no index, so the comparison happens here.
        let candidates: Vec<(String, String, String, String)> = lead::Entity::find_in(tenant)
            .select_only()
            .columns([
                lead::Column::Id,
                lead::Column::ConvertedContact,
                lead::Column::Email,
                lead::Column::Phone,
            ])
            .filter(
                Condition::any()
                    .add(lead::Column::ConvertedContact.is_in(person.contacts.iter().cloned()))
                    .add(lead::Column::Email.ne(""))
                    .add(lead::Column::Phone.ne("")),
            )
            .into_tuple()
            .all(&**txn)
            .await?;
        let ids: Vec<String> = candidates
            .into_iter()
            .filter(|(_, contact, email, phone)| {
                person.is_held_by(tenant.as_str(), contact, email, phone)
            })
            .map(|(id, ..)| id)
            .collect();
        let mut erased = Erased {
            leads: Vec::new(),
            deal_titles: BTreeMap::new(),
            events: Vec::new(),
        };
        for chunk in ids.chunks(500) {
            let rows = lead::Entity::find_in(tenant)
                .filter(lead::Column::Id.is_in(chunk.to_vec()))
                .all(&**txn)
                .await?;
            for row in rows {
                let mut l = Lead::try_from(row)?;
                let stored = l.version;
                let converted = l.draft.status == LeadStatus::Converted;
                let title_before = deal_title(&l.draft);
                l.erase_personal_data();
                let title_after = deal_title(&l.draft);
                if converted && title_before != title_after {
                    self.retitle_deals(
                        txn,
                        tenant,
                        &l.name(),
                        (&title_before, &title_after),
                        now,
                        &mut erased,
                    )
                    .await?;
                }
                l.version += 1;
                l.update_time = now;
                self.overwrite_lead(txn, tenant, &l, stored).await?;
                erased.events.push(self.event(
                    "LeadErased",
                    l.name(),
                    self.payloads.lead(&l),
                    FEED_ACTOR,
                ));
                erased.leads.push(l.name());
            }
        }
        Ok(erased)
    }

    /// The deals converted from `lead` that still carry the title the
    /// conversion gave them after the person (`titles.0`) get the erased
    /// lead's (`titles.1`); a title someone chose since is theirs and stays
    /// (the caller still scrubs the old one from every such deal's past).
    async fn retitle_deals(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        lead: &str,
        titles: (&str, &str),
        now: DateTime<Utc>,
        erased: &mut Erased,
    ) -> Result<(), ApiError> {
        let (before, after) = titles;
        let deals = opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::SourceLead.eq(lead))
            .all(&**txn)
            .await?;
        for row in deals {
            let mut o = Opportunity::try_from(row)?;
            erased
                .deal_titles
                .insert(o.name(), (before.to_owned(), after.to_owned()));
            if o.draft.display_name != before {
                continue;
            }
            let stored = o.version;
            after.clone_into(&mut o.draft.display_name);
            o.version += 1;
            o.update_time = now;
            self.overwrite_opportunity(txn, tenant, &o, stored).await?;
            erased.events.push(self.event(
                "OpportunityUpdated",
                o.name(),
                self.payloads.opportunity(&o),
                FEED_ACTOR,
            ));
        }
        Ok(())
    }

    /// The event confirming an erasure, about the erased contact.
    pub fn erasure_completed(&self, contact: &str, payload: prost_types::Any) -> NewEvent {
        self.event("ErasureCompleted", contact.to_owned(), payload, FEED_ACTOR)
    }
}
