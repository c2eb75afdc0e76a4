//! The support schema, one step per change; steps are only ever appended.

use sea_orm_migration::prelude::*;

mod m0001_create_tables;
mod m0002_sla;
mod m0003_satisfaction;
mod m0004_knowledge_base;
mod m0005_chats;
mod m0006_company_tier;

/// Every migration of the support database, in order.
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
            Box::new(m0002_sla::Migration),
            Box::new(m0003_satisfaction::Migration),
            Box::new(m0004_knowledge_base::Migration),
            Box::new(m0005_chats::Migration),
            Box::new(m0006_company_tier::Migration),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
        ]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn articles_are_indexed_in_every_configuration_the_domain_picks() {
        assert_eq!(
            crate::domain::article::SEARCH_CONFIGS,
            super::m0004_knowledge_base::SEARCH_CONFIGS
        );
    }
}
