//! Comments, and what a reply does to its ticket.

use chrono::{Duration, Utc};
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped},
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{Claim, ListQuery, Page},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use super::{NewTicket, Store, entities::comment, from_json, to_json};
use crate::domain::{
    comment::{AUTHOR_KINDS, Attachment, AuthorKind, Comment},
    ticket::{ReplyEffect, Status, Ticket},
};

/// Who the system's own changes are recorded as.
const SYSTEM: &str = "system";

impl TryFrom<comment::Model> for Comment {
    type Error = ApiError;

    fn try_from(row: comment::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored comment has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            ticket: row.ticket_id.parse().map_err(|_| bad("ticket"))?,
            body: row.body,
            public: row.public,
            author_kind: parse_stored(AUTHOR_KINDS, &row.author_kind)
                .ok_or_else(|| bad("author kind"))?,
            author: row.author,
            attachments: from_json::<Vec<Attachment>>("comment attachments", &row.attachments)?,
            message_id: row.message_id,
            create_time: row.create_time,
        })
    }
}

pub(super) fn comment_row(tenant: &Tenant, c: &Comment) -> comment::ActiveModel {
    comment::Model {
        id: c.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        ticket_id: c.ticket.to_string(),
        body: c.body.clone(),
        public: c.public,
        author_kind: stored(AUTHOR_KINDS, c.author_kind).to_owned(),
        author: c.author.clone(),
        attachments: to_json(&c.attachments),
        message_id: c.message_id.clone(),
        create_time: c.create_time,
        delete_time: None,
        version: 1,
    }
    .into_active_model()
    .reset_all()
}

/// A comment to add, checked.
#[derive(Debug, Clone)]
pub struct NewComment {
    /// The text.
    pub body: String,
    /// A public reply.
    pub public: bool,
    /// Who wrote it.
    pub author_kind: AuthorKind,
    /// The agent, or the requester's contact.
    pub author: String,
    /// Files.
    pub attachments: Vec<Attachment>,
    /// The Message-ID of its mail; one is made for a public reply without.
    pub message_id: String,
}

/// A comment made, and where.
#[derive(Debug, Clone)]
pub struct CommentOutcome {
    /// The comment.
    pub comment: Comment,
    /// The ticket it is on, after it.
    pub ticket: Ticket,
    /// Whether that ticket is a follow-up the comment opened.
    pub opened_follow_up: bool,
}

impl Store {
    /// Adds a comment to a ticket with its effects: a requester's reply
    /// reopens (or, on a closed ticket, opens a follow-up it goes to); an
    /// agent's first public reply is the first response.
    pub async fn create_comment(
        &self,
        tenant: &Tenant,
        actor: &str,
        ticket_id: Uuid,
        new: NewComment,
        reopen_window: Duration,
        request_id: Option<IdempotencyKey>,
    ) -> Result<CommentOutcome, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateComment", request_id.as_ref())
            .await?
        {
            return self.comment_outcome(tenant, &existing).await;
        }
        let txn = self.base.db.begin_write().await?;
        txn.serialize_on(&format!("tickets/{ticket_id}")).await?;
        let mut t = self.load_ticket(&*txn, tenant, ticket_id).await?;
        if t.delete_time.is_some() {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is deleted",
                t.name()
            )));
        }
        let now = Utc::now();
        let stored_version = t.version;
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let mut opened_follow_up = false;
        match new.author_kind {
            AuthorKind::Requester => match t.requester_reply(now, reopen_window) {
                ReplyEffect::Join => t.requester_replied(now),
                ReplyEffect::Reopen => {
                    t.requester_replied(now);
                    changes.extend(t.set_status(Status::Open, actor, now)?);
                }
                ReplyEffect::FollowUp => {
                    if t.draft.status == Status::Solved {
                        // Past the reopen window: the solved ticket closes for good.
                        changes.extend(t.set_status(Status::Closed, SYSTEM, now)?);
                    }
                    events.extend(
                        self.save_ticket(
                            &txn,
                            tenant,
                            &mut t,
                            stored_version,
                            &changes,
                            SYSTEM,
                            None,
                        )
                        .await?,
                    );
                    changes.clear();
                    let follow_up = NewTicket {
                        draft: crate::domain::ticket::TicketDraft {
                            description: new.body.clone(),
                            ..t.draft.clone()
                        },
                        queue: t.queue.clone(),
                        assignee: t.assignee.clone(),
                        follow_up_of: t.name(),
                        message_id: String::new(),
                        company_tier: t.company_tier.clone(),
                    };
                    let (opened, created) =
                        self.insert_ticket(&txn, tenant, actor, follow_up).await?;
                    events.extend(created);
                    t = opened;
                    opened_follow_up = true;
                }
            },
            AuthorKind::Agent if new.public => changes.extend(t.agent_replied(actor, now)),
            AuthorKind::Agent | AuthorKind::System => {}
        }
        let id = Uuid::now_v7();
        let message_id = if new.message_id.is_empty() && new.public {
            format!("{id}@support.crm")
        } else {
            new.message_id
        };
        let c = Comment {
            id,
            ticket: t.id,
            body: new.body,
            public: new.public,
            author_kind: new.author_kind,
            author: new.author,
            attachments: new.attachments,
            message_id,
            create_time: now,
        };
        comment::Entity::insert(comment_row(tenant, &c))
            .exec(&*txn)
            .await?;
        if !c.message_id.is_empty() {
            self.remember_message(&txn, tenant, &c.message_id, t.id)
                .await?;
        }
        if !opened_follow_up {
            events.extend(
                self.save_ticket(&txn, tenant, &mut t, stored_version, &changes, actor, None)
                    .await?,
            );
        }
        events.push(self.event(
            "CommentCreated",
            c.name(),
            self.payloads.comment_created(&c, &t),
            actor,
        ));
        let txn = match self
            .base
            .claim(txn, tenant, "CreateComment", request_id.as_ref(), &c.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.comment_outcome(tenant, &existing).await,
        };
        self.base.commit(txn, tenant, events).await?;
        Ok(CommentOutcome {
            comment: c,
            ticket: t,
            opened_follow_up,
        })
    }

    /// The comment named `name` (`tickets/{t}/comments/{c}`) and its ticket.
    async fn comment_outcome(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<CommentOutcome, ApiError> {
        let comment = self.get_comment(tenant, super::id_of(name)).await?;
        let ticket = self.get_ticket(tenant, comment.ticket).await?;
        Ok(CommentOutcome {
            // A follow-up and the reply that opened it commit together.
            opened_follow_up: !ticket.follow_up_of.is_empty()
                && comment.create_time - ticket.create_time <= Duration::seconds(1),
            comment,
            ticket,
        })
    }

    /// A comment.
    pub async fn get_comment(&self, tenant: &Tenant, id: Uuid) -> Result<Comment, ApiError> {
        comment::Entity::find_in(tenant)
            .filter(comment::Column::Id.eq(id.to_string()))
            .one(&self.base.db.conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("comment {id}")))?
            .try_into()
    }

    /// The comment made from mail `message_id`, if any.
    pub async fn comment_with_message(
        &self,
        tenant: &Tenant,
        message_id: &str,
    ) -> Result<Option<Comment>, ApiError> {
        comment::Entity::find_in(tenant)
            .filter(comment::Column::MessageId.eq(message_id))
            .one(&self.base.db.conn)
            .await?
            .map(Comment::try_from)
            .transpose()
    }

    /// One page of a ticket's comments (`public_only`: the replies).
    pub async fn list_comments(
        &self,
        tenant: &Tenant,
        ticket_id: Uuid,
        public_only: bool,
        mut query: ListQuery,
    ) -> Result<Page<Comment>, ApiError> {
        self.get_ticket(tenant, ticket_id).await?;
        query.condition = query
            .condition
            .add(comment::Column::TicketId.eq(ticket_id.to_string()));
        if public_only {
            query.condition = query.condition.add(comment::Column::Public.eq(true));
        }
        self.base
            .list_page::<comment::Entity, Comment>(tenant, query)
            .await
    }
}
