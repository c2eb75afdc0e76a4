//! Journeys and their enrolments. A contact is enrolled once per trigger
//! (an event id, a request id or a segment entry is the enrolment's entry
//! key, unique per journey) and only as the journey's re-entry rule allows;
//! each step's run is recorded once with the enrolment's move to its next
//! step, in one transaction, version-checked, so a runner that stops
//! between a step's side effect and this record runs the step again, and
//! the side effect (keyed by the step) is applied once.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    idempotency::IdempotencyKey,
    outbox::NewEvent,
    store::{ListQuery, Page},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
    sea_query::{Expr, Query},
};
use uuid::Uuid;

use super::{
    Created, Store,
    entities::{
        campaign_recipient, engagement, journey, journey_enrollment, journey_message,
        journey_segment_member, journey_step_run,
    },
    id_of,
};
use crate::domain::{
    campaign::{RECIPIENT_STATES, RecipientState},
    journey::{
        ENROLLMENT_STATES, Enrollment, EnrollmentState, Journey, JourneyDraft, REENTRIES, STATES,
        State, may_enroll,
    },
    tracking::{ENGAGEMENTS, Engagement, EngagementCounts},
};

/// Segment members noted (and enrolled) per transaction.
const SEGMENT_BATCH: usize = 500;

/// Who the journey runner's changes are recorded as.
pub const RUNNER: &str = "marketing/journeys";

/// A step an enrolment ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    /// The step's id.
    pub step: String,
    /// What came of it.
    pub outcome: String,
    /// When.
    pub run_time: DateTime<Utc>,
}

/// How many enrolments of a journey are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JourneyCounts {
    /// At a step.
    pub active: i64,
    /// Done.
    pub completed: i64,
    /// Left early.
    pub exited: i64,
    /// Failed.
    pub failed: i64,
    /// Its emails sent.
    pub emails_sent: i64,
    /// Contacts who opened, clicked, unsubscribed; emails bounced.
    pub engagement: EngagementCounts,
}

/// What asking to enrol a contact came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Enrolled {
    /// Enrolled now.
    New(Enrollment),
    /// The same trigger enrolled it before.
    Existing(Enrollment),
    /// The re-entry rule says no.
    Refused,
}

/// Whose email a ledger row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource {
    /// A campaign's (the ledger's id is the campaign's).
    Campaign(Uuid),
    /// A journey step's, sent to an enrolment.
    Journey {
        /// The journey.
        journey: Uuid,
        /// The enrolment.
        enrollment: Uuid,
    },
}

impl MessageSource {
    /// `campaigns/{id}` or `journeys/{id}`: what event payloads name.
    pub fn name(&self) -> String {
        match self {
            MessageSource::Campaign(id) => format!("campaigns/{id}"),
            MessageSource::Journey { journey, .. } => format!("journeys/{journey}"),
        }
    }

    /// The subject of an event about `contact`'s message.
    pub fn subject(&self, contact: &str) -> String {
        match self {
            MessageSource::Campaign(id) => format!(
                "campaigns/{id}/recipients/{}",
                contact.trim_start_matches("contacts/")
            ),
            MessageSource::Journey {
                journey,
                enrollment,
            } => format!("journeys/{journey}/enrollments/{enrollment}"),
        }
    }
}

impl TryFrom<journey::Model> for Journey {
    type Error = ApiError;
    fn try_from(row: journey::Model) -> Result<Self, ApiError> {
        let corrupt = |what: &str| ApiError::Internal(format!("stored journey has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            state: parse_stored(STATES, &row.state).ok_or_else(|| corrupt("state"))?,
            draft: JourneyDraft {
                display_name: row.display_name,
                description: row.description,
                trigger: serde_json::from_str(&row.trigger).map_err(|_| corrupt("trigger"))?,
                reentry: parse_stored(REENTRIES, &row.reentry).ok_or_else(|| corrupt("reentry"))?,
                exit_filter: row.exit_filter,
                steps: serde_json::from_str(&row.steps).map_err(|_| corrupt("steps"))?,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn journey_row(tenant: &Tenant, j: &Journey) -> journey::ActiveModel {
    let d = &j.draft;
    journey::Model {
        id: j.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: d.display_name.clone(),
        description: d.description.clone(),
        state: stored(STATES, j.state).to_owned(),
        // Plain data with string keys always serialises.
        trigger: serde_json::to_string(&d.trigger).unwrap_or_default(),
        reentry: stored(REENTRIES, d.reentry).to_owned(),
        exit_filter: d.exit_filter.clone(),
        steps: serde_json::to_string(&d.steps).unwrap_or_default(),
        create_time: j.create_time,
        update_time: j.update_time,
        delete_time: j.delete_time,
        version: j.version,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<journey_enrollment::Model> for Enrollment {
    type Error = ApiError;
    fn try_from(row: journey_enrollment::Model) -> Result<Self, ApiError> {
        let corrupt = |what: &str| ApiError::Internal(format!("stored enrolment has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            journey: row.journey_id.parse().map_err(|_| corrupt("journey"))?,
            contact: row.contact,
            email: row.email,
            source: row.source,
            state: parse_stored(ENROLLMENT_STATES, &row.state).ok_or_else(|| corrupt("state"))?,
            step: row.step,
            step_start_time: row.step_start_time,
            next_run_time: row.next_run_time,
            reason: row.reason,
            create_time: row.create_time,
            update_time: row.update_time,
            version: row.version,
        })
    }
}

fn enrollment_row(tenant: &Tenant, e: &Enrollment, entry_key: &str) -> journey_enrollment::Model {
    journey_enrollment::Model {
        id: e.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        journey_id: e.journey.to_string(),
        contact: e.contact.clone(),
        email: e.email.clone(),
        state: stored(ENROLLMENT_STATES, e.state).to_owned(),
        step: e.step.clone(),
        step_start_time: e.step_start_time,
        next_run_time: e.next_run_time,
        reason: e.reason.clone(),
        source: e.source.clone(),
        entry_key: entry_key.to_owned(),
        create_time: e.create_time,
        update_time: e.update_time,
        version: e.version,
    }
}

impl Store {
    /// Saves a new draft; a retry with the same request id returns the first.
    pub async fn create_journey(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: JourneyDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Journey, ApiError> {
        let j = Journey::new(draft, Utc::now());
        let event = self.event(
            "JourneyCreated",
            j.name(),
            self.payloads.journey(&j, JourneyCounts::default()),
            actor,
        );
        let row = journey_row(tenant, &j);
        match self
            .create(
                tenant,
                "CreateJourney",
                request_id.as_ref(),
                &j.name(),
                row,
                event,
            )
            .await?
        {
            Created::New => Ok(j),
            Created::Existing(name) => self.get_journey(tenant, id_of(&name)).await,
        }
    }

    /// A journey, also a deleted one.
    pub async fn get_journey(&self, tenant: &Tenant, id: Uuid) -> Result<Journey, ApiError> {
        self.base
            .find::<journey::Entity>(&self.base.db.conn, tenant, id, &format!("journeys/{id}"))
            .await?
            .try_into()
    }

    /// One page of journeys.
    pub async fn list_journeys(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Journey>, ApiError> {
        self.base
            .list_page::<journey::Entity, Journey>(tenant, query)
            .await
    }

    /// How many of a journey's enrolments are where.
    pub async fn journey_counts(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<JourneyCounts, ApiError> {
        journey_counts_in(&self.base.db.conn, tenant, id).await
    }

    /// Changes a journey with `change` if its version is still `expected`
    /// (when given), recorded as `event`; archiving also exits every
    /// enrolment in flight.
    pub async fn change_journey(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected: Option<i64>,
        change: impl FnOnce(&mut Journey) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Journey, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut j: Journey = self
            .base
            .find::<journey::Entity>(&*txn, tenant, id, &format!("journeys/{id}"))
            .await?
            .try_into()?;
        crm_shared::store::check_version(&j.name(), expected, j.version)?;
        let before = j.version;
        change(&mut j)?;
        j.version = before + 1;
        j.update_time = Utc::now();
        self.base
            .save_versioned::<journey::Entity>(
                &txn,
                tenant,
                &j.name(),
                j.id,
                before,
                journey_row(tenant, &j),
            )
            .await?;
        let exited = if j.state == State::Archived {
            exit_all(&txn, tenant, id, "the journey was archived").await?
        } else {
            Vec::new()
        };
        let counts = journey_counts_in(&*txn, tenant, id).await?;
        let mut events =
            vec![self.event(event, j.name(), self.payloads.journey(&j, counts), actor)];
        events.extend(exited.iter().map(|e| {
            self.event(
                "JourneyEnrollmentEnded",
                e.name(),
                self.payloads.enrollment(e, &[]),
                actor,
            )
        }));
        self.base.commit(txn, tenant, events).await?;
        Ok(j)
    }

    /// Every active journey of `tenant`.
    pub async fn active_journeys(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &Tenant,
    ) -> Result<Vec<Journey>, ApiError> {
        journey::Entity::find_in(tenant)
            .filter(journey::Column::State.eq(stored(STATES, State::Active)))
            .filter(journey::Column::DeleteTime.is_null())
            .all(conn)
            .await?
            .into_iter()
            .map(Journey::try_from)
            .collect()
    }

    /// A journey not archived (nor deleted) with a step sending `template`.
    pub(super) async fn journey_sending(
        &self,
        tenant: &Tenant,
        template: &str,
    ) -> Result<Option<String>, ApiError> {
        let rows = journey::Entity::find_in(tenant)
            .filter(journey::Column::State.ne(stored(STATES, State::Archived)))
            .filter(journey::Column::DeleteTime.is_null())
            .all(&self.base.db.conn)
            .await?;
        for row in rows {
            let j = Journey::try_from(row)?;
            let sends = j.draft.steps.iter().any(|s| {
                matches!(&s.action, crate::domain::journey::Action::SendEmail { template: t, .. } if t == template)
            });
            if sends {
                return Ok(Some(j.name()));
            }
        }
        Ok(None)
    }

    /// Every active journey of every tenant, for the runner's segment looks.
    pub async fn all_active_journeys(&self) -> Result<Vec<(Tenant, Journey)>, ApiError> {
        journey::Entity::find()
            .filter(journey::Column::State.eq(stored(STATES, State::Active)))
            .filter(journey::Column::DeleteTime.is_null())
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(|row| Ok((Tenant::new(row.tenant.clone()), row.try_into()?)))
            .collect()
    }

    /// Enrols `contact` (or, with an empty contact, the person of `email`,
    /// found later) in `journey` for the trigger `entry_key`, from `source`,
    /// if the re-entry rule allows; `JourneyEnrolled`. In `txn`, whose
    /// commit the caller makes with the returned events.
    #[allow(clippy::too_many_arguments)]
    pub async fn enroll_in(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        journey: &Journey,
        contact: &str,
        email: &str,
        source: &str,
        entry_key: &str,
        actor: &str,
    ) -> Result<(Enrolled, Vec<NewEvent>), ApiError> {
        let same_trigger = journey_enrollment::Entity::find_in(tenant)
            .filter(journey_enrollment::Column::JourneyId.eq(journey.id.to_string()))
            .filter(journey_enrollment::Column::EntryKey.eq(entry_key))
            .one(&**txn)
            .await?;
        if let Some(row) = same_trigger {
            return Ok((Enrolled::Existing(row.try_into()?), Vec::new()));
        }
        if !contact.is_empty()
            && !self
                .may_enter(&**txn, tenant, journey, contact, None)
                .await?
        {
            return Ok((Enrolled::Refused, Vec::new()));
        }
        let mut e = journey.enroll(contact, Utc::now())?;
        email.clone_into(&mut e.email);
        source.clone_into(&mut e.source);
        // In a savepoint: a concurrent enrolment of the same contact (the
        // one-active index) refuses this one without spoiling `txn`.
        let savepoint = txn.begin().await?;
        let inserted = journey_enrollment::Entity::insert(
            enrollment_row(tenant, &e, entry_key).into_active_model(),
        )
        .exec(&savepoint)
        .await;
        match inserted {
            Ok(_) => savepoint.commit().await?,
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                savepoint.rollback().await?;
                return Ok((Enrolled::Refused, Vec::new()));
            }
            Err(error) => return Err(error.into()),
        }
        let event = self.event(
            "JourneyEnrolled",
            e.name(),
            self.payloads.enrollment(&e, &[]),
            actor,
        );
        Ok((Enrolled::New(e), vec![event]))
    }

    /// [`Self::enroll_in`] in a transaction of its own.
    #[allow(clippy::too_many_arguments)]
    pub async fn enroll(
        &self,
        tenant: &Tenant,
        journey: &Journey,
        contact: &str,
        source: &str,
        entry_key: &str,
        actor: &str,
    ) -> Result<Enrolled, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let (enrolled, events) = self
            .enroll_in(&txn, tenant, journey, contact, "", source, entry_key, actor)
            .await?;
        self.base.commit(txn, tenant, events).await?;
        Ok(enrolled)
    }

    /// Whether `contact` may enter `journey` now (its re-entry rule over
    /// their other enrolments than `except`).
    async fn may_enter(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &Tenant,
        journey: &Journey,
        contact: &str,
        except: Option<Uuid>,
    ) -> Result<bool, ApiError> {
        let mut theirs = journey_enrollment::Entity::find_in(tenant)
            .select_only()
            .column(journey_enrollment::Column::State)
            .filter(journey_enrollment::Column::JourneyId.eq(journey.id.to_string()))
            .filter(journey_enrollment::Column::Contact.eq(contact));
        if let Some(except) = except {
            theirs = theirs.filter(journey_enrollment::Column::Id.ne(except.to_string()));
        }
        let states: Vec<String> = theirs.into_tuple().all(conn).await?;
        let active = stored(ENROLLMENT_STATES, EnrollmentState::Active);
        Ok(may_enroll(
            journey.draft.reentry,
            states.iter().any(|s| s == active),
            !states.is_empty(),
        ))
    }

    /// An enrolment with the steps it ran, in order.
    pub async fn get_enrollment(
        &self,
        tenant: &Tenant,
        journey: Uuid,
        id: Uuid,
    ) -> Result<(Enrollment, Vec<StepRun>), ApiError> {
        let name = format!("journeys/{journey}/enrollments/{id}");
        let e: Enrollment = journey_enrollment::Entity::find_in(tenant)
            .filter(journey_enrollment::Column::Id.eq(id.to_string()))
            .filter(journey_enrollment::Column::JourneyId.eq(journey.to_string()))
            .one(&self.base.db.conn)
            .await?
            .ok_or(ApiError::NotFound(name))?
            .try_into()?;
        let runs = journey_step_run::Entity::find_in(tenant)
            .filter(journey_step_run::Column::EnrollmentId.eq(id.to_string()))
            .order_by_asc(journey_step_run::Column::RunTime)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(|r| StepRun {
                step: r.step,
                outcome: r.outcome,
                run_time: r.run_time,
            })
            .collect();
        Ok((e, runs))
    }

    /// Up to `limit` of a journey's enrolments after the first `offset`,
    /// newest first.
    pub async fn list_enrollments(
        &self,
        tenant: &Tenant,
        journey: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Enrollment>, ApiError> {
        journey_enrollment::Entity::find_in(tenant)
            .filter(journey_enrollment::Column::JourneyId.eq(journey.to_string()))
            .order_by_desc(journey_enrollment::Column::CreateTime)
            .order_by_desc(journey_enrollment::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(Enrollment::try_from)
            .collect()
    }

    /// Active enrolments of active journeys whose step is due, all tenants,
    /// the longest due first.
    pub async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Tenant, Enrollment)>, ApiError> {
        let active_journeys = Query::select()
            .column(journey::Column::Id)
            .from(journey::Entity)
            .and_where(journey::Column::State.eq(stored(STATES, State::Active)))
            .and_where(journey::Column::DeleteTime.is_null())
            .to_owned();
        Ok(journey_enrollment::Entity::find()
            .filter(
                journey_enrollment::Column::State
                    .eq(stored(ENROLLMENT_STATES, EnrollmentState::Active)),
            )
            .filter(journey_enrollment::Column::NextRunTime.lte(now))
            .filter(journey_enrollment::Column::JourneyId.in_subquery(active_journeys))
            .order_by_asc(journey_enrollment::Column::NextRunTime)
            .limit(limit)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            // A row that does not read holds nobody else back.
            .filter_map(|row| {
                let (tenant, id) = (Tenant::new(row.tenant.clone()), row.id.clone());
                Enrollment::try_from(row)
                    .inspect_err(|error| tracing::error!(enrollment = %id, %error, "skipping an enrolment that does not read"))
                    .ok()
                    .map(|e| (tenant, e))
            })
            .collect())
    }

    /// Saves an enrolment changed by the runner from `before`, with the run
    /// of `step` (once: a step's run is recorded the first time only) and,
    /// when it ended, `JourneyEnrollmentEnded`. `false` when someone else
    /// changed the enrolment meanwhile (nothing is saved).
    pub async fn save_enrollment(
        &self,
        tenant: &Tenant,
        before: &Enrollment,
        after: &Enrollment,
        run: Option<&StepRun>,
        actor: &str,
    ) -> Result<bool, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let saved = journey_enrollment::Entity::update_many()
            .set(changed_enrollment(after, before.version + 1))
            .filter(journey_enrollment::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_enrollment::Column::Id.eq(before.id.to_string()))
            .filter(journey_enrollment::Column::Version.eq(before.version))
            .exec(&*txn)
            .await?;
        if saved.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        if let Some(run) = run {
            journey_step_run::Entity::insert(
                journey_step_run::Model {
                    tenant: tenant.as_str().to_owned(),
                    enrollment_id: before.id.to_string(),
                    step: run.step.clone(),
                    outcome: run.outcome.clone(),
                    run_time: run.run_time,
                }
                .into_active_model(),
            )
            .on_conflict_do_nothing_on([
                journey_step_run::Column::Tenant,
                journey_step_run::Column::EnrollmentId,
                journey_step_run::Column::Step,
            ])
            .exec(&*txn)
            .await?;
        }
        let events = if after.state == EnrollmentState::Active {
            Vec::new()
        } else {
            vec![self.event(
                "JourneyEnrollmentEnded",
                after.name(),
                self.payloads.enrollment(after, &[]),
                actor,
            )]
        };
        self.base.commit(txn, tenant, events).await?;
        Ok(true)
    }

    /// Who was in `journey`'s trigger segment at its last look.
    pub async fn segment_members(
        &self,
        tenant: &Tenant,
        journey: Uuid,
    ) -> Result<HashSet<String>, ApiError> {
        let rows: Vec<String> = journey_segment_member::Entity::find_in(tenant)
            .select_only()
            .column(journey_segment_member::Column::Contact)
            .filter(journey_segment_member::Column::JourneyId.eq(journey.to_string()))
            .into_tuple()
            .all(&self.base.db.conn)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// A look at a journey's trigger segment: `entered` are enrolled (as
    /// the re-entry rule allows) and noted as members, `left` forgotten, a
    /// batch to a transaction (a member is noted with its enrolment, so a
    /// stop between batches loses nobody); how many were enrolled.
    pub async fn apply_segment_look(
        &self,
        tenant: &Tenant,
        journey: &Journey,
        entered: &[String],
        left: &[String],
    ) -> Result<usize, ApiError> {
        let mut enrolled = 0;
        for batch in entered.chunks(SEGMENT_BATCH) {
            enrolled += self.enroll_entered(tenant, journey, batch).await?;
        }
        for batch in left.chunks(SEGMENT_BATCH) {
            let txn = self.base.db.begin_write().await?;
            journey_segment_member::Entity::delete_many()
                .filter(journey_segment_member::Column::Tenant.eq(tenant.as_str()))
                .filter(journey_segment_member::Column::JourneyId.eq(journey.id.to_string()))
                .filter(journey_segment_member::Column::Contact.is_in(batch.to_vec()))
                .exec(&*txn)
                .await?;
            txn.commit().await?;
        }
        Ok(enrolled)
    }

    async fn enroll_entered(
        &self,
        tenant: &Tenant,
        journey: &Journey,
        entered: &[String],
    ) -> Result<usize, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut events = Vec::new();
        let mut enrolled = 0;
        for contact in entered {
            journey_segment_member::Entity::insert(
                journey_segment_member::Model {
                    tenant: tenant.as_str().to_owned(),
                    journey_id: journey.id.to_string(),
                    contact: contact.clone(),
                }
                .into_active_model(),
            )
            .on_conflict_do_nothing_on([
                journey_segment_member::Column::Tenant,
                journey_segment_member::Column::JourneyId,
                journey_segment_member::Column::Contact,
            ])
            .exec(&*txn)
            .await?;
            let key = format!("segment:{contact}:{}", Uuid::now_v7());
            let (outcome, mut new) = self
                .enroll_in(&txn, tenant, journey, contact, "", "segment", &key, RUNNER)
                .await?;
            enrolled += usize::from(matches!(outcome, Enrolled::New(_)));
            events.append(&mut new);
        }
        self.base.commit(txn, tenant, events).await?;
        Ok(enrolled)
    }

    /// Whether a contact found by email may stay enrolled: their other
    /// enrolments, by the re-entry rule.
    pub async fn may_stay(
        &self,
        tenant: &Tenant,
        journey: &Journey,
        e: &Enrollment,
        contact: &str,
    ) -> Result<bool, ApiError> {
        self.may_enter(&self.base.db.conn, tenant, journey, contact, Some(e.id))
            .await
    }

    /// Notes that the ledger row `key` is the email of `enrollment`'s `step`.
    pub async fn note_journey_message(
        &self,
        tenant: &Tenant,
        key: Uuid,
        e: &Enrollment,
        step: &str,
    ) -> Result<(), ApiError> {
        let txn = self.base.db.begin_write().await?;
        journey_message::Entity::insert(
            journey_message::Model {
                tenant: tenant.as_str().to_owned(),
                message_key: key.to_string(),
                journey_id: e.journey.to_string(),
                enrollment_id: e.id.to_string(),
                step: step.to_owned(),
            }
            .into_active_model(),
        )
        .on_conflict_do_nothing_on([
            journey_message::Column::Tenant,
            journey_message::Column::MessageKey,
        ])
        .exec(&*txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Whose email the ledger's `id` is: a journey's, or else a campaign's.
    pub(super) async fn message_source(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<MessageSource, ApiError> {
        let row = journey_message::Entity::find_in(tenant)
            .filter(journey_message::Column::MessageKey.eq(id.to_string()))
            .one(conn)
            .await?;
        Ok(match row {
            Some(row) => MessageSource::Journey {
                journey: row.journey_id.parse().unwrap_or_default(),
                enrollment: row.enrollment_id.parse().unwrap_or_default(),
            },
            None => MessageSource::Campaign(id),
        })
    }

    /// `campaigns/{id}`, or `journeys/{id}` when the ledger's `id` is a
    /// journey's email.
    pub async fn source_name(&self, tenant: &Tenant, id: Uuid) -> Result<String, ApiError> {
        Ok(self
            .message_source(&self.base.db.conn, tenant, id)
            .await?
            .name())
    }

    /// Whether the message `key` was opened (or had a link starting with
    /// `link` clicked).
    pub async fn engaged(
        &self,
        tenant: &Tenant,
        key: Uuid,
        kind: Engagement,
        link: &str,
    ) -> Result<bool, ApiError> {
        let details: Vec<String> = engagement::Entity::find_in(tenant)
            .select_only()
            .column(engagement::Column::Detail)
            .filter(engagement::Column::CampaignId.eq(key.to_string()))
            .filter(engagement::Column::Kind.eq(stored(ENGAGEMENTS, kind)))
            .into_tuple()
            .all(&self.base.db.conn)
            .await?;
        Ok(details
            .iter()
            .any(|d| crate::domain::journey::link_matches(link, d)))
    }

    /// Moves a merged contact's enrolments and segment memberships to the
    /// survivor (in the feed's transaction). An active enrolment in a
    /// journey the survivor is active in already exits instead: one person,
    /// one way through a journey.
    pub(super) async fn merge_journey_contacts(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
    ) -> Result<(), ApiError> {
        let moving: Vec<Enrollment> = journey_enrollment::Entity::find_in(tenant)
            .filter(journey_enrollment::Column::Contact.is_in(merged.to_vec()))
            .order_by_asc(journey_enrollment::Column::CreateTime)
            .all(&**txn)
            .await?
            .into_iter()
            .map(Enrollment::try_from)
            .collect::<Result<_, _>>()?;
        let active = stored(ENROLLMENT_STATES, EnrollmentState::Active);
        for e in moving {
            let survivor_active = journey_enrollment::Entity::find_in(tenant)
                .filter(journey_enrollment::Column::JourneyId.eq(e.journey.to_string()))
                .filter(journey_enrollment::Column::Contact.eq(survivor))
                .filter(journey_enrollment::Column::State.eq(active))
                .one(&**txn)
                .await?
                .is_some();
            let mut after = e.clone();
            after.contact = survivor.to_owned();
            if survivor_active && e.state == EnrollmentState::Active {
                after.exit(&format!("merged into {survivor}"), Utc::now())?;
            }
            // The version moves, so a runner holding the old one saves nothing.
            journey_enrollment::Entity::update_many()
                .set(changed_enrollment(&after, e.version + 1))
                .filter(journey_enrollment::Column::Tenant.eq(tenant.as_str()))
                .filter(journey_enrollment::Column::Id.eq(e.id.to_string()))
                .exec(&**txn)
                .await?;
        }
        journey_segment_member::Entity::delete_many()
            .filter(journey_segment_member::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_segment_member::Column::Contact.is_in(merged.to_vec()))
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// Forgets an erased person's enrolments, their steps, their emails'
    /// journey notes and segment memberships (in the feed's transaction);
    /// the enrolments' names, and the ledger ids of their emails.
    pub(super) async fn erase_journey_contacts(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        contacts: &[String],
    ) -> Result<(Vec<String>, HashSet<String>), ApiError> {
        let theirs: Vec<Enrollment> = journey_enrollment::Entity::find_in(tenant)
            .filter(journey_enrollment::Column::Contact.is_in(contacts.to_vec()))
            .all(&**txn)
            .await?
            .into_iter()
            .map(Enrollment::try_from)
            .collect::<Result<_, _>>()?;
        let ids: Vec<String> = theirs.iter().map(|e| e.id.to_string()).collect();
        let message_keys: HashSet<String> = journey_message::Entity::find_in(tenant)
            .select_only()
            .column(journey_message::Column::MessageKey)
            .filter(journey_message::Column::EnrollmentId.is_in(ids.clone()))
            .into_tuple::<String>()
            .all(&**txn)
            .await?
            .into_iter()
            .collect();
        journey_message::Entity::delete_many()
            .filter(journey_message::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_message::Column::EnrollmentId.is_in(ids.clone()))
            .exec(&**txn)
            .await?;
        journey_step_run::Entity::delete_many()
            .filter(journey_step_run::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_step_run::Column::EnrollmentId.is_in(ids.clone()))
            .exec(&**txn)
            .await?;
        journey_enrollment::Entity::delete_many()
            .filter(journey_enrollment::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_enrollment::Column::Id.is_in(ids))
            .exec(&**txn)
            .await?;
        journey_segment_member::Entity::delete_many()
            .filter(journey_segment_member::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_segment_member::Column::Contact.is_in(contacts.to_vec()))
            .exec(&**txn)
            .await?;
        Ok((theirs.iter().map(Enrollment::name).collect(), message_keys))
    }
}

/// The columns an enrolment's change writes, at `version`.
fn changed_enrollment(e: &Enrollment, version: i64) -> journey_enrollment::ActiveModel {
    journey_enrollment::ActiveModel {
        contact: sea_orm::Set(e.contact.clone()),
        email: sea_orm::Set(e.email.clone()),
        state: sea_orm::Set(stored(ENROLLMENT_STATES, e.state).to_owned()),
        step: sea_orm::Set(e.step.clone()),
        step_start_time: sea_orm::Set(e.step_start_time),
        next_run_time: sea_orm::Set(e.next_run_time),
        reason: sea_orm::Set(e.reason.clone()),
        update_time: sea_orm::Set(Utc::now()),
        version: sea_orm::Set(version),
        ..Default::default()
    }
}

/// Exits every active enrolment of a journey; the enrolments as exited.
async fn exit_all(
    txn: &WriteTxn,
    tenant: &Tenant,
    journey: Uuid,
    reason: &str,
) -> Result<Vec<Enrollment>, ApiError> {
    let active: Vec<Enrollment> = journey_enrollment::Entity::find_in(tenant)
        .filter(journey_enrollment::Column::JourneyId.eq(journey.to_string()))
        .filter(
            journey_enrollment::Column::State
                .eq(stored(ENROLLMENT_STATES, EnrollmentState::Active)),
        )
        .all(&**txn)
        .await?
        .into_iter()
        .map(Enrollment::try_from)
        .collect::<Result<_, _>>()?;
    let mut exited = Vec::with_capacity(active.len());
    for e in active {
        let mut after = e.clone();
        after.exit(reason, Utc::now())?;
        journey_enrollment::Entity::update_many()
            .set(changed_enrollment(&after, e.version + 1))
            .filter(journey_enrollment::Column::Tenant.eq(tenant.as_str()))
            .filter(journey_enrollment::Column::Id.eq(e.id.to_string()))
            .exec(&**txn)
            .await?;
        exited.push(after);
    }
    Ok(exited)
}

/// How many of a journey's enrolments are where, read through `conn`.
async fn journey_counts_in(
    conn: &impl ConnectionTrait,
    tenant: &Tenant,
    id: Uuid,
) -> Result<JourneyCounts, ApiError> {
    let rows: Vec<(String, i64)> = journey_enrollment::Entity::find_in(tenant)
        .select_only()
        .column(journey_enrollment::Column::State)
        .column_as(journey_enrollment::Column::Id.count(), "n")
        .filter(journey_enrollment::Column::JourneyId.eq(id.to_string()))
        .group_by(journey_enrollment::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    let mut counts = JourneyCounts::default();
    for (state, n) in rows {
        match parse_stored(ENROLLMENT_STATES, &state) {
            Some(EnrollmentState::Active) => counts.active = n,
            Some(EnrollmentState::Completed) => counts.completed = n,
            Some(EnrollmentState::Exited) => counts.exited = n,
            Some(EnrollmentState::Failed) => counts.failed = n,
            None => {}
        }
    }
    // Its emails are the ledger rows under its steps' keys.
    let messages = Query::select()
        .column(journey_message::Column::MessageKey)
        .from(journey_message::Entity)
        .and_where(journey_message::Column::Tenant.eq(tenant.as_str()))
        .and_where(journey_message::Column::JourneyId.eq(id.to_string()))
        .to_owned();
    counts.emails_sent = campaign_recipient::Entity::find_in(tenant)
        .filter(campaign_recipient::Column::CampaignId.in_subquery(messages.clone()))
        .filter(
            campaign_recipient::Column::State.eq(stored(RECIPIENT_STATES, RecipientState::Sent)),
        )
        .count(conn)
        .await? as i64;
    let engaged: Vec<(String, i64, i64)> = engagement::Entity::find_in(tenant)
        .select_only()
        .column(engagement::Column::Kind)
        .column_as(engagement::Column::Id.count(), "total")
        .column_as(Expr::cust("COUNT(DISTINCT contact)"), "recipients")
        .filter(engagement::Column::CampaignId.in_subquery(messages))
        .group_by(engagement::Column::Kind)
        .into_tuple()
        .all(conn)
        .await?;
    for (kind, total, unique) in engaged {
        if let Some(kind) = parse_stored(ENGAGEMENTS, &kind) {
            counts.engagement.add(kind, total, unique);
        }
    }
    Ok(counts)
}
