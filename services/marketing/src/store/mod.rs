//! The marketing database: SeaORM entities and every query, each scoped by
//! tenant (the sender's look for due campaigns across tenants is the one
//! exception, and it hands each campaign on with its tenant). Every change
//! writes its events to the outbox in the same transaction.

mod attribution;
mod campaigns;
mod engagement;
pub mod entities;
mod feed;
mod groups;
mod journeys;
mod ledger;
mod templates;

use std::sync::Arc;

use crm_shared::{
    db::Tenant,
    error::ApiError,
    idempotency::IdempotencyKey,
    outbox::NewEvent,
    store::{Claim, Resources},
};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait};

pub use attribution::Deal;
pub use campaigns::{FILTER as CAMPAIGN_FILTER, ORDER_BY as CAMPAIGN_ORDER};
pub use journeys::{Enrolled, JourneyCounts, RUNNER, StepRun};
pub use ledger::{Claimed, DueCampaign};

use crate::domain::{
    audience::{MailingList, Segment},
    campaign::Campaign,
    journey::{Enrollment, Journey},
    template::Template,
};

/// Encodes event payloads; implemented by the API layer, which knows the
/// protobuf messages, so the store does not.
pub trait EventPayloads: Send + Sync {
    /// A segment.
    fn segment(&self, segment: &Segment) -> prost_types::Any;
    /// A list.
    fn mailing_list(&self, list: &MailingList) -> prost_types::Any;
    /// A template.
    fn template(&self, template: &Template) -> prost_types::Any;
    /// A campaign (its counts as given).
    fn campaign(
        &self,
        campaign: &Campaign,
        counts: crate::domain::campaign::Counts,
    ) -> prost_types::Any;
    /// A message accepted by the mail server; `source` names the campaign
    /// or journey ([`MessageSource::name`]).
    fn email_sent(&self, source: &str, contact: &str, message_id: &str) -> prost_types::Any;
    /// A contact unsubscribed through a campaign's or journey's message.
    fn unsubscribed(&self, contact: &str, source: &str) -> prost_types::Any;
    /// An open, click, bounce or complaint (`detail`: the link, the relay's words).
    fn engagement(&self, source: &str, contact: &str, detail: &str) -> prost_types::Any;
    /// A journey (its counts as given).
    fn journey(&self, journey: &Journey, counts: JourneyCounts) -> prost_types::Any;
    /// An enrolment, with the steps it ran.
    fn enrollment(&self, enrollment: &Enrollment, history: &[StepRun]) -> prost_types::Any;
}

/// All queries of the marketing service.
#[derive(Clone)]
pub struct Store {
    base: Resources,
    payloads: Arc<dyn EventPayloads>,
}

/// What a create came to.
enum Created {
    /// A new row, committed.
    New,
    /// An earlier request with the same request id made this resource.
    Existing(String),
}

/// The id in a resource name (`segments/{id}`); nil when it has none.
pub(crate) fn id_of(name: &str) -> uuid::Uuid {
    name.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

impl Store {
    /// A store over the service's tables, encoding event payloads with `payloads`.
    pub fn new(base: Resources, payloads: Arc<dyn EventPayloads>) -> Self {
        Self { base, payloads }
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

    /// Inserts `row` (the resource `name`) with `event`, unless a request with
    /// the same id made a resource already: the create every resource shares.
    async fn create<A>(
        &self,
        tenant: &Tenant,
        method: &str,
        key: Option<&IdempotencyKey>,
        name: &str,
        row: A,
        event: NewEvent,
    ) -> Result<Created, ApiError>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
    {
        if let Some(existing) = self.base.replayed(tenant, method, key).await? {
            return Ok(Created::Existing(existing));
        }
        let txn = self.base.db.begin_write().await?;
        A::Entity::insert(row).exec(&*txn).await?;
        match self.base.claim(txn, tenant, method, key, name).await? {
            Claim::Won(txn) => {
                self.base.commit(txn, tenant, vec![event]).await?;
                Ok(Created::New)
            }
            Claim::Lost(existing) => Ok(Created::Existing(existing)),
        }
    }
}
