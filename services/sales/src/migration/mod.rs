//! The sales schema, one step per change; steps are only ever appended.

use sea_orm_migration::prelude::*;

mod m0001_create_tables;
mod m0002_conversion_contact_reused;
mod m0003_shared_consumer;
mod m0004_forecast_sums;

/// Every migration of the sales database, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crm_shared::outbox::migration::CreateOutbox),
            Box::new(crm_shared::idempotency::migration::CreateIdempotencyKeys),
            Box::new(m0001_create_tables::Migration),
            Box::new(crm_shared::consumer::tables::migration::CreateConsumerTables),
            Box::new(m0003_shared_consumer::Migration),
            Box::new(m0002_conversion_contact_reused::Migration),
            Box::new(crm_shared::idempotency::fingerprint_migration::AddIdempotencyFingerprint),
            Box::new(crm_shared::retention::migration::CreateFeedReaders),
            Box::new(crm_shared::audit::migration::CreateAuditLog),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
            Box::new(m0004_forecast_sums::Migration),
        ]
    }
}
