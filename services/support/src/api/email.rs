//! Inbound email: a raw message becomes a ticket, or a reply on one.

use crm_proto::support as pb;
use crm_shared::error::ApiError;
use tonic::{Request, Response, Status};

use super::{
    SupportApi, caller,
    comments::{check, outcome_ticket},
    convert::{comment_message, ticket_message},
};
use crate::{
    domain::{
        comment::{Attachment, AuthorKind},
        inbound_mail::{InboundMail, parse_inbound, ticket_number_in_subject},
        ticket::{Channel, Priority, Status as TicketStatus, TicketDraft},
    },
    store::{NewComment, NewTicket},
};

/// The attachments of a mail as comment attachments (bytes are not kept).
fn mail_attachments(mail: &InboundMail) -> Vec<Attachment> {
    mail.attachments
        .iter()
        .map(|a| Attachment {
            file_name: a.file_name.clone(),
            size_bytes: i64::try_from(a.size_bytes).unwrap_or(i64::MAX),
            content_type: a.content_type.clone(),
            sha256: a.sha256_hex.clone(),
            uri: String::new(),
        })
        .collect()
}

pub(super) async fn receive_email(
    api: &SupportApi,
    request: Request<pb::ReceiveEmailRequest>,
) -> Result<Response<pb::ReceiveEmailResponse>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let raw = request.into_inner().raw_message;
    let mail = parse_inbound(&raw).map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    let actor = principal.subject.clone();
    // A relay delivers at least once: the same Message-ID twice is one mail.
    if let Some(message_id) = mail.message_id.as_deref()
        && let Some(ticket_id) = api
            .store
            .ticket_of_messages(&tenant, &[message_id.to_owned()])
            .await?
    {
        let ticket = api.store.get_ticket(&tenant, ticket_id).await?;
        let comment = api.store.comment_with_message(&tenant, message_id).await?;
        return Ok(Response::new(pb::ReceiveEmailResponse {
            ticket: Some(ticket_message(&ticket)),
            comment: comment.map(|c| comment_message(&c, None)),
            created: false,
        }));
    }
    if let Some(ticket_id) = thread_of(api, &tenant, &mail).await? {
        let ticket = api.store.get_ticket(&tenant, ticket_id).await?;
        let new = NewComment {
            body: mail.body.clone(),
            public: true,
            author_kind: if mail.auto_submitted {
                AuthorKind::System
            } else {
                AuthorKind::Requester
            },
            author: ticket.draft.requester.clone(),
            attachments: mail_attachments(&mail),
            message_id: mail.message_id.clone().unwrap_or_default(),
        };
        check_mail_comment(&new)?;
        let outcome = api
            .store
            .create_comment(
                &tenant,
                &actor,
                ticket_id,
                new,
                api.options.reopen_window,
                None,
            )
            .await?;
        let follow_up = outcome.opened_follow_up.then_some(&outcome.ticket);
        return Ok(Response::new(pb::ReceiveEmailResponse {
            ticket: Some(outcome_ticket(&outcome)),
            comment: Some(comment_message(&outcome.comment, follow_up)),
            created: outcome.opened_follow_up,
        }));
    }
    if mail.auto_submitted {
        // An out-of-office reply to nothing we know must not open a ticket
        // (two auto-responders would open tickets forever).
        tracing::info!(from = %mail.from_email, "automatic mail matching no ticket dropped");
        return Ok(Response::new(pb::ReceiveEmailResponse::default()));
    }
    let mut draft = TicketDraft {
        subject: mail.subject.clone(),
        description: mail.body.clone(),
        requester: String::new(),
        requester_email: mail.from_email.clone(),
        company: String::new(),
        channel: Channel::Email,
        priority: Priority::Normal,
        kind: String::new(),
        tags: Vec::new(),
        custom_fields: Default::default(),
        status: TicketStatus::New,
    };
    draft.normalize_and_check("raw_message").map_err(|_| {
        ApiError::invalid(
            "raw_message",
            "the mail's subject, body or sender is not acceptable for a ticket",
        )
    })?;
    let company_tier = api
        .resolve_requester(
            &credentials,
            &mut draft,
            mail.from_name.as_deref().unwrap_or_default(),
            "raw_message",
        )
        .await?;
    let new = NewTicket {
        draft,
        queue: String::new(),
        assignee: String::new(),
        follow_up_of: String::new(),
        message_id: mail.message_id.clone().unwrap_or_default(),
        company_tier,
    };
    let created = api.store.create_ticket(&tenant, &actor, new, None).await?;
    Ok(Response::new(pb::ReceiveEmailResponse {
        ticket: Some(ticket_message(&created)),
        comment: None,
        created: true,
    }))
}

/// A comment from mail is checked like any other, but named by the request field.
fn check_mail_comment(new: &NewComment) -> Result<(), ApiError> {
    if new.body.is_empty() && new.attachments.is_empty() {
        return Err(ApiError::invalid(
            "raw_message",
            "the reply has no text and no attachments",
        ));
    }
    check(new).map_err(|_| {
        ApiError::invalid(
            "raw_message",
            "the reply's text or attachments are not acceptable",
        )
    })
}

/// The ticket a mail replies to: one of its mail ids in In-Reply-To or
/// References, else the ticket number in its subject when the sender is
/// that ticket's requester (a number alone is easy to guess).
async fn thread_of(
    api: &SupportApi,
    tenant: &crm_shared::db::Tenant,
    mail: &InboundMail,
) -> Result<Option<uuid::Uuid>, ApiError> {
    let mut ids = mail.in_reply_to.clone();
    ids.extend(mail.references.iter().cloned());
    if let Some(found) = api.store.ticket_of_messages(tenant, &ids).await? {
        return Ok(Some(found));
    }
    let Some(number) = ticket_number_in_subject(&mail.subject) else {
        return Ok(None);
    };
    let Ok(number) = i64::try_from(number) else {
        return Ok(None);
    };
    Ok(api
        .store
        .ticket_numbered(tenant, number)
        .await?
        .filter(|t| t.delete_time.is_none() && t.draft.requester_email == mail.from_email)
        .map(|t| t.id))
}
