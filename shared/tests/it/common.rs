//! What the tests share: a service's database with its outbox and
//! consumer tables, written to and read directly.

use std::time::Duration;

use crm_shared::{
    db::{Database, Tenant},
    outbox::{CommitSignal, NewEvent},
    store::Resources,
};
use crm_testkit::{Backend, TestDatabase, recorder::RecorderMigrator};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};

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
        db.migrate::<RecorderMigrator>().await.expect("migrates");
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
