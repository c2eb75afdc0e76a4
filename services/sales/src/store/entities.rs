//! SeaORM entities: one module per table. Nested values (stages, line
//! items, stage history, score factors) are JSON text columns; everything a
//! filter or an index needs is a column of its own.

/// The `leads` table.
pub mod lead {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub given_name: String,
        pub family_name: String,
        pub email: String,
        pub phone: String,
        pub company_name: String,
        pub title: String,
        pub country: String,
        pub employee_count: i64,
        pub source: String,
        pub campaign: String,
        pub status: String,
        pub disqualify_reason: String,
        pub owner: String,
        pub assignment_reason: String,
        pub score: i32,
        pub score_factors: String,
        pub possible_duplicates: String,
        pub converted_contact: String,
        pub converted_company: String,
        pub converted_contact_reused: bool,
        pub converted_opportunity: String,
        pub convert_time: Option<DateTimeUtc>,
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

/// The `assignment_rules` table.
pub mod assignment_rule {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "assignment_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub priority: i32,
        pub filter: String,
        pub strategy: String,
        pub members: String,
        pub assigned: i64,
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

/// The `scoring_rules` table.
pub mod scoring_rule {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub filter: String,
        pub points: i32,
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

/// The `pipelines` table.
pub mod pipeline {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "pipelines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub stages: String,
        pub is_default: bool,
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

/// The `opportunities` table.
pub mod opportunity {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "opportunities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub amount: String,
        /// The amount's whole units (0 without one), for sums in SQL.
        pub amount_units: i64,
        /// The amount's nano units (0 without one).
        pub amount_nanos: i32,
        pub currency_code: String,
        pub pipeline: String,
        pub stage: String,
        pub state: String,
        pub expected_close_date: String,
        pub owner: String,
        pub contact: String,
        pub company: String,
        pub line_items: String,
        pub close_reason: String,
        pub close_time: Option<DateTimeUtc>,
        pub stage_history: String,
        pub source_lead: String,
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

/// The `products` table.
pub mod product {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "products")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub sku: String,
        pub display_name: String,
        pub unit_price: String,
        pub currency_code: String,
        pub active: bool,
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

/// The `tasks` table.
pub mod task {
    use sea_orm::entity::prelude::*;

    /// One row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub title: String,
        pub due_time: DateTimeUtc,
        pub owner: String,
        pub status: String,
        pub lead: String,
        pub contact: String,
        pub opportunity: String,
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

/// JSON text of a value; serialising plain data cannot fail.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON text column back into its value; a row that does not decode is a bug.
pub fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, crm_shared::error::ApiError> {
    serde_json::from_str(text).map_err(|e| {
        crm_shared::error::ApiError::Internal(format!("stored {what} does not decode: {e}"))
    })
}
