//! A consuming service for tests and benchmarks of the event transports:
//! built with the kit, it follows one source and records every event it
//! applies (tenant, sequence, whether it came after its tenant's earlier
//! events, when it committed at the source and when it was applied), so a
//! test can count effects and check their order.

use std::sync::Arc;

use crm_proto::events::Event;
use crm_shared::{
    config::Settings,
    consumer::{EffectError, EventHandler},
    db::WriteTxn,
    kit::{KitError, ServiceInfo, ServiceKit},
    outbox::NewEvent,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager, prelude::*};

use crate::process::{Launch, service};

/// A service's shared tables (outbox, consumers) plus `applied`.
pub struct RecorderMigrator;

impl MigratorTrait for RecorderMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crm_shared::outbox::migration::CreateOutbox),
            Box::new(crm_shared::idempotency::migration::CreateIdempotencyKeys),
            Box::new(crm_shared::idempotency::fingerprint_migration::AddIdempotencyFingerprint),
            Box::new(crm_shared::retention::migration::CreateFeedReaders),
            Box::new(crm_shared::audit::migration::CreateAuditLog),
            Box::new(crm_shared::consumer::tables::migration::CreateConsumerTables),
            Box::new(crm_shared::consumer::tables::migration::AddPartitionedConsumers),
            Box::new(CreateApplied),
        ]
    }
}

#[derive(DeriveMigrationName)]
struct CreateApplied;

#[async_trait::async_trait]
impl MigrationTrait for CreateApplied {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE applied (event_id VARCHAR(64) PRIMARY KEY, tenant VARCHAR(64) NOT NULL, \
                 sequence BIGINT NOT NULL, in_order INTEGER NOT NULL, \
                 committed_ms BIGINT NOT NULL, applied_ms BIGINT NOT NULL)",
            )
            .await?;
        Ok(())
    }
}

/// Records each event it applies, and whether it came after every event of
/// its tenant applied before.
pub struct Recorder {
    types: Vec<String>,
}

impl Recorder {
    /// A recorder of events of `types`.
    pub fn of(types: &[&str]) -> Self {
        Self {
            types: types.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

#[tonic::async_trait]
impl EventHandler for Recorder {
    fn event_types(&self) -> Vec<String> {
        self.types.clone()
    }

    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError> {
        let backend: DbBackend = txn.get_database_backend();
        let last = txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                "SELECT MAX(sequence) AS last FROM applied WHERE tenant = $1",
                vec![Value::from(event.tenant.as_str())],
            ))
            .await?
            .and_then(|row| row.try_get::<Option<i64>>("", "last").ok().flatten());
        let in_order = last.is_none_or(|last| last < event.sequence);
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO applied (event_id, tenant, sequence, in_order, committed_ms, applied_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Value::from(event.id.as_str()),
                Value::from(event.tenant.as_str()),
                Value::from(event.sequence),
                Value::from(i32::from(in_order)),
                Value::from(committed_ms(event)),
                Value::from(chrono::Utc::now().timestamp_millis()),
            ],
        ))
        .await?;
        Ok(Vec::new())
    }
}

/// When `event` committed at its source, in Unix milliseconds.
fn committed_ms(event: &Event) -> i64 {
    event
        .time
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

static RECORDER: ServiceInfo = ServiceInfo {
    name: "recorder",
    package: "crm.recorder.v1",
    default_port: 0,
};

/// The recorder service following `source` for events of `types`.
pub fn recorder(source: &'static str, types: &'static [&'static str]) -> Launch {
    service(move |settings: Settings| async move {
        let mut kit: ServiceKit<RecorderMigrator> = ServiceKit::build(&RECORDER, settings).await?;
        kit.follow(source, Arc::new(Recorder::of(types)))?;
        Ok::<_, KitError>(kit)
    })
}
