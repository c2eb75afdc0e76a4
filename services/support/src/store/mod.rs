//! The support database: SeaORM entities and every query, each scoped by
//! tenant. Every change writes its events to the outbox in the same
//! transaction; what the contacts feed asks of support is applied together
//! with the feed cursor, in one transaction. The knowledge base's full-text
//! search, one way per backend, is in `search`; live chats and the signals
//! that reach their streams on every replica, in `chats`.

mod articles;
mod chats;
mod comments;
pub mod entities;
mod feed;
mod queues;
mod satisfaction;
mod search;
mod sla;
mod tickets;

use std::sync::Arc;

use crm_shared::{error::ApiError, outbox::NewEvent, store::Resources};

pub use articles::{FILTER as ARTICLE_FILTER, ORDER_BY as ARTICLE_ORDER};
pub use chats::{ChatHub, ChatSignal, FILTER as CHAT_FILTER, ORDER_BY as CHAT_ORDER};
pub use comments::{CommentOutcome, NewComment};
pub use satisfaction::ReportRow;
pub use search::{ArticleSearch, Found};
pub use sla::scheduler;
pub use tickets::{FILTER as TICKET_FILTER, NewTicket, ORDER_BY as TICKET_ORDER};

use crate::domain::{
    article::{Article, ArticleLink},
    chat::Chat,
    comment::Comment,
    routing::{Agent, Queue, RoutingRule},
    satisfaction::Survey,
    sla::{BusinessCalendar, Metric, SlaPolicy},
    ticket::{Status, Ticket},
};

/// Encodes event payloads; implemented by the API layer, which knows the
/// protobuf messages, so the store does not.
pub trait EventPayloads: Send + Sync {
    /// A ticket after a change.
    fn ticket(&self, ticket: &Ticket) -> prost_types::Any;
    /// A status change: the ticket after it and the status it left.
    fn status_changed(&self, ticket: &Ticket, from: Status) -> prost_types::Any;
    /// A comment and its ticket after it.
    fn comment_created(&self, comment: &Comment, ticket: &Ticket) -> prost_types::Any;
    /// A queue.
    fn queue(&self, queue: &Queue) -> prost_types::Any;
    /// An agent profile.
    fn agent(&self, agent: &Agent) -> prost_types::Any;
    /// A routing rule.
    fn routing_rule(&self, rule: &RoutingRule) -> prost_types::Any;
    /// A business calendar.
    fn calendar(&self, calendar: &BusinessCalendar) -> prost_types::Any;
    /// An SLA policy.
    fn policy(&self, policy: &SlaPolicy) -> prost_types::Any;
    /// A satisfaction survey (never its token).
    fn survey(&self, survey: &Survey) -> prost_types::Any;
    /// An SLA warning or breach of `metric`, fallen due at `due`.
    fn sla_alert(
        &self,
        ticket: &Ticket,
        metric: Metric,
        due: chrono::DateTime<chrono::Utc>,
    ) -> prost_types::Any;
    /// A knowledge-base article.
    fn article(&self, article: &Article) -> prost_types::Any;
    /// An article linked to a ticket.
    fn article_link(&self, link: &ArticleLink) -> prost_types::Any;
    /// A chat.
    fn chat(&self, chat: &Chat) -> prost_types::Any;
}

/// The id in a resource name (`tickets/{id}`), as an idempotency record holds it.
fn id_of(name: &str) -> uuid::Uuid {
    name.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

impl Store {
    /// INVALID_ARGUMENT naming `field` unless `name` is a live queue.
    pub async fn require_live_queue(
        &self,
        tenant: &crm_shared::db::Tenant,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        let found = self.get_queue(tenant, id_of(name)).await;
        live_reference(found.map(|q| q.delete_time.is_none()), name, field)
    }

    /// INVALID_ARGUMENT naming `field` unless `name` is a live calendar.
    pub(crate) async fn require_live_calendar(
        &self,
        tenant: &crm_shared::db::Tenant,
        name: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        let found = self.get_calendar(tenant, id_of(name)).await;
        live_reference(found.map(|c| c.delete_time.is_none()), name, field)
    }
}

/// What a reference to `name` in `field` comes to, given whether the
/// resource was found live: deleted or missing is the caller's mistake.
fn live_reference(
    found_live: Result<bool, ApiError>,
    name: &str,
    field: &str,
) -> Result<(), ApiError> {
    match found_live {
        Ok(true) => Ok(()),
        Ok(false) | Err(ApiError::NotFound(_)) => {
            Err(ApiError::invalid(field, format!("{name} does not exist")))
        }
        Err(other) => Err(other),
    }
}

/// A JSON text column's value.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain data with string keys always serialises.
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON text column read back; INTERNAL naming `what` when it is corrupt.
fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(format!("stored {what}: {e}")))
}

/// All queries of the support service.
#[derive(Clone)]
pub struct Store {
    base: Resources,
    payloads: Arc<dyn EventPayloads>,
    /// How long a satisfaction survey may be answered.
    survey_valid_for: chrono::Duration,
    /// Tells chat streams, on every replica, to look.
    chats: ChatHub,
}

impl Store {
    /// A store over the service's tables, encoding event payloads with
    /// `payloads`; surveys may be answered for `survey_valid_for`; chat
    /// changes are signalled through `chats`.
    pub fn new(
        base: Resources,
        payloads: Arc<dyn EventPayloads>,
        survey_valid_for: chrono::Duration,
        chats: ChatHub,
    ) -> Self {
        Self {
            base,
            payloads,
            survey_valid_for,
            chats,
        }
    }

    fn event(
        &self,
        name: &'static str,
        subject: String,
        payload: prost_types::Any,
        actor: &str,
    ) -> NewEvent {
        NewEvent {
            name,
            subject,
            payload,
            actor: actor.to_owned(),
        }
    }
}
