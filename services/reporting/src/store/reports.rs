//! Saved reports: created, read, listed, changed and soft-deleted like any
//! resource of the suite (etags, request ids, events).

use chrono::Utc;
use crm_shared::{
    db::Tenant,
    error::ApiError,
    idempotency::IdempotencyKey,
    outbox::NewEvent,
    store::{Claim, ListQuery, Page, check_version},
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use uuid::Uuid;

use super::{Store, entities::report};
use crate::domain::report::{Definition, Report};

/// Encodes a report as an event payload (the API knows the message).
pub type ReportPayload = fn(&Report) -> prost_types::Any;

impl TryFrom<report::Model> for Report {
    type Error = ApiError;

    fn try_from(row: report::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row
                .id
                .parse()
                .map_err(|_| ApiError::Internal(format!("report id {}", row.id)))?,
            display_name: row.display_name,
            description: row.description,
            definition: serde_json::from_str(&row.definition)
                .map_err(|e| ApiError::Internal(format!("report {} definition: {e}", row.id)))?,
            creator: row.creator,
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn row(tenant: &Tenant, r: &Report) -> report::ActiveModel {
    report::ActiveModel {
        id: Set(r.id.to_string()),
        tenant: Set(tenant.as_str().to_owned()),
        display_name: Set(r.display_name.clone()),
        description: Set(r.description.clone()),
        definition: Set(serde_json::to_string(&r.definition).unwrap_or_default()),
        creator: Set(r.creator.clone()),
        create_time: Set(r.create_time),
        update_time: Set(r.update_time),
        delete_time: Set(r.delete_time),
        version: Set(r.version),
    }
}

fn event(name: &'static str, r: &Report, payload: ReportPayload, actor: &str) -> NewEvent {
    NewEvent {
        name,
        subject: r.name(),
        payload: payload(r),
        actor: actor.to_owned(),
    }
}

impl Store {
    /// Saves a new report (or returns the one an earlier request with the
    /// same request id saved).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_report(
        &self,
        tenant: &Tenant,
        actor: &str,
        display_name: String,
        description: String,
        definition: Definition,
        request_id: Option<IdempotencyKey>,
        payload: ReportPayload,
    ) -> Result<Report, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateReport", request_id.as_ref())
            .await?
        {
            return self.get_report(tenant, &existing).await;
        }
        let now = Utc::now();
        let r = Report {
            id: Uuid::now_v7(),
            display_name,
            description,
            definition,
            creator: actor.to_owned(),
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.base.db.begin_write().await?;
        report::Entity::insert(row(tenant, &r))
            .exec_without_returning(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateReport", request_id.as_ref(), &r.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_report(tenant, &existing).await,
        };
        self.base
            .commit(
                txn,
                tenant,
                vec![event("ReportCreated", &r, payload, actor)],
            )
            .await?;
        Ok(r)
    }

    /// A report, deleted or not; NOT_FOUND naming it otherwise.
    pub async fn get_report(&self, tenant: &Tenant, name: &str) -> Result<Report, ApiError> {
        let id = name
            .rsplit('/')
            .next()
            .and_then(|id| id.parse::<Uuid>().ok())
            .unwrap_or_default();
        self.base
            .find::<report::Entity>(&self.base.db.conn, tenant, id, name)
            .await?
            .try_into()
    }

    /// One page of reports.
    pub async fn list_reports(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Report>, ApiError> {
        self.base
            .list_page::<report::Entity, Report>(tenant, query)
            .await
    }

    /// Changes a report with `change` unless its version moved on from
    /// `expected_version`; records `event`.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_report(
        &self,
        tenant: &Tenant,
        actor: &str,
        name: &str,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Report) -> Result<(), ApiError>,
        event_name: &'static str,
        payload: ReportPayload,
    ) -> Result<Report, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let id = name
            .rsplit('/')
            .next()
            .and_then(|id| id.parse::<Uuid>().ok())
            .unwrap_or_default();
        let mut r: Report = self
            .base
            .find::<report::Entity>(&*txn, tenant, id, name)
            .await?
            .try_into()?;
        check_version(name, expected_version, r.version)?;
        let stored_version = r.version;
        change(&mut r)?;
        r.version += 1;
        r.update_time = Utc::now();
        self.base
            .save_versioned::<report::Entity>(
                &txn,
                tenant,
                name,
                id,
                stored_version,
                row(tenant, &r),
            )
            .await?;
        self.base
            .commit(txn, tenant, vec![event(event_name, &r, payload, actor)])
            .await?;
        Ok(r)
    }
}
