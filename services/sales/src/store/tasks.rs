//! Sales tasks.

use chrono::Utc;
use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use crm_shared::{
    db::{Tenant, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    store::{Claim, ListQuery, check_version},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use super::{Store, entities::task};
use crate::domain::{
    lead::{parse_stored, stored},
    task::{TASK_STATUSES, Task, TaskDraft},
};

const STATUS_VALUES: &[(&str, &str)] = &[
    ("OPEN", "OPEN"),
    ("DONE", "DONE"),
    ("CANCELLED", "CANCELLED"),
];

/// The fields a task filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::text("title"),
        FilterField::text("owner"),
        FilterField {
            name: "status",
            column: "status",
            kind: FieldKind::Enum(STATUS_VALUES),
        },
        FilterField::text("lead"),
        FilterField::text("contact"),
        FilterField::text("opportunity"),
        FilterField {
            name: "due_time",
            column: "due_time",
            kind: FieldKind::Timestamp,
        },
        FilterField {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Timestamp,
        },
    ],
};

/// The fields a task list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[("due_time", "due_time"), ("create_time", "create_time")];

impl TryFrom<task::Model> for Task {
    type Error = ApiError;

    fn try_from(row: task::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored task has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: TaskDraft {
                title: row.title,
                due_time: Some(row.due_time),
                owner: row.owner,
                status: parse_stored(TASK_STATUSES, &row.status).ok_or_else(|| bad("status"))?,
                lead: row.lead,
                contact: row.contact,
                opportunity: row.opportunity,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

pub(super) fn task_row(tenant: &Tenant, t: &Task) -> task::ActiveModel {
    task::Model {
        id: t.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        title: t.draft.title.clone(),
        due_time: t.draft.due_time.unwrap_or(t.create_time),
        owner: t.draft.owner.clone(),
        status: stored(TASK_STATUSES, t.draft.status).to_owned(),
        lead: t.draft.lead.clone(),
        contact: t.draft.contact.clone(),
        opportunity: t.draft.opportunity.clone(),
        create_time: t.create_time,
        update_time: t.update_time,
        delete_time: t.delete_time,
        version: t.version,
    }
    .into_active_model()
    .reset_all()
}

/// Open tasks whose due time has passed.
fn overdue() -> Condition {
    Condition::all()
        .add(task::Column::Status.eq("OPEN"))
        .add(task::Column::DueTime.lt(Utc::now()))
}

impl Store {
    /// Creates a task.
    pub async fn create_task(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: TaskDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Task, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateTask", request_id.as_ref())
            .await?
        {
            return self.get_task(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let t = Task {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        task::Entity::insert(task_row(tenant, &t))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateTask", request_id.as_ref(), &t.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_task(tenant, super::id_of(&existing)).await;
            }
        };
        let event = self.event("TaskCreated", t.name(), self.payloads.task(&t), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(t)
    }

    /// A task, deleted or not.
    pub async fn get_task(&self, tenant: &Tenant, id: Uuid) -> Result<Task, ApiError> {
        self.base
            .find::<task::Entity>(&self.db.conn, tenant, id, &format!("tasks/{id}"))
            .await?
            .try_into()
    }

    /// One page of tasks; `overdue_only`: the open ones past their due time.
    pub async fn list_tasks(
        &self,
        tenant: &Tenant,
        mut query: ListQuery,
        overdue_only: bool,
    ) -> Result<Page<Task>, ApiError> {
        if overdue_only {
            query.condition = Condition::all().add(query.condition).add(overdue());
        }
        self.base
            .list_page::<task::Entity, Task>(tenant, query)
            .await
    }

    /// Changes a task: `change` edits it (an update or a soft delete).
    pub async fn update_task(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Task) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Task, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut t: Task = self
            .base
            .find::<task::Entity>(&*txn, tenant, id, &format!("tasks/{id}"))
            .await?
            .try_into()?;
        check_version(&t.name(), expected_version, t.version)?;
        let stored_version = t.version;
        change(&mut t)?;
        t.version += 1;
        t.update_time = Utc::now();
        self.base
            .save_versioned::<task::Entity>(
                &txn,
                tenant,
                &t.name(),
                id,
                stored_version,
                task_row(tenant, &t),
            )
            .await?;
        let event = self.event(event, t.name(), self.payloads.task(&t), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(t)
    }

    /// Writes a task row as it is (used by the feed).
    /// Writes `t` over the stored row only if it is still at
    /// `stored_version` (ABORTED otherwise).
    pub(super) async fn overwrite_task(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        t: &Task,
        stored_version: i64,
    ) -> Result<(), ApiError> {
        self.base
            .save_versioned::<task::Entity>(
                txn,
                tenant,
                &t.name(),
                t.id,
                stored_version,
                task_row(tenant, t),
            )
            .await
    }
}
