//! SeaORM entities: one module per table. Read-model tables are keyed by
//! (generation, tenant, ...): a rebuild writes the next generation beside
//! the live one.

/// The `model_state` table: The one row naming the live generation and the rebuild.
pub mod model_state {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "model_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub generation: i64,
        pub rebuilding_generation: i64,
        pub rebuild_start_time: Option<DateTimeUtc>,
        pub last_rebuild_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rebuild_positions` table: How far a rebuild has replayed each feed.
pub mod rebuild_positions {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rebuild_positions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        pub position: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_contacts` table: Contacts.
pub mod rm_contacts {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        pub display_name: String,
        pub email: String,
        pub company: String,
        pub lifecycle_stage: String,
        pub email_consent: i32,
        pub survivor: String,
        pub erased: bool,
        pub create_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_companies` table: Companies.
pub mod rm_companies {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_companies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub company: String,
        pub display_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_stages` table: Pipeline stages' names.
pub mod rm_stages {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_stages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub stage: String,
        pub display_name: String,
        pub probability: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_leads` table: Leads, with what they contribute to the aggregates.
pub mod rm_leads {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lead: String,
        pub contact: String,
        pub campaign: String,
        pub state: String,
        pub contribution: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_deals` table: Deals (opportunities), with what they contribute.
pub mod rm_deals {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_deals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub opportunity: String,
        pub display_name: String,
        pub contact: String,
        pub customer: String,
        pub owner: String,
        pub pipeline: String,
        pub campaign: String,
        pub company: String,
        pub source_lead: String,
        pub stage: String,
        pub state: String,
        pub currency_code: String,
        pub units: i64,
        pub nanos: i32,
        pub create_time: DateTimeUtc,
        pub close_time: Option<DateTimeUtc>,
        pub close_day: String,
        pub deleted: bool,
        pub contribution: String,
        pub expected_close_day: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_customers` table: Customers and the day of their first won deal.
pub mod rm_customers {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer: String,
        pub first_win_day: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_tickets` table: Tickets, with their rating and what they contribute.
pub mod rm_tickets {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub ticket: String,
        pub subject: String,
        pub contact: String,
        pub status: String,
        pub priority: String,
        pub owner: String,
        pub queue: String,
        pub channel: String,
        pub company: String,
        pub create_time: DateTimeUtc,
        pub first_response_time: Option<DateTimeUtc>,
        pub first_response_seconds: Option<i64>,
        pub first_response_day: String,
        pub solve_time: Option<DateTimeUtc>,
        pub resolution_seconds: Option<i64>,
        pub solve_day: String,
        pub reopen_count: i32,
        pub sla_breached: bool,
        pub next_sla_due_time: Option<DateTimeUtc>,
        pub rating: i32,
        pub rating_time: Option<DateTimeUtc>,
        pub deleted: bool,
        pub contribution: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_engagements` table: A person's first and last engagement of a kind with a campaign or journey.
pub mod rm_engagements {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_engagements")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub first_time: DateTimeUtc,
        pub last_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_timeline` table: The merged timeline.
pub mod rm_timeline {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_timeline")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub contact: String,
        pub time: DateTimeUtc,
        pub kind: String,
        pub source: String,
        pub event_type: String,
        pub subject: String,
        pub summary: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_erasures` table: Erasures contacts reported.
pub mod rm_erasures {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_erasures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        pub erase_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_erasure_confirmations` table: Services' confirmations of erasures.
pub mod rm_erasure_confirmations {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_erasure_confirmations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub service: String,
        pub confirm_time: DateTimeUtc,
        pub erased_resources: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `rm_campaigns` table: Campaigns' names, costs and start days.
pub mod rm_campaigns {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rm_campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign: String,
        pub display_name: String,
        pub currency_code: String,
        pub units: i64,
        pub nanos: i32,
        pub start_day: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `reports` table: saved report definitions (the definition as JSON).
pub mod report {
    use sea_orm::entity::prelude::*;

    /// One report.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "reports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub description: String,
        pub definition: String,
        pub creator: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }

    impl crm_shared::store::ResourceTable for Entity {
        const ID: Column = Column::Id;
        const DELETE_TIME: Column = Column::DeleteTime;
        const VERSION: Column = Column::Version;
        const DEFAULT_ORDER: Column = Column::CreateTime;
    }
}
