//! The three tables a consuming service keeps for its consumers, in its own
//! database: where each consumer stands, which replica holds its lease, and
//! the events it parked.

/// How far a consumer has applied its source's feed.
pub mod cursor {
    use sea_orm::entity::prelude::*;

    /// One consumer's position.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "consumer_cursors")]
    pub struct Model {
        /// The consumer, named after its source ("contacts").
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The sequence of the last event applied or parked.
        pub sequence: i64,
        /// When the position last moved.
        pub update_time: DateTimeUtc,
        /// How long after its commit at the source the last event was applied.
        pub lag_ms: i64,
        /// On JetStream, the stream sequence of the last event applied (0
        /// for the built-in feed): where this partition's reader resumes.
        pub stream_sequence: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which replica may apply a consumer's events, and until when.
pub mod lease {
    use sea_orm::entity::prelude::*;

    /// One consumer's lease.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consumer_leases")]
    pub struct Model {
        /// The consumer.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The replica holding it.
        pub holder: String,
        /// When it runs out unless renewed, in Unix milliseconds (an integer,
        /// so compare-and-set compares exactly on both backends).
        pub expire_ms: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The replicas sharing a consumer's JetStream partitions, each alive while
/// it renews its row.
pub mod member {
    use sea_orm::entity::prelude::*;

    /// One replica of one consumer.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consumer_members")]
    pub struct Model {
        /// The consumer.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The replica.
        #[sea_orm(primary_key, auto_increment = false)]
        pub member: String,
        /// When it counts as gone unless renewed, in Unix milliseconds.
        pub expire_ms: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How many partitions a JetStream consumer's tenants are split into, fixed
/// when it first runs.
pub mod partitioning {
    use sea_orm::entity::prelude::*;

    /// One consumer's partition count.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consumer_partitionings")]
    pub struct Model {
        /// The consumer.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// Its partition count.
        pub partitions: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Events a consumer could not apply.
pub mod parked {
    use sea_orm::entity::prelude::*;

    /// One parked event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "parked_events")]
    pub struct Model {
        /// The consumer that parked it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The event's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        /// The event's tenant: admins see their own tenant's.
        pub tenant: String,
        /// The event's sequence in its feed.
        pub sequence: i64,
        /// The event's type.
        pub event_type: String,
        /// The whole `crm.events.v1.Event`, encoded.
        pub event: Vec<u8>,
        /// The last error.
        pub error: String,
        /// Tries so far.
        pub attempts: i32,
        /// When it was parked.
        pub park_time: DateTimeUtc,
        /// When it was last tried.
        pub last_attempt_time: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migration that creates the three tables; every consuming service
/// lists it.
pub mod migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Creates `consumer_cursors`, `consumer_leases` and `parked_events`.
    #[derive(DeriveMigrationName)]
    pub struct CreateConsumerTables;

    #[derive(DeriveIden)]
    enum ConsumerCursors {
        Table,
        Consumer,
        Sequence,
        UpdateTime,
        LagMs,
        StreamSequence,
    }

    /// Adds what partitioned JetStream consumers keep: the stream sequence
    /// in each cursor, the `consumer_members` table and each consumer's
    /// partition count (`consumer_partitionings`).
    pub struct AddPartitionedConsumers;

    // Named by hand: the derive names a migration after its file, and this
    // file already holds the one that creates the tables.
    impl MigrationName for AddPartitionedConsumers {
        fn name(&self) -> &str {
            "consumer_partitions"
        }
    }

    #[derive(DeriveIden)]
    enum ConsumerMembers {
        Table,
        Consumer,
        Member,
        ExpireMs,
    }

    #[derive(DeriveIden)]
    enum ConsumerPartitionings {
        Table,
        Consumer,
        Partitions,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddPartitionedConsumers {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .alter_table(
                    Table::alter()
                        .table(ConsumerCursors::Table)
                        .add_column(big_integer(ConsumerCursors::StreamSequence).default(0))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ConsumerMembers::Table)
                        .if_not_exists()
                        .col(string(ConsumerMembers::Consumer))
                        .col(string(ConsumerMembers::Member))
                        .col(big_integer(ConsumerMembers::ExpireMs))
                        .primary_key(
                            Index::create()
                                .col(ConsumerMembers::Consumer)
                                .col(ConsumerMembers::Member),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ConsumerPartitionings::Table)
                        .if_not_exists()
                        .col(string(ConsumerPartitionings::Consumer).primary_key())
                        .col(integer(ConsumerPartitionings::Partitions))
                        .to_owned(),
                )
                .await
        }
    }

    #[derive(DeriveIden)]
    enum ConsumerLeases {
        Table,
        Consumer,
        Holder,
        ExpireMs,
    }

    #[derive(DeriveIden)]
    enum ParkedEvents {
        Table,
        Consumer,
        EventId,
        Tenant,
        Sequence,
        EventType,
        Event,
        Error,
        Attempts,
        ParkTime,
        LastAttemptTime,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateConsumerTables {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(ConsumerCursors::Table)
                        .if_not_exists()
                        .col(string(ConsumerCursors::Consumer).primary_key())
                        .col(big_integer(ConsumerCursors::Sequence))
                        .col(timestamp_with_time_zone(ConsumerCursors::UpdateTime))
                        .col(big_integer(ConsumerCursors::LagMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ConsumerLeases::Table)
                        .if_not_exists()
                        .col(string(ConsumerLeases::Consumer).primary_key())
                        .col(string(ConsumerLeases::Holder))
                        .col(big_integer(ConsumerLeases::ExpireMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ParkedEvents::Table)
                        .if_not_exists()
                        .col(string(ParkedEvents::Consumer))
                        .col(string(ParkedEvents::EventId))
                        .col(string(ParkedEvents::Tenant))
                        .col(big_integer(ParkedEvents::Sequence))
                        .col(string(ParkedEvents::EventType))
                        .col(blob(ParkedEvents::Event))
                        .col(text(ParkedEvents::Error))
                        .col(integer(ParkedEvents::Attempts))
                        .col(timestamp_with_time_zone(ParkedEvents::ParkTime))
                        .col(timestamp_with_time_zone(ParkedEvents::LastAttemptTime))
                        .primary_key(
                            Index::create()
                                .col(ParkedEvents::Consumer)
                                .col(ParkedEvents::EventId),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("parked_events_tenant_time")
                        .table(ParkedEvents::Table)
                        .col(ParkedEvents::Tenant)
                        .col(ParkedEvents::ParkTime)
                        .if_not_exists()
                        .to_owned(),
                )
                .await
        }
    }
}
