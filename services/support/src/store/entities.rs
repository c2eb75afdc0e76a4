//! SeaORM entities: one module per table. Lists (tags, members, skills,
//! attachments) are JSON text columns; everything a filter, an order or an
//! index needs is a column of its own.

/// Implements the kit's table traits for an entity with the usual columns.
macro_rules! resource_table {
    ($id:ident, $order:ident) => {
        impl crm_shared::db::TenantScoped for Entity {
            const TENANT: Column = Column::Tenant;
        }

        impl crm_shared::store::ResourceTable for Entity {
            const ID: Column = Column::$id;
            const DELETE_TIME: Column = Column::DeleteTime;
            const VERSION: Column = Column::Version;
            const DEFAULT_ORDER: Column = Column::$order;
        }
    };
}

/// The `tickets` table.
pub mod ticket {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub number: i64,
        pub subject: String,
        pub description: String,
        pub requester: String,
        pub requester_email: String,
        pub company: String,
        pub channel: String,
        pub priority: String,
        /// The priority's rank (LOW 1 .. URGENT 4), so lists order by urgency.
        pub priority_rank: i32,
        pub kind: String,
        pub tags: String,
        pub custom_fields: String,
        pub status: String,
        pub queue: String,
        pub assignee: String,
        pub assignment_reason: String,
        pub follow_up_of: String,
        pub company_tier: String,
        pub first_response_time: Option<DateTimeUtc>,
        pub solve_time: Option<DateTimeUtc>,
        pub close_time: Option<DateTimeUtc>,
        pub reopen_count: i32,
        /// `slaPolicies/{id}` or empty.
        pub sla_policy: String,
        /// The clocks as of the last change or check (JSON).
        pub sla_clocks: String,
        /// Alerts already raised, by clock run (JSON).
        pub sla_recorded: String,
        /// When the scheduler looks at the ticket next.
        pub sla_next_check: Option<DateTimeUtc>,
        /// A requester's reply still waiting for an agent's.
        pub awaiting_reply_since: Option<DateTimeUtc>,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `ticket_changes` table: status, priority, queue and assignee history.
pub mod ticket_change {
    use sea_orm::entity::prelude::*;

    /// One change.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ticket_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub ticket_id: String,
        pub field: String,
        pub old_value: String,
        pub new_value: String,
        pub actor: String,
        pub change_time: DateTimeUtc,
        /// Never set: changes are not deleted (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, ChangeTime);
}

/// The `ticket_messages` table: the Message-IDs of a ticket's mail, so a
/// reply's In-Reply-To or References finds its ticket.
pub mod ticket_message {
    use sea_orm::entity::prelude::*;

    /// One Message-ID.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ticket_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub ticket_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `comments` table.
pub mod comment {
    use sea_orm::entity::prelude::*;

    /// One comment.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "comments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub ticket_id: String,
        pub body: String,
        pub public: bool,
        pub author_kind: String,
        pub author: String,
        pub attachments: String,
        pub message_id: String,
        pub create_time: DateTimeUtc,
        /// Never set (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `queues` table.
pub mod queue {
    use sea_orm::entity::prelude::*;

    /// One queue.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "queues")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub description: String,
        pub members: String,
        pub strategy: String,
        pub required_skills: String,
        /// Tickets the round robin has assigned: whose turn it is.
        pub assigned: i64,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `agents` table: routing profiles, keyed by subject id.
pub mod agent {
    use sea_orm::entity::prelude::*;

    /// One agent.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        pub display_name: String,
        pub skills: String,
        pub available: bool,
        pub update_time: DateTimeUtc,
        /// Never set (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Subject, Subject);
}

/// The `routing_rules` table.
pub mod routing_rule {
    use sea_orm::entity::prelude::*;

    /// One rule.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "routing_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub priority: i32,
        pub filter: String,
        pub queue: String,
        pub set_priority: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, Priority);
}

/// The `business_calendars` table.
pub mod business_calendar {
    use sea_orm::entity::prelude::*;

    /// One calendar.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "business_calendars")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub time_zone: String,
        pub weekly_hours: String,
        pub holidays: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `sla_policies` table.
pub mod sla_policy {
    use sea_orm::entity::prelude::*;

    /// One policy.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sla_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub priority: i32,
        pub filter: String,
        pub first_response_minutes: i32,
        pub next_response_minutes: i32,
        pub resolution_minutes: i32,
        pub calendar: String,
        pub warn_at_percent: i32,
        pub escalate_priority: String,
        pub escalate_queue: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, Priority);
}

/// The `satisfaction_surveys` table: one survey per ticket.
pub mod satisfaction_survey {
    use sea_orm::entity::prelude::*;

    /// One survey.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "satisfaction_surveys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub ticket_id: String,
        pub assignee: String,
        pub queue: String,
        pub rating: Option<i32>,
        pub comment: String,
        pub create_time: DateTimeUtc,
        pub expire_time: DateTimeUtc,
        pub submit_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `articles` table: knowledge-base articles. Besides these columns,
/// PostgreSQL keeps `search_vector` (a generated tsvector) and SQLite an
/// `article_fts` FTS5 table; see `store::search`.
pub mod article {
    use sea_orm::entity::prelude::*;

    /// One article.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "articles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub title: String,
        pub body: String,
        pub locale: String,
        /// The PostgreSQL text-search configuration of the locale.
        pub search_config: String,
        pub category: String,
        pub tags: String,
        pub state: String,
        pub content_version: i64,
        pub helpful_count: i64,
        pub not_helpful_count: i64,
        /// SQLite: the article's rowid in `article_fts`; NULL on PostgreSQL.
        pub search_key: Option<i64>,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub publish_time: Option<DateTimeUtc>,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `article_versions` table: every version of every article's content.
pub mod article_version {
    use sea_orm::entity::prelude::*;

    /// One version.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "article_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub article_id: String,
        pub number: i64,
        pub title: String,
        pub body: String,
        pub locale: String,
        pub category: String,
        pub tags: String,
        pub author: String,
        pub create_time: DateTimeUtc,
        /// Never set (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, Number);
}

/// The `article_votes` table: one helpfulness vote per subject and article.
pub mod article_vote {
    use sea_orm::entity::prelude::*;

    /// One vote.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "article_votes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub article_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        pub helpful: bool,
        pub vote_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `article_links` table: articles linked to tickets.
pub mod article_link {
    use sea_orm::entity::prelude::*;

    /// One link.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "article_links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub ticket_id: String,
        pub article_id: String,
        pub linked_by: String,
        pub create_time: DateTimeUtc,
        /// Never set (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `chats` table.
pub mod chat {
    use sea_orm::entity::prelude::*;

    /// One chat.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "chats")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub state: String,
        pub subject: String,
        pub requester: String,
        pub requester_email: String,
        pub requester_display_name: String,
        pub queue: String,
        pub offered_agent: String,
        pub agent: String,
        /// The latest transcript entry's sequence: the next entry takes this
        /// plus one, under the row's lock.
        pub last_sequence: i64,
        pub customer_read_sequence: i64,
        pub agent_read_sequence: i64,
        pub ticket: String,
        pub ended_by: String,
        pub create_time: DateTimeUtc,
        pub accept_time: Option<DateTimeUtc>,
        pub end_time: Option<DateTimeUtc>,
        pub update_time: DateTimeUtc,
        /// Always empty: chats are never deleted (the kit's lists expect the column).
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(Id, CreateTime);
}

/// The `chat_messages` table: transcripts.
pub mod chat_message {
    use sea_orm::entity::prelude::*;

    /// One transcript entry.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "chat_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub chat_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        pub kind: String,
        pub author_role: String,
        pub author: String,
        pub text: String,
        pub client_message_id: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}
