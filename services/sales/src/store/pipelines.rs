//! Pipelines, with the default one made on first use.

use chrono::Utc;
use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    idempotency::derived_request_id,
    store::{Claim, ListQuery},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
    sea_query::{OnConflict, Order},
};
use uuid::Uuid;

use super::{
    Store,
    entities::{from_json, opportunity, pipeline, to_json},
};
use crate::domain::pipeline::Pipeline;

impl TryFrom<pipeline::Model> for Pipeline {
    type Error = ApiError;

    fn try_from(row: pipeline::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row
                .id
                .parse()
                .map_err(|_| ApiError::Internal("stored pipeline has a bad id".into()))?,
            display_name: row.display_name,
            stages: from_json(&row.stages, "stages")?,
            is_default: row.is_default,
            create_time: row.create_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn pipeline_row(tenant: &Tenant, p: &Pipeline) -> pipeline::Model {
    pipeline::Model {
        id: p.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: p.display_name.clone(),
        stages: to_json(&p.stages),
        is_default: p.is_default,
        create_time: p.create_time,
        update_time: p.create_time,
        delete_time: p.delete_time,
        version: p.version,
    }
}

/// The default pipeline's id: derived from the tenant, so that two replicas
/// making it at once make the same row and one insert simply loses.
fn default_pipeline_id(tenant: &Tenant) -> Uuid {
    derived_request_id(&format!("default-pipeline\0{}", tenant.as_str()))
}

impl Store {
    /// A pipeline, deleted or not.
    pub async fn get_pipeline(&self, tenant: &Tenant, id: Uuid) -> Result<Pipeline, ApiError> {
        self.base
            .find::<pipeline::Entity>(&self.db.conn, tenant, id, &format!("pipelines/{id}"))
            .await?
            .try_into()
    }

    /// The tenant's default pipeline, made on first use.
    pub async fn default_pipeline(&self, tenant: &Tenant) -> Result<Pipeline, ApiError> {
        let id = default_pipeline_id(tenant);
        if let Some(row) = pipeline::Entity::find_in(tenant)
            .filter(pipeline::Column::Id.eq(id.to_string()))
            .one(&self.db.conn)
            .await?
        {
            return row.try_into();
        }
        let standard = Pipeline::standard(id, Utc::now());
        let txn = self.db.begin_write().await?;
        let inserted = pipeline::Entity::insert(
            pipeline_row(tenant, &standard)
                .into_active_model()
                .reset_all(),
        )
        .on_conflict(
            OnConflict::column(pipeline::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
        let events = if inserted > 0 {
            vec![self.event(
                "PipelineCreated",
                standard.name(),
                self.payloads.pipeline(&standard),
                "sales",
            )]
        } else {
            vec![]
        };
        self.base.commit(txn, tenant, events).await?;
        self.get_pipeline(tenant, id).await
    }

    /// The pipeline a resource name points at, or the default for an empty one;
    /// INVALID_ARGUMENT on `field` when it does not exist or is deleted.
    pub async fn resolve_pipeline(
        &self,
        tenant: &Tenant,
        name: &str,
        field: &str,
    ) -> Result<Pipeline, ApiError> {
        if name.is_empty() {
            return self.default_pipeline(tenant).await;
        }
        let id = crm_shared::convert::parse_name(name, "pipelines", field)?;
        match self.get_pipeline(tenant, id).await {
            Ok(p) if p.delete_time.is_none() => Ok(p),
            Ok(_) | Err(ApiError::NotFound(_)) => {
                Err(ApiError::invalid(field, format!("{name} does not exist")))
            }
            Err(other) => Err(other),
        }
    }

    /// Creates a pipeline (checked by the caller).
    pub async fn create_pipeline(
        &self,
        tenant: &Tenant,
        actor: &str,
        mut p: Pipeline,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Pipeline, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreatePipeline", request_id.as_ref())
            .await?
        {
            return self.get_pipeline(tenant, super::id_of(&existing)).await;
        }
        // The first pipeline of a tenant is not its default: that one is made on first use.
        p.is_default = false;
        let txn = self.db.begin_write().await?;
        pipeline::Entity::insert(pipeline_row(tenant, &p).into_active_model().reset_all())
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(
                txn,
                tenant,
                "CreatePipeline",
                request_id.as_ref(),
                &p.name(),
            )
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_pipeline(tenant, super::id_of(&existing)).await;
            }
        };
        let event = self.event(
            "PipelineCreated",
            p.name(),
            self.payloads.pipeline(&p),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// One page of pipelines (the default one is made first if missing).
    pub async fn list_pipelines(
        &self,
        tenant: &Tenant,
        mut query: ListQuery,
    ) -> Result<Page<Pipeline>, ApiError> {
        self.default_pipeline(tenant).await?;
        query.order = vec![("create_time", Order::Asc)];
        self.base
            .list_page::<pipeline::Entity, Pipeline>(tenant, query)
            .await
    }

    /// Renames a pipeline and/or replaces its stages; a stage that goes away
    /// must hold no live deal.
    pub async fn update_pipeline(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        display_name: Option<String>,
        stages: Option<Vec<crate::domain::pipeline::Stage>>,
    ) -> Result<Pipeline, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut p: Pipeline = self
            .base
            .find::<pipeline::Entity>(&*txn, tenant, id, &format!("pipelines/{id}"))
            .await?
            .try_into()?;
        if p.delete_time.is_some() {
            return Err(ApiError::NotFound(p.name()));
        }
        crm_shared::store::check_version(&p.name(), expected_version, p.version)?;
        if let Some(name) = display_name {
            p.display_name = name;
        }
        if let Some(stages) = stages {
            let removed: Vec<String> = p
                .stages
                .iter()
                .filter(|old| !stages.iter().any(|new| new.id == old.id))
                .map(|old| p.stage_name(old))
                .collect();
            let in_use = opportunity::Entity::find_in(tenant)
                .filter(opportunity::Column::Stage.is_in(removed))
                .filter(opportunity::Column::DeleteTime.is_null())
                .count(&*txn)
                .await?;
            if in_use > 0 {
                return Err(ApiError::FailedPrecondition(format!(
                    "{in_use} opportunities are in the stages left out; move them first"
                )));
            }
            p.stages = stages;
        }
        crate::domain::pipeline::check(&p.display_name, &p.stages, "pipeline")?;
        let stored_version = p.version;
        p.version += 1;
        let mut row = pipeline_row(tenant, &p);
        row.update_time = Utc::now();
        self.base
            .save_versioned::<pipeline::Entity>(
                &txn,
                tenant,
                &p.name(),
                id,
                stored_version,
                row.into_active_model().reset_all(),
            )
            .await?;
        let event = self.event(
            "PipelineUpdated",
            p.name(),
            self.payloads.pipeline(&p),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// Soft-deletes a pipeline no open opportunity uses; never the default.
    pub async fn delete_pipeline(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<Pipeline, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut p: Pipeline = self
            .base
            .find::<pipeline::Entity>(&*txn, tenant, id, &format!("pipelines/{id}"))
            .await?
            .try_into()?;
        if p.is_default {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is the default pipeline and cannot be deleted",
                p.name()
            )));
        }
        let open = opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::Pipeline.eq(p.name()))
            .filter(opportunity::Column::State.eq("OPEN"))
            .filter(opportunity::Column::DeleteTime.is_null())
            .count(&*txn)
            .await?;
        if open > 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "{} has {open} open opportunities; move or close them first",
                p.name()
            )));
        }
        if p.delete_time.is_none() {
            p.delete_time = Some(Utc::now());
            pipeline::Entity::update(pipeline_row(tenant, &p).into_active_model().reset_all())
                .exec(&*txn)
                .await?;
        }
        let event = self.event(
            "PipelineDeleted",
            p.name(),
            self.payloads.pipeline(&p),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// Every pipeline of the tenant (for forecasts: stage probabilities).
    pub(super) async fn all_pipelines<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
    ) -> Result<Vec<Pipeline>, ApiError> {
        pipeline::Entity::find_in(tenant)
            .all(conn)
            .await?
            .into_iter()
            .map(Pipeline::try_from)
            .collect()
    }
}
