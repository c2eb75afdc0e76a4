//! Reads for the customer view and the erasure status.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    Scope, Store,
    entities::{
        rm_companies, rm_contacts, rm_deals, rm_engagements, rm_erasure_confirmations, rm_erasures,
        rm_stages, rm_tickets, rm_timeline,
    },
    resources::scoped,
};

/// How far a timeline page reached: the last entry's time and event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineCursor {
    /// Its time.
    pub time: DateTime<Utc>,
    /// Its event id.
    pub event_id: String,
}

/// Everything the read model holds about one customer.
#[derive(Debug, Clone)]
pub struct CustomerData {
    /// The contact (the survivor when the one asked was merged).
    pub contact: rm_contacts::Model,
    /// Its company's name.
    pub company_name: String,
    /// Its deals, not deleted, with their stage names.
    pub deals: Vec<(rm_deals::Model, String)>,
    /// Its tickets not solved or closed, newest first.
    pub open_tickets: Vec<rm_tickets::Model>,
    /// Its latest engagement with marketing email.
    pub last_engagement: Option<rm_engagements::Model>,
    /// One page of its timeline, newest first.
    pub timeline: Vec<rm_timeline::Model>,
    /// Where the next page starts, when there is one.
    pub next: Option<TimelineCursor>,
}

/// An erasure with its confirmations.
#[derive(Debug, Clone)]
pub struct ErasureRecord {
    /// The erased contact.
    pub contact: String,
    /// When contacts erased it; None while only confirmations arrived.
    pub erase_time: Option<DateTime<Utc>>,
    /// (service, time, resources erased).
    pub confirmations: Vec<(String, DateTime<Utc>, i64)>,
}

/// How many merges a view follows to the survivor.
const MAX_MERGE_HOPS: usize = 8;

impl Store {
    /// The customer `contact` (following merges), with a timeline page of
    /// at most `page_size` entries of `kinds` (all when empty) after `after`;
    /// None when the read model does not know the contact.
    pub async fn customer(
        &self,
        scope: &Scope,
        contact: &str,
        page_size: u64,
        kinds: &[String],
        after: Option<&TimelineCursor>,
    ) -> Result<Option<CustomerData>, DbErr> {
        let conn = &self.base.db.conn;
        let mut name = contact.to_owned();
        let mut row = None;
        for _ in 0..MAX_MERGE_HOPS {
            let found = scoped!(rm_contacts, scope)
                .filter(rm_contacts::Column::Contact.eq(&name))
                .one(conn)
                .await?;
            match found {
                Some(c) if !c.survivor.is_empty() && !c.erased => name = c.survivor.clone(),
                other => {
                    row = other;
                    break;
                }
            }
        }
        let Some(contact) = row else {
            return Ok(None);
        };
        let company_name = if contact.company.is_empty() {
            String::new()
        } else {
            scoped!(rm_companies, scope)
                .filter(rm_companies::Column::Company.eq(&contact.company))
                .one(conn)
                .await?
                .map(|c| c.display_name)
                .unwrap_or_default()
        };
        let deals = scoped!(rm_deals, scope)
            .filter(rm_deals::Column::Contact.eq(&contact.contact))
            .filter(rm_deals::Column::Deleted.eq(false))
            .order_by_desc(rm_deals::Column::CreateTime)
            .limit(1000)
            .all(conn)
            .await?;
        let stages = scoped!(rm_stages, scope)
            .filter(rm_stages::Column::Stage.is_in(deals.iter().map(|d| d.stage.clone())))
            .all(conn)
            .await?;
        let deals = deals
            .into_iter()
            .map(|d| {
                let stage = stages
                    .iter()
                    .find(|s| s.stage == d.stage)
                    .map_or_else(|| d.stage.clone(), |s| s.display_name.clone());
                (d, stage)
            })
            .collect();
        let open_tickets = scoped!(rm_tickets, scope)
            .filter(rm_tickets::Column::Contact.eq(&contact.contact))
            .filter(rm_tickets::Column::Deleted.eq(false))
            .filter(rm_tickets::Column::Status.is_not_in(["solved", "closed"]))
            .order_by_desc(rm_tickets::Column::CreateTime)
            .limit(1000)
            .all(conn)
            .await?;
        let last_engagement = scoped!(rm_engagements, scope)
            .filter(rm_engagements::Column::Contact.eq(&contact.contact))
            .order_by_desc(rm_engagements::Column::LastTime)
            .one(conn)
            .await?;
        let mut query =
            scoped!(rm_timeline, scope).filter(rm_timeline::Column::Contact.eq(&contact.contact));
        if !kinds.is_empty() {
            query = query.filter(rm_timeline::Column::Kind.is_in(kinds.iter().cloned()));
        }
        if let Some(after) = after {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(rm_timeline::Column::Time.lt(after.time))
                    .add(
                        sea_orm::Condition::all()
                            .add(rm_timeline::Column::Time.eq(after.time))
                            .add(rm_timeline::Column::EventId.lt(&after.event_id)),
                    ),
            );
        }
        let mut timeline = query
            .order_by_desc(rm_timeline::Column::Time)
            .order_by_desc(rm_timeline::Column::EventId)
            .limit(page_size + 1)
            .all(conn)
            .await?;
        let next = if timeline.len() as u64 > page_size {
            timeline.truncate(page_size as usize);
            timeline.last().map(|e| TimelineCursor {
                time: e.time,
                event_id: e.event_id.clone(),
            })
        } else {
            None
        };
        Ok(Some(CustomerData {
            contact,
            company_name,
            deals,
            open_tickets,
            last_engagement,
            timeline,
            next,
        }))
    }

    /// The erasure of `contact`, if the read model has heard of it.
    pub async fn erasure(
        &self,
        scope: &Scope,
        contact: &str,
    ) -> Result<Option<ErasureRecord>, DbErr> {
        let conn = &self.base.db.conn;
        let erased = scoped!(rm_erasures, scope)
            .filter(rm_erasures::Column::Contact.eq(contact))
            .one(conn)
            .await?;
        let confirmations = self.confirmations(scope, &[contact.to_owned()]).await?;
        if erased.is_none() && confirmations.is_empty() {
            return Ok(None);
        }
        Ok(Some(ErasureRecord {
            contact: contact.to_owned(),
            erase_time: erased.map(|e| e.erase_time),
            confirmations,
        }))
    }

    /// Erasures, newest first, from offset `skip`.
    pub async fn erasures(
        &self,
        scope: &Scope,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<ErasureRecord>, DbErr> {
        let conn = &self.base.db.conn;
        let rows = scoped!(rm_erasures, scope)
            .order_by_desc(rm_erasures::Column::EraseTime)
            .order_by_desc(rm_erasures::Column::Contact)
            .offset(skip)
            .limit(limit)
            .all(conn)
            .await?;
        let contacts: Vec<String> = rows.iter().map(|r| r.contact.clone()).collect();
        let confirmations = rm_erasure_confirmations::Entity::find()
            .filter(rm_erasure_confirmations::Column::Generation.eq(scope.generation))
            .filter(rm_erasure_confirmations::Column::Tenant.eq(&scope.tenant))
            .filter(rm_erasure_confirmations::Column::Contact.is_in(contacts))
            .all(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ErasureRecord {
                confirmations: confirmations
                    .iter()
                    .filter(|c| c.contact == r.contact)
                    .map(|c| (c.service.clone(), c.confirm_time, c.erased_resources))
                    .collect(),
                contact: r.contact,
                erase_time: Some(r.erase_time),
            })
            .collect())
    }

    async fn confirmations(
        &self,
        scope: &Scope,
        contacts: &[String],
    ) -> Result<Vec<(String, DateTime<Utc>, i64)>, DbErr> {
        Ok(rm_erasure_confirmations::Entity::find()
            .filter(rm_erasure_confirmations::Column::Generation.eq(scope.generation))
            .filter(rm_erasure_confirmations::Column::Tenant.eq(&scope.tenant))
            .filter(rm_erasure_confirmations::Column::Contact.is_in(contacts.iter().cloned()))
            .order_by_asc(rm_erasure_confirmations::Column::Service)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(|c| (c.service, c.confirm_time, c.erased_resources))
            .collect())
    }

    /// When the read model last applied an event of any feed.
    pub async fn as_of(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        use crm_shared::consumer::tables::cursor;
        Ok(cursor::Entity::find()
            .order_by_desc(cursor::Column::UpdateTime)
            .one(&self.base.db.conn)
            .await?
            .map(|c| c.update_time))
    }
}
