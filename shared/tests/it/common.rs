//! What the tests share: the tables of a producing and a consuming
//! service, and a consumer that records what it applies.

use std::time::Duration;

use crm_proto::events::Event;
use crm_shared::{
    consumer::{EffectError, EventHandler},
    db::{Database, Tenant, WriteTxn},
    outbox::{CommitSignal, NewEvent},
    store::Resources,
};
use crm_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement, Value};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager, prelude::*};

/// The producing and the consuming service's tables, plus what the test
/// consumer records.
pub struct TestMigrator;

impl MigratorTrait for TestMigrator {
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
                 sequence BIGINT NOT NULL, in_order INTEGER NOT NULL)",
            )
            .await?;
        Ok(())
    }
}

/// One service's database.
pub struct Side {
    pub resources: Resources,
    pub signal: CommitSignal,
    pub _database: TestDatabase,
}

impl Side {
    pub async fn create(backend: Backend) -> Option<Self> {
        let database = TestDatabase::create(backend).await?;
        let db = Database::connect(&database.url, 8).await.expect("connects");
        db.migrate::<TestMigrator>().await.expect("migrates");
        let signal = CommitSignal::default();
        Some(Self {
            resources: Resources::new(db, signal.clone(), "crm.test.v1", Duration::from_secs(3600)),
            signal,
            _database: database,
        })
    }

    pub fn db(&self) -> &Database {
        &self.resources.db
    }

    /// Commits `count` events, one per transaction, round-robin over `tenants`.
    pub async fn write(&self, tenants: &[String], first: usize, count: usize) {
        for i in first..first + count {
            let tenant = Tenant::new(tenants[i % tenants.len()].clone());
            let txn = self.db().begin_write().await.expect("a transaction");
            let event = NewEvent {
                name: "Thing",
                subject: format!("things/{i}"),
                payload: prost_types::Any {
                    type_url: "type.googleapis.com/google.protobuf.Empty".into(),
                    value: Vec::new(),
                },
                actor: "tester".into(),
            };
            self.resources
                .commit(txn, &tenant, vec![event])
                .await
                .expect("commits");
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    pub async fn outbox_sequences(&self) -> Vec<i64> {
        use crm_shared::outbox::entity;
        entity::Entity::find()
            .order_by_asc(entity::Column::Sequence)
            .all(&self.db().conn)
            .await
            .expect("reads the outbox")
            .into_iter()
            .map(|row| row.sequence)
            .collect()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db()
            .conn
            .query_one_raw(Statement::from_string(self.db().backend(), sql))
            .await
            .expect("counts")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    /// (holder, expired?) of each partition lease of consumer "test".
    pub async fn partition_holders(&self) -> Vec<(String, String, bool)> {
        let now = chrono::Utc::now().timestamp_millis();
        let rows = self
            .db()
            .conn
            .query_all_raw(Statement::from_string(
                self.db().backend(),
                "SELECT consumer, holder, expire_ms FROM consumer_leases WHERE consumer LIKE 'test/%'",
            ))
            .await
            .expect("reads the leases");
        rows.into_iter()
            .map(|row| {
                let consumer: String = row.try_get("", "consumer").expect("consumer");
                let holder: String = row.try_get("", "holder").expect("holder");
                let expire: i64 = row.try_get("", "expire_ms").expect("expire_ms");
                (consumer, holder, expire > now)
            })
            .collect()
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
            "INSERT INTO applied (event_id, tenant, sequence, in_order) VALUES ($1, $2, $3, $4)",
            vec![
                Value::from(event.id.as_str()),
                Value::from(event.tenant.as_str()),
                Value::from(event.sequence),
                Value::from(i32::from(in_order)),
            ],
        ))
        .await?;
        Ok(Vec::new())
    }
}
