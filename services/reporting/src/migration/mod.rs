//! The reporting schema, one step per change; steps are only ever appended.

use sea_orm_migration::prelude::*;

mod m0001_read_model;
mod m0002_reports;
mod m0003_forecast_snapshots;
mod m0004_first_win_index;
mod m0005_fact_totals;

/// Every migration of the reporting database, in order.
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
            Box::new(m0001_read_model::Migration),
            Box::new(m0002_reports::Migration),
            Box::new(m0003_forecast_snapshots::Migration),
            Box::new(m0004_first_win_index::Migration),
            Box::new(m0005_fact_totals::Migration),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
        ]
    }
}
