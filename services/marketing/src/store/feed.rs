//! What the contacts feed asks of marketing. Each function runs inside the
//! shared consumer's transaction (`crm_shared::consumer`), which also moves
//! the feed's cursor and appends the returned events, so an event is applied
//! exactly once.

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    outbox::NewEvent,
};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, sea_query::Expr};

use super::{
    Store,
    entities::{campaign_recipient, engagement, list_member},
};

/// Who the feed's changes are recorded as.
const FEED_ACTOR: &str = "marketing/contacts-feed";

impl Store {
    /// A merge in contacts: the merged contacts' list memberships and
    /// journey enrolments move to the survivor (a list it is on already
    /// keeps one membership). The ledger keeps what was sent to whom.
    pub async fn apply_contact_merged(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
    ) -> Result<(), ApiError> {
        let memberships = list_member::Entity::find_in(tenant)
            .filter(list_member::Column::Contact.is_in(merged.to_vec()))
            .all(&**txn)
            .await?;
        for membership in memberships {
            let moved = list_member::Model {
                contact: survivor.to_owned(),
                add_time: Utc::now(),
                ..membership
            };
            list_member::Entity::insert(moved.into_active_model())
                .on_conflict_do_nothing_on([
                    list_member::Column::Tenant,
                    list_member::Column::ListId,
                    list_member::Column::Contact,
                ])
                .exec(&**txn)
                .await?;
        }
        list_member::Entity::delete_many()
            .filter(list_member::Column::Tenant.eq(tenant.as_str()))
            .filter(list_member::Column::Contact.is_in(merged.to_vec()))
            .exec(&**txn)
            .await?;
        self.merge_journey_contacts(txn, tenant, survivor, merged)
            .await
    }

    /// An erasure in contacts: the person leaves every list, the send
    /// ledger forgets the addresses and server answers it kept for them (its
    /// rows keep their outcome, so a campaign's counts stand), and their
    /// engagements the links they clicked and the relays' words, and their
    /// journey enrolments are deleted with their steps. Suppressions
    /// hold fingerprints, never addresses, and stay: an unsubscribe outlives
    /// the erasure. Returns what was erased, by name (the ledger rows' names
    /// are the subjects of the events about them, which the caller scrubs).
    pub async fn apply_contact_erased(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        contacts: &[String],
    ) -> Result<Vec<String>, ApiError> {
        let memberships = list_member::Entity::find_in(tenant)
            .filter(list_member::Column::Contact.is_in(contacts.to_vec()))
            .all(&**txn)
            .await?;
        let mut erased: Vec<String> = memberships
            .iter()
            .map(|m| {
                format!(
                    "mailingLists/{}/members/{}",
                    m.list_id,
                    m.contact.trim_start_matches("contacts/")
                )
            })
            .collect();
        list_member::Entity::delete_many()
            .filter(list_member::Column::Tenant.eq(tenant.as_str()))
            .filter(list_member::Column::Contact.is_in(contacts.to_vec()))
            .exec(&**txn)
            .await?;
        let (enrollments, journey_emails) =
            self.erase_journey_contacts(txn, tenant, contacts).await?;
        erased.extend(enrollments);
        let rows = campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::Contact.is_in(contacts.to_vec()))
            .all(&**txn)
            .await?;
        // A journey's emails are named by their enrolment, erased above.
        let rows = rows
            .into_iter()
            .filter(|r| !journey_emails.contains(&r.campaign_id));
        erased.extend(rows.map(|r| {
            format!(
                "campaigns/{}/recipients/{}",
                r.campaign_id,
                r.contact.trim_start_matches("contacts/")
            )
        }));
        campaign_recipient::Entity::update_many()
            .col_expr(campaign_recipient::Column::Email, Expr::value(""))
            // A server's answer may quote the address.
            .col_expr(campaign_recipient::Column::Reason, Expr::value(""))
            .filter(campaign_recipient::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_recipient::Column::Contact.is_in(contacts.to_vec()))
            .exec(&**txn)
            .await?;
        // Clicked links (personal ones, such as a portal address) and
        // relays' bounce texts.
        engagement::Entity::update_many()
            .col_expr(engagement::Column::Detail, Expr::value(""))
            .filter(engagement::Column::Tenant.eq(tenant.as_str()))
            .filter(engagement::Column::Contact.is_in(contacts.to_vec()))
            .exec(&**txn)
            .await?;
        Ok(erased)
    }

    /// The event confirming an erasure, about the erased contact.
    pub fn erasure_completed(&self, contact: &str, payload: prost_types::Any) -> NewEvent {
        self.event("ErasureCompleted", contact.to_owned(), payload, FEED_ACTOR)
    }
}
