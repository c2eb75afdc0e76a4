//! Tickets: create (resolving the requester through contacts), read, list,
//! update along the workflow, delete, assign, and their history.

use chrono::Utc;
use crm_proto::{contacts as contacts_pb, support as pb};
use crm_shared::{
    auth::admitted,
    client::Credentials,
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::{IdempotencyKey, derived_request_id},
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SupportApi, caller,
    convert::{change_message, status, ticket_draft, ticket_message},
    fixed_plan,
};
use crate::{
    domain::ticket::{TicketDraft, WRITABLE_FIELDS},
    store::{self, NewTicket},
};

impl SupportApi {
    /// Fills in a ticket's requester (see [`Self::resolve_person`]) and
    /// checks its company; the company's service tier (empty without one).
    pub(super) async fn resolve_requester(
        &self,
        credentials: &Credentials,
        draft: &mut TicketDraft,
        display_name: &str,
        prefix: &str,
    ) -> Result<String, ApiError> {
        self.resolve_person(
            credentials,
            &mut draft.requester,
            &mut draft.requester_email,
            display_name,
            prefix,
        )
        .await?;
        self.company_tier(credentials, &draft.company, &format!("{prefix}.company"))
            .await
    }

    /// The service tier of `company` (empty for no company); INVALID_ARGUMENT
    /// naming `field` when it is not a live company.
    pub(super) async fn company_tier(
        &self,
        credentials: &Credentials,
        company: &str,
        field: &str,
    ) -> Result<String, ApiError> {
        if company.is_empty() {
            return Ok(String::new());
        }
        let company = self
            .contacts
            .live_company(credentials, company, field)
            .await?;
        Ok(company.tier)
    }

    /// Fills in who asks (a ticket's requester, a chat's customer): a named
    /// contact must be live (its primary email becomes the address when none
    /// was given); an email alone is matched to a contact, or a contact is
    /// made with it (with a request id derived from the address, so
    /// concurrent first mails from one sender make one contact).
    pub(super) async fn resolve_person(
        &self,
        credentials: &Credentials,
        requester: &mut String,
        requester_email: &mut String,
        display_name: &str,
        prefix: &str,
    ) -> Result<(), ApiError> {
        if !requester.is_empty() {
            let contact = self
                .contacts
                .live_contact(credentials, requester, &format!("{prefix}.requester"))
                .await?;
            if requester_email.is_empty() {
                *requester_email = primary_email(&contact);
            }
        } else if !requester_email.is_empty() {
            *requester = match self
                .contacts
                .with_email(credentials, requester_email)
                .await?
                .into_iter()
                .next()
            {
                Some(existing) => existing,
                None => {
                    let contact = contacts_pb::Contact {
                        display_name: if display_name.trim().is_empty() {
                            requester_email.clone()
                        } else {
                            display_name.trim().to_owned()
                        },
                        emails: vec![contacts_pb::EmailAddress {
                            address: requester_email.clone(),
                            label: "work".into(),
                            primary: true,
                        }],
                        source: "support ticket".into(),
                        ..Default::default()
                    };
                    let request_id =
                        derived_request_id(&format!("support requester\0{requester_email}"));
                    self.contacts
                        .create_contact(credentials, contact, request_id.to_string())
                        .await?
                }
            };
        } else {
            return Err(ApiError::invalid(
                format!("{prefix}.requester"),
                "required: a contact, or requester_email",
            ));
        }
        Ok(())
    }
}

/// A contact's primary (else first) email address.
fn primary_email(contact: &contacts_pb::Contact) -> String {
    contact
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| contact.emails.first())
        .map(|e| e.address.trim().to_lowercase())
        .unwrap_or_default()
}

/// A queue reference the caller gave must be a live queue.
pub(super) async fn check_queue(
    api: &SupportApi,
    tenant: &crm_shared::db::Tenant,
    queue: &str,
    field: &str,
) -> Result<(), ApiError> {
    parse_name(queue, "queues", field)?;
    api.store.require_live_queue(tenant, queue, field).await
}

pub(super) async fn create_ticket(
    api: &SupportApi,
    request: Request<pb::CreateTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let message = required(r.ticket, "ticket")?;
    let mut draft = ticket_draft(&message, "ticket")?;
    draft.normalize_and_check("ticket")?;
    let queue = message.queue.trim().to_owned();
    if !queue.is_empty() {
        check_queue(api, &tenant, &queue, "ticket.queue").await?;
    }
    let company_tier = api
        .resolve_requester(
            &credentials,
            &mut draft,
            &message.requester_display_name,
            "ticket",
        )
        .await?;
    let new = NewTicket {
        draft,
        queue,
        assignee: message.assignee.trim().to_owned(),
        follow_up_of: String::new(),
        message_id: String::new(),
        company_tier,
    };
    let created = api
        .store
        .create_ticket(&tenant, &principal.subject, new, request_id)
        .await?;
    Ok(Response::new(ticket_message(&created)))
}

pub(super) async fn get_ticket(
    api: &SupportApi,
    request: Request<pb::GetTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "tickets", "name")?;
    Ok(Response::new(ticket_message(
        &api.store.get_ticket(&tenant, id).await?,
    )))
}

pub(super) async fn list_tickets(
    api: &SupportApi,
    request: Request<pb::ListTicketsRequest>,
) -> Result<Response<pb::ListTicketsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "tickets",
            schema: &store::TICKET_FILTER,
            orderable: store::TICKET_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: r.show_deleted,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api.store.list_tickets(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListTicketsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        tickets: page.items.iter().map(ticket_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_ticket(
    api: &SupportApi,
    request: Request<pb::UpdateTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let message = required(r.ticket, "ticket")?;
    let id = parse_name(&message.name, "tickets", "ticket.name")?;
    let expected = parse_etag(&message.etag, "ticket.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, WRITABLE_FIELDS)?;
    let changes = ticket_draft(&message, "ticket")?;
    let new_status = if paths.contains(&"status") {
        Some(status(message.status, "ticket.status")?.ok_or_else(|| {
            ApiError::invalid("ticket.status", "required when update_mask names it")
        })?)
    } else {
        None
    };
    let company_tier = if paths.contains(&"company") {
        Some(
            api.company_tier(&credentials, changes.company.trim(), "ticket.company")
                .await?,
        )
    } else {
        None
    };
    let actor = principal.subject.clone();
    let updated = api
        .store
        .update_ticket(
            &tenant,
            &principal.subject,
            id,
            expected,
            |t| {
                if t.delete_time.is_some() {
                    return Err(ApiError::NotFound(t.name()));
                }
                let before = (t.draft.priority, t.draft.status);
                t.draft.apply(&paths, &changes);
                t.draft.normalize_and_check("ticket")?;
                if let Some(tier) = &company_tier {
                    t.company_tier.clone_from(tier);
                }
                let now = Utc::now();
                let mut recorded = Vec::new();
                if t.draft.priority != before.0 {
                    use crate::domain::ticket::{PRIORITIES, Ticket};
                    use crm_shared::convert::stored;
                    recorded.push(Ticket::change(
                        "priority",
                        stored(PRIORITIES, before.0),
                        stored(PRIORITIES, t.draft.priority),
                        &actor,
                        now,
                    ));
                }
                if let Some(to) = new_status {
                    recorded.extend(t.set_status(to, &actor, now)?);
                }
                Ok(recorded)
            },
            "TicketUpdated",
        )
        .await?;
    Ok(Response::new(ticket_message(&updated)))
}

pub(super) async fn delete_ticket(
    api: &SupportApi,
    request: Request<pb::DeleteTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "tickets", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let deleted = api
        .store
        .update_ticket(
            &tenant,
            &principal.subject,
            id,
            expected,
            |t| {
                t.delete_time.get_or_insert_with(Utc::now);
                Ok(Vec::new())
            },
            "TicketDeleted",
        )
        .await?;
    Ok(Response::new(ticket_message(&deleted)))
}

pub(super) async fn undelete_ticket(
    api: &SupportApi,
    request: Request<pb::UndeleteTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "tickets", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let restored = api
        .store
        .update_ticket(
            &tenant,
            &principal.subject,
            id,
            expected,
            |t| {
                t.delete_time = None;
                Ok(Vec::new())
            },
            "TicketUndeleted",
        )
        .await?;
    Ok(Response::new(ticket_message(&restored)))
}

pub(super) async fn assign_ticket(
    api: &SupportApi,
    request: Request<pb::AssignTicketRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "tickets", "name")?;
    let expected = parse_etag(&r.etag, "etag")?;
    let queue = r.queue.trim().to_owned();
    if !queue.is_empty() {
        check_queue(api, &tenant, &queue, "queue").await?;
    }
    let assignee = r.assignee.trim().to_owned();
    if assignee.chars().count() > crm_shared::validate::MAX_SHORT {
        return Err(ApiError::invalid("assignee", "at most 255 characters").into());
    }
    let assigned = api
        .store
        .assign_ticket(&tenant, &principal.subject, id, expected, queue, assignee)
        .await?;
    Ok(Response::new(ticket_message(&assigned)))
}

pub(super) async fn list_ticket_changes(
    api: &SupportApi,
    request: Request<pb::ListTicketChangesRequest>,
) -> Result<Response<pb::ListTicketChangesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "tickets", "parent")?;
    let plan = fixed_plan(
        &api.page_tokens,
        &format!("changes:{id}"),
        // Changes of one call share a time; their ids keep the order made.
        &[("change_time", "change_time"), ("id", "id")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api
        .store
        .list_changes(&tenant, id, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListTicketChangesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        changes: page.items.iter().map(change_message).collect(),
    }))
}
