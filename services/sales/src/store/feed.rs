//! What other services' events ask of sales, applied together with the
//! feed's cursor in one transaction: an event is applied exactly once, and a
//! restart resumes after the last one applied.

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    outbox::NewEvent,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};

use super::{
    Store,
    entities::{feed_cursor, lead, opportunity, task},
};
use crate::domain::{lead::Lead, opportunity::Opportunity, task::Task};

/// Who the feed's changes are recorded as.
const FEED_ACTOR: &str = "sales/contacts-feed";

impl Store {
    /// The sequence of the last event applied from `source`, 0 for none.
    pub async fn feed_cursor(&self, source: &str) -> Result<i64, ApiError> {
        Ok(feed_cursor::Entity::find_by_id(source.to_owned())
            .one(&self.db.conn)
            .await?
            .map_or(0, |row| row.sequence))
    }

    async fn advance(&self, txn: &WriteTxn, source: &str, sequence: i64) -> Result<(), ApiError> {
        feed_cursor::Entity::insert(feed_cursor::ActiveModel {
            source: Set(source.to_owned()),
            sequence: Set(sequence),
        })
        .on_conflict(
            OnConflict::column(feed_cursor::Column::Source)
                .update_column(feed_cursor::Column::Sequence)
                .to_owned(),
        )
        .exec(&**txn)
        .await?;
        Ok(())
    }

    /// A merge in contacts: every lead, opportunity and task pointing at a
    /// merged contact points at the survivor instead.
    pub async fn apply_contact_merged(
        &self,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
        source: &str,
        sequence: i64,
    ) -> Result<usize, ApiError> {
        let txn = self.db.begin_write().await?;
        let now = Utc::now();
        let mut events: Vec<NewEvent> = Vec::new();
        let leads = lead::Entity::find_in(tenant)
            .filter(lead::Column::ConvertedContact.is_in(merged.to_vec()))
            .all(&*txn)
            .await?;
        for row in leads {
            let mut l = Lead::try_from(row)?;
            l.converted_contact = survivor.to_owned();
            l.version += 1;
            l.update_time = now;
            self.overwrite_lead(&*txn, tenant, &l).await?;
            events.push(self.event("LeadUpdated", l.name(), self.payloads.lead(&l), FEED_ACTOR));
        }
        let deals = opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::Contact.is_in(merged.to_vec()))
            .all(&*txn)
            .await?;
        for row in deals {
            let mut o = Opportunity::try_from(row)?;
            o.draft.contact = survivor.to_owned();
            o.version += 1;
            o.update_time = now;
            self.overwrite_opportunity(&*txn, tenant, &o).await?;
            events.push(self.event(
                "OpportunityUpdated",
                o.name(),
                self.payloads.opportunity(&o),
                FEED_ACTOR,
            ));
        }
        let tasks = task::Entity::find_in(tenant)
            .filter(task::Column::Contact.is_in(merged.to_vec()))
            .all(&*txn)
            .await?;
        for row in tasks {
            let mut t = Task::try_from(row)?;
            t.draft.contact = survivor.to_owned();
            t.version += 1;
            t.update_time = now;
            self.overwrite_task(&*txn, tenant, &t).await?;
            events.push(self.event("TaskUpdated", t.name(), self.payloads.task(&t), FEED_ACTOR));
        }
        let changed = events.len();
        self.advance(&txn, source, sequence).await?;
        self.base.commit(txn, tenant, events).await?;
        Ok(changed)
    }

    /// An erasure in contacts: the person's data copied onto the leads that
    /// became that contact is erased too.
    pub async fn apply_contact_erased(
        &self,
        tenant: &Tenant,
        contact: &str,
        source: &str,
        sequence: i64,
    ) -> Result<usize, ApiError> {
        let txn = self.db.begin_write().await?;
        let now = Utc::now();
        let mut events = Vec::new();
        let leads = lead::Entity::find_in(tenant)
            .filter(lead::Column::ConvertedContact.eq(contact))
            .all(&*txn)
            .await?;
        for row in leads {
            let mut l = Lead::try_from(row)?;
            l.erase_personal_data();
            l.version += 1;
            l.update_time = now;
            self.overwrite_lead(&*txn, tenant, &l).await?;
            events.push(self.event("LeadErased", l.name(), self.payloads.lead(&l), FEED_ACTOR));
        }
        let changed = events.len();
        self.advance(&txn, source, sequence).await?;
        self.base.commit(txn, tenant, events).await?;
        Ok(changed)
    }

    /// Moves the cursor past an event that asks nothing of sales.
    pub async fn skip_event(&self, source: &str, sequence: i64) -> Result<(), ApiError> {
        let txn = self.db.begin_write().await?;
        self.advance(&txn, source, sequence).await?;
        txn.commit().await?;
        Ok(())
    }
}
