//! Tickets: numbering, routing on create, changes with their history.

use std::collections::HashMap;

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema, parse_filter},
    idempotency::IdempotencyKey,
    outbox::NewEvent,
    store::{Claim, ListQuery, Page, check_version},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    Store,
    entities::{agent, queue, routing_rule, ticket, ticket_change, ticket_message},
    from_json, to_json,
};
use crate::domain::{
    routing::{Agent, Queue, RoutingRule, Strategy},
    sla::TicketSla,
    ticket::{CHANNELS, Change, PRIORITIES, Priority, STATUSES, Status, Ticket, TicketDraft},
};

const STATUS_VALUES: &[(&str, &str)] = &[
    ("NEW", "NEW"),
    ("OPEN", "OPEN"),
    ("PENDING", "PENDING"),
    ("ON_HOLD", "ON_HOLD"),
    ("SOLVED", "SOLVED"),
    ("CLOSED", "CLOSED"),
];
const PRIORITY_VALUES: &[(&str, &str)] = &[
    ("LOW", "LOW"),
    ("NORMAL", "NORMAL"),
    ("HIGH", "HIGH"),
    ("URGENT", "URGENT"),
];
const CHANNEL_VALUES: &[(&str, &str)] = &[
    ("EMAIL", "EMAIL"),
    ("WEB", "WEB"),
    ("PHONE", "PHONE"),
    ("CHAT", "CHAT"),
    ("API", "API"),
];

/// The fields a ticket filter (and a routing rule) may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::new("number", FieldKind::Integer),
        FilterField::text("subject"),
        FilterField::text("requester"),
        FilterField::text("requester_email"),
        FilterField::text("company"),
        FilterField::text("company_tier"),
        FilterField::new("channel", FieldKind::Enum(CHANNEL_VALUES)),
        FilterField::new("priority", FieldKind::Enum(PRIORITY_VALUES)),
        FilterField {
            name: "type",
            column: "kind",
            kind: FieldKind::Text,
        },
        FilterField::new("tags", FieldKind::JsonStringArray),
        FilterField::new("status", FieldKind::Enum(STATUS_VALUES)),
        FilterField::text("queue"),
        FilterField::text("assignee"),
        FilterField::text("follow_up_of"),
        FilterField::new("create_time", FieldKind::Timestamp),
        FilterField::new("update_time", FieldKind::Timestamp),
        FilterField::new("solve_time", FieldKind::Timestamp),
    ],
};

/// The fields a ticket list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("number", "number"),
    ("priority", "priority_rank"),
    ("status", "status"),
    ("create_time", "create_time"),
    ("update_time", "update_time"),
];

/// The stored statuses of tickets still to be solved.
pub(super) const UNSOLVED: [&str; 4] = ["NEW", "OPEN", "PENDING", "ON_HOLD"];

/// A priority's rank, LOW 1 to URGENT 4, for ordering.
fn rank(priority: Priority) -> i32 {
    match priority {
        Priority::Low => 1,
        Priority::Normal => 2,
        Priority::High => 3,
        Priority::Urgent => 4,
    }
}

impl TryFrom<ticket::Model> for Ticket {
    type Error = ApiError;

    fn try_from(row: ticket::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored ticket has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            number: row.number,
            draft: TicketDraft {
                subject: row.subject,
                description: row.description,
                requester: row.requester,
                requester_email: row.requester_email,
                company: row.company,
                channel: parse_stored(CHANNELS, &row.channel).ok_or_else(|| bad("channel"))?,
                priority: parse_stored(PRIORITIES, &row.priority).ok_or_else(|| bad("priority"))?,
                kind: row.kind,
                tags: from_json("ticket tags", &row.tags)?,
                custom_fields: from_json("ticket custom fields", &row.custom_fields)?,
                status: parse_stored(STATUSES, &row.status).ok_or_else(|| bad("status"))?,
            },
            queue: row.queue,
            assignee: row.assignee,
            assignment_reason: row.assignment_reason,
            follow_up_of: row.follow_up_of,
            company_tier: row.company_tier,
            first_response_time: row.first_response_time,
            solve_time: row.solve_time,
            close_time: row.close_time,
            reopen_count: row.reopen_count,
            awaiting_reply_since: row.awaiting_reply_since,
            sla: TicketSla {
                policy: row.sla_policy,
                clocks: from_json("ticket SLA clocks", &row.sla_clocks)?,
                recorded: from_json("ticket SLA alerts", &row.sla_recorded)?,
                next_check: row.sla_next_check,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn ticket_row(tenant: &Tenant, t: &Ticket) -> ticket::ActiveModel {
    let d = &t.draft;
    ticket::Model {
        id: t.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        number: t.number,
        subject: d.subject.clone(),
        description: d.description.clone(),
        requester: d.requester.clone(),
        requester_email: d.requester_email.clone(),
        company: d.company.clone(),
        channel: stored(CHANNELS, d.channel).to_owned(),
        priority: stored(PRIORITIES, d.priority).to_owned(),
        priority_rank: rank(d.priority),
        kind: d.kind.clone(),
        tags: to_json(&d.tags),
        custom_fields: to_json(&d.custom_fields),
        status: stored(STATUSES, d.status).to_owned(),
        queue: t.queue.clone(),
        assignee: t.assignee.clone(),
        assignment_reason: t.assignment_reason.clone(),
        follow_up_of: t.follow_up_of.clone(),
        company_tier: t.company_tier.clone(),
        first_response_time: t.first_response_time,
        solve_time: t.solve_time,
        close_time: t.close_time,
        reopen_count: t.reopen_count,
        sla_policy: t.sla.policy.clone(),
        sla_clocks: to_json(&t.sla.clocks),
        sla_recorded: to_json(&t.sla.recorded),
        sla_next_check: t.sla.next_check,
        awaiting_reply_since: t.awaiting_reply_since,
        create_time: t.create_time,
        update_time: t.update_time,
        delete_time: t.delete_time,
        version: t.version,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<ticket_change::Model> for Change {
    type Error = ApiError;

    fn try_from(row: ticket_change::Model) -> Result<Self, ApiError> {
        let field = ["status", "priority", "queue", "assignee"]
            .into_iter()
            .find(|f| *f == row.field)
            .ok_or_else(|| ApiError::Internal(format!("stored change of {:?}", row.field)))?;
        Ok(Change {
            field,
            old_value: row.old_value,
            new_value: row.new_value,
            actor: row.actor,
            time: row.change_time,
        })
    }
}

/// A ticket to open: the caller's fields plus what the caller fixed.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The checked fields, the requester resolved.
    pub draft: TicketDraft,
    /// A queue the caller chose; routing picks one when empty.
    pub queue: String,
    /// An agent the caller chose; the queue's strategy picks one when empty.
    pub assignee: String,
    /// The closed ticket this one follows up.
    pub follow_up_of: String,
    /// The Message-ID of the mail that opened it.
    pub message_id: String,
    /// Its company's service tier (see [`Ticket::company_tier`]).
    pub company_tier: String,
}

impl Store {
    /// The tenant's next ticket number. The counter row is locked by the
    /// update until commit, so concurrent creates take numbers one after
    /// another, and a rolled-back create gives its number back: no gaps.
    async fn next_number(&self, txn: &WriteTxn, tenant: &Tenant) -> Result<i64, ApiError> {
        let sql = match txn.get_database_backend() {
            DbBackend::Postgres => {
                "INSERT INTO ticket_counters (tenant, last_number) VALUES ($1, 1) \
                 ON CONFLICT (tenant) DO UPDATE SET last_number = ticket_counters.last_number + 1 \
                 RETURNING last_number"
            }
            _ => {
                "INSERT INTO ticket_counters (tenant, last_number) VALUES (?, 1) \
                 ON CONFLICT (tenant) DO UPDATE SET last_number = ticket_counters.last_number + 1 \
                 RETURNING last_number"
            }
        };
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                sql,
                [tenant.as_str().into()],
            ))
            .await?
            .ok_or_else(|| ApiError::Internal("the ticket counter returned no row".into()))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    /// Inserts a ticket with the next number, routes it (first matching rule,
    /// then the queue's strategy) and records its first values; returns it
    /// with its `TicketCreated` event.
    pub(super) async fn insert_ticket(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        actor: &str,
        new: NewTicket,
    ) -> Result<(Ticket, Vec<NewEvent>), ApiError> {
        let now = Utc::now();
        let mut t = Ticket {
            id: Uuid::now_v7(),
            number: self.next_number(txn, tenant).await?,
            draft: TicketDraft {
                status: Status::New,
                ..new.draft
            },
            queue: new.queue,
            assignee: new.assignee,
            assignment_reason: String::new(),
            follow_up_of: new.follow_up_of,
            company_tier: new.company_tier,
            first_response_time: None,
            solve_time: None,
            close_time: None,
            reopen_count: 0,
            awaiting_reply_since: None,
            sla: TicketSla::default(),
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        if !t.queue.is_empty() || !t.assignee.is_empty() {
            t.assignment_reason = "manual".into();
        }
        ticket::Entity::insert(ticket_row(tenant, &t))
            .exec(&**txn)
            .await?;
        if t.queue.is_empty() {
            self.route(txn, tenant, &mut t).await?;
        }
        if t.assignee.is_empty() && !t.queue.is_empty() {
            let queue_id = super::id_of(&t.queue);
            if let Some((agent, reason)) = self
                .pick_agent(txn, tenant, queue_id, &t.draft.tags)
                .await?
            {
                t.assignee = agent;
                // Keep what routed it: "rule Mail; queue Billing: round robin".
                t.assignment_reason = if t.assignment_reason.is_empty() {
                    reason
                } else {
                    format!("{}; {reason}", t.assignment_reason)
                };
            }
        }
        let mut changes = vec![
            Ticket::change("status", "", stored(STATUSES, Status::New), actor, now),
            Ticket::change(
                "priority",
                "",
                stored(PRIORITIES, t.draft.priority),
                actor,
                now,
            ),
        ];
        if !t.queue.is_empty() {
            changes.push(Ticket::change("queue", "", &t.queue, actor, now));
        }
        if !t.assignee.is_empty() {
            changes.push(Ticket::change("assignee", "", &t.assignee, actor, now));
        }
        // Routing may have changed the row inserted above.
        ticket::Entity::update(ticket_row(tenant, &t))
            .exec(&**txn)
            .await?;
        self.record_changes(txn, tenant, t.id, &changes).await?;
        if !new.message_id.is_empty() {
            self.remember_message(txn, tenant, &new.message_id, t.id)
                .await?;
        }
        let alerts = self.write_sla(txn, tenant, &mut t, true).await?;
        let mut events =
            vec![self.event("TicketCreated", t.name(), self.payloads.ticket(&t), actor)];
        events.extend(alerts);
        Ok((t, events))
    }

    /// Opens a ticket (see [`Store::insert_ticket`]); a retry with the same
    /// request id returns the first ticket.
    pub async fn create_ticket(
        &self,
        tenant: &Tenant,
        actor: &str,
        new: NewTicket,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Ticket, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateTicket", request_id.as_ref())
            .await?
        {
            return self.get_ticket(tenant, super::id_of(&existing)).await;
        }
        let txn = self.base.db.begin_write().await?;
        let (t, events) = self.insert_ticket(&txn, tenant, actor, new).await?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateTicket", request_id.as_ref(), &t.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_ticket(tenant, super::id_of(&existing)).await,
        };
        self.base.commit(txn, tenant, events).await?;
        Ok(t)
    }

    /// Moves a new ticket to the queue of the first routing rule whose
    /// filter matches it, raising its priority when the rule says so.
    async fn route(&self, txn: &WriteTxn, tenant: &Tenant, t: &mut Ticket) -> Result<(), ApiError> {
        let rules = routing_rule::Entity::find_in(tenant)
            .filter(routing_rule::Column::DeleteTime.is_null())
            .order_by_asc(routing_rule::Column::Priority)
            .order_by_asc(routing_rule::Column::CreateTime)
            .all(&**txn)
            .await?;
        for row in rules {
            let rule = RoutingRule::try_from(row)?;
            let condition = parse_filter(&FILTER, &rule.draft.filter).map_err(|e| {
                ApiError::Internal(format!("stored routing rule filter does not parse: {e}"))
            })?;
            let matches = ticket::Entity::find_in(tenant)
                .filter(ticket::Column::Id.eq(t.id.to_string()))
                .filter(condition)
                .count(&**txn)
                .await?;
            if matches == 0 {
                continue;
            }
            t.queue = rule.draft.queue.clone();
            t.assignment_reason = format!("rule {}", rule.draft.display_name);
            if let Some(at_least) = rule.draft.set_priority {
                t.draft.priority = t.draft.priority.max(at_least);
            }
            return Ok(());
        }
        Ok(())
    }

    /// The agent a live queue's strategy gives a ticket with `tags`, and why.
    pub(super) async fn pick_agent(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        queue_id: Uuid,
        tags: &[String],
    ) -> Result<Option<(String, String)>, ApiError> {
        let Some(row) = queue::Entity::find_in(tenant)
            .filter(queue::Column::Id.eq(queue_id.to_string()))
            .filter(queue::Column::DeleteTime.is_null())
            .one(&**txn)
            .await?
        else {
            return Ok(None);
        };
        let mut q = Queue::try_from(row)?;
        if q.draft.members.is_empty() || q.draft.strategy == Strategy::Manual {
            return Ok(None);
        }
        if q.draft.strategy == Strategy::RoundRobin {
            // Take the turn first: the update locks the queue's row until
            // commit, so concurrent creates take turns one after another.
            queue::Entity::update_many()
                .col_expr(
                    queue::Column::Assigned,
                    sea_orm::sea_query::ExprTrait::add(Expr::col(queue::Column::Assigned), 1),
                )
                .filter(queue::Column::Tenant.eq(tenant.as_str()))
                .filter(queue::Column::Id.eq(q.id.to_string()))
                .exec(&**txn)
                .await?;
            let turn: Option<i64> = queue::Entity::find_in(tenant)
                .select_only()
                .column(queue::Column::Assigned)
                .filter(queue::Column::Id.eq(q.id.to_string()))
                .into_tuple()
                .one(&**txn)
                .await?;
            q.assigned = turn.unwrap_or(1) - 1;
        }
        let profiles: HashMap<String, Agent> = agent::Entity::find_in(tenant)
            .filter(agent::Column::Subject.is_in(q.draft.members.clone()))
            .all(&**txn)
            .await?
            .into_iter()
            .map(|row| Agent::try_from(row).map(|a| (a.subject.clone(), a)))
            .collect::<Result<_, _>>()?;
        let loads: HashMap<String, i64> = ticket::Entity::find_in(tenant)
            .select_only()
            .column(ticket::Column::Assignee)
            .column_as(ticket::Column::Id.count(), "open")
            .filter(ticket::Column::Assignee.is_in(q.draft.members.clone()))
            .filter(ticket::Column::Status.is_in(UNSOLVED))
            .filter(ticket::Column::DeleteTime.is_null())
            .group_by(ticket::Column::Assignee)
            .into_tuple::<(String, i64)>()
            .all(&**txn)
            .await?
            .into_iter()
            .collect();
        Ok(q.pick(tags, &profiles, &loads))
    }

    pub(super) async fn load_ticket<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Ticket, ApiError> {
        self.base
            .find::<ticket::Entity>(conn, tenant, id, &format!("tickets/{id}"))
            .await?
            .try_into()
    }

    /// A ticket, deleted or not.
    pub async fn get_ticket(&self, tenant: &Tenant, id: Uuid) -> Result<Ticket, ApiError> {
        self.load_ticket(&self.base.db.conn, tenant, id).await
    }

    /// The ticket with a number, if any.
    pub async fn ticket_numbered(
        &self,
        tenant: &Tenant,
        number: i64,
    ) -> Result<Option<Ticket>, ApiError> {
        ticket::Entity::find_in(tenant)
            .filter(ticket::Column::Number.eq(number))
            .one(&self.base.db.conn)
            .await?
            .map(Ticket::try_from)
            .transpose()
    }

    /// One page of tickets.
    pub async fn list_tickets(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Ticket>, ApiError> {
        self.base
            .list_page::<ticket::Entity, Ticket>(tenant, query)
            .await
    }

    /// One page of a ticket's changes, oldest first.
    pub async fn list_changes(
        &self,
        tenant: &Tenant,
        ticket_id: Uuid,
        mut query: ListQuery,
    ) -> Result<Page<Change>, ApiError> {
        self.get_ticket(tenant, ticket_id).await?;
        query.condition = query
            .condition
            .add(ticket_change::Column::TicketId.eq(ticket_id.to_string()));
        self.base
            .list_page::<ticket_change::Entity, Change>(tenant, query)
            .await
    }

    /// Changes a ticket: `change` edits it and returns the tracked changes
    /// it made; the row, its history and `event` (plus a status event per
    /// status change) commit together.
    pub async fn update_ticket(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut Ticket) -> Result<Vec<Change>, ApiError>,
        event: &'static str,
    ) -> Result<Ticket, ApiError> {
        let txn = self.base.db.begin_write().await?;
        txn.serialize_on(&format!("tickets/{id}")).await?;
        let mut t = self.load_ticket(&*txn, tenant, id).await?;
        check_version(&t.name(), expected_version, t.version)?;
        let stored_version = t.version;
        let changes = change(&mut t)?;
        let events = self
            .save_ticket(
                &txn,
                tenant,
                &mut t,
                stored_version,
                &changes,
                actor,
                Some(event),
            )
            .await?;
        self.base.commit(txn, tenant, events).await?;
        Ok(t)
    }

    /// Moves a ticket to `queue` (empty: keeps its queue) and `assignee`
    /// (empty with a new queue: the queue's strategy picks; empty
    /// otherwise: unassigned).
    pub async fn assign_ticket(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        queue: String,
        assignee: String,
    ) -> Result<Ticket, ApiError> {
        let txn = self.base.db.begin_write().await?;
        txn.serialize_on(&format!("tickets/{id}")).await?;
        let mut t = self.load_ticket(&*txn, tenant, id).await?;
        check_version(&t.name(), expected_version, t.version)?;
        if t.delete_time.is_some() || t.draft.status == Status::Closed {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is deleted or closed",
                t.name()
            )));
        }
        let stored_version = t.version;
        let now = Utc::now();
        let (old_queue, old_assignee) = (t.queue.clone(), t.assignee.clone());
        let mut reason = "manual".to_owned();
        let mut new_assignee = assignee;
        if !queue.is_empty() {
            t.queue = queue;
            if new_assignee.is_empty()
                && let Some((agent, why)) = self
                    .pick_agent(&txn, tenant, super::id_of(&t.queue), &t.draft.tags)
                    .await?
            {
                new_assignee = agent;
                reason = why;
            }
        }
        t.assignee = new_assignee;
        t.assignment_reason = reason;
        let mut changes = Vec::new();
        if t.queue != old_queue {
            changes.push(Ticket::change("queue", &old_queue, &t.queue, actor, now));
        }
        if t.assignee != old_assignee {
            changes.push(Ticket::change(
                "assignee",
                &old_assignee,
                &t.assignee,
                actor,
                now,
            ));
        }
        let events = self
            .save_ticket(
                &txn,
                tenant,
                &mut t,
                stored_version,
                &changes,
                actor,
                Some("TicketAssigned"),
            )
            .await?;
        self.base.commit(txn, tenant, events).await?;
        Ok(t)
    }

    /// Writes a changed ticket (its version moved on) and its history;
    /// returns `event` about it (if any) plus one event per status change:
    /// `TicketSolved`, `TicketReopened`, `TicketClosed`, or
    /// `TicketStatusChanged` for any other move.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn save_ticket(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        t: &mut Ticket,
        stored_version: i64,
        changes: &[Change],
        actor: &str,
        event: Option<&'static str>,
    ) -> Result<Vec<NewEvent>, ApiError> {
        t.version = stored_version + 1;
        t.update_time = Utc::now();
        self.base
            .save_versioned::<ticket::Entity>(
                txn,
                tenant,
                &t.name(),
                t.id,
                stored_version,
                ticket_row(tenant, t),
            )
            .await?;
        self.record_changes(txn, tenant, t.id, changes).await?;
        if changes
            .iter()
            .any(|c| c.field == "status" && c.new_value == "SOLVED")
        {
            self.open_survey(txn, tenant, t, self.survey_valid_for)
                .await?;
        }
        // Fields a policy's filter may name changed: choose the policy again.
        let choose = matches!(
            event,
            Some("TicketUpdated" | "TicketAssigned" | "TicketUndeleted")
        );
        let alerts = self.write_sla(txn, tenant, t, choose).await?;
        let mut events: Vec<NewEvent> = event
            .map(|event| self.event(event, t.name(), self.payloads.ticket(t), actor))
            .into_iter()
            .collect();
        for change in changes.iter().filter(|c| c.field == "status") {
            let from = crm_shared::convert::parse_stored(STATUSES, &change.old_value)
                .unwrap_or(Status::New);
            let name = match (from, t.draft.status) {
                (_, Status::Solved) => "TicketSolved",
                (_, Status::Closed) => "TicketClosed",
                (Status::Solved, _) => "TicketReopened",
                _ => "TicketStatusChanged",
            };
            events.push(self.event(name, t.name(), self.payloads.status_changed(t, from), actor));
        }
        events.extend(alerts);
        Ok(events)
    }

    /// Refreshes the SLA of a ticket whose row `txn` holds (see
    /// [`Store::refresh_sla`]) and writes it with any escalation; the alert
    /// events.
    async fn write_sla(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        t: &mut Ticket,
        choose: bool,
    ) -> Result<Vec<NewEvent>, ApiError> {
        let before = t.sla.clone();
        let (changes, alerts) = self.refresh_sla(txn, tenant, t, choose).await?;
        // Most saves of a ticket without a policy change nothing here: the
        // row as written stands.
        if changes.is_empty() && t.sla == before {
            return Ok(Vec::new());
        }
        self.record_changes(txn, tenant, t.id, &changes).await?;
        ticket::Entity::update(ticket_row(tenant, t))
            .exec(&**txn)
            .await?;
        Ok(alerts
            .iter()
            .map(|alert| self.alert_event(t, alert))
            .collect())
    }

    async fn record_changes(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        ticket_id: Uuid,
        changes: &[Change],
    ) -> Result<(), ApiError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rows = changes.iter().map(|c| ticket_change::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7().to_string()),
            tenant: sea_orm::Set(tenant.as_str().to_owned()),
            ticket_id: sea_orm::Set(ticket_id.to_string()),
            field: sea_orm::Set(c.field.to_owned()),
            old_value: sea_orm::Set(c.old_value.clone()),
            new_value: sea_orm::Set(c.new_value.clone()),
            actor: sea_orm::Set(c.actor.clone()),
            change_time: sea_orm::Set(c.time),
            delete_time: sea_orm::Set(None),
            version: sea_orm::Set(1),
        });
        ticket_change::Entity::insert_many(rows)
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// Remembers that mail `message_id` belongs to a ticket (a second
    /// mention of the same id keeps the first ticket).
    pub(super) async fn remember_message(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        message_id: &str,
        ticket_id: Uuid,
    ) -> Result<(), ApiError> {
        let row = ticket_message::ActiveModel {
            tenant: sea_orm::Set(tenant.as_str().to_owned()),
            message_id: sea_orm::Set(message_id.to_owned()),
            ticket_id: sea_orm::Set(ticket_id.to_string()),
        };
        ticket_message::Entity::insert(row)
            .on_conflict_do_nothing_on([
                ticket_message::Column::Tenant,
                ticket_message::Column::MessageId,
            ])
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// The ticket the first known of `message_ids` belongs to.
    pub async fn ticket_of_messages(
        &self,
        tenant: &Tenant,
        message_ids: &[String],
    ) -> Result<Option<Uuid>, ApiError> {
        if message_ids.is_empty() {
            return Ok(None);
        }
        let found: Option<String> = ticket_message::Entity::find_in(tenant)
            .select_only()
            .column(ticket_message::Column::TicketId)
            .filter(ticket_message::Column::MessageId.is_in(message_ids.to_vec()))
            .into_tuple()
            .one(&self.base.db.conn)
            .await?;
        Ok(found.and_then(|id| id.parse().ok()))
    }

    /// Unsolved tickets of the tenant in a queue (deleting a queue needs none).
    pub(super) async fn unsolved_in_queue<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        queue: &str,
    ) -> Result<u64, ApiError> {
        Ok(ticket::Entity::find_in(tenant)
            .filter(ticket::Column::Queue.eq(queue))
            .filter(ticket::Column::Status.is_in(UNSOLVED))
            .filter(ticket::Column::DeleteTime.is_null())
            .count(conn)
            .await?)
    }
}
