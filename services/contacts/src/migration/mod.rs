//! The contacts schema, one step per file-sized change; steps only ever get
//! appended, so a database at any earlier step migrates forward.

use sea_orm_migration::prelude::*;

mod m0001_create_tables;
mod m0002_company_tier;
mod m0003_indexes_at_scale;
pub(crate) mod m0004_search_tokens;

/// Every migration of the contacts database, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crm_shared::outbox::migration::CreateOutbox),
            Box::new(crm_shared::idempotency::migration::CreateIdempotencyKeys),
            Box::new(m0001_create_tables::Migration),
            Box::new(crm_shared::idempotency::fingerprint_migration::AddIdempotencyFingerprint),
            Box::new(crm_shared::retention::migration::CreateFeedReaders),
            Box::new(crm_shared::audit::migration::CreateAuditLog),
            Box::new(m0002_company_tier::Migration),
            // The relay's lease (JetStream) lives in the consumers' lease table.
            Box::new(crm_shared::consumer::tables::migration::CreateConsumerTables),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
            Box::new(m0003_indexes_at_scale::Migration),
            Box::new(m0004_search_tokens::Migration),
        ]
    }
}
