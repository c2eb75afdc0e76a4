//! Effects of events on the read model's copies of resources: each keeps
//! its row and moves the aggregates by what its contribution changed.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, OnConflict},
};

use super::{
    Scope, Store,
    entities::{
        rm_campaigns, rm_companies, rm_contacts, rm_customers, rm_deals, rm_engagements, rm_leads,
        rm_stages, rm_tickets, rm_timeline,
    },
    facts,
};
use crate::domain::{
    facts::{Fact, difference},
    model::{
        Campaign, Consent, Contact, Deal, DealRecord, DealState, EmailEvent, Lead, Ticket,
        TicketRecord, TimelineEntry,
    },
    period::day_key,
};

/// What keeping a contact came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactChange {
    /// The contact is erased: nothing was kept.
    Ignored,
    /// The read model did not know it.
    New,
    /// It was known, with this email consent.
    Updated {
        /// The consent before.
        consent_before: Consent,
    },
}

/// A stored contribution, or none when it does not read (a row written by
/// a later version is rebuilt, not trusted).
fn contribution(json: &str) -> Vec<Fact> {
    serde_json::from_str(json).unwrap_or_default()
}

fn to_json(facts: &[Fact]) -> String {
    serde_json::to_string(facts).unwrap_or_else(|_| "[]".into())
}

/// Filters a scoped entity's rows to `scope`.
macro_rules! scoped {
    ($entity:ident, $scope:expr) => {
        $entity::Entity::find()
            .filter($entity::Column::Generation.eq($scope.generation))
            .filter($entity::Column::Tenant.eq(&$scope.tenant))
    };
}
pub(super) use scoped;

fn deal_state(code: &str) -> DealState {
    match code {
        "won" => DealState::Won,
        "lost" => DealState::Lost,
        _ => DealState::Open,
    }
}

fn deal_state_code(state: DealState) -> &'static str {
    match state {
        DealState::Open => "open",
        DealState::Won => "won",
        DealState::Lost => "lost",
    }
}

/// The KPI view of a stored deal.
fn deal_of(row: &rm_deals::Model) -> Deal {
    Deal {
        owner: row.owner.clone(),
        pipeline: row.pipeline.clone(),
        company: row.company.clone(),
        campaign: row.campaign.clone(),
        state: deal_state(&row.state),
        currency: row.currency_code.clone(),
        units: row.units,
        nanos: i64::from(row.nanos),
        create_time: row.create_time,
        close_time: row.close_time,
        deleted: row.deleted,
    }
}

impl Store {
    /// Keeps a contact's latest state; says what its email consent was.
    pub async fn put_contact<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        contact: &Contact,
    ) -> Result<ContactChange, DbErr> {
        let existing = scoped!(rm_contacts, scope)
            .filter(rm_contacts::Column::Contact.eq(&contact.name))
            .one(conn)
            .await?;
        let change = match existing {
            // An erased person stays erased whatever arrives late.
            Some(row) if row.erased => return Ok(ContactChange::Ignored),
            Some(row) => ContactChange::Updated {
                consent_before: Consent::from_code(row.email_consent),
            },
            None => ContactChange::New,
        };
        rm_contacts::Entity::insert(rm_contacts::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            contact: Set(contact.name.clone()),
            display_name: Set(contact.display_name.clone()),
            email: Set(contact.email.clone()),
            company: Set(contact.company.clone()),
            lifecycle_stage: Set(contact.lifecycle_stage.clone()),
            email_consent: Set(contact.email_consent.code()),
            survivor: Set(contact.merged_into.clone()),
            erased: Set(false),
            create_time: Set(contact.create_time),
        })
        .on_conflict(
            OnConflict::columns([
                rm_contacts::Column::Generation,
                rm_contacts::Column::Tenant,
                rm_contacts::Column::Contact,
            ])
            .update_columns([
                rm_contacts::Column::DisplayName,
                rm_contacts::Column::Email,
                rm_contacts::Column::Company,
                rm_contacts::Column::LifecycleStage,
                rm_contacts::Column::EmailConsent,
                rm_contacts::Column::Survivor,
                rm_contacts::Column::CreateTime,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(change)
    }

    /// Keeps a company's name.
    pub async fn put_company<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        company: &str,
        display_name: &str,
    ) -> Result<(), DbErr> {
        rm_companies::Entity::insert(rm_companies::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            company: Set(company.to_owned()),
            display_name: Set(display_name.to_owned()),
        })
        .on_conflict(
            OnConflict::columns([
                rm_companies::Column::Generation,
                rm_companies::Column::Tenant,
                rm_companies::Column::Company,
            ])
            .update_column(rm_companies::Column::DisplayName)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(())
    }

    /// Keeps a pipeline's stage names.
    pub async fn put_stages<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        stages: &[(String, String, f64)],
    ) -> Result<(), DbErr> {
        for (stage, display_name, probability) in stages {
            rm_stages::Entity::insert(rm_stages::ActiveModel {
                generation: Set(scope.generation),
                tenant: Set(scope.tenant.clone()),
                stage: Set(stage.clone()),
                display_name: Set(display_name.clone()),
                probability: Set(*probability),
            })
            .on_conflict(
                OnConflict::columns([
                    rm_stages::Column::Generation,
                    rm_stages::Column::Tenant,
                    rm_stages::Column::Stage,
                ])
                .update_columns([
                    rm_stages::Column::DisplayName,
                    rm_stages::Column::Probability,
                ])
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        Ok(())
    }

    /// Keeps a lead; its deals follow a change of its campaign.
    pub async fn put_lead<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        name: &str,
        contact: &str,
        lead: &Lead,
    ) -> Result<(), DbErr> {
        let old = scoped!(rm_leads, scope)
            .filter(rm_leads::Column::Lead.eq(name))
            .one(conn)
            .await?;
        let old_facts = old
            .as_ref()
            .map(|r| contribution(&r.contribution))
            .unwrap_or_default();
        let new_facts = lead.facts();
        facts::add(conn, scope, &difference(&old_facts, &new_facts)).await?;
        rm_leads::Entity::insert(rm_leads::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            lead: Set(name.to_owned()),
            contact: Set(contact.to_owned()),
            campaign: Set(lead.campaign.clone()),
            state: Set(serde_json::to_string(lead).unwrap_or_default()),
            contribution: Set(to_json(&new_facts)),
        })
        .on_conflict(
            OnConflict::columns([
                rm_leads::Column::Generation,
                rm_leads::Column::Tenant,
                rm_leads::Column::Lead,
            ])
            .update_columns([
                rm_leads::Column::Contact,
                rm_leads::Column::Campaign,
                rm_leads::Column::State,
                rm_leads::Column::Contribution,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        if old.is_some_and(|o| o.campaign != lead.campaign) {
            let deals = scoped!(rm_deals, scope)
                .filter(rm_deals::Column::SourceLead.eq(name))
                .all(conn)
                .await?;
            for row in deals {
                let deal = Deal {
                    campaign: lead.campaign.clone(),
                    ..deal_of(&row)
                };
                self.save_deal_row(conn, scope, row, deal).await?;
            }
        }
        Ok(())
    }

    /// Keeps a deal (its campaign is its source lead's) and its customer's first win.
    pub async fn put_deal<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        record: &DealRecord,
    ) -> Result<(), DbErr> {
        let campaign = if record.source_lead.is_empty() {
            String::new()
        } else {
            scoped!(rm_leads, scope)
                .filter(rm_leads::Column::Lead.eq(&record.source_lead))
                .one(conn)
                .await?
                .map(|l| l.campaign)
                .unwrap_or_default()
        };
        let deal = Deal {
            campaign,
            ..record.deal.clone()
        };
        let old = scoped!(rm_deals, scope)
            .filter(rm_deals::Column::Opportunity.eq(&record.name))
            .one(conn)
            .await?;
        // Sales names a converted lead's deal after the person ("Ada
        // Lovelace deal") and keeps the title after an erasure: reporting
        // does not keep it for an erased person.
        let erased_contact = self.is_erased(conn, scope, &record.contact).await?;
        let row = rm_deals::Model {
            generation: scope.generation,
            tenant: scope.tenant.clone(),
            opportunity: record.name.clone(),
            display_name: if erased_contact {
                String::new()
            } else {
                record.display_name.clone()
            },
            contact: record.contact.clone(),
            customer: record.customer().to_owned(),
            source_lead: record.source_lead.clone(),
            stage: record.stage.clone(),
            expected_close_day: record.expected_close_day.clone(),
            contribution: old
                .as_ref()
                .map_or_else(|| "[]".into(), |o| o.contribution.clone()),
            ..old
                .clone()
                .unwrap_or_else(|| empty_deal(scope, &record.name))
        };
        let old_customer = old.map(|o| o.customer);
        self.save_deal_row(conn, scope, row, deal).await?;
        if let Some(customer) = old_customer.filter(|c| c != record.customer()) {
            self.refresh_first_win(conn, scope, &customer).await?;
        }
        Ok(())
    }

    /// Writes `row` with `deal`'s state and moves the aggregates and the
    /// customer's first win accordingly.
    async fn save_deal_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        row: rm_deals::Model,
        deal: Deal,
    ) -> Result<(), DbErr> {
        let new_facts = deal.facts();
        facts::add(
            conn,
            scope,
            &difference(&contribution(&row.contribution), &new_facts),
        )
        .await?;
        let customer = row.customer.clone();
        let model = rm_deals::Model {
            owner: deal.owner.clone(),
            pipeline: deal.pipeline.clone(),
            campaign: deal.campaign.clone(),
            company: deal.company.clone(),
            state: deal_state_code(deal.state).into(),
            currency_code: deal.currency.clone(),
            units: deal.units,
            nanos: deal.nanos as i32,
            create_time: deal.create_time,
            close_time: deal.close_time,
            close_day: deal
                .close_time
                .map(|t| day_key(t.date_naive()))
                .unwrap_or_default(),
            deleted: deal.deleted,
            contribution: to_json(&new_facts),
            ..row
        };
        let active: rm_deals::ActiveModel = model.into();
        rm_deals::Entity::insert(active)
            .on_conflict(
                OnConflict::columns([
                    rm_deals::Column::Generation,
                    rm_deals::Column::Tenant,
                    rm_deals::Column::Opportunity,
                ])
                .update_columns([
                    rm_deals::Column::DisplayName,
                    rm_deals::Column::Contact,
                    rm_deals::Column::Customer,
                    rm_deals::Column::Owner,
                    rm_deals::Column::Pipeline,
                    rm_deals::Column::Campaign,
                    rm_deals::Column::Company,
                    rm_deals::Column::SourceLead,
                    rm_deals::Column::Stage,
                    rm_deals::Column::State,
                    rm_deals::Column::CurrencyCode,
                    rm_deals::Column::Units,
                    rm_deals::Column::Nanos,
                    rm_deals::Column::CreateTime,
                    rm_deals::Column::CloseTime,
                    rm_deals::Column::CloseDay,
                    rm_deals::Column::Deleted,
                    rm_deals::Column::Contribution,
                    rm_deals::Column::ExpectedCloseDay,
                ])
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        self.refresh_first_win(conn, scope, &customer).await
    }

    /// Sets (or clears) the day of `customer`'s first won deal.
    async fn refresh_first_win<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        customer: &str,
    ) -> Result<(), DbErr> {
        if customer.is_empty() {
            return Ok(());
        }
        let first = scoped!(rm_deals, scope)
            .filter(rm_deals::Column::Customer.eq(customer))
            .filter(rm_deals::Column::State.eq("won"))
            .filter(rm_deals::Column::Deleted.eq(false))
            .order_by_asc(rm_deals::Column::CloseDay)
            .one(conn)
            .await?
            .map(|d| d.close_day);
        rm_customers::Entity::delete_many()
            .filter(rm_customers::Column::Generation.eq(scope.generation))
            .filter(rm_customers::Column::Tenant.eq(&scope.tenant))
            .filter(rm_customers::Column::Customer.eq(customer))
            .exec(conn)
            .await?;
        if let Some(day) = first.filter(|d| !d.is_empty()) {
            rm_customers::Entity::insert(rm_customers::ActiveModel {
                generation: Set(scope.generation),
                tenant: Set(scope.tenant.clone()),
                customer: Set(customer.to_owned()),
                first_win_day: Set(day),
            })
            .exec_without_returning(conn)
            .await?;
        }
        Ok(())
    }

    /// Whether `contact` (none when empty) is erased.
    async fn is_erased<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        contact: &str,
    ) -> Result<bool, DbErr> {
        if contact.is_empty() {
            return Ok(false);
        }
        Ok(scoped!(rm_contacts, scope)
            .filter(rm_contacts::Column::Contact.eq(contact))
            .filter(rm_contacts::Column::Erased.eq(true))
            .one(conn)
            .await?
            .is_some())
    }

    /// Keeps a ticket (with the rating it already has).
    pub async fn put_ticket<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        record: &TicketRecord,
    ) -> Result<(), DbErr> {
        let old = scoped!(rm_tickets, scope)
            .filter(rm_tickets::Column::Ticket.eq(&record.name))
            .one(conn)
            .await?;
        let rating = old
            .as_ref()
            .and_then(|o| o.rating_time.map(|t| (o.rating, t)));
        let ticket = Ticket {
            rating,
            ..record.ticket.clone()
        };
        // Support scrubs an erased requester's tickets in an update of its
        // own, which may come before or after reporting hears of the
        // erasure: either way reporting keeps no subject for them.
        let subject = if self.is_erased(conn, scope, &record.contact).await? {
            String::new()
        } else {
            record.subject.clone()
        };
        let row = rm_tickets::Model {
            subject,
            contact: record.contact.clone(),
            status: record.status.clone(),
            next_sla_due_time: record.next_sla_due_time,
            ..old.unwrap_or_else(|| empty_ticket(scope, &record.name))
        };
        self.save_ticket_row(conn, scope, row, ticket).await
    }

    /// Records a ticket's (latest) satisfaction rating; a rating of a ticket
    /// the read model never saw is ignored.
    pub async fn put_rating<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        ticket: &str,
        rating: i32,
        time: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let Some(row) = scoped!(rm_tickets, scope)
            .filter(rm_tickets::Column::Ticket.eq(ticket))
            .one(conn)
            .await?
        else {
            return Ok(());
        };
        let state = Ticket {
            rating: Some((rating, time)),
            ..ticket_of(&row)
        };
        self.save_ticket_row(conn, scope, row, state).await
    }

    async fn save_ticket_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        row: rm_tickets::Model,
        ticket: Ticket,
    ) -> Result<(), DbErr> {
        let new_facts = ticket.facts();
        facts::add(
            conn,
            scope,
            &difference(&contribution(&row.contribution), &new_facts),
        )
        .await?;
        let live = |day: Option<DateTime<Utc>>| {
            day.filter(|_| !ticket.deleted)
                .map(|t| day_key(t.date_naive()))
                .unwrap_or_default()
        };
        let model = rm_tickets::Model {
            priority: ticket.priority.clone(),
            owner: ticket.owner.clone(),
            queue: ticket.queue.clone(),
            channel: ticket.channel.clone(),
            company: ticket.company.clone(),
            create_time: ticket.create_time,
            first_response_time: ticket.first_response_time,
            first_response_seconds: ticket.first_response_seconds(),
            first_response_day: live(ticket.first_response_time),
            solve_time: ticket.solve_time,
            resolution_seconds: ticket.resolution_seconds(),
            solve_day: live(ticket.solve_time),
            reopen_count: ticket.reopen_count,
            sla_breached: ticket.sla_breached,
            rating: ticket.rating.map_or(0, |r| r.0),
            rating_time: ticket.rating.map(|r| r.1),
            deleted: ticket.deleted,
            contribution: to_json(&new_facts),
            ..row
        };
        let active: rm_tickets::ActiveModel = model.into();
        rm_tickets::Entity::insert(active)
            .on_conflict(
                OnConflict::columns([
                    rm_tickets::Column::Generation,
                    rm_tickets::Column::Tenant,
                    rm_tickets::Column::Ticket,
                ])
                .update_columns([
                    rm_tickets::Column::Subject,
                    rm_tickets::Column::Contact,
                    rm_tickets::Column::Status,
                    rm_tickets::Column::Priority,
                    rm_tickets::Column::Owner,
                    rm_tickets::Column::Queue,
                    rm_tickets::Column::Channel,
                    rm_tickets::Column::Company,
                    rm_tickets::Column::CreateTime,
                    rm_tickets::Column::FirstResponseTime,
                    rm_tickets::Column::FirstResponseSeconds,
                    rm_tickets::Column::FirstResponseDay,
                    rm_tickets::Column::SolveTime,
                    rm_tickets::Column::ResolutionSeconds,
                    rm_tickets::Column::SolveDay,
                    rm_tickets::Column::ReopenCount,
                    rm_tickets::Column::SlaBreached,
                    rm_tickets::Column::NextSlaDueTime,
                    rm_tickets::Column::Rating,
                    rm_tickets::Column::RatingTime,
                    rm_tickets::Column::Deleted,
                    rm_tickets::Column::Contribution,
                ])
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// Keeps a campaign's name, cost and first send.
    pub async fn put_campaign<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        campaign: &Campaign,
    ) -> Result<(), DbErr> {
        // A deleted campaign's money was spent all the same: it stays counted.
        let (currency, units, nanos) = campaign.cost.clone();
        rm_campaigns::Entity::insert(rm_campaigns::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            campaign: Set(campaign.name.clone()),
            display_name: Set(campaign.display_name.clone()),
            currency_code: Set(currency),
            units: Set(units),
            nanos: Set(nanos),
            start_day: Set(campaign
                .start_time
                .map(|t| day_key(t.date_naive()))
                .unwrap_or_default()),
        })
        .on_conflict(
            OnConflict::columns([
                rm_campaigns::Column::Generation,
                rm_campaigns::Column::Tenant,
                rm_campaigns::Column::Campaign,
            ])
            .update_columns([
                rm_campaigns::Column::DisplayName,
                rm_campaigns::Column::CurrencyCode,
                rm_campaigns::Column::Units,
                rm_campaigns::Column::Nanos,
                rm_campaigns::Column::StartDay,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(())
    }

    /// Counts a marketing message event (opens and clicks once per person
    /// and campaign or journey) and keeps the person's last engagement.
    pub async fn record_email<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        event: &EmailEvent,
    ) -> Result<(), DbErr> {
        let source = event.source();
        let mut first = true;
        if event.outcome != crate::domain::model::EmailOutcome::Sent && !event.contact.is_empty() {
            let existing = scoped!(rm_engagements, scope)
                .filter(rm_engagements::Column::Contact.eq(&event.contact))
                .filter(rm_engagements::Column::Source.eq(source))
                .filter(rm_engagements::Column::Kind.eq(event.outcome.label()))
                .one(conn)
                .await?;
            first = existing.is_none();
            rm_engagements::Entity::insert(rm_engagements::ActiveModel {
                generation: Set(scope.generation),
                tenant: Set(scope.tenant.clone()),
                contact: Set(event.contact.clone()),
                source: Set(source.to_owned()),
                kind: Set(event.outcome.label().into()),
                first_time: Set(existing.as_ref().map_or(event.time, |e| e.first_time)),
                last_time: Set(event.time),
            })
            .on_conflict(
                OnConflict::columns([
                    rm_engagements::Column::Generation,
                    rm_engagements::Column::Tenant,
                    rm_engagements::Column::Contact,
                    rm_engagements::Column::Source,
                    rm_engagements::Column::Kind,
                ])
                .update_column(rm_engagements::Column::LastTime)
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        let Some(name) = event.outcome.fact() else {
            return Ok(());
        };
        if event.outcome.counts_once() && !first {
            return Ok(());
        }
        let fact = Fact::one(
            name,
            event.time.date_naive(),
            crate::domain::facts::Dims {
                campaign: event.campaign.clone(),
                ..Default::default()
            },
        );
        facts::add(conn, scope, &[fact]).await
    }

    /// Adds an entry to a person's timeline: the survivor's, when the person
    /// was merged, and nobody's when erased. The feeds arrive independently
    /// (and a rebuild replays contacts' whole feed first), so an event of
    /// another service may come after the merge or erasure it predates.
    pub async fn add_timeline<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        entry: &TimelineEntry,
    ) -> Result<(), DbErr> {
        if entry.contact.is_empty() {
            return Ok(());
        }
        let Some(contact) = self.timeline_owner(conn, scope, &entry.contact).await? else {
            return Ok(());
        };
        rm_timeline::Entity::insert(rm_timeline::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            event_id: Set(entry.event_id.clone()),
            contact: Set(contact),
            time: Set(entry.time),
            kind: Set(entry.kind.clone()),
            source: Set(entry.source.clone()),
            event_type: Set(entry.event_type.clone()),
            subject: Set(entry.subject.clone()),
            summary: Set(entry.summary.clone()),
        })
        .on_conflict(
            OnConflict::columns([
                rm_timeline::Column::Generation,
                rm_timeline::Column::Tenant,
                rm_timeline::Column::EventId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .map(|_| ())
        .or_else(|e| match e {
            DbErr::RecordNotInserted => Ok(()),
            e => Err(e),
        })
    }

    /// Whose timeline holds what happens to `contact`: the survivor it was
    /// merged into (following merges), itself, or None when erased.
    async fn timeline_owner<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        contact: &str,
    ) -> Result<Option<String>, DbErr> {
        let mut name = contact.to_owned();
        // As many hops as the customer view follows.
        for _ in 0..8 {
            let row = scoped!(rm_contacts, scope)
                .filter(rm_contacts::Column::Contact.eq(&name))
                .one(conn)
                .await?;
            match row {
                Some(row) if row.erased => return Ok(None),
                Some(row) if !row.survivor.is_empty() && row.survivor != name => {
                    name = row.survivor
                }
                _ => break,
            }
        }
        Ok(Some(name))
    }

    /// A stage's name, or its resource name when the read model has none.
    pub async fn stage_name<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        stage: &str,
    ) -> Result<String, DbErr> {
        Ok(scoped!(rm_stages, scope)
            .filter(rm_stages::Column::Stage.eq(stage))
            .one(conn)
            .await?
            .map_or_else(|| stage.to_owned(), |s| s.display_name))
    }

    /// The contact a ticket was opened by, as the read model knows it.
    pub async fn ticket_contact<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        ticket: &str,
    ) -> Result<String, DbErr> {
        Ok(scoped!(rm_tickets, scope)
            .filter(rm_tickets::Column::Ticket.eq(ticket))
            .one(conn)
            .await?
            .map(|t| t.contact)
            .unwrap_or_default())
    }

    /// Moves what the read model holds of merged contacts to the survivor:
    /// their timelines and engagements (deals, leads and tickets follow the
    /// sales and support events that re-point them).
    pub async fn merge_contacts<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        survivor: &str,
        merged: &[String],
    ) -> Result<(), DbErr> {
        rm_timeline::Entity::update_many()
            .col_expr(rm_timeline::Column::Contact, Expr::value(survivor))
            .filter(rm_timeline::Column::Generation.eq(scope.generation))
            .filter(rm_timeline::Column::Tenant.eq(&scope.tenant))
            .filter(rm_timeline::Column::Contact.is_in(merged))
            .exec(conn)
            .await?;
        rm_contacts::Entity::update_many()
            .col_expr(rm_contacts::Column::Survivor, Expr::value(survivor))
            .filter(rm_contacts::Column::Generation.eq(scope.generation))
            .filter(rm_contacts::Column::Tenant.eq(&scope.tenant))
            .filter(rm_contacts::Column::Contact.is_in(merged))
            .exec(conn)
            .await?;
        let moved = scoped!(rm_engagements, scope)
            .filter(rm_engagements::Column::Contact.is_in(merged))
            .all(conn)
            .await?;
        for row in moved {
            let kept = scoped!(rm_engagements, scope)
                .filter(rm_engagements::Column::Contact.eq(survivor))
                .filter(rm_engagements::Column::Source.eq(&row.source))
                .filter(rm_engagements::Column::Kind.eq(&row.kind))
                .one(conn)
                .await?;
            let (first, last) = match &kept {
                Some(k) => (
                    k.first_time.min(row.first_time),
                    k.last_time.max(row.last_time),
                ),
                None => (row.first_time, row.last_time),
            };
            rm_engagements::Entity::delete_many()
                .filter(rm_engagements::Column::Generation.eq(scope.generation))
                .filter(rm_engagements::Column::Tenant.eq(&scope.tenant))
                .filter(rm_engagements::Column::Contact.is_in([survivor, row.contact.as_str()]))
                .filter(rm_engagements::Column::Source.eq(&row.source))
                .filter(rm_engagements::Column::Kind.eq(&row.kind))
                .exec(conn)
                .await?;
            rm_engagements::Entity::insert(rm_engagements::ActiveModel {
                contact: Set(survivor.to_owned()),
                first_time: Set(first),
                last_time: Set(last),
                ..row.into()
            })
            .exec_without_returning(conn)
            .await?;
        }
        Ok(())
    }
}

/// A deal row not yet stored.
fn empty_deal(scope: &Scope, name: &str) -> rm_deals::Model {
    rm_deals::Model {
        generation: scope.generation,
        tenant: scope.tenant.clone(),
        opportunity: name.to_owned(),
        display_name: String::new(),
        contact: String::new(),
        customer: String::new(),
        owner: String::new(),
        pipeline: String::new(),
        campaign: String::new(),
        company: String::new(),
        source_lead: String::new(),
        stage: String::new(),
        state: "open".into(),
        currency_code: String::new(),
        units: 0,
        nanos: 0,
        create_time: Utc::now(),
        close_time: None,
        close_day: String::new(),
        deleted: false,
        contribution: "[]".into(),
        expected_close_day: String::new(),
    }
}

/// A ticket row not yet stored.
fn empty_ticket(scope: &Scope, name: &str) -> rm_tickets::Model {
    rm_tickets::Model {
        generation: scope.generation,
        tenant: scope.tenant.clone(),
        ticket: name.to_owned(),
        subject: String::new(),
        contact: String::new(),
        status: String::new(),
        priority: String::new(),
        owner: String::new(),
        queue: String::new(),
        channel: String::new(),
        company: String::new(),
        create_time: Utc::now(),
        first_response_time: None,
        first_response_seconds: None,
        first_response_day: String::new(),
        solve_time: None,
        resolution_seconds: None,
        solve_day: String::new(),
        reopen_count: 0,
        sla_breached: false,
        next_sla_due_time: None,
        rating: 0,
        rating_time: None,
        deleted: false,
        contribution: "[]".into(),
    }
}

/// The KPI view of a stored ticket.
fn ticket_of(row: &rm_tickets::Model) -> Ticket {
    Ticket {
        owner: row.owner.clone(),
        queue: row.queue.clone(),
        channel: row.channel.clone(),
        priority: row.priority.clone(),
        company: row.company.clone(),
        create_time: row.create_time,
        first_response_time: row.first_response_time,
        solve_time: row.solve_time,
        reopen_count: row.reopen_count,
        sla_breached: row.sla_breached,
        rating: row.rating_time.map(|t| (row.rating, t)),
        deleted: row.deleted,
    }
}
