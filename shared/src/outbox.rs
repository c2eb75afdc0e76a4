//! The transactional outbox and the `StreamEvents` change feed over it.
//!
//! A service appends each event in the same transaction as the change it
//! describes, so an event exists exactly when its change does. The feed serves
//! the outbox in sequence order, backlog first, then new events as they commit.
//!
//! Sequence order must equal commit order, or a consumer that saw event 10
//! could later miss event 9 committing late. SQLite has one writer at a time;
//! on PostgreSQL, [`append`] takes a transaction-scoped advisory lock, so the
//! tails of writing transactions (from their first event to their commit)
//! run one at a time.

use std::{pin::Pin, sync::Arc, time::Duration};

use chrono::Utc;
use crm_proto::events::{
    Event, StreamEventsRequest, StreamEventsResponse, event_feed_service_server::EventFeedService,
};
use futures_util::Stream;
use prost::Name;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
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
            payload: prost_types::Any {
                type_url: M::type_url(),
                value: message.encode_to_vec(),
            },
            actor: actor.to_owned(),
        }
    }
}

const FEED_LOCK_KEY: i64 = 0x0C0F_FEED;

/// Appends events to the outbox inside the caller's transaction. `package` is
/// the service's proto package, for example "crm.contacts.v1".
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    tenant: &Tenant,
    package: &str,
    events: Vec<NewEvent>,
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [FEED_LOCK_KEY.into()],
        ))
        .await?;
    }
    let traceparent = crate::telemetry::current_traceparent().unwrap_or_default();
    let now = Utc::now();
    let rows = events.into_iter().map(|event| entity::ActiveModel {
        id: Set(Uuid::now_v7().to_string()),
        tenant: Set(tenant.as_str().to_owned()),
        event_type: Set(format!("{package}.{}", event.name)),
        subject: Set(event.subject),
        payload_type: Set(event.payload.type_url),
        payload: Set(event.payload.value),
        traceparent: Set(traceparent.clone()),
        actor: Set(event.actor),
        time: Set(now),
        ..Default::default()
    });
    // Chunked: SQLite allows at most 32766 bound parameters per statement.
    let rows: Vec<_> = rows.collect();
    for chunk in rows.chunks(2000) {
        entity::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

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

    async fn page(
        &self,
        tenant: Option<&str>,
        types: &[String],
        after: i64,
    ) -> Result<Vec<entity::Model>, DbErr> {
        let mut query = entity::Entity::find()
            .filter(entity::Column::Sequence.gt(after))
            .order_by_asc(entity::Column::Sequence)
            .limit(500);
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

    async fn run(
        self,
        tenant: Option<String>,
        request: StreamEventsRequest,
        sender: mpsc::Sender<Result<StreamEventsResponse, Status>>,
    ) {
        let mut cursor = request.after_sequence;
        let mut remaining = u64::try_from(request.max_events).ok().filter(|n| *n > 0);
        let mut shutdown = self.shutdown.clone();
        loop {
            // Register interest before reading, so a commit between the read
            // and the wait is not missed.
            let committed = self.committed.notified();
            let rows = match self.page(tenant.as_deref(), &request.types, cursor).await {
                Ok(rows) => rows,
                Err(error) => {
                    let _ = sender.send(Err(ApiError::from(error).into())).await;
                    return;
                }
            };
            let caught_up = rows.len() < 500;
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
            if !request.follow || *shutdown.borrow() {
                return;
            }
            // Other replicas' commits do not notify this process: poll as well.
            tokio::select! {
                _ = committed => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
                _ = sender.closed() => return,
            }
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventFeedService for EventFeed {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let principal = auth::principal(&request)?;
        principal.require(&[Role::Admin, Role::Manager, Role::Service])?;
        let request = request.into_inner();
        if request.after_sequence < 0 {
            return Err(ApiError::invalid("after_sequence", "must not be negative").into());
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
            manager
                .create_table(
                    Table::create()
                        .table(Outbox::Table)
                        .if_not_exists()
                        .col(big_pk_auto(Outbox::Sequence))
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
