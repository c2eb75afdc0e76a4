//! Comments: replies and notes, by the calling agent or for the requester.

use crm_proto::support as pb;
use crm_shared::{
    convert::{parse_name, required},
    idempotency::IdempotencyKey,
};
use tonic::{Request, Response, Status};

use super::{
    SupportApi, caller,
    convert::{attachments, comment_message, ticket_message},
    fixed_plan,
};
use crate::{
    domain::comment::{AuthorKind, Comment},
    store::NewComment,
};

pub(super) async fn create_comment(
    api: &SupportApi,
    request: Request<pb::CreateCommentRequest>,
) -> Result<Response<pb::Comment>, Status> {
    let (principal, tenant, _) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let ticket_id = parse_name(&r.parent, "tickets", "parent")?;
    let message = required(r.comment, "comment")?;
    let (author_kind, author, public) = if r.from_requester {
        let ticket = api.store.get_ticket(&tenant, ticket_id).await?;
        // What the requester writes is what they see: always public.
        (AuthorKind::Requester, ticket.draft.requester, true)
    } else {
        (AuthorKind::Agent, principal.subject.clone(), message.public)
    };
    let new = NewComment {
        body: message.body.trim().to_owned(),
        public,
        author_kind,
        author,
        attachments: attachments(&message.attachments),
        message_id: String::new(),
    };
    check(&new)?;
    let outcome = api
        .store
        .create_comment(
            &tenant,
            &principal.subject,
            ticket_id,
            new,
            api.options.reopen_window,
            request_id,
        )
        .await?;
    let follow_up = outcome.opened_follow_up.then_some(&outcome.ticket);
    Ok(Response::new(comment_message(&outcome.comment, follow_up)))
}

/// Checks a comment's fields before anything is written.
pub(super) fn check(new: &NewComment) -> Result<(), crm_shared::error::ApiError> {
    Comment {
        id: uuid::Uuid::nil(),
        ticket: uuid::Uuid::nil(),
        body: new.body.clone(),
        public: new.public,
        author_kind: new.author_kind,
        author: new.author.clone(),
        attachments: new.attachments.clone(),
        message_id: new.message_id.clone(),
        create_time: chrono::Utc::now(),
    }
    .check("comment")
}

pub(super) async fn list_comments(
    api: &SupportApi,
    request: Request<pb::ListCommentsRequest>,
) -> Result<Response<pb::ListCommentsResponse>, Status> {
    let (_, tenant, _) = caller(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "tickets", "parent")?;
    let plan = fixed_plan(
        &api.page_tokens,
        &format!("comments:{id}:{}", r.public_only),
        &[("create_time", "create_time"), ("id", "id")],
        r.page_size,
        &r.page_token,
        false,
    )?;
    let page = api
        .store
        .list_comments(&tenant, id, r.public_only, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListCommentsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        comments: page
            .items
            .iter()
            .map(|c| comment_message(c, None))
            .collect(),
    }))
}

/// The ticket message of a comment outcome, for ReceiveEmail.
pub(super) fn outcome_ticket(outcome: &crate::store::CommentOutcome) -> pb::Ticket {
    ticket_message(&outcome.ticket)
}
