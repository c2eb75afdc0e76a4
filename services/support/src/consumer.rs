//! What support does with the contacts feed, applied by the shared consumer
//! (`crm_shared::consumer`): a merged contact's tickets and replies move to
//! the survivor; an erased person's tickets, comments, chats and mail ids
//! lose their data, support's own earlier events about them are scrubbed, and an
//! `ErasureCompleted` event confirms it. A company's new service tier reaches
//! its tickets (and their SLA policies).

use crm_proto::{
    contacts::{Company, ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
    support as pb,
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::{Tenant, WriteTxn},
    outbox::NewEvent,
};
use prost::{Message, Name};

use crate::store::Store;

/// The source support follows.
pub const SOURCE: &str = "contacts";
const MERGED: &str = "crm.contacts.v1.ContactMerged";
const ERASED: &str = "crm.contacts.v1.ContactErased";
const COMPANY_UPDATED: &str = "crm.contacts.v1.CompanyUpdated";

/// Support's handler of the contacts feed.
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
        let contacts: Vec<String> = std::iter::once(erased.contact.clone())
            .chain(erased.merged)
            .collect();
        let mut done = self
            .store
            .apply_contact_erased(txn, tenant, &contacts)
            .await?;
        let scrubbed =
            crm_shared::outbox::scrub(&**txn, tenant, &done.resources, scrub_payload).await?;
        crm_shared::audit::forget(&**txn, tenant, &done.resources).await?;
        tracing::info!(contact = %erased.contact, erased = done.resources.len(), scrubbed, "contact erasure applied");
        let confirmation = to_any(&ErasureCompleted {
            contact: erased.contact.clone(),
            service: "support".into(),
            erased_resources: done.resources,
            scrubbed_events: scrubbed,
        });
        done.events
            .push(self.store.erasure_completed(&erased.contact, confirmation));
        Ok(done.events)
    }
}

#[tonic::async_trait]
impl EventHandler for ContactsFeed {
    fn event_types(&self) -> Vec<String> {
        vec![MERGED.into(), ERASED.into(), COMPANY_UPDATED.into()]
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
            COMPANY_UPDATED => {
                let company: Company = EffectError::decode(event)?;
                Ok(self
                    .store
                    .apply_company_tier(txn, &tenant, &company.name, &company.tier)
                    .await?)
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// The payload without the person's data, for payloads that carry some
/// (a ticket, a status change, a comment, a chat, a survey answer); `None`
/// for the others.
fn scrub_payload(payload: &prost_types::Any) -> Option<prost_types::Any> {
    if payload.type_url == pb::Ticket::type_url() {
        let mut ticket = pb::Ticket::decode(payload.value.as_slice()).ok()?;
        scrub_ticket(&mut ticket);
        Some(to_any(&ticket))
    } else if payload.type_url == pb::TicketStatusChanged::type_url() {
        let mut changed = pb::TicketStatusChanged::decode(payload.value.as_slice()).ok()?;
        changed.ticket.as_mut().map(scrub_ticket);
        Some(to_any(&changed))
    } else if payload.type_url == pb::CommentCreated::type_url() {
        let mut created = pb::CommentCreated::decode(payload.value.as_slice()).ok()?;
        created.ticket.as_mut().map(scrub_ticket);
        if let Some(comment) = created.comment.as_mut() {
            comment.body = "[erased]".into();
            comment.attachments.clear();
            comment.message_id.clear();
        }
        Some(to_any(&created))
    } else if payload.type_url == pb::SlaAlert::type_url() {
        let mut alert = pb::SlaAlert::decode(payload.value.as_slice()).ok()?;
        alert.ticket.as_mut().map(scrub_ticket);
        Some(to_any(&alert))
    } else if payload.type_url == pb::Chat::type_url() {
        let mut chat = pb::Chat::decode(payload.value.as_slice()).ok()?;
        chat.subject = "[erased]".into();
        chat.requester_email.clear();
        chat.requester_display_name.clear();
        Some(to_any(&chat))
    } else if payload.type_url == pb::SatisfactionSurvey::type_url() {
        let mut survey = pb::SatisfactionSurvey::decode(payload.value.as_slice()).ok()?;
        survey.comment.clear();
        Some(to_any(&survey))
    } else {
        None
    }
}

/// The fields of a ticket message that hold the person's data (as
/// `Ticket::erase_personal_data` does for the stored ticket).
fn scrub_ticket(ticket: &mut pb::Ticket) {
    ticket.subject = "[erased]".into();
    ticket.description.clear();
    ticket.requester_email.clear();
    ticket.requester_display_name.clear();
    ticket.custom_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every payload that carries a ticket loses the person with it, the
    /// SLA alerts' too.
    #[test]
    fn payloads_carrying_a_ticket_are_scrubbed() {
        let ticket = || pb::Ticket {
            name: "tickets/t".into(),
            subject: "Ada's invoice".into(),
            description: "Call Ada".into(),
            requester_email: "ada@example.com".into(),
            requester_display_name: "Ada".into(),
            ..Default::default()
        };
        let payloads = [
            to_any(&ticket()),
            to_any(&pb::TicketStatusChanged {
                ticket: Some(ticket()),
                ..Default::default()
            }),
            to_any(&pb::CommentCreated {
                ticket: Some(ticket()),
                ..Default::default()
            }),
            to_any(&pb::SlaAlert {
                ticket: Some(ticket()),
                policy: "slaPolicies/p".into(),
                ..Default::default()
            }),
        ];
        for payload in payloads {
            let clean = scrub_payload(&payload).expect("scrubbed");
            assert_eq!(clean.type_url, payload.type_url);
            let text = String::from_utf8_lossy(&clean.value);
            assert!(
                !text.contains("Ada") && !text.contains("ada@"),
                "{}: {text}",
                clean.type_url
            );
            assert!(text.contains("tickets/t"), "the ticket is still named");
        }
    }
}
