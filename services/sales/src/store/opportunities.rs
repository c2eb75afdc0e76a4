//! Opportunity queries: create with pipeline, stage and prices resolved;
//! updates that record stage moves; the data forecasts and analyses read.

use chrono::{DateTime, Utc};
use crm_shared::idempotency::IdempotencyKey;
use crm_shared::money::Money;
use crm_shared::store::Page;
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    store::{Claim, ListQuery, check_version},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, FromQueryResult,
    IntoActiveModel, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    Store,
    entities::{from_json, opportunity, to_json},
};
use crate::domain::{
    analysis::{self, StageSum},
    opportunity::{Opportunity, OpportunityDraft},
    pipeline::{Pipeline, StageKind},
};

const STATE_VALUES: &[(&str, &str)] = &[("OPEN", "OPEN"), ("WON", "WON"), ("LOST", "LOST")];

/// The fields an opportunity filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::text("display_name"),
        FilterField::text("pipeline"),
        FilterField::text("stage"),
        FilterField {
            name: "state",
            column: "state",
            kind: FieldKind::Enum(STATE_VALUES),
        },
        FilterField::text("owner"),
        FilterField::text("contact"),
        FilterField::text("company"),
        FilterField::text("currency_code"),
        FilterField::text("expected_close_date"),
        FilterField::text("source_lead"),
        FilterField {
            name: "close_time",
            column: "close_time",
            kind: FieldKind::Timestamp,
        },
        FilterField {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Timestamp,
        },
    ],
};

/// The fields an opportunity list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("create_time", "create_time"),
    ("expected_close_date", "expected_close_date"),
    ("display_name", "display_name"),
    ("close_time", "close_time"),
];

fn state_name(kind: StageKind) -> &'static str {
    match kind {
        StageKind::Open => "OPEN",
        StageKind::Won => "WON",
        StageKind::Lost => "LOST",
    }
}

impl TryFrom<opportunity::Model> for Opportunity {
    type Error = ApiError;

    fn try_from(row: opportunity::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored opportunity has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: OpportunityDraft {
                display_name: row.display_name,
                amount: if row.amount.is_empty() {
                    None
                } else {
                    Some(from_json(&row.amount, "amount")?)
                },
                pipeline: row.pipeline,
                stage: row.stage,
                expected_close_date: if row.expected_close_date.is_empty() {
                    None
                } else {
                    Some(row.expected_close_date.parse().map_err(|_| bad("date"))?)
                },
                owner: row.owner,
                contact: row.contact,
                company: row.company,
                line_items: from_json(&row.line_items, "line items")?,
                close_reason: row.close_reason,
            },
            state: match row.state.as_str() {
                "OPEN" => StageKind::Open,
                "WON" => StageKind::Won,
                "LOST" => StageKind::Lost,
                _ => return Err(bad("state")),
            },
            close_time: row.close_time,
            stage_history: from_json(&row.stage_history, "stage history")?,
            source_lead: row.source_lead,
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn opportunity_row(tenant: &Tenant, o: &Opportunity) -> opportunity::ActiveModel {
    let d = &o.draft;
    opportunity::Model {
        id: o.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: d.display_name.clone(),
        amount: d.amount.as_ref().map(to_json).unwrap_or_default(),
        amount_units: d.amount.as_ref().map_or(0, |a| a.units),
        amount_nanos: d.amount.as_ref().map_or(0, |a| a.nanos),
        currency_code: d
            .amount
            .as_ref()
            .map(|a| a.currency_code.clone())
            .unwrap_or_default(),
        pipeline: d.pipeline.clone(),
        stage: d.stage.clone(),
        state: state_name(o.state).to_owned(),
        expected_close_date: d
            .expected_close_date
            .map(|date| date.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        owner: d.owner.clone(),
        contact: d.contact.clone(),
        company: d.company.clone(),
        line_items: to_json(&d.line_items),
        close_reason: d.close_reason.clone(),
        close_time: o.close_time,
        stage_history: to_json(&o.stage_history),
        source_lead: o.source_lead.clone(),
        create_time: o.create_time,
        update_time: o.update_time,
        delete_time: o.delete_time,
        version: o.version,
    }
    .into_active_model()
    .reset_all()
}

impl Store {
    /// A new opportunity from a checked draft: its pipeline (the default when
    /// empty), its stage (the first open one when empty), line-item prices
    /// from the catalogue, and the first entry of its stage history.
    pub async fn prepare_opportunity(
        &self,
        tenant: &Tenant,
        actor: &str,
        mut draft: OpportunityDraft,
        source_lead: String,
    ) -> Result<Opportunity, ApiError> {
        let pipeline = self
            .resolve_pipeline(tenant, &draft.pipeline, "opportunity.pipeline")
            .await?;
        draft.pipeline = pipeline.name();
        let kind = if draft.stage.is_empty() {
            let first = pipeline.first_stage();
            draft.stage = pipeline.stage_name(first);
            first.kind
        } else {
            stage_kind(&pipeline, &draft.stage, "opportunity.stage")?
        };
        self.price_line_items(
            tenant,
            &mut draft.line_items,
            "opportunity.line_items",
            true,
        )
        .await?;
        draft.normalize_and_check("opportunity")?;
        if draft.owner.is_empty() {
            draft.owner = actor.to_owned();
        }
        let now = Utc::now();
        let stage = draft.stage.clone();
        let mut created = Opportunity {
            id: Uuid::now_v7(),
            draft,
            state: StageKind::Open,
            close_time: None,
            stage_history: vec![],
            source_lead,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        created.enter_stage(stage, kind, actor, now);
        Ok(created)
    }

    pub(super) async fn insert_opportunity(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        o: &Opportunity,
    ) -> Result<(), ApiError> {
        opportunity::Entity::insert(opportunity_row(tenant, o))
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// Creates an opportunity made by [`Store::prepare_opportunity`].
    pub async fn create_opportunity(
        &self,
        tenant: &Tenant,
        actor: &str,
        o: Opportunity,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Opportunity, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateOpportunity", request_id.as_ref())
            .await?
        {
            return self.get_opportunity(tenant, super::id_of(&existing)).await;
        }
        let txn = self.db.begin_write().await?;
        self.insert_opportunity(&txn, tenant, &o).await?;
        let txn = match self
            .base
            .claim(
                txn,
                tenant,
                "CreateOpportunity",
                request_id.as_ref(),
                &o.name(),
            )
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_opportunity(tenant, super::id_of(&existing)).await;
            }
        };
        let mut events = vec![self.event(
            "OpportunityCreated",
            o.name(),
            self.payloads.opportunity(&o),
            actor,
        )];
        if let Some(closed) = closing_event(o.state) {
            events.push(self.event(closed, o.name(), self.payloads.stage_changed(&o, ""), actor));
        }
        self.base.commit(txn, tenant, events).await?;
        Ok(o)
    }

    /// An opportunity, deleted or not.
    pub async fn get_opportunity(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Opportunity, ApiError> {
        self.base
            .find::<opportunity::Entity>(&self.db.conn, tenant, id, &format!("opportunities/{id}"))
            .await?
            .try_into()
    }

    /// One page of opportunities.
    pub async fn list_opportunities(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Opportunity>, ApiError> {
        self.base
            .list_page::<opportunity::Entity, Opportunity>(tenant, query)
            .await
    }

    /// Applies `paths` of `changes`; a new stage is checked against the
    /// pipeline and recorded in the history, with its events.
    pub async fn update_opportunity(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        paths: &[&str],
        changes: &OpportunityDraft,
    ) -> Result<Opportunity, ApiError> {
        let mut changes = changes.clone();
        if paths.contains(&"line_items") {
            self.price_line_items(
                tenant,
                &mut changes.line_items,
                "opportunity.line_items",
                false,
            )
            .await?;
        }
        let txn = self.db.begin_write().await?;
        let mut o: Opportunity = self
            .base
            .find::<opportunity::Entity>(&*txn, tenant, id, &format!("opportunities/{id}"))
            .await?
            .try_into()?;
        if o.delete_time.is_some() {
            return Err(ApiError::NotFound(o.name()));
        }
        check_version(&o.name(), expected_version, o.version)?;
        let stored_version = o.version;
        let from_stage = o.draft.stage.clone();
        o.draft.apply(paths, &changes);
        if paths.contains(&"line_items") && !paths.contains(&"amount") {
            // The amount follows the line items unless it is set with them.
            o.draft.amount = None;
        }
        o.draft.normalize_and_check("opportunity")?;
        let mut events = vec![];
        let now = Utc::now();
        if o.draft.stage != from_stage {
            let pipeline: Pipeline = self
                .resolve_pipeline(tenant, &o.draft.pipeline, "opportunity.pipeline")
                .await?;
            let kind = stage_kind(&pipeline, &o.draft.stage, "opportunity.stage")?;
            let to = o.draft.stage.clone();
            o.enter_stage(to, kind, actor, now);
            events.push(self.event(
                "OpportunityStageChanged",
                o.name(),
                self.payloads.stage_changed(&o, &from_stage),
                actor,
            ));
            if let Some(closed) = closing_event(kind) {
                events.push(self.event(
                    closed,
                    o.name(),
                    self.payloads.stage_changed(&o, &from_stage),
                    actor,
                ));
            }
        }
        o.version += 1;
        o.update_time = now;
        self.base
            .save_versioned::<opportunity::Entity>(
                &txn,
                tenant,
                &o.name(),
                id,
                stored_version,
                opportunity_row(tenant, &o),
            )
            .await?;
        events.insert(
            0,
            self.event(
                "OpportunityUpdated",
                o.name(),
                self.payloads.opportunity(&o),
                actor,
            ),
        );
        self.base.commit(txn, tenant, events).await?;
        Ok(o)
    }

    /// Soft-deletes an opportunity (`deleted`), or restores one.
    pub async fn set_opportunity_deleted(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        deleted: bool,
    ) -> Result<Opportunity, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut o: Opportunity = self
            .base
            .find::<opportunity::Entity>(&*txn, tenant, id, &format!("opportunities/{id}"))
            .await?
            .try_into()?;
        check_version(&o.name(), expected_version, o.version)?;
        if o.delete_time.is_some() == deleted {
            return Ok(o);
        }
        let stored_version = o.version;
        o.delete_time = deleted.then(Utc::now);
        o.version += 1;
        self.base
            .save_versioned::<opportunity::Entity>(
                &txn,
                tenant,
                &o.name(),
                id,
                stored_version,
                opportunity_row(tenant, &o),
            )
            .await?;
        let event = self.event(
            if deleted {
                "OpportunityDeleted"
            } else {
                "OpportunityUndeleted"
            },
            o.name(),
            self.payloads.opportunity(&o),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(o)
    }

    /// The sums a forecast of `[start, end)` reads, per currency and stage:
    /// deals won in the period, and open deals expected in it (dates from
    /// the domain's [`analysis::expected_dates`]), each stage with its
    /// probability; deals without an amount count nowhere. `owners` empty
    /// means everyone's. One grouped statement, however many deals.
    pub async fn forecast_sums(
        &self,
        tenant: &Tenant,
        owners: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<StageSum>, ApiError> {
        use opportunity::Column;
        let won = Condition::all()
            .add(Column::State.eq("WON"))
            .add(Column::CloseTime.gte(start))
            .add(Column::CloseTime.lt(end));
        let mut counted = Condition::any().add(won);
        if let Some((first, last)) = analysis::expected_dates(start, end) {
            let day = |date: chrono::NaiveDate| date.format("%Y-%m-%d").to_string();
            counted = counted.add(
                Condition::all()
                    .add(Column::State.eq("OPEN"))
                    .add(Column::ExpectedCloseDate.gte(day(first)))
                    .add(Column::ExpectedCloseDate.lte(day(last))),
            );
        }
        let mut select = opportunity::Entity::find_in(tenant)
            .select_only()
            .columns([
                Column::CurrencyCode,
                Column::State,
                Column::Pipeline,
                Column::Stage,
            ])
            .column_as(Expr::col(Column::Id).count(), "deals")
            .column_as(amount_sum(self.db.backend(), "units"), "units")
            .column_as(amount_sum(self.db.backend(), "nanos"), "nanos")
            .filter(Column::DeleteTime.is_null())
            .filter(Column::CurrencyCode.ne(""))
            .filter(counted)
            .group_by(Column::CurrencyCode)
            .group_by(Column::State)
            .group_by(Column::Pipeline)
            .group_by(Column::Stage);
        if !owners.is_empty() {
            select = select.filter(Column::Owner.is_in(owners.to_vec()));
        }
        let rows = select.into_model::<SumRow>().all(&self.db.conn).await?;
        let pipelines = self.all_pipelines(&self.db.conn, tenant).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let probability = pipelines
                    .iter()
                    .find(|p| p.name() == row.pipeline)
                    .and_then(|p| p.stage(&row.stage))
                    .map_or(0.0, |(_, s)| s.probability);
                let total = i128::from(row.units) * 1_000_000_000 + i128::from(row.nanos);
                StageSum {
                    state: if row.state == "WON" {
                        StageKind::Won
                    } else {
                        StageKind::Open
                    },
                    probability,
                    deals: row.deals,
                    total: Money::from_nanos(&row.currency_code, total),
                }
            })
            .collect())
    }

    /// Every live opportunity of a pipeline.
    pub async fn pipeline_deals(
        &self,
        tenant: &Tenant,
        pipeline: &str,
    ) -> Result<Vec<Opportunity>, ApiError> {
        opportunity::Entity::find_in(tenant)
            .filter(opportunity::Column::Pipeline.eq(pipeline))
            .filter(opportunity::Column::DeleteTime.is_null())
            .all(&self.db.conn)
            .await?
            .into_iter()
            .map(Opportunity::try_from)
            .collect()
    }

    /// Writes opportunity rows as they are (used by the feed).
    /// Writes `o` over the stored row only if it is still at
    /// `stored_version` (ABORTED otherwise).
    pub(super) async fn overwrite_opportunity(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        o: &Opportunity,
        stored_version: i64,
    ) -> Result<(), ApiError> {
        self.base
            .save_versioned::<opportunity::Entity>(
                txn,
                tenant,
                &o.name(),
                o.id,
                stored_version,
                opportunity_row(tenant, o),
            )
            .await
    }
}

/// The sum of one part (`units` or `nanos`) of the amounts of a group of
/// deals. A deal with an amount whose number columns are both 0 was written
/// by a replica older than migration m0004 while a rolling upgrade ran (its
/// entity does not know the columns): its JSON is read instead, so no deal
/// counts as zero. PostgreSQL sums bigints as numeric: back to a bigint.
fn amount_sum(backend: DbBackend, part: &str) -> Expr {
    let from_json = match backend {
        DbBackend::Postgres => format!("(amount::jsonb ->> '{part}')::bigint"),
        _ => format!("CAST(json_extract(amount, '$.{part}') AS INTEGER)"),
    };
    Expr::cust(format!(
        "CAST(SUM(CASE WHEN amount_units = 0 AND amount_nanos = 0 AND amount <> '' \
         THEN COALESCE({from_json}, 0) ELSE amount_{part} END) AS BIGINT)"
    ))
}

/// One group of [`Store::forecast_sums`]' statement.
#[derive(Debug, FromQueryResult)]
struct SumRow {
    currency_code: String,
    state: String,
    pipeline: String,
    stage: String,
    deals: i64,
    units: i64,
    nanos: i64,
}

/// The kind of `stage` in `pipeline`, or INVALID_ARGUMENT on `field`.
fn stage_kind(pipeline: &Pipeline, stage: &str, field: &str) -> Result<StageKind, ApiError> {
    pipeline.stage(stage).map(|(_, s)| s.kind).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{stage} is not a stage of {}", pipeline.name()),
        )
    })
}

/// The event a move into a stage of `kind` also raises.
fn closing_event(kind: StageKind) -> Option<&'static str> {
    match kind {
        StageKind::Won => Some("OpportunityWon"),
        StageKind::Lost => Some("OpportunityLost"),
        StageKind::Open => None,
    }
}
