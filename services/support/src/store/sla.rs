//! SLA policies and calendars, each ticket's clocks, and the scheduler that
//! raises warnings and breaches when they fall due.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::parse_filter,
    idempotency::IdempotencyKey,
    outbox::NewEvent,
    schedule::Job,
    store::{Claim, ListQuery, Page, check_version},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    Store,
    entities::{business_calendar, sla_policy, ticket, ticket_change},
    from_json, to_json,
};
use crate::domain::{
    calendar::Calendar,
    sla::{
        BusinessCalendar, CalendarDraft, ClockInputs, PolicyDraft, SlaPolicy, clocks, next_check,
    },
    ticket::{Change, PRIORITIES, STATUSES, Ticket},
};

/// Who the scheduler's changes are recorded as.
const SLA_ACTOR: &str = "sla";
/// Tickets one scheduler pass looks at, at most (the next pass takes the rest).
const PASS_LIMIT: u64 = 200;

impl TryFrom<business_calendar::Model> for BusinessCalendar {
    type Error = ApiError;

    fn try_from(row: business_calendar::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row
                .id
                .parse()
                .map_err(|_| ApiError::Internal("stored calendar has a bad id".into()))?,
            draft: CalendarDraft {
                display_name: row.display_name,
                time_zone: row.time_zone,
                weekly_hours: from_json("calendar hours", &row.weekly_hours)?,
                holidays: from_json("calendar holidays", &row.holidays)?,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn calendar_row(tenant: &Tenant, c: &BusinessCalendar) -> business_calendar::ActiveModel {
    business_calendar::Model {
        id: c.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: c.draft.display_name.clone(),
        time_zone: c.draft.time_zone.clone(),
        weekly_hours: to_json(&c.draft.weekly_hours),
        holidays: to_json(&c.draft.holidays),
        create_time: c.create_time,
        update_time: c.update_time,
        delete_time: c.delete_time,
        version: c.version,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<sla_policy::Model> for SlaPolicy {
    type Error = ApiError;

    fn try_from(row: sla_policy::Model) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::Internal(format!("stored SLA policy has a bad {what}"));
        let escalate_priority = match row.escalate_priority.as_str() {
            "" => None,
            name => Some(parse_stored(PRIORITIES, name).ok_or_else(|| bad("priority"))?),
        };
        Ok(Self {
            id: row.id.parse().map_err(|_| bad("id"))?,
            draft: PolicyDraft {
                display_name: row.display_name,
                priority: row.priority,
                filter: row.filter,
                first_response_minutes: row.first_response_minutes,
                next_response_minutes: row.next_response_minutes,
                resolution_minutes: row.resolution_minutes,
                calendar: row.calendar,
                warn_at_percent: row.warn_at_percent,
                escalate_priority,
                escalate_queue: row.escalate_queue,
            },
            create_time: row.create_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn policy_row(tenant: &Tenant, p: &SlaPolicy) -> sla_policy::ActiveModel {
    let d = &p.draft;
    sla_policy::Model {
        id: p.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: d.display_name.clone(),
        priority: d.priority,
        filter: d.filter.clone(),
        first_response_minutes: d.first_response_minutes,
        next_response_minutes: d.next_response_minutes,
        resolution_minutes: d.resolution_minutes,
        calendar: d.calendar.clone(),
        warn_at_percent: d.warn_at_percent,
        escalate_priority: d
            .escalate_priority
            .map(|p| stored(PRIORITIES, p))
            .unwrap_or_default()
            .to_owned(),
        escalate_queue: d.escalate_queue.clone(),
        create_time: p.create_time,
        update_time: p.create_time,
        delete_time: p.delete_time,
        version: p.version,
    }
    .into_active_model()
    .reset_all()
}

/// An alert the refresh raised, for its event.
pub struct Alert {
    /// "SlaWarning" or "SlaBreached".
    pub event: &'static str,
    /// The clock's metric.
    pub metric: crate::domain::sla::Metric,
    /// When it fell due.
    pub due: DateTime<Utc>,
}

impl Store {
    /// Creates a calendar (already checked by building it).
    pub async fn create_calendar(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: CalendarDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<BusinessCalendar, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateBusinessCalendar", request_id.as_ref())
            .await?
        {
            return self.get_calendar(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let c = BusinessCalendar {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let txn = self.base.db.begin_write().await?;
        business_calendar::Entity::insert(calendar_row(tenant, &c))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(
                txn,
                tenant,
                "CreateBusinessCalendar",
                request_id.as_ref(),
                &c.name(),
            )
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_calendar(tenant, super::id_of(&existing)).await;
            }
        };
        let event = self.event(
            "BusinessCalendarCreated",
            c.name(),
            self.payloads.calendar(&c),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(c)
    }

    /// A calendar, deleted or not.
    pub async fn get_calendar(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<BusinessCalendar, ApiError> {
        self.base
            .find::<business_calendar::Entity>(
                &self.base.db.conn,
                tenant,
                id,
                &format!("businessCalendars/{id}"),
            )
            .await?
            .try_into()
    }

    /// One page of calendars.
    pub async fn list_calendars(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<BusinessCalendar>, ApiError> {
        self.base
            .list_page::<business_calendar::Entity, BusinessCalendar>(tenant, query)
            .await
    }

    /// Changes a calendar (an update, or a soft delete, which needs no live
    /// policy to use it).
    pub async fn update_calendar(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut BusinessCalendar) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<BusinessCalendar, ApiError> {
        let name = format!("businessCalendars/{id}");
        let txn = self.base.db.begin_write().await?;
        let mut c: BusinessCalendar = self
            .base
            .find::<business_calendar::Entity>(&*txn, tenant, id, &name)
            .await?
            .try_into()?;
        check_version(&name, expected_version, c.version)?;
        if c.delete_time.is_some() {
            return Err(ApiError::NotFound(name));
        }
        let stored_version = c.version;
        change(&mut c)?;
        if c.delete_time.is_some() {
            let users = sla_policy::Entity::find_in(tenant)
                .filter(sla_policy::Column::Calendar.eq(&name))
                .filter(sla_policy::Column::DeleteTime.is_null())
                .count(&*txn)
                .await?;
            if users > 0 {
                return Err(ApiError::FailedPrecondition(format!(
                    "{users} SLA policies use {name}: delete them first"
                )));
            }
        }
        c.version += 1;
        c.update_time = Utc::now();
        self.base
            .save_versioned::<business_calendar::Entity>(
                &txn,
                tenant,
                &name,
                id,
                stored_version,
                calendar_row(tenant, &c),
            )
            .await?;
        let event = self.event(event, name, self.payloads.calendar(&c), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(c)
    }

    /// Adds a policy; INVALID_ARGUMENT when its filter does not parse or its
    /// calendar or escalation queue is not live.
    pub async fn create_policy(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: PolicyDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<SlaPolicy, ApiError> {
        parse_filter(&super::TICKET_FILTER, &draft.filter)
            .map_err(|e| ApiError::invalid("sla_policy.filter", e.message))?;
        if !draft.calendar.is_empty() {
            self.require_live_calendar(tenant, &draft.calendar, "sla_policy.calendar")
                .await?;
        }
        if !draft.escalate_queue.is_empty() {
            self.require_live_queue(tenant, &draft.escalate_queue, "sla_policy.escalate_queue")
                .await?;
        }
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateSlaPolicy", request_id.as_ref())
            .await?
        {
            return self.get_policy(tenant, super::id_of(&existing)).await;
        }
        let p = SlaPolicy {
            id: Uuid::now_v7(),
            draft,
            create_time: Utc::now(),
            delete_time: None,
            version: 1,
        };
        let txn = self.base.db.begin_write().await?;
        sla_policy::Entity::insert(policy_row(tenant, &p))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(
                txn,
                tenant,
                "CreateSlaPolicy",
                request_id.as_ref(),
                &p.name(),
            )
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_policy(tenant, super::id_of(&existing)).await,
        };
        let event = self.event(
            "SlaPolicyCreated",
            p.name(),
            self.payloads.policy(&p),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// A policy, deleted or not.
    pub async fn get_policy(&self, tenant: &Tenant, id: Uuid) -> Result<SlaPolicy, ApiError> {
        self.base
            .find::<sla_policy::Entity>(
                &self.base.db.conn,
                tenant,
                id,
                &format!("slaPolicies/{id}"),
            )
            .await?
            .try_into()
    }

    /// One page of live policies, in the order they are tried.
    pub async fn list_policies(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<SlaPolicy>, ApiError> {
        self.base
            .list_page::<sla_policy::Entity, SlaPolicy>(tenant, query)
            .await
    }

    /// Removes a policy (soft: tickets still name it until they choose again).
    pub async fn delete_policy(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<SlaPolicy, ApiError> {
        let name = format!("slaPolicies/{id}");
        let txn = self.base.db.begin_write().await?;
        let mut p: SlaPolicy = self
            .base
            .find::<sla_policy::Entity>(&*txn, tenant, id, &name)
            .await?
            .try_into()?;
        if p.delete_time.is_some() {
            return Err(ApiError::NotFound(name));
        }
        let stored_version = p.version;
        p.delete_time = Some(Utc::now());
        p.version += 1;
        self.base
            .save_versioned::<sla_policy::Entity>(
                &txn,
                tenant,
                &name,
                id,
                stored_version,
                policy_row(tenant, &p),
            )
            .await?;
        let event = self.event("SlaPolicyDeleted", name, self.payloads.policy(&p), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// The first live policy whose filter matches the ticket as stored in `txn`.
    async fn matching_policy(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        ticket_id: Uuid,
    ) -> Result<Option<SlaPolicy>, ApiError> {
        let policies = sla_policy::Entity::find_in(tenant)
            .filter(sla_policy::Column::DeleteTime.is_null())
            .order_by_asc(sla_policy::Column::Priority)
            .order_by_asc(sla_policy::Column::CreateTime)
            .all(&**txn)
            .await?;
        for row in policies {
            let policy = SlaPolicy::try_from(row)?;
            let condition =
                parse_filter(&super::TICKET_FILTER, &policy.draft.filter).map_err(|e| {
                    ApiError::Internal(format!("stored SLA policy filter does not parse: {e}"))
                })?;
            let matches = ticket::Entity::find_in(tenant)
                .filter(ticket::Column::Id.eq(ticket_id.to_string()))
                .filter(condition)
                .count(&**txn)
                .await?;
            if matches > 0 {
                return Ok(Some(policy));
            }
        }
        Ok(None)
    }

    /// Brings a ticket's SLA up to date in `txn`, the ticket's row as stored
    /// there: with `choose`, picks its policy again; recomputes its clocks;
    /// raises the warnings and breaches that have fallen due and not been
    /// raised for this run of the clock; on a breach escalates as the policy
    /// says. Returns the changes the escalation made and the alerts raised.
    pub(super) async fn refresh_sla(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        t: &mut Ticket,
        choose: bool,
    ) -> Result<(Vec<Change>, Vec<Alert>), ApiError> {
        let now = Utc::now();
        let policy = if choose {
            self.matching_policy(txn, tenant, t.id).await?
        } else if t.sla.policy.is_empty() {
            None
        } else {
            sla_policy::Entity::find_in(tenant)
                .filter(sla_policy::Column::Id.eq(super::id_of(&t.sla.policy).to_string()))
                .one(&**txn)
                .await?
                .map(SlaPolicy::try_from)
                .transpose()?
        };
        let Some(policy) = policy else {
            t.sla = Default::default();
            return Ok((Vec::new(), Vec::new()));
        };
        let calendar = self.calendar_of(txn, tenant, &policy).await?;
        let inputs = ClockInputs {
            created: t.create_time,
            first_response: t.first_response_time,
            awaiting_reply_since: t.awaiting_reply_since,
            status: t.draft.status,
            solve_time: t.solve_time,
            statuses: self.status_history(txn, tenant, t.id).await?,
        };
        let clocks = clocks(&policy.draft, &calendar, &inputs, now);
        if t.sla.policy != policy.name() {
            t.sla.recorded.clear();
        }
        // Forget alerts of clock runs that are over (a next response answered).
        let live: Vec<String> = clocks
            .iter()
            .flat_map(|c| [c.alert_key("warned"), c.alert_key("breached")])
            .collect();
        t.sla.recorded.retain(|key| live.contains(key));
        let mut changes = Vec::new();
        let mut alerts = Vec::new();
        for clock in &clocks {
            let warned = clock.alert_key("warned");
            if let Some(warn) = clock.warn
                && clock.met.is_none_or(|met| met > warn)
                && warn <= now
                && !t.sla.recorded.contains(&warned)
            {
                t.sla.recorded.push(warned);
                alerts.push(Alert {
                    event: "SlaWarning",
                    metric: clock.metric,
                    due: warn,
                });
            }
            let breached = clock.alert_key("breached");
            if let Some(due) = clock.due
                && clock.breached(now)
                && !t.sla.recorded.contains(&breached)
            {
                t.sla.recorded.push(breached);
                alerts.push(Alert {
                    event: "SlaBreached",
                    metric: clock.metric,
                    due,
                });
                changes.extend(escalate(t, &policy.draft, now));
            }
        }
        t.sla.next_check = next_check(&clocks, &t.sla.recorded);
        t.sla.policy = policy.name();
        t.sla.clocks = clocks;
        Ok((changes, alerts))
    }

    async fn calendar_of(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        policy: &SlaPolicy,
    ) -> Result<Calendar, ApiError> {
        if policy.draft.calendar.is_empty() {
            return Ok(Calendar::always());
        }
        let row = business_calendar::Entity::find_in(tenant)
            .filter(
                business_calendar::Column::Id.eq(super::id_of(&policy.draft.calendar).to_string()),
            )
            .one(&**txn)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(format!("{} names a missing calendar", policy.name()))
            })?;
        BusinessCalendar::try_from(row)?
            .draft
            .calendar("calendar")
            .map_err(|e| ApiError::Internal(format!("a stored calendar no longer builds: {e:?}")))
    }

    /// Every status the ticket took, oldest first.
    async fn status_history(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        ticket_id: Uuid,
    ) -> Result<Vec<(DateTime<Utc>, crate::domain::ticket::Status)>, ApiError> {
        let rows: Vec<(DateTime<Utc>, String)> = ticket_change::Entity::find_in(tenant)
            .select_only()
            .column(ticket_change::Column::ChangeTime)
            .column(ticket_change::Column::NewValue)
            .filter(ticket_change::Column::TicketId.eq(ticket_id.to_string()))
            .filter(ticket_change::Column::Field.eq("status"))
            .order_by_asc(ticket_change::Column::ChangeTime)
            .order_by_asc(ticket_change::Column::Id)
            .into_tuple()
            .all(&**txn)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(at, status)| Some((at, parse_stored(STATUSES, &status)?)))
            .collect())
    }

    /// One scheduler pass: every ticket, of any tenant, whose next SLA check
    /// has come (including those that came while no replica ran) is
    /// refreshed through the usual save, which raises its alerts.
    pub async fn check_due_slas(&self) -> Result<u64, ApiError> {
        // The scan crosses tenants on purpose: it reads only which tickets
        // are due; each is then loaded and written in its own tenant.
        let due: Vec<(String, String)> = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Tenant)
            .column(ticket::Column::Id)
            .filter(ticket::Column::SlaNextCheck.lte(Utc::now()))
            .filter(ticket::Column::DeleteTime.is_null())
            .order_by_asc(ticket::Column::SlaNextCheck)
            .limit(PASS_LIMIT)
            .into_tuple()
            .all(&self.base.db.conn)
            .await?;
        let mut handled = 0;
        for (tenant, id) in due {
            let tenant = Tenant::new(tenant);
            let Ok(id) = id.parse::<Uuid>() else { continue };
            let txn = self.base.db.begin_write().await?;
            txn.serialize_on(&format!("tickets/{id}")).await?;
            let mut t = self.load_ticket(&*txn, &tenant, id).await?;
            let stored_version = t.version;
            let events = self
                .save_ticket(&txn, &tenant, &mut t, stored_version, &[], SLA_ACTOR, None)
                .await?;
            self.base.commit(txn, &tenant, events).await?;
            handled += 1;
        }
        Ok(handled)
    }

    /// The event of an alert about `t`.
    pub(super) fn alert_event(&self, t: &Ticket, alert: &Alert) -> NewEvent {
        self.event(
            alert.event,
            t.name(),
            self.payloads.sla_alert(t, alert.metric, alert.due),
            SLA_ACTOR,
        )
    }
}

/// On a breach: the priority raised and the queue moved as the policy says;
/// the changes made.
fn escalate(t: &mut Ticket, policy: &PolicyDraft, now: DateTime<Utc>) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(at_least) = policy.escalate_priority
        && t.draft.priority < at_least
    {
        changes.push(Ticket::change(
            "priority",
            stored(PRIORITIES, t.draft.priority),
            stored(PRIORITIES, at_least),
            SLA_ACTOR,
            now,
        ));
        t.draft.priority = at_least;
    }
    if !policy.escalate_queue.is_empty() && t.queue != policy.escalate_queue {
        changes.push(Ticket::change(
            "queue",
            &t.queue,
            &policy.escalate_queue,
            SLA_ACTOR,
            now,
        ));
        t.queue = policy.escalate_queue.clone();
        t.assignment_reason = "SLA escalation".into();
    }
    changes
}

/// The SLA scheduler as a kit job.
pub struct SlaScheduler(pub Store);

#[tonic::async_trait]
impl Job for SlaScheduler {
    async fn run_once(&self) -> Result<u64, ApiError> {
        self.0.check_due_slas().await
    }
}

/// The scheduler over `store`, for [`crm_shared::kit::ServiceKit::schedule`].
pub fn scheduler(store: Store) -> Arc<dyn Job> {
    Arc::new(SlaScheduler(store))
}
