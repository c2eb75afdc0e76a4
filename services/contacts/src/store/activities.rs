//! Activity queries, including a contact's timeline.

use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::Store;
use super::entities::{activity, activity_row, company, contact, now};
use crate::domain::{Activity, ActivityDraft};
use crm_shared::store::{Claim, ListQuery, check_version};

const KIND_VALUES: &[(&str, &str)] = &[
    ("NOTE", "NOTE"),
    ("CALL", "CALL"),
    ("EMAIL", "EMAIL"),
    ("MEETING", "MEETING"),
    ("SYSTEM", "SYSTEM"),
];

/// The fields an activity filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField {
            name: "kind",
            column: "kind",
            kind: FieldKind::Enum(KIND_VALUES),
        },
        FilterField {
            name: "contact",
            column: "contact",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "company",
            column: "company",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "actor",
            column: "actor",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "occur_time",
            column: "occur_time",
            kind: FieldKind::Timestamp,
        },
        FilterField {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Timestamp,
        },
    ],
};

/// The fields an activity list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] =
    &[("occur_time", "occur_time"), ("create_time", "create_time")];

/// Fails with INVALID_ARGUMENT unless the activity's contact and company are live.
async fn check_links<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    draft: &ActivityDraft,
) -> Result<(), ApiError> {
    if let Some(id) = draft.contact.strip_prefix("contacts/") {
        let found = contact::Entity::find_in(tenant)
            .filter(contact::Column::Id.eq(id))
            .filter(contact::Column::DeleteTime.is_null())
            .count(conn)
            .await?;
        if found == 0 {
            return Err(ApiError::invalid(
                "activity.contact",
                format!("{} does not exist", draft.contact),
            ));
        }
    }
    if let Some(id) = draft.company.strip_prefix("companies/") {
        let found = company::Entity::find_in(tenant)
            .filter(company::Column::Id.eq(id))
            .filter(company::Column::DeleteTime.is_null())
            .count(conn)
            .await?;
        if found == 0 {
            return Err(ApiError::invalid(
                "activity.company",
                format!("{} does not exist", draft.company),
            ));
        }
    }
    Ok(())
}

impl Store {
    async fn load_activity<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Activity, ApiError> {
        activity::Entity::find_in(tenant)
            .filter(activity::Column::Id.eq(id.to_string()))
            .one(conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("activities/{id}")))?
            .try_into()
    }

    /// Logs an activity; with a request id, a retry returns the first one.
    pub async fn create_activity(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: ActivityDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Activity, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateActivity", request_id.as_ref())
            .await?
        {
            let id = crm_shared::convert::parse_name(&existing, "activities", "name")?;
            return self.load_activity(&self.db.conn, tenant, id).await;
        }
        let time = now();
        let mut activity = Activity {
            id: Uuid::now_v7(),
            draft,
            create_time: time,
            update_time: time,
            delete_time: None,
            version: 1,
        };
        activity.draft.occur_time.get_or_insert(time);
        let txn = self.db.begin_write().await?;
        check_links(&*txn, tenant, &activity.draft).await?;
        let name = activity.name();
        let txn = match self
            .base
            .claim(txn, tenant, "CreateActivity", request_id.as_ref(), &name)
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                let id = crm_shared::convert::parse_name(&existing, "activities", "name")?;
                return self.load_activity(&self.db.conn, tenant, id).await;
            }
        };
        activity::Entity::insert(
            activity_row(tenant.as_str(), &activity)
                .into_active_model()
                .reset_all(),
        )
        .exec_without_returning(&*txn)
        .await?;
        let event = self.event(
            "ActivityLogged",
            activity.name(),
            self.payloads.activity(&activity),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(activity)
    }

    /// An activity, soft-deleted or not.
    pub async fn get_activity(&self, tenant: &Tenant, id: Uuid) -> Result<Activity, ApiError> {
        self.load_activity(&self.db.conn, tenant, id).await
    }

    /// One page of activities and the total.
    pub async fn list_activities(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Activity>, ApiError> {
        self.base
            .list_page::<activity::Entity, Activity>(tenant, query)
            .await
    }

    /// Every live activity of a contact, newest first (for data-subject export).
    pub async fn activities_of_contact(
        &self,
        tenant: &Tenant,
        contact: &str,
    ) -> Result<Vec<Activity>, ApiError> {
        let rows = activity::Entity::find_in(tenant)
            .filter(activity::Column::Contact.eq(contact))
            .order_by_desc(activity::Column::OccurTime)
            .all(&self.db.conn)
            .await?;
        rows.into_iter().map(Activity::try_from).collect()
    }

    /// Reads, changes and writes an activity in one transaction.
    pub async fn change_activity(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        event: &'static str,
        change: impl FnOnce(&mut Activity) -> Result<(), ApiError>,
    ) -> Result<Activity, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut activity = self.load_activity(&*txn, tenant, id).await?;
        check_version(&activity.name(), expected_version, activity.version)?;
        let stored_version = activity.version;
        let (contact, company) = (
            activity.draft.contact.clone(),
            activity.draft.company.clone(),
        );
        change(&mut activity)?;
        if activity.draft.contact != contact || activity.draft.company != company {
            check_links(&*txn, tenant, &activity.draft).await?;
        }
        activity.version = stored_version + 1;
        activity.update_time = now();
        let row = activity_row(tenant.as_str(), &activity)
            .into_active_model()
            .reset_all();
        self.base
            .save_versioned::<activity::Entity>(
                &txn,
                tenant,
                &activity.name(),
                id,
                stored_version,
                row,
            )
            .await?;
        let event = self.event(
            event,
            activity.name(),
            self.payloads.activity(&activity),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(activity)
    }
}
