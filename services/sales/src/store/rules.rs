//! Assignment and scoring rules.

use chrono::Utc;
use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use crm_shared::{
    db::Tenant,
    error::ApiError,
    store::{Claim, ListQuery},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, sea_query::Order,
};
use uuid::Uuid;

use super::{
    Store,
    entities::{assignment_rule, from_json, scoring_rule, to_json},
};
use crate::domain::{
    assignment::{Rule, RuleDraft, STRATEGIES},
    lead::{parse_stored, stored},
};

/// A scoring rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringRule {
    /// The id.
    pub id: Uuid,
    /// A name for people.
    pub display_name: String,
    /// AIP-160 over lead fields.
    pub filter: String,
    /// Points for a match.
    pub points: i32,
    /// Created.
    pub create_time: chrono::DateTime<Utc>,
    /// Version.
    pub version: i64,
}

impl ScoringRule {
    /// `scoringRules/{id}`.
    pub fn name(&self) -> String {
        format!("scoringRules/{}", self.id)
    }
}

impl TryFrom<assignment_rule::Model> for Rule {
    type Error = ApiError;

    fn try_from(row: assignment_rule::Model) -> Result<Self, ApiError> {
        let bad =
            |what: &str| ApiError::Internal(format!("stored assignment rule has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: RuleDraft {
                display_name: row.display_name,
                priority: row.priority,
                filter: row.filter,
                strategy: parse_stored(STRATEGIES, &row.strategy).ok_or_else(|| bad("strategy"))?,
                members: from_json(&row.members, "members")?,
            },
            assigned: row.assigned,
            create_time: row.create_time,
            version: row.version,
        })
    }
}

impl TryFrom<scoring_rule::Model> for ScoringRule {
    type Error = ApiError;

    fn try_from(row: scoring_rule::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row
                .id
                .parse()
                .map_err(|_| ApiError::Internal("stored scoring rule has a bad id".into()))?,
            display_name: row.display_name,
            filter: row.filter,
            points: row.points,
            create_time: row.create_time,
            version: row.version,
        })
    }
}

impl Store {
    /// Adds an assignment rule (its filter already checked).
    pub async fn create_assignment_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: RuleDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Rule, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateAssignmentRule", request_id.as_ref())
            .await?
        {
            return self
                .get_assignment_rule(tenant, super::id_of(&existing))
                .await;
        }
        let now = Utc::now();
        let rule = Rule {
            id: Uuid::now_v7(),
            draft,
            assigned: 0,
            create_time: now,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        assignment_rule::Entity::insert(
            assignment_rule::Model {
                id: rule.id.to_string(),
                tenant: tenant.as_str().to_owned(),
                display_name: rule.draft.display_name.clone(),
                priority: rule.draft.priority,
                filter: rule.draft.filter.clone(),
                strategy: stored(STRATEGIES, rule.draft.strategy).to_owned(),
                members: to_json(&rule.draft.members),
                assigned: 0,
                create_time: now,
                update_time: now,
                delete_time: None,
                version: 1,
            }
            .into_active_model()
            .reset_all(),
        )
        .exec(&*txn)
        .await?;
        match self
            .base
            .claim(
                txn,
                tenant,
                "CreateAssignmentRule",
                request_id.as_ref(),
                &rule.name(),
            )
            .await?
        {
            Claim::Won(txn) => {
                let payload = self.payloads.assignment_rule(&rule);
                let event = self.event("AssignmentRuleCreated", rule.name(), payload, actor);
                self.base.commit(txn, tenant, vec![event]).await?
            }
            Claim::Lost(existing) => {
                return self
                    .get_assignment_rule(tenant, super::id_of(&existing))
                    .await;
            }
        }
        Ok(rule)
    }

    async fn get_assignment_rule(&self, tenant: &Tenant, id: Uuid) -> Result<Rule, ApiError> {
        self.base
            .find::<assignment_rule::Entity>(
                &self.db.conn,
                tenant,
                id,
                &format!("assignmentRules/{id}"),
            )
            .await?
            .try_into()
    }

    /// One page of assignment rules, by priority.
    pub async fn list_assignment_rules(
        &self,
        tenant: &Tenant,
        mut query: ListQuery,
    ) -> Result<Page<Rule>, ApiError> {
        query.order = vec![("priority", Order::Asc), ("create_time", Order::Asc)];
        self.base
            .list_page::<assignment_rule::Entity, Rule>(tenant, query)
            .await
    }

    /// Removes an assignment rule (for good: rules have no undo).
    pub async fn delete_assignment_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<Rule, ApiError> {
        let rule = self.get_assignment_rule(tenant, id).await?;
        let name = rule.name();
        let txn = self.db.begin_write().await?;
        assignment_rule::Entity::delete_many()
            .filter(assignment_rule::Column::Tenant.eq(tenant.as_str()))
            .filter(assignment_rule::Column::Id.eq(id.to_string()))
            .exec(&*txn)
            .await?;
        let payload = self.payloads.assignment_rule(&rule);
        let event = self.event("AssignmentRuleDeleted", name.clone(), payload, actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        tracing::info!(%name, "assignment rule removed");
        Ok(rule)
    }

    /// Adds a scoring rule (its filter already checked).
    pub async fn create_scoring_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        display_name: String,
        filter: String,
        points: i32,
        request_id: Option<IdempotencyKey>,
    ) -> Result<ScoringRule, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateScoringRule", request_id.as_ref())
            .await?
        {
            return self.get_scoring_rule(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let rule = ScoringRule {
            id: Uuid::now_v7(),
            display_name,
            filter,
            points,
            create_time: now,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        scoring_rule::Entity::insert(
            scoring_rule::Model {
                id: rule.id.to_string(),
                tenant: tenant.as_str().to_owned(),
                display_name: rule.display_name.clone(),
                filter: rule.filter.clone(),
                points,
                create_time: now,
                update_time: now,
                delete_time: None,
                version: 1,
            }
            .into_active_model()
            .reset_all(),
        )
        .exec(&*txn)
        .await?;
        match self
            .base
            .claim(
                txn,
                tenant,
                "CreateScoringRule",
                request_id.as_ref(),
                &rule.name(),
            )
            .await?
        {
            Claim::Won(txn) => {
                let payload = self.payloads.scoring_rule(&rule);
                let event = self.event("ScoringRuleCreated", rule.name(), payload, actor);
                self.base.commit(txn, tenant, vec![event]).await?
            }
            Claim::Lost(existing) => {
                return self.get_scoring_rule(tenant, super::id_of(&existing)).await;
            }
        }
        Ok(rule)
    }

    async fn get_scoring_rule(&self, tenant: &Tenant, id: Uuid) -> Result<ScoringRule, ApiError> {
        self.base
            .find::<scoring_rule::Entity>(&self.db.conn, tenant, id, &format!("scoringRules/{id}"))
            .await?
            .try_into()
    }

    /// One page of scoring rules.
    pub async fn list_scoring_rules(
        &self,
        tenant: &Tenant,
        mut query: ListQuery,
    ) -> Result<Page<ScoringRule>, ApiError> {
        query.order = vec![("create_time", Order::Asc)];
        self.base
            .list_page::<scoring_rule::Entity, ScoringRule>(tenant, query)
            .await
    }

    /// Removes a scoring rule.
    pub async fn delete_scoring_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<ScoringRule, ApiError> {
        let rule = self.get_scoring_rule(tenant, id).await?;
        let txn = self.db.begin_write().await?;
        scoring_rule::Entity::delete_many()
            .filter(scoring_rule::Column::Tenant.eq(tenant.as_str()))
            .filter(scoring_rule::Column::Id.eq(id.to_string()))
            .exec(&*txn)
            .await?;
        let payload = self.payloads.scoring_rule(&rule);
        let event = self.event("ScoringRuleDeleted", rule.name(), payload, actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(rule)
    }
}
