//! SeaORM entities of the contacts database and their mapping to domain values.

use chrono::{DateTime, Utc};
use crm_shared::error::ApiError;
use uuid::Uuid;

use crate::domain::{
    Activity, ActivityDraft, ActivityKind, Company, CompanyDraft, Contact, ContactDraft,
    LifecycleStage,
};

/// The contacts table.
pub mod contact {
    use sea_orm::entity::prelude::*;

    /// One contact row; lists and JSON columns hold the nested values.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub given_name: String,
        pub family_name: String,
        pub display_name: String,
        pub primary_email: String,
        pub primary_phone: String,
        pub emails: String,
        pub phones: String,
        pub company: String,
        pub job_title: String,
        pub address: String,
        pub lifecycle_stage: String,
        pub owner: String,
        pub source: String,
        pub tags: String,
        pub custom_fields: String,
        pub consents: String,
        pub search_text: String,
        pub merged_into: Option<String>,
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

/// Email and phone keys of contacts, for de-duplication lookups.
pub mod contact_key {
    use sea_orm::entity::prelude::*;

    /// One key: kind "email" or "phone", the normalised value, the contact.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crm_shared::db::TenantScoped for Entity {
        const TENANT: Column = Column::Tenant;
    }
}

/// The companies table.
pub mod company {
    use sea_orm::entity::prelude::*;

    /// One company row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "companies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub display_name: String,
        pub domain: String,
        pub industry: String,
        pub employee_count: i64,
        pub annual_revenue: String,
        pub address: String,
        pub tags: String,
        pub custom_fields: String,
        pub owner: String,
        pub tier: String,
        pub search_text: String,
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

/// The activities table.
pub mod activity {
    use sea_orm::entity::prelude::*;

    /// One activity row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub kind: String,
        pub subject: String,
        pub body: String,
        pub occur_time: DateTimeUtc,
        pub actor: String,
        pub contact: String,
        pub company: String,
        pub related_resource: String,
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
        const DEFAULT_ORDER: Column = Column::OccurTime;
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("stored {what} does not decode: {error}"))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn id(what: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|e| corrupt(what, e))
}

/// Serialises a value into a JSON column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data structs with string keys cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl TryFrom<contact::Model> for Contact {
    type Error = ApiError;
    fn try_from(row: contact::Model) -> Result<Self, ApiError> {
        Ok(Contact {
            id: id("contact id", &row.id)?,
            draft: ContactDraft {
                given_name: row.given_name,
                family_name: row.family_name,
                display_name: row.display_name,
                emails: json("emails", &row.emails)?,
                phones: json("phones", &row.phones)?,
                company: row.company,
                job_title: row.job_title,
                address: json("address", &row.address)?,
                lifecycle_stage: LifecycleStage::parse(&row.lifecycle_stage),
                owner: row.owner,
                source: row.source,
                tags: json("tags", &row.tags)?,
                custom_fields: json("custom_fields", &row.custom_fields)?,
                consents: json("consents", &row.consents)?,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
            merged_into: row.merged_into,
        })
    }
}

/// The full row of a contact.
pub fn contact_row(tenant: &str, contact: &Contact) -> contact::Model {
    let d = &contact.draft;
    contact::Model {
        id: contact.id.to_string(),
        tenant: tenant.to_owned(),
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        display_name: d.display_name.clone(),
        primary_email: d.primary_email(),
        primary_phone: d.primary_phone(),
        emails: to_json(&d.emails),
        phones: to_json(&d.phones),
        company: d.company.clone(),
        job_title: d.job_title.clone(),
        address: to_json(&d.address),
        lifecycle_stage: d
            .lifecycle_stage
            .map(LifecycleStage::as_str)
            .unwrap_or_default()
            .to_owned(),
        owner: d.owner.clone(),
        source: d.source.clone(),
        tags: to_json(&d.tags),
        custom_fields: to_json(&d.custom_fields),
        consents: to_json(&d.consents),
        search_text: d.search_text(),
        merged_into: contact.merged_into.clone(),
        create_time: contact.create_time,
        update_time: contact.update_time,
        delete_time: contact.delete_time,
        version: contact.version,
    }
}

impl TryFrom<company::Model> for Company {
    type Error = ApiError;
    fn try_from(row: company::Model) -> Result<Self, ApiError> {
        Ok(Company {
            id: id("company id", &row.id)?,
            draft: CompanyDraft {
                display_name: row.display_name,
                domain: row.domain,
                industry: row.industry,
                employee_count: row.employee_count,
                annual_revenue: json("annual_revenue", &row.annual_revenue)?,
                address: json("address", &row.address)?,
                tags: json("tags", &row.tags)?,
                custom_fields: json("custom_fields", &row.custom_fields)?,
                owner: row.owner,
                tier: row.tier,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

/// The full row of a company.
pub fn company_row(tenant: &str, company: &Company) -> company::Model {
    let d = &company.draft;
    company::Model {
        id: company.id.to_string(),
        tenant: tenant.to_owned(),
        display_name: d.display_name.clone(),
        domain: d.domain.clone(),
        industry: d.industry.clone(),
        employee_count: d.employee_count,
        annual_revenue: to_json(&d.annual_revenue),
        address: to_json(&d.address),
        tags: to_json(&d.tags),
        custom_fields: to_json(&d.custom_fields),
        owner: d.owner.clone(),
        tier: d.tier.clone(),
        search_text: d.search_text(),
        create_time: company.create_time,
        update_time: company.update_time,
        delete_time: company.delete_time,
        version: company.version,
    }
}

impl TryFrom<activity::Model> for Activity {
    type Error = ApiError;
    fn try_from(row: activity::Model) -> Result<Self, ApiError> {
        Ok(Activity {
            id: id("activity id", &row.id)?,
            draft: ActivityDraft {
                kind: ActivityKind::parse(&row.kind),
                subject: row.subject,
                body: row.body,
                occur_time: Some(row.occur_time),
                actor: row.actor,
                contact: row.contact,
                company: row.company,
                related_resource: row.related_resource,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

/// The full row of an activity.
pub fn activity_row(tenant: &str, activity: &Activity) -> activity::Model {
    let d = &activity.draft;
    activity::Model {
        id: activity.id.to_string(),
        tenant: tenant.to_owned(),
        kind: d
            .kind
            .map(ActivityKind::as_str)
            .unwrap_or("NOTE")
            .to_owned(),
        subject: d.subject.clone(),
        body: d.body.clone(),
        occur_time: d.occur_time.unwrap_or(activity.create_time),
        actor: d.actor.clone(),
        contact: d.contact.clone(),
        company: d.company.clone(),
        related_resource: d.related_resource.clone(),
        create_time: activity.create_time,
        update_time: activity.update_time,
        delete_time: activity.delete_time,
        version: activity.version,
    }
}

/// Now, truncated to microseconds: what both databases store, so a value
/// read back equals the value written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
