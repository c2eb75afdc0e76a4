//! SeaORM entities: one module per table. An audience is a JSON text column;
//! everything a filter, an order or an index needs is a column of its own.

/// Implements the kit's table traits for an entity with the usual columns.
macro_rules! resource_table {
    ($order:ident) => {
        impl crm_shared::db::TenantScoped for Entity {
            const TENANT: Column = Column::Tenant;
        }

        impl crm_shared::store::ResourceTable for Entity {
            const ID: Column = Column::Id;
            const DELETE_TIME: Column = Column::DeleteTime;
            const VERSION: Column = Column::Version;
            const DEFAULT_ORDER: Column = Column::$order;
        }
    };
}

/// The `segments` table.
pub mod segment {
    use sea_orm::entity::prelude::*;

    /// One segment.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "segments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub description: String,
        pub filter: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(CreateTime);
}

/// The `mailing_lists` table.
pub mod mailing_list {
    use sea_orm::entity::prelude::*;

    /// One list.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "mailing_lists")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub description: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(CreateTime);
}

/// The `list_members` table.
pub mod list_member {
    use sea_orm::entity::prelude::*;

    /// One membership.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "list_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub list_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        pub add_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `templates` table.
pub mod template {
    use sea_orm::entity::prelude::*;

    /// One template.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "templates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub subject: String,
        pub html_body: String,
        pub text_body: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(CreateTime);
}

/// The `campaigns` table.
pub mod campaign {
    use sea_orm::entity::prelude::*;

    /// One campaign.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub state: String,
        pub template: String,
        pub from_address: String,
        pub from_name: String,
        pub reply_to: String,
        /// The audience (JSON).
        pub audience: String,
        pub send_time: Option<DateTimeUtc>,
        pub messages_per_second: i32,
        pub audience_built: bool,
        pub start_time: Option<DateTimeUtc>,
        pub finish_time: Option<DateTimeUtc>,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
        /// The cost's currency; empty: no cost given.
        pub cost_currency: String,
        pub cost_units: i64,
        pub cost_nanos: i32,
        /// The A/B test (JSON); empty: none.
        pub ab_test: String,
        /// "A", "B", or empty until chosen.
        pub ab_winner: String,
        pub ab_test_sent_time: Option<DateTimeUtc>,
        pub ab_decide_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(CreateTime);
}

/// The `campaign_recipients` table: the send ledger.
pub mod campaign_recipient {
    use sea_orm::entity::prelude::*;

    /// One recipient of one campaign.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_recipients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
        /// The order recipients are sent in.
        pub position: i64,
        pub email: String,
        pub state: String,
        pub reason: String,
        pub attempts: i32,
        pub message_id: String,
        /// Which sending pass took the row (while CLAIMED or SENDING).
        pub claim: String,
        /// After a transient failure, not before then.
        pub next_attempt_time: Option<DateTimeUtc>,
        pub update_time: DateTimeUtc,
        /// The A/B variant ("A", "B"), or empty: the campaign's one message,
        /// or the winner.
        pub variant: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `suppressions` table: addresses nothing is sent to again.
pub mod suppression {
    use sea_orm::entity::prelude::*;

    /// One suppressed address.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "suppressions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// `crm_shared::privacy::email_fingerprint` of the address.
        #[sea_orm(primary_key, auto_increment = false)]
        pub email_fingerprint: String,
        pub reason: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `engagements` table: opens, clicks, unsubscribes, bounces, complaints.
pub mod engagement {
    use sea_orm::entity::prelude::*;

    /// One engagement.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "engagements")]
    pub struct Model {
        /// A UUID; for a bounce or complaint, `<campaign>:<contact>:<kind>`
        /// (one per message).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub campaign_id: String,
        pub contact: String,
        pub kind: String,
        /// The link clicked, or the relay's words.
        pub detail: String,
        pub time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `campaign_leads` table: leads in sales that name a campaign.
pub mod campaign_lead {
    use sea_orm::entity::prelude::*;

    /// One lead.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// `leads/{id}`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub lead: String,
        pub campaign_id: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `campaign_wins` table: deals won from a campaign's leads.
pub mod campaign_win {
    use sea_orm::entity::prelude::*;

    /// One won deal.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_wins")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// `opportunities/{id}`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub opportunity: String,
        pub campaign_id: String,
        /// `leads/{id}`: the lead it was converted from.
        pub lead: String,
        pub currency_code: String,
        pub units: i64,
        pub nanos: i32,
        pub won_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `journeys` table. Trigger and steps are JSON text.
pub mod journey {
    use sea_orm::entity::prelude::*;

    /// One journey.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "journeys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub description: String,
        pub state: String,
        pub trigger: String,
        pub reentry: String,
        pub exit_filter: String,
        pub steps: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub delete_time: Option<DateTimeUtc>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    resource_table!(CreateTime);
}

/// The `journey_enrollments` table.
pub mod journey_enrollment {
    use sea_orm::entity::prelude::*;

    /// One contact in one journey.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "journey_enrollments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub journey_id: String,
        /// `contacts/{id}`; empty while found by `email`.
        pub contact: String,
        /// A lead's address whose contact is still to be found.
        pub email: String,
        pub state: String,
        pub step: String,
        pub step_start_time: DateTimeUtc,
        pub next_run_time: Option<DateTimeUtc>,
        pub reason: String,
        /// What enrolled it.
        pub source: String,
        /// Unique per journey: the event or request that enrolled it.
        pub entry_key: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `journey_step_runs` table: each step an enrolment ran, once.
pub mod journey_step_run {
    use sea_orm::entity::prelude::*;

    /// One step run.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "journey_step_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub enrollment_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub step: String,
        pub outcome: String,
        pub run_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `journey_segment_members` table: who was in a journey's trigger
/// segment at its last look (so entering is seen).
pub mod journey_segment_member {
    use sea_orm::entity::prelude::*;

    /// One member.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "journey_segment_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub journey_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The `journey_messages` table: the ledger's rows that are a journey's
/// emails (their `campaign_id` is the step's effect key).
pub mod journey_message {
    use sea_orm::entity::prelude::*;

    /// One message.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "journey_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_key: String,
        pub journey_id: String,
        pub enrollment_id: String,
        pub step: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}
