//! The reporting database: the read model's tables and every query on them,
//! each scoped by generation and tenant. Effects of events write here in the
//! consumer's transaction; the API reads.

pub mod entities;
mod erasure;
mod facts;
mod forecasts;
mod kpis;
mod reports;
mod resources;
mod sql;
mod state;
mod view;

use crm_shared::store::Resources;

pub use resources::ContactChange;
pub use view::{CustomerData, ErasureRecord, TimelineCursor};

/// Where a read or write of the read model applies: a generation (the live
/// one, or the one a rebuild is writing) and a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The generation.
    pub generation: i64,
    /// The tenant.
    pub tenant: String,
}

/// All queries of the reporting service.
#[derive(Clone)]
pub struct Store {
    base: Resources,
}

impl Store {
    /// The store over the service's database.
    pub fn new(base: Resources) -> Self {
        Self { base }
    }

    /// The service's database with its outbox.
    pub fn resources(&self) -> &Resources {
        &self.base
    }
}
