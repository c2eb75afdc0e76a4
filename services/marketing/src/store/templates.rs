//! Templates.

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{ListQuery, Page},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::{
    Created, Store,
    entities::{campaign, template},
    id_of,
};
use crate::domain::template::{Template, TemplateDraft};

impl TryFrom<template::Model> for Template {
    type Error = ApiError;
    fn try_from(row: template::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.id.parse().unwrap_or_default(),
            draft: TemplateDraft {
                display_name: row.display_name,
                subject: row.subject,
                html_body: row.html_body,
                text_body: row.text_body,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn template_row(tenant: &Tenant, t: &Template) -> template::ActiveModel {
    template::Model {
        id: t.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: t.draft.display_name.clone(),
        subject: t.draft.subject.clone(),
        html_body: t.draft.html_body.clone(),
        text_body: t.draft.text_body.clone(),
        create_time: t.create_time,
        update_time: t.update_time,
        delete_time: t.delete_time,
        version: t.version,
    }
    .into_active_model()
    .reset_all()
}

/// The stored states of campaigns that will still send.
const UNFINISHED: [&str; 4] = ["DRAFT", "SCHEDULED", "SENDING", "PAUSED"];

impl Store {
    /// Saves a new template; a retry with the same request id returns the first.
    pub async fn create_template(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: TemplateDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Template, ApiError> {
        let now = Utc::now();
        let t = Template {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let event = self.event(
            "TemplateCreated",
            t.name(),
            self.payloads.template(&t),
            actor,
        );
        let row = template_row(tenant, &t);
        match self
            .create(
                tenant,
                "CreateTemplate",
                request_id.as_ref(),
                &t.name(),
                row,
                event,
            )
            .await?
        {
            Created::New => Ok(t),
            Created::Existing(name) => self.get_template(tenant, id_of(&name)).await,
        }
    }

    /// A template, also a deleted one.
    pub async fn get_template(&self, tenant: &Tenant, id: Uuid) -> Result<Template, ApiError> {
        self.base
            .find::<template::Entity>(&self.base.db.conn, tenant, id, &format!("templates/{id}"))
            .await?
            .try_into()
    }

    /// One page of templates.
    pub async fn list_templates(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Template>, ApiError> {
        self.base
            .list_page::<template::Entity, Template>(tenant, query)
            .await
    }

    /// Changes a template with `change`, if its version is still `expected`
    /// (when given); `event` records it. Deleting one that an unfinished
    /// campaign uses is FAILED_PRECONDITION.
    pub async fn change_template(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected: Option<i64>,
        change: impl FnOnce(&mut Template) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Template, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut t: Template = self
            .base
            .find::<template::Entity>(&*txn, tenant, id, &format!("templates/{id}"))
            .await?
            .try_into()?;
        crm_shared::store::check_version(&t.name(), expected, t.version)?;
        let stored = t.version;
        change(&mut t)?;
        if t.delete_time.is_some() {
            let users = campaign::Entity::find_in(tenant)
                .filter(campaign::Column::Template.eq(t.name()))
                .filter(campaign::Column::State.is_in(UNFINISHED))
                .filter(campaign::Column::DeleteTime.is_null())
                .count(&*txn)
                .await?;
            if users > 0 {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} is used by {users} campaign(s) not yet sent",
                    t.name()
                )));
            }
        }
        t.version = stored + 1;
        t.update_time = Utc::now();
        self.base
            .save_versioned::<template::Entity>(
                &txn,
                tenant,
                &t.name(),
                id,
                stored,
                template_row(tenant, &t),
            )
            .await?;
        let e = self.event(event, t.name(), self.payloads.template(&t), actor);
        self.base.commit(txn, tenant, vec![e]).await?;
        Ok(t)
    }

    /// A live template, or INVALID_ARGUMENT naming `field`.
    pub async fn live_template(
        &self,
        tenant: &Tenant,
        name: &str,
        field: &str,
    ) -> Result<Template, ApiError> {
        match self.get_template(tenant, id_of(name)).await {
            Ok(t) if t.delete_time.is_none() => Ok(t),
            Ok(_) | Err(ApiError::NotFound(_)) => {
                Err(ApiError::invalid(field, format!("{name} does not exist")))
            }
            Err(other) => Err(other),
        }
    }
}
