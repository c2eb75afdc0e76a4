//! Satisfaction surveys: made when a ticket is first solved, answered once
//! (or again, replacing) until the token expires, reported per agent or queue.

use chrono::{DateTime, Duration, Utc};
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{Store, entities::satisfaction_survey};
use crate::domain::{satisfaction::Survey, ticket::Ticket};

impl From<satisfaction_survey::Model> for Survey {
    fn from(row: satisfaction_survey::Model) -> Self {
        Self {
            ticket: row.ticket_id.parse().unwrap_or_default(),
            assignee: row.assignee,
            queue: row.queue,
            rating: row.rating,
            comment: row.comment,
            create_time: row.create_time,
            expire_time: row.expire_time,
            submit_time: row.submit_time,
        }
    }
}

/// One group of a report: its key, answers, the sum of ratings, 4s and 5s.
pub type ReportRow = (String, i64, i64, i64);

impl Store {
    /// Makes the ticket's survey when it has none (a ticket solved again
    /// keeps its first), answerable for `valid_for`.
    pub(super) async fn open_survey(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        t: &Ticket,
        valid_for: Duration,
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        let row = satisfaction_survey::Model {
            tenant: tenant.as_str().to_owned(),
            ticket_id: t.id.to_string(),
            assignee: t.assignee.clone(),
            queue: t.queue.clone(),
            rating: None,
            comment: String::new(),
            create_time: now,
            expire_time: now + valid_for,
            submit_time: None,
        };
        satisfaction_survey::Entity::insert(row.into_active_model())
            .on_conflict_do_nothing_on([
                satisfaction_survey::Column::Tenant,
                satisfaction_survey::Column::TicketId,
            ])
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// The ticket's survey; NOT_FOUND before it was first solved.
    pub async fn get_survey(&self, tenant: &Tenant, ticket: Uuid) -> Result<Survey, ApiError> {
        satisfaction_survey::Entity::find_in(tenant)
            .filter(satisfaction_survey::Column::TicketId.eq(ticket.to_string()))
            .one(&self.base.db.conn)
            .await?
            .map(Survey::from)
            .ok_or_else(|| ApiError::NotFound(format!("tickets/{ticket}/satisfaction")))
    }

    /// Records the requester's answer (replacing an earlier one) and its
    /// `CsatSubmitted` event, recorded as the requester's.
    pub async fn submit_rating(
        &self,
        tenant: &Tenant,
        ticket: Uuid,
        rating: i32,
        comment: String,
    ) -> Result<Survey, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let t = self.load_ticket(&*txn, tenant, ticket).await?;
        let row = satisfaction_survey::Entity::find_in(tenant)
            .filter(satisfaction_survey::Column::TicketId.eq(ticket.to_string()))
            .one(&*txn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("tickets/{ticket}/satisfaction")))?;
        let mut active = row.into_active_model();
        let now = Utc::now();
        active.rating = Set(Some(rating));
        active.comment = Set(comment);
        active.submit_time = Set(Some(now));
        let saved: Survey = satisfaction_survey::Entity::update(active)
            .exec(&*txn)
            .await?
            .into();
        let event = self.event(
            "CsatSubmitted",
            saved.name(),
            self.payloads.survey(&saved),
            &t.draft.requester,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(saved)
    }

    /// Answers submitted in [start, end), grouped by assignee (`by_queue`:
    /// by queue), and the surveys made in it.
    pub async fn satisfaction_report(
        &self,
        tenant: &Tenant,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        by_queue: bool,
    ) -> Result<(Vec<ReportRow>, i64), ApiError> {
        let key = if by_queue {
            satisfaction_survey::Column::Queue
        } else {
            satisfaction_survey::Column::Assignee
        };
        let satisfied = Expr::case(satisfaction_survey::Column::Rating.gte(4), 1).finally(0);
        let rows: Vec<ReportRow> = satisfaction_survey::Entity::find_in(tenant)
            .select_only()
            .column(key)
            .column_as(satisfaction_survey::Column::TicketId.count(), "responses")
            .column_as(
                Expr::col(satisfaction_survey::Column::Rating)
                    .sum()
                    .cast_as("bigint"),
                "rating_sum",
            )
            .column_as(satisfied.sum().cast_as("bigint"), "satisfied")
            .filter(satisfaction_survey::Column::SubmitTime.gte(start))
            .filter(satisfaction_survey::Column::SubmitTime.lt(end))
            .filter(satisfaction_survey::Column::Rating.is_not_null())
            .group_by(key)
            .into_tuple()
            .all(&self.base.db.conn)
            .await?;
        let sent = satisfaction_survey::Entity::find_in(tenant)
            .filter(satisfaction_survey::Column::CreateTime.gte(start))
            .filter(satisfaction_survey::Column::CreateTime.lt(end))
            .count(&self.base.db.conn)
            .await?;
        Ok((rows, i64::try_from(sent).unwrap_or(i64::MAX)))
    }

    /// Erases the comments of the surveys of `tickets`; their names.
    pub(super) async fn erase_survey_comments(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        tickets: &[Uuid],
    ) -> Result<Vec<String>, ApiError> {
        let ids: Vec<String> = tickets.iter().map(Uuid::to_string).collect();
        satisfaction_survey::Entity::update_many()
            .col_expr(satisfaction_survey::Column::Comment, Expr::value(""))
            .filter(satisfaction_survey::Column::Tenant.eq(tenant.as_str()))
            .filter(satisfaction_survey::Column::TicketId.is_in(ids))
            .exec(&**txn)
            .await?;
        Ok(tickets
            .iter()
            .map(|t| format!("tickets/{t}/satisfaction"))
            .collect())
    }
}
