//! The sales database: SeaORM entities and every query, each scoped by
//! tenant. Every change writes its events to the outbox in the same
//! transaction; what the contacts feed asks of sales is applied together with
//! the feed cursor, in one transaction.

pub mod entities;
mod feed;
mod leads;
mod opportunities;
mod pipelines;
mod products;
mod rules;
mod tasks;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crm_shared::{
    db::{Database, Tenant},
    outbox::NewEvent,
    store::Resources,
};

pub use leads::{FILTER as LEAD_FILTER, ORDER_BY as LEAD_ORDER};
pub use opportunities::{FILTER as OPPORTUNITY_FILTER, ORDER_BY as OPPORTUNITY_ORDER};
pub use products::{FILTER as PRODUCT_FILTER, ORDER_BY as PRODUCT_ORDER};
pub use rules::ScoringRule;
pub use tasks::{FILTER as TASK_FILTER, ORDER_BY as TASK_ORDER};

use crate::domain::{
    assignment::Rule, lead::Lead, opportunity::Opportunity, pipeline::Pipeline, product::Product,
    scoring::Model, task::Task,
};

/// How long a tenant's trained conversion model is reused before retraining.
const MODEL_TTL: Duration = Duration::from_secs(600);

/// Encodes event payloads; implemented by the API layer, which knows the
/// protobuf messages, so the store does not.
pub trait EventPayloads: Send + Sync {
    /// A lead after a change.
    fn lead(&self, lead: &Lead) -> prost_types::Any;
    /// A conversion.
    fn lead_converted(&self, lead: &Lead) -> prost_types::Any;
    /// An opportunity after a change.
    fn opportunity(&self, opportunity: &Opportunity) -> prost_types::Any;
    /// A stage move.
    fn stage_changed(&self, opportunity: &Opportunity, from: &str) -> prost_types::Any;
    /// A pipeline.
    fn pipeline(&self, pipeline: &Pipeline) -> prost_types::Any;
    /// A product.
    fn product(&self, product: &Product) -> prost_types::Any;
    /// A task.
    fn task(&self, task: &Task) -> prost_types::Any;
    /// An assignment rule.
    fn assignment_rule(&self, rule: &Rule) -> prost_types::Any;
    /// A scoring rule.
    fn scoring_rule(&self, rule: &ScoringRule) -> prost_types::Any;
}

/// A tenant's model (none when it lacks closed leads) and when it was trained.
type TrainedModel = (Instant, Option<Model>);

/// The id in a resource name (`leads/{id}`), as an idempotency record holds it.
fn id_of(name: &str) -> uuid::Uuid {
    name.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

/// All queries of the sales service.
#[derive(Clone)]
pub struct Store {
    db: Database,
    base: Resources,
    payloads: Arc<dyn EventPayloads>,
    /// Each tenant's conversion model, and when it was trained.
    models: Arc<Mutex<HashMap<String, TrainedModel>>>,
}

impl Store {
    /// A store over the service's tables, encoding event payloads with `payloads`.
    pub fn new(base: Resources, payloads: Arc<dyn EventPayloads>) -> Self {
        Self {
            db: base.db.clone(),
            base,
            payloads,
            models: Arc::default(),
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

    fn cached_model(&self, tenant: &Tenant) -> Option<Option<Model>> {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models
            .get(tenant.as_str())
            .filter(|(at, _)| at.elapsed() < MODEL_TTL)
            .map(|(_, model)| model.clone())
    }

    fn cache_model(&self, tenant: &Tenant, model: Option<Model>) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models.insert(tenant.as_str().to_owned(), (Instant::now(), model));
    }
}
