//! The marketing schema, one step per change; steps are only ever appended.

use sea_orm_migration::prelude::*;

mod m0001_create_tables;
mod m0002_ab_tests_and_attribution;
mod m0003_journeys;

/// Every migration of the marketing database, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crm_shared::outbox::migration::CreateOutbox),
            Box::new(crm_shared::idempotency::migration::CreateIdempotencyKeys),
            Box::new(crm_shared::idempotency::fingerprint_migration::AddIdempotencyFingerprint),
            Box::new(crm_shared::retention::migration::CreateFeedReaders),
            Box::new(crm_shared::audit::migration::CreateAuditLog),
            Box::new(crm_shared::consumer::tables::migration::CreateConsumerTables),
            Box::new(m0001_create_tables::Migration),
            Box::new(m0002_ab_tests_and_attribution::Migration),
            Box::new(m0003_journeys::Migration),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
        ]
    }
}
