//! The transactional outbox and the `StreamEvents` change feed over it.
//!
//! A service appends each event in the same transaction as the change it
//! describes, so an event exists exactly when its change does. The feed serves
//! the outbox in sequence order, backlog first, then new events as they commit.
//!
//! A consumer resumes after the last sequence it applied, so an event must
//! never become visible with a sequence below one already served:
//! - SQLite has one writer at a time, so an AUTOINCREMENT sequence is in
//!   commit order.
//! - On PostgreSQL, concurrent writers commit in any order, and serialising
//!   them would cap throughput at one commit at a time. Instead an event's
//!   sequence is its transaction id shifted left by 20 bits plus its index in
//!   the transaction, and the feed serves only events whose transaction id is
//!   below the oldest transaction still running (the snapshot's xmin). Every
//!   transaction that could still commit has a larger id, so its events sort
//!   after everything served. Sequences are then increasing but not dense, and
//!   a long-running transaction anywhere on the server delays (never reorders)
//!   delivery until it ends.

use std::{pin::Pin, sync::Arc, time::Duration};

use chrono::Utc;
use crm_proto::events::{
    Event, StreamEventsRequest, StreamEventsResponse, event_feed_service_server::EventFeedService,
};
use futures_util::Stream;
use prost::Name;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::{Notify, mpsc, watch};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    auth::{self, Role},
    convert::to_timestamp,
    db::{Database, Tenant},
    error::ApiError,
};

/// The outbox table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One committed event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// The feed position, in commit order.
        #[sea_orm(primary_key)]
        pub sequence: i64,
        /// The event id (UUIDv7).
        #[sea_orm(unique)]
        pub id: String,
        /// The tenant of the subject.
        pub tenant: String,
        /// "crm.contacts.v1.ContactCreated" and the like.
        pub event_type: String,
        /// The resource name the event is about.
        pub subject: String,
        /// The type URL of the payload.
        pub payload_type: String,
        /// The encoded payload.
        pub payload: Vec<u8>,
        /// The W3C traceparent of the causing request.
        pub traceparent: String,
        /// Who caused it.
        pub actor: String,
        /// When.
        pub time: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event name without package, for example "ContactCreated".
    pub name: &'static str,
    /// The resource name it is about.
    pub subject: String,
    /// The payload message.
    pub payload: prost_types::Any,
    /// Who caused it.
    pub actor: String,
}

impl NewEvent {
    /// An event whose payload is `message`.
    pub fn new<M: Name>(name: &'static str, subject: String, message: &M, actor: &str) -> Self {
        Self {
            name,
            subject,
            payload: crate::convert::to_any(message),
            actor: actor.to_owned(),
        }
    }
}

/// Rewrites the payloads of the service's earlier events about `subjects`
/// with `scrub`, inside the caller's transaction (an erasure's): `scrub`
/// returns the payload without the person's data, or `None` for a payload
/// that holds none. Returns how many events were rewritten.
pub async fn scrub<C: ConnectionTrait>(
    txn: &C,
    tenant: &Tenant,
    subjects: &[String],
    scrub: impl Fn(&prost_types::Any) -> Option<prost_types::Any>,
) -> Result<i64, DbErr> {
    use entity::{Column, Entity};
    let mut scrubbed = 0;
    for chunk in subjects.chunks(500) {
        let rows = Entity::find()
            .filter(Column::Tenant.eq(tenant.as_str()))
            .filter(Column::Subject.is_in(chunk.to_vec()))
            .all(txn)
            .await?;
        for row in rows {
            let payload = prost_types::Any {
                type_url: row.payload_type,
                value: row.payload,
            };
            let Some(clean) = scrub(&payload) else {
                continue;
            };
            Entity::update_many()
                .col_expr(
                    Column::Payload,
                    sea_orm::sea_query::Expr::value(clean.value),
                )
                .filter(Column::Sequence.eq(row.sequence))
                .exec(txn)
                .await?;
            scrubbed += 1;
        }
    }
    Ok(scrubbed)
}

/// Bits of a PostgreSQL sequence below the transaction id: the most events
/// one transaction can append.
const EVENTS_PER_TRANSACTION_BITS: u32 = 20;

/// Appends events to the outbox inside the caller's transaction. `package` is
/// the service's proto package, for example "crm.contacts.v1".
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    tenant: &Tenant,
    package: &str,
    events: Vec<NewEvent>,
) -> Result<(), DbErr> {
    // One after another: on PostgreSQL each numbers its events after the
    // rows the ones before it wrote.
    for statement in append_statements(txn.get_database_backend(), tenant, package, events)? {
        txn.execute_raw(statement).await?;
    }
    Ok(())
}

/// The statements that append `events`, in order, to be run in the
/// caller's transaction. On PostgreSQL each numbers its events after the
/// transaction's earlier ones, so each must run after the one before it;
/// the first may run together with other writes (`db::execute_together`).
pub fn append_statements(
    backend: DbBackend,
    tenant: &Tenant,
    package: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<Statement>, DbErr> {
    if events.len() >= 1 << EVENTS_PER_TRANSACTION_BITS {
        return Err(DbErr::Custom("too many events in one transaction".into()));
    }
    let traceparent = crate::telemetry::current_traceparent().unwrap_or_default();
    let now = Utc::now();
    let rows: Vec<_> = events
        .into_iter()
        .map(|event| entity::ActiveModel {
            sequence: NotSet,
            id: Set(Uuid::now_v7().to_string()),
            tenant: Set(tenant.as_str().to_owned()),
            event_type: Set(format!("{package}.{}", event.name)),
            subject: Set(event.subject),
            payload_type: Set(event.payload.type_url),
            payload: Set(event.payload.value),
            traceparent: Set(traceparent.clone()),
            actor: Set(event.actor),
            time: Set(now),
        })
        .collect();
    // 2000 rows x 10 values stays far below either backend's limit on
    // bound values (PostgreSQL 65,535; SQLite 32,766).
    if backend != DbBackend::Postgres {
        return Ok(crate::db::insert_statements(backend, rows, 2000));
    }
    let mut rows = rows.into_iter().peekable();
    let mut statements = Vec::new();
    while rows.peek().is_some() {
        statements.push(numbered_insert(rows.by_ref().take(2000).collect()));
    }
    Ok(statements)
}

/// The PostgreSQL channel a transaction that appends events notifies; the
/// notification is delivered when (and only if) it commits, to every replica.
pub const COMMITS_CHANNEL: &str = "crm_outbox";

/// How long a follower waits without any notification before it looks again
/// anyway: a notification sent while a replica's listener was reconnecting is lost.
const SAFETY_NET: Duration = Duration::from_secs(10);
/// How soon a follower looks again when committed events are held back by an
/// older transaction still running (see the module docs).
const HELD_BACK_RETRY: Duration = Duration::from_millis(10);

/// On PostgreSQL: inserts events numbered after this transaction's earlier
/// ones, computing the numbers in the same statement (one round trip), which
/// also notifies [`COMMITS_CHANNEL`].
fn numbered_insert(rows: Vec<entity::ActiveModel>) -> Statement {
    use entity::Column as C;
    const COLUMNS: [C; 9] = [
        C::Id,
        C::Tenant,
        C::EventType,
        C::Subject,
        C::PayloadType,
        C::Payload,
        C::Traceparent,
        C::Actor,
        C::Time,
    ];
    let bits = EVENTS_PER_TRANSACTION_BITS;
    let mut values = Vec::new();
    let mut tuples = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let first = values.len();
        values.push(sea_orm::Value::BigInt(Some(index as i64)));
        for column in COLUMNS {
            values.push(
                row.get(column)
                    .into_value()
                    .unwrap_or(sea_orm::Value::String(None)),
            );
        }
        let placeholders: Vec<String> = (first + 1..=first + 1 + COLUMNS.len())
            .map(|n| format!("${n}"))
            .collect();
        tuples.push(format!("({})", placeholders.join(", ")));
    }
    let sql = format!(
        "WITH tx AS (SELECT pg_current_xact_id()::text::bigint << {bits} AS base), \
              next AS (SELECT tx.base + (SELECT COUNT(*) FROM outbox \
                  WHERE sequence >= tx.base AND sequence < tx.base + (1 << {bits})) AS first FROM tx) \
         INSERT INTO outbox (sequence, id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time) \
         SELECT next.first + v.i, v.id, v.tenant, v.event_type, v.subject, v.payload_type, v.payload, v.traceparent, v.actor, v.time \
         FROM next, (SELECT pg_notify('{COMMITS_CHANNEL}', '')) AS notified, \
              (VALUES {}) AS v(i, id, tenant, event_type, subject, payload_type, payload, traceparent, actor, time)",
        tuples.join(", ")
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// On PostgreSQL: the lowest sequence a transaction still running could
/// append; events below it are final.
async fn visibility_horizon<C: ConnectionTrait>(conn: &C) -> Result<i64, DbErr> {
    let sql = format!(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {bits} AS horizon",
        bits = EVENTS_PER_TRANSACTION_BITS
    );
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("no snapshot".into()))?;
    row.try_get("", "horizon")
}

/// Events read per query.
const PAGE_SIZE: u64 = 500;

/// Serves `StreamEvents` over one service's outbox.
#[derive(Clone)]
pub struct EventFeed {
    db: Database,
    source: &'static str,
    committed: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

/// Wakes the feed's followers after a commit; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct CommitSignal(Arc<Notify>);

impl CommitSignal {
    /// Tells followers that new events may have committed.
    pub fn notify(&self) {
        self.0.notify_waiters();
    }
}

/// On PostgreSQL, wakes this process's followers whenever any replica commits
/// events, and when the `LISTEN` connection (re)connects, for what it missed
/// (followers also look on their own every [`SAFETY_NET`]). On SQLite every
/// writer is in this process already.
pub fn forward_commit_notifications(
    db: &Database,
    signal: CommitSignal,
    stopping: watch::Receiver<bool>,
) {
    crate::notify::forward(db, COMMITS_CHANNEL, stopping, move |_| signal.notify());
}

impl EventFeed {
    /// A feed of `source`'s outbox; streams end when `shutdown` turns true.
    pub fn new(
        db: Database,
        source: &'static str,
        signal: &CommitSignal,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            db,
            source,
            committed: signal.0.clone(),
            shutdown,
        }
    }

    /// Events below this sequence are final (see the module docs).
    async fn horizon(&self) -> Result<i64, DbErr> {
        match self.db.backend() {
            DbBackend::Postgres => visibility_horizon(&self.db.conn).await,
            _ => Ok(i64::MAX),
        }
    }

    /// The highest sequence committed so far.
    async fn last_committed(&self) -> Result<i64, DbErr> {
        let last: Option<Option<i64>> = entity::Entity::find()
            .select_only()
            .column_as(entity::Column::Sequence.max(), "last")
            .into_tuple()
            .one(&self.db.conn)
            .await?;
        Ok(last.flatten().unwrap_or(0))
    }

    async fn page(
        &self,
        tenant: Option<&str>,
        types: &[String],
        after: i64,
        horizon: i64,
    ) -> Result<Vec<entity::Model>, DbErr> {
        let mut query = entity::Entity::find()
            .filter(entity::Column::Sequence.gt(after))
            .filter(entity::Column::Sequence.lt(horizon))
            .order_by_asc(entity::Column::Sequence)
            .limit(PAGE_SIZE);
        if let Some(tenant) = tenant {
            query = query.filter(entity::Column::Tenant.eq(tenant));
        }
        if !types.is_empty() {
            query = query.filter(entity::Column::EventType.is_in(types.to_vec()));
        }
        query.all(&self.db.conn).await
    }

    fn to_event(&self, row: entity::Model) -> Event {
        Event {
            id: row.id,
            sequence: row.sequence,
            r#type: row.event_type,
            source: self.source.to_owned(),
            subject: row.subject,
            tenant: row.tenant,
            time: Some(to_timestamp(row.time)),
            payload: Some(prost_types::Any {
                type_url: row.payload_type,
                value: row.payload,
            }),
            traceparent: row.traceparent,
            actor: row.actor,
        }
    }

    /// Committed events after `after` (a page at most), and whether more
    /// committed ones wait behind an older transaction still running: what a
    /// relay publishes (see [`crate::jetstream::relay`]).
    pub(crate) async fn committed_after(&self, after: i64) -> Result<(Vec<Event>, bool), DbErr> {
        let horizon = self.horizon().await?;
        let rows = self.page(None, &[], after, horizon).await?;
        let held_back =
            rows.is_empty() && horizon != i64::MAX && self.last_committed().await? >= horizon;
        Ok((
            rows.into_iter().map(|row| self.to_event(row)).collect(),
            held_back,
        ))
    }

    /// Woken after commits: create its `notified()` before reading, so a
    /// commit in between is not missed.
    pub(crate) fn commits(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// How long to wait for a commit notification before reading again:
    /// short while events are `held_back`, else the safety net.
    pub(crate) fn commit_wait(held_back: bool) -> Duration {
        if held_back {
            HELD_BACK_RETRY
        } else {
            SAFETY_NET
        }
    }

    async fn run(
        self,
        tenant: Option<String>,
        request: StreamEventsRequest,
        sender: mpsc::Sender<Result<StreamEventsResponse, Status>>,
    ) {
        let mut cursor = request.after_sequence;
        let mut remaining = u64::try_from(request.max_events).ok().filter(|n| *n > 0);
        let mut shutdown = self.shutdown.clone();
        let fail = |error: DbErr| Err(Status::from(ApiError::from(error)));
        // The backlog is everything committed before the request; on
        // PostgreSQL its last events may wait a moment for older transactions.
        let backlog_end = match self.last_committed().await {
            Ok(last) => last,
            Err(error) => {
                let _ = sender.send(fail(error)).await;
                return;
            }
        };
        loop {
            // Register interest before reading, so a commit between the read
            // and the wait is not missed.
            let committed = self.committed.notified();
            let read = async {
                let horizon = self.horizon().await?;
                let rows = self
                    .page(tenant.as_deref(), &request.types, cursor, horizon)
                    .await?;
                Ok::<_, DbErr>((horizon, rows))
            };
            let (horizon, rows) = match read.await {
                Ok(read) => read,
                Err(error) => {
                    let _ = sender.send(fail(error)).await;
                    return;
                }
            };
            let caught_up = rows.len() < PAGE_SIZE as usize;
            for row in rows {
                cursor = row.sequence;
                let event = self.to_event(row);
                if sender
                    .send(Ok(StreamEventsResponse { event: Some(event) }))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Some(n) = remaining.as_mut() {
                    *n -= 1;
                    if *n == 0 {
                        return;
                    }
                }
            }
            if !caught_up {
                continue;
            }
            if horizon <= backlog_end {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                    _ = shutdown.changed() => return,
                    _ = sender.closed() => return,
                }
            }
            if !request.follow || *shutdown.borrow() {
                return;
            }
            // Committed events beyond the horizon wait only for an older
            // transaction to end, which notifies nothing: look again shortly.
            // (Only PostgreSQL has a horizon; SQLite's is unbounded.)
            let held_back = if horizon == i64::MAX {
                Ok(false)
            } else {
                self.last_committed().await.map(|last| last >= horizon)
            };
            match held_back {
                Ok(true) => {
                    tokio::select! {
                        _ = tokio::time::sleep(HELD_BACK_RETRY) => continue,
                        _ = shutdown.changed() => return,
                        _ = sender.closed() => return,
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    let _ = sender.send(fail(error)).await;
                    return;
                }
            }
            // Commits in this process signal directly; other replicas' arrive
            // through LISTEN (see `forward_commit_notifications`).
            tokio::select! {
                _ = committed => {}
                _ = tokio::time::sleep(SAFETY_NET) => {}
                _ = shutdown.changed() => return,
                _ = sender.closed() => return,
            }
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

/// Who may read a service's event feed: a tenant's admins and managers their
/// tenant's events, the service identity every tenant's.
pub const FEED_ROLES: auth::RoleRules =
    &[("StreamEvents", &[Role::Admin, Role::Manager, Role::Service])];

#[tonic::async_trait]
impl EventFeedService for EventFeed {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        if request.after_sequence < 0 {
            return Err(ApiError::invalid("after_sequence", "must not be negative").into());
        }
        if principal.is_service() {
            // Another service resumes after what it has applied: its position
            // holds back the outbox's pruning (see `retention`).
            crate::retention::record_reader(&self.db, &principal.subject, request.after_sequence)
                .await
                .map_err(ApiError::from)?;
        }
        if request.max_events < 0 {
            return Err(ApiError::invalid("max_events", "must not be negative").into());
        }
        // Only the service identity reads across tenants.
        let tenant = (!principal.is_service()).then_some(principal.tenant);
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(self.clone().run(tenant, request, sender));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// The migration that creates the outbox; every producing service lists it.
pub mod migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Creates the `outbox` table.
    #[derive(DeriveMigrationName)]
    pub struct CreateOutbox;

    #[derive(DeriveIden)]
    enum Outbox {
        Table,
        Sequence,
        Id,
        Tenant,
        EventType,
        Subject,
        PayloadType,
        Payload,
        Traceparent,
        Actor,
        Time,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateOutbox {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            // SQLite numbers events itself; on PostgreSQL `append` does (see above).
            let sequence = match manager.get_database_backend() {
                sea_orm::DbBackend::Postgres => big_integer(Outbox::Sequence).primary_key().take(),
                _ => big_pk_auto(Outbox::Sequence),
            };
            manager
                .create_table(
                    Table::create()
                        .table(Outbox::Table)
                        .if_not_exists()
                        .col(sequence)
                        .col(string_uniq(Outbox::Id))
                        .col(string(Outbox::Tenant))
                        .col(string(Outbox::EventType))
                        .col(string(Outbox::Subject))
                        .col(string(Outbox::PayloadType))
                        .col(blob(Outbox::Payload))
                        .col(string(Outbox::Traceparent))
                        .col(string(Outbox::Actor))
                        .col(timestamp_with_time_zone(Outbox::Time))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("outbox_tenant_sequence")
                        .table(Outbox::Table)
                        .col(Outbox::Tenant)
                        .col(Outbox::Sequence)
                        .if_not_exists()
                        .to_owned(),
                )
                .await
        }
    }
}
