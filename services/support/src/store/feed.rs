//! What the contacts feed asks of support. Each function runs inside the
//! shared consumer's transaction (`crm_shared::consumer`), which also moves
//! the feed's cursor and appends the returned events, so an event is applied
//! exactly once. Rows are written only if their version is still the one
//! read: a concurrent user change is never undone (the consumer tries again).

use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    outbox::NewEvent,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use super::{
    Store,
    comments::comment_row,
    entities::{comment, ticket, ticket_message},
};
use crate::domain::{comment::Comment, ticket::Ticket};

/// Who the feed's changes are recorded as.
const FEED_ACTOR: &str = "support/contacts-feed";

/// What an erasure changed in support.
pub struct Erased {
    /// The tickets and comments whose personal data was erased.
    pub resources: Vec<String>,
    /// The events the change raises.
    pub events: Vec<NewEvent>,
}

impl Store {
    /// A merge in contacts: tickets requested by a merged contact, that
    /// contact's comments, and their chats move to the survivor.
    pub async fn apply_contact_merged(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
    ) -> Result<Vec<NewEvent>, ApiError> {
        let mut events = Vec::new();
        let rows = ticket::Entity::find_in(tenant)
            .filter(ticket::Column::Requester.is_in(merged.to_vec()))
            .all(&**txn)
            .await?;
        for row in rows {
            let mut t = Ticket::try_from(row)?;
            let stored = t.version;
            t.draft.requester = survivor.to_owned();
            events.extend(
                self.save_ticket(
                    txn,
                    tenant,
                    &mut t,
                    stored,
                    &[],
                    FEED_ACTOR,
                    Some("TicketUpdated"),
                )
                .await?,
            );
        }
        comment::Entity::update_many()
            .col_expr(comment::Column::Author, Expr::value(survivor))
            .filter(comment::Column::Tenant.eq(tenant.as_str()))
            .filter(comment::Column::Author.is_in(merged.to_vec()))
            .exec(&**txn)
            .await?;
        self.move_chats(txn, tenant, survivor, merged).await?;
        Ok(events)
    }

    /// An erasure in contacts: every ticket the person requested loses the
    /// request's text and their address, every comment on those tickets its
    /// text and files (replies quote the person), their survey answers their
    /// words, and the tickets' mail ids are forgotten; their chats lose their
    /// transcripts' words. The caller scrubs the earlier events.
    pub async fn apply_contact_erased(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        contacts: &[String],
    ) -> Result<Erased, ApiError> {
        let mut erased = Erased {
            resources: Vec::new(),
            events: Vec::new(),
        };
        let rows = ticket::Entity::find_in(tenant)
            .filter(ticket::Column::Requester.is_in(contacts.to_vec()))
            .all(&**txn)
            .await?;
        let mut tickets = Vec::new();
        for row in rows {
            let mut t = Ticket::try_from(row)?;
            let stored = t.version;
            t.erase_personal_data();
            erased.events.extend(
                self.save_ticket(
                    txn,
                    tenant,
                    &mut t,
                    stored,
                    &[],
                    FEED_ACTOR,
                    Some("TicketErased"),
                )
                .await?,
            );
            let comments = comment::Entity::find_in(tenant)
                .filter(comment::Column::TicketId.eq(t.id.to_string()))
                .all(&**txn)
                .await?;
            for row in comments {
                let mut c = Comment::try_from(row)?;
                c.erase_personal_data();
                comment::Entity::update(comment_row(tenant, &c))
                    .exec(&**txn)
                    .await?;
                erased.resources.push(c.name());
            }
            ticket_message::Entity::delete_many()
                .filter(ticket_message::Column::Tenant.eq(tenant.as_str()))
                .filter(ticket_message::Column::TicketId.eq(t.id.to_string()))
                .exec(&**txn)
                .await?;
            erased.resources.push(t.name());
            tickets.push(t.id);
        }
        erased
            .resources
            .extend(self.erase_survey_comments(txn, tenant, &tickets).await?);
        let (chats, events) = self.erase_chats(txn, tenant, contacts, FEED_ACTOR).await?;
        erased.resources.extend(chats);
        erased.events.extend(events);
        Ok(erased)
    }

    /// A company changed in contacts: its tickets whose recorded tier differs
    /// take the new one, and an unsolved ticket's SLA policy is chosen again
    /// (`TicketUpdated`); solved and closed tickets keep their SLA.
    pub async fn apply_company_tier(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        company: &str,
        tier: &str,
    ) -> Result<Vec<NewEvent>, ApiError> {
        let rows = ticket::Entity::find_in(tenant)
            .filter(ticket::Column::Company.eq(company))
            .filter(ticket::Column::CompanyTier.ne(tier))
            .all(&**txn)
            .await?;
        let mut events = Vec::new();
        for row in rows {
            let mut t = Ticket::try_from(row)?;
            let stored = t.version;
            t.company_tier = tier.to_owned();
            let event = t.draft.status.is_unsolved().then_some("TicketUpdated");
            events.extend(
                self.save_ticket(txn, tenant, &mut t, stored, &[], FEED_ACTOR, event)
                    .await?,
            );
        }
        Ok(events)
    }

    /// The event confirming an erasure, about the erased contact.
    pub fn erasure_completed(&self, contact: &str, payload: prost_types::Any) -> NewEvent {
        self.event("ErasureCompleted", contact.to_owned(), payload, FEED_ACTOR)
    }
}
