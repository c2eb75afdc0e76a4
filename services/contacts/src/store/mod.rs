//! The contacts database: SeaORM entities and every query, each scoped by
//! tenant through [`TenantScoped::find_in`] or an explicit tenant filter.
//! Every change writes its events to the outbox in the same transaction.

mod activities;
mod companies;
mod contacts;
pub mod entities;
mod search;

use std::sync::Arc;

use crm_shared::{db::Database, outbox::NewEvent, statistics::Statistics, store::Resources};

pub use activities::{FILTER as ACTIVITY_FILTER, ORDER_BY as ACTIVITY_ORDER};
pub use companies::{FILTER as COMPANY_FILTER, ORDER_BY as COMPANY_ORDER};
pub use contacts::{FILTER as CONTACT_FILTER, ImportOutcome, ImportRow, ORDER_BY as CONTACT_ORDER};
pub use search::search_statement;

use crate::domain::{Activity, Company, Contact, Erasure};

/// Encodes event payloads; implemented by the API layer, which knows the
/// protobuf messages, so the store does not.
pub trait EventPayloads: Send + Sync {
    /// A contact as it is after a change.
    fn contact(&self, contact: &Contact) -> prost_types::Any;
    /// A company after a change.
    fn company(&self, company: &Company) -> prost_types::Any;
    /// An activity after a change.
    fn activity(&self, activity: &Activity) -> prost_types::Any;
    /// A merge.
    fn merged(&self, survivor: &str, merged: &[String]) -> prost_types::Any;
    /// An erasure: the contacts erased and fingerprints of their addresses.
    fn erased(&self, erasure: &Erasure) -> prost_types::Any;
}

/// The tables whose statistics bulk imports make stale.
const ANALYSED_TABLES: &[&str] = &[
    "contacts",
    "contact_keys",
    "outbox",
    "audit_log",
    "audit_state",
];

/// All queries of the contacts service.
#[derive(Clone)]
pub struct Store {
    db: Database,
    base: Resources,
    payloads: Arc<dyn EventPayloads>,
    statistics: Arc<Statistics>,
}

impl Store {
    /// A store over the service's tables, encoding event payloads with `payloads`.
    pub fn new(base: Resources, payloads: Arc<dyn EventPayloads>) -> Self {
        Self {
            db: base.db.clone(),
            statistics: Statistics::start(&base.db, ANALYSED_TABLES),
            base,
            payloads,
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
