//! Queues, agent profiles and routing rules.

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped},
    error::ApiError,
    filter::parse_filter,
    idempotency::IdempotencyKey,
    store::{Claim, ListQuery, Page, check_version},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use super::{
    Store,
    entities::{agent, queue, routing_rule},
    from_json, to_json,
};
use crate::domain::{
    routing::{Agent, Queue, QueueDraft, RoutingRule, RuleDraft, STRATEGIES},
    ticket::PRIORITIES,
};

impl TryFrom<queue::Model> for Queue {
    type Error = ApiError;

    fn try_from(row: queue::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored queue has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: QueueDraft {
                display_name: row.display_name,
                description: row.description,
                members: from_json("queue members", &row.members)?,
                strategy: parse_stored(STRATEGIES, &row.strategy).ok_or_else(|| bad("strategy"))?,
                required_skills: from_json("queue skills", &row.required_skills)?,
            },
            assigned: row.assigned,
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn queue_row(tenant: &Tenant, q: &Queue) -> queue::ActiveModel {
    queue::Model {
        id: q.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: q.draft.display_name.clone(),
        description: q.draft.description.clone(),
        members: to_json(&q.draft.members),
        strategy: stored(STRATEGIES, q.draft.strategy).to_owned(),
        required_skills: to_json(&q.draft.required_skills),
        assigned: q.assigned,
        create_time: q.create_time,
        update_time: q.update_time,
        delete_time: q.delete_time,
        version: q.version,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<agent::Model> for Agent {
    type Error = ApiError;

    fn try_from(row: agent::Model) -> Result<Self, ApiError> {
        Ok(Self {
            subject: row.subject,
            display_name: row.display_name,
            skills: from_json("agent skills", &row.skills)?,
            available: row.available,
            update_time: row.update_time,
            version: row.version,
        })
    }
}

fn agent_row(tenant: &Tenant, a: &Agent) -> agent::ActiveModel {
    agent::Model {
        tenant: tenant.as_str().to_owned(),
        subject: a.subject.clone(),
        display_name: a.display_name.clone(),
        skills: to_json(&a.skills),
        available: a.available,
        update_time: a.update_time,
        delete_time: None,
        version: a.version,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<routing_rule::Model> for RoutingRule {
    type Error = ApiError;

    fn try_from(row: routing_rule::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored routing rule has a bad {what}"));
        let set_priority = match row.set_priority.as_str() {
            "" => None,
            name => Some(parse_stored(PRIORITIES, name).ok_or_else(|| bad("priority"))?),
        };
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: RuleDraft {
                display_name: row.display_name,
                priority: row.priority,
                filter: row.filter,
                queue: row.queue,
                set_priority,
            },
            create_time: row.create_time,
            version: row.version,
        })
    }
}

impl Store {
    /// Creates a queue.
    pub async fn create_queue(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: QueueDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Queue, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateQueue", request_id.as_ref())
            .await?
        {
            return self.get_queue(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let q = Queue {
            id: Uuid::now_v7(),
            draft,
            assigned: 0,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.base.db.begin_write().await?;
        queue::Entity::insert(queue_row(tenant, &q))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateQueue", request_id.as_ref(), &q.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_queue(tenant, super::id_of(&existing)).await,
        };
        let event = self.event("QueueCreated", q.name(), self.payloads.queue(&q), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(q)
    }

    /// A queue, deleted or not.
    pub async fn get_queue(&self, tenant: &Tenant, id: Uuid) -> Result<Queue, ApiError> {
        self.base
            .find::<queue::Entity>(&self.base.db.conn, tenant, id, &format!("queues/{id}"))
            .await?
            .try_into()
    }

    /// One page of queues.
    pub async fn list_queues(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Queue>, ApiError> {
        self.base
            .list_page::<queue::Entity, Queue>(tenant, query)
            .await
    }

    /// Changes a queue: `change` edits it (an update, or a soft delete, which
    /// needs the queue to hold no unsolved ticket and no rule to route to it).
    pub async fn update_queue(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Queue) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Queue, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut q: Queue = self
            .base
            .find::<queue::Entity>(&*txn, tenant, id, &format!("queues/{id}"))
            .await?
            .try_into()?;
        check_version(&q.name(), expected_version, q.version)?;
        if q.delete_time.is_some() {
            return Err(ApiError::NotFound(q.name()));
        }
        let stored_version = q.version;
        change(&mut q)?;
        if q.delete_time.is_some() {
            let unsolved = self.unsolved_in_queue(&*txn, tenant, &q.name()).await?;
            let routed = routing_rule::Entity::find_in(tenant)
                .filter(routing_rule::Column::Queue.eq(q.name()))
                .filter(routing_rule::Column::DeleteTime.is_null())
                .one(&*txn)
                .await?;
            if unsolved > 0 || routed.is_some() {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} holds {unsolved} unsolved tickets{}: move them and delete its rules first",
                    q.name(),
                    if routed.is_some() {
                        " and routing rules send tickets to it"
                    } else {
                        ""
                    }
                )));
            }
        }
        q.version += 1;
        q.update_time = Utc::now();
        self.base
            .save_versioned::<queue::Entity>(
                &txn,
                tenant,
                &q.name(),
                id,
                stored_version,
                queue_row(tenant, &q),
            )
            .await?;
        let event = self.event(event, q.name(), self.payloads.queue(&q), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(q)
    }

    /// An agent's profile, if there is one.
    pub async fn find_agent(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<Option<Agent>, ApiError> {
        agent::Entity::find_in(tenant)
            .filter(agent::Column::Subject.eq(subject))
            .one(&self.base.db.conn)
            .await?
            .map(Agent::try_from)
            .transpose()
    }

    /// One page of agent profiles.
    pub async fn list_agents(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Agent>, ApiError> {
        self.base
            .list_page::<agent::Entity, Agent>(tenant, query)
            .await
    }

    /// Changes an agent's profile (`change` edits it); with `allow_missing`
    /// a missing profile starts empty and available.
    pub async fn update_agent(
        &self,
        tenant: &Tenant,
        actor: &str,
        subject: &str,
        expected_version: Option<i64>,
        allow_missing: bool,
        change: impl FnOnce(&mut Agent) -> Result<(), ApiError>,
    ) -> Result<Agent, ApiError> {
        let name = format!("agents/{subject}");
        let txn = self.base.db.begin_write().await?;
        let found = agent::Entity::find_in(tenant)
            .filter(agent::Column::Subject.eq(subject))
            .one(&*txn)
            .await?
            .map(Agent::try_from)
            .transpose()?;
        let (mut a, stored_version) = match found {
            Some(a) => {
                check_version(&name, expected_version, a.version)?;
                let version = a.version;
                (a, Some(version))
            }
            None if allow_missing => (
                Agent {
                    subject: subject.to_owned(),
                    display_name: String::new(),
                    skills: Vec::new(),
                    available: true,
                    update_time: Utc::now(),
                    version: 0,
                },
                None,
            ),
            None => return Err(ApiError::NotFound(name)),
        };
        change(&mut a)?;
        a.version += 1;
        a.update_time = Utc::now();
        match stored_version {
            Some(version) => {
                let updated = agent::Entity::update_many()
                    .set(agent_row(tenant, &a))
                    .filter(agent::Column::Tenant.eq(tenant.as_str()))
                    .filter(agent::Column::Subject.eq(subject))
                    .filter(agent::Column::Version.eq(version))
                    .exec(&*txn)
                    .await?;
                if updated.rows_affected == 0 {
                    return Err(crm_shared::store::stale(&name));
                }
            }
            None => {
                agent_row(tenant, &a).insert(&*txn).await?;
            }
        }
        let event = self.event("AgentUpdated", name, self.payloads.agent(&a), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(a)
    }

    /// Adds a routing rule; INVALID_ARGUMENT when its filter does not parse
    /// or its queue is not a live queue.
    pub async fn create_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: RuleDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<RoutingRule, ApiError> {
        parse_filter(&super::TICKET_FILTER, &draft.filter)
            .map_err(|e| ApiError::invalid("routing_rule.filter", e.message))?;
        self.require_live_queue(tenant, &draft.queue, "routing_rule.queue")
            .await?;
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateRoutingRule", request_id.as_ref())
            .await?
        {
            return self.get_rule(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let rule = RoutingRule {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            version: 1,
        };
        let row = routing_rule::Model {
            id: rule.id.to_string(),
            tenant: tenant.as_str().to_owned(),
            display_name: rule.draft.display_name.clone(),
            priority: rule.draft.priority,
            filter: rule.draft.filter.clone(),
            queue: rule.draft.queue.clone(),
            set_priority: rule
                .draft
                .set_priority
                .map(|p| stored(PRIORITIES, p))
                .unwrap_or_default()
                .to_owned(),
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.base.db.begin_write().await?;
        routing_rule::Entity::insert(row.into_active_model())
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(
                txn,
                tenant,
                "CreateRoutingRule",
                request_id.as_ref(),
                &rule.name(),
            )
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_rule(tenant, super::id_of(&existing)).await,
        };
        let event = self.event(
            "RoutingRuleCreated",
            rule.name(),
            self.payloads.routing_rule(&rule),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(rule)
    }

    async fn get_rule(&self, tenant: &Tenant, id: Uuid) -> Result<RoutingRule, ApiError> {
        self.base
            .find::<routing_rule::Entity>(
                &self.base.db.conn,
                tenant,
                id,
                &format!("routingRules/{id}"),
            )
            .await?
            .try_into()
    }

    /// One page of live routing rules, in the order they are tried.
    pub async fn list_rules(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<RoutingRule>, ApiError> {
        self.base
            .list_page::<routing_rule::Entity, RoutingRule>(tenant, query)
            .await
    }

    /// Removes a routing rule (a soft delete, so past assignment reasons
    /// still name a rule that existed).
    pub async fn delete_rule(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<RoutingRule, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let row = self
            .base
            .find::<routing_rule::Entity>(&*txn, tenant, id, &format!("routingRules/{id}"))
            .await?;
        if row.delete_time.is_some() {
            return Err(ApiError::NotFound(format!("routingRules/{id}")));
        }
        let rule = RoutingRule::try_from(row.clone())?;
        let mut active = row.into_active_model();
        active.delete_time = sea_orm::Set(Some(Utc::now()));
        active.version = sea_orm::Set(rule.version + 1);
        active.update(&*txn).await?;
        let event = self.event(
            "RoutingRuleDeleted",
            rule.name(),
            self.payloads.routing_rule(&rule),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(rule)
    }
}
