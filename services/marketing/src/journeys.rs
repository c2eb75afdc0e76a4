//! The journey runner: a scheduled job of the kit (one replica at a time).
//! Each pass looks at the trigger segments of active journeys (at most every
//! `segment_every`), then runs the steps that are due: an enrolment's step
//! is carried out, then its run and the move to the next step are recorded
//! together. Every side effect is keyed by the enrolment and the step (the
//! email's ledger row, the request id of a sales task or lead; a contact
//! update is the same when done twice), so a runner stopped between the two
//! runs the step again without repeating its effect, and never skips it.
//!
//! What cannot be done now (contacts or sales unavailable, a relay's
//! transient refusal) waits and is tried again; what cannot be done at all
//! (a template deleted, a refused lead) fails the enrolment with the reason.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use crm_proto::sales::{Lead, LeadSource, Task};
use crm_shared::{client::Credentials, db::Tenant, error::ApiError, schedule::Job};
use uuid::Uuid;

use crate::{
    contacts::{ContactChange, Directory},
    domain::{
        ab_test::Variant,
        campaign::RecipientState,
        journey::{
            Action, Condition, DEFAULT_LEAD_SOURCE, Enrollment, Journey, State, Step, Trigger,
            effect_key, next_step, retry_time,
        },
        template::CompiledTemplate,
        tracking::Engagement,
    },
    postman::{MessageSpec, Postman},
    sales::SalesDesk,
    store::{Claimed, RUNNER, StepRun, Store},
};

/// How long one pass runs steps before it hands back to the scheduler.
const PASS_BUDGET: Duration = Duration::from_secs(2);
/// Enrolments fetched per look for due steps.
const BATCH: u64 = 100;
/// How long a step that could not be done now waits before it is tried again.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// What an enrolment's turn came to.
enum Attempt<'j> {
    /// Changed without running a step (it may still be active: a lead's
    /// person found).
    Changed(Enrollment),
    /// `step` was run.
    Stepped { step: &'j Step, result: StepResult },
}

/// What running a step came to.
enum StepResult {
    /// Done: recorded with `outcome`, going on per the condition's answer
    /// (for a branch).
    Done {
        outcome: String,
        condition_met: Option<bool>,
    },
    /// Not done yet: try again at this time.
    Later(chrono::DateTime<Utc>),
}

fn done(outcome: impl Into<String>) -> StepResult {
    StepResult::Done {
        outcome: outcome.into(),
        condition_met: None,
    }
}

/// The job.
pub struct JourneyRunner {
    store: Store,
    directory: Directory,
    sales: SalesDesk,
    postman: Arc<Postman>,
    segment_every: Duration,
    /// When each journey's segment was last looked at (this process).
    segment_looks: Mutex<HashMap<Uuid, Instant>>,
}

impl JourneyRunner {
    /// The runner sending through `postman`, creating tasks and leads in
    /// `sales`, looking at trigger segments every `segment_every`.
    pub fn new(postman: Arc<Postman>, sales: SalesDesk, segment_every: Duration) -> Arc<Self> {
        Arc::new(Self {
            store: postman.store.clone(),
            directory: postman.directory.clone(),
            sales,
            postman,
            segment_every,
            segment_looks: Mutex::new(HashMap::new()),
        })
    }

    /// Enrols whoever entered the trigger segments of active journeys since
    /// the last look; how many.
    async fn look_at_segments(&self) -> Result<u64, ApiError> {
        let mut enrolled = 0;
        for (tenant, journey) in self.store.all_active_journeys().await? {
            let Trigger::SegmentEntry { segment } = &journey.draft.trigger else {
                continue;
            };
            if !self.segment_look_due(journey.id) {
                continue;
            }
            match self.look_at_segment(&tenant, &journey, segment).await {
                Ok(n) => enrolled += n as u64,
                Err(error) => {
                    tracing::warn!(journey = %journey.name(), %error, "cannot look at the trigger segment; trying again later");
                }
            }
        }
        Ok(enrolled)
    }

    fn segment_look_due(&self, journey: Uuid) -> bool {
        let mut looks = self
            .segment_looks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = looks
            .get(&journey)
            .is_none_or(|last| last.elapsed() >= self.segment_every);
        if due {
            looks.insert(journey, Instant::now());
        }
        due
    }

    async fn look_at_segment(
        &self,
        tenant: &Tenant,
        journey: &Journey,
        segment: &str,
    ) -> Result<usize, ApiError> {
        let segment = self
            .store
            .live_segments(tenant, &[segment.to_owned()], "trigger.segment")
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::FailedPrecondition(format!("{segment} is gone")))?;
        let credentials = self.directory.as_service(tenant)?;
        let now: Vec<String> = self
            .directory
            .matching(&credentials, &segment.draft.filter)
            .await?;
        let before = self.store.segment_members(tenant, journey.id).await?;
        let entered: Vec<String> = now
            .iter()
            .filter(|c| !before.contains(*c))
            .cloned()
            .collect();
        let still: std::collections::HashSet<&String> = now.iter().collect();
        let left: Vec<String> = before
            .iter()
            .filter(|c| !still.contains(c))
            .cloned()
            .collect();
        if entered.is_empty() && left.is_empty() {
            return Ok(0);
        }
        self.store
            .apply_segment_look(tenant, journey, &entered, &left)
            .await
    }

    /// Runs one due enrolment's step and records where it goes. Trouble
    /// postpones the step (ever less often) or fails the enrolment: see
    /// [`retry_time`].
    async fn run(&self, tenant: &Tenant, e: Enrollment) -> Result<(), ApiError> {
        let journey = self.store.get_journey(tenant, e.journey).await?;
        // Paused, archived or deleted since it was found due.
        if journey.state != State::Active || journey.delete_time.is_some() {
            return Ok(());
        }
        let outcome = self.attempt(tenant, &journey, &e).await;
        let now = Utc::now();
        let mut after = e.clone();
        let run = match outcome {
            Ok(Attempt::Changed(changed)) => {
                after = changed;
                None
            }
            Ok(Attempt::Stepped { step, result }) => match result {
                StepResult::Later(at) => {
                    after.next_run_time = Some(at);
                    None
                }
                StepResult::Done {
                    outcome,
                    condition_met,
                } => {
                    after.advance(&journey.draft.steps, &next_step(step, condition_met), now)?;
                    Some(StepRun {
                        step: step.id.clone(),
                        outcome,
                        run_time: now,
                    })
                }
            },
            Err(error) => match retry_time(&error, e.step_start_time, now) {
                Some(at) => {
                    tracing::warn!(enrollment = %e.name(), step = %e.step, %error, "step postponed");
                    after.next_run_time = Some(at);
                    None
                }
                None => {
                    tracing::warn!(enrollment = %e.name(), step = %e.step, %error, "enrolment failed");
                    after.fail(&format!("step {}: {error}", e.step), now)?;
                    None
                }
            },
        };
        if !self
            .store
            .save_enrollment(tenant, &e, &after, run.as_ref(), RUNNER)
            .await?
        {
            // Exited, merged or run by another pass meanwhile: its effect
            // (keyed by the step) is not repeated when the step runs again.
            tracing::info!(enrollment = %e.name(), "enrolment changed meanwhile; not saved");
        }
        Ok(())
    }

    /// What `e`'s turn comes to: changed without a step (the exit filter
    /// matched, a lead's person found), or its step run.
    async fn attempt<'j>(
        &self,
        tenant: &Tenant,
        journey: &'j Journey,
        e: &Enrollment,
    ) -> Result<Attempt<'j>, ApiError> {
        let credentials = self.directory.as_service(tenant)?;
        let now = Utc::now();
        if e.contact.is_empty() {
            return self.find_contact(tenant, journey, &credentials, e).await;
        }
        if !journey.draft.exit_filter.is_empty()
            && self
                .directory
                .matches(&credentials, &e.contact, &journey.draft.exit_filter)
                .await?
        {
            let mut exited = e.clone();
            exited.exit("matched the journey's exit filter", now)?;
            return Ok(Attempt::Changed(exited));
        }
        let Some(step) = journey.draft.steps.iter().find(|s| s.id == e.step) else {
            let mut failed = e.clone();
            failed.fail(&format!("the journey has no step {:?}", e.step), now)?;
            return Ok(Attempt::Changed(failed));
        };
        let result = self
            .carry_out(tenant, &credentials, journey, e, step)
            .await?;
        Ok(Attempt::Stepped { step, result })
    }

    /// A lead's person: the contact of its address (found or made), kept if
    /// the re-entry rule allows them in.
    async fn find_contact<'j>(
        &self,
        tenant: &Tenant,
        journey: &'j Journey,
        credentials: &Credentials,
        e: &Enrollment,
    ) -> Result<Attempt<'j>, ApiError> {
        let contact = self
            .directory
            .contact_for_email(credentials, &e.email, "marketing journey")
            .await?;
        let mut found = e.clone();
        found.email.clear();
        if !self.store.may_stay(tenant, journey, e, &contact).await? {
            found.exit("enrolled before (the journey's re-entry rule)", Utc::now())?;
        }
        found.contact = contact;
        Ok(Attempt::Changed(found))
    }

    /// Does what `step` says for `e`.
    async fn carry_out(
        &self,
        tenant: &Tenant,
        credentials: &Credentials,
        journey: &Journey,
        e: &Enrollment,
        step: &Step,
    ) -> Result<StepResult, ApiError> {
        let key = effect_key(e.id, &step.id);
        Ok(match &step.action {
            // A wait is run once it is due: nothing more to do.
            Action::Wait { .. } => done("waited"),
            Action::SendEmail {
                template,
                from_address,
                from_name,
                reply_to,
            } => {
                let spec = MessageSpec {
                    id: key,
                    display_name: &journey.draft.display_name,
                    from_address,
                    from_name,
                    reply_to,
                    header: ("X-CRM-Journey", journey.name()),
                };
                self.send(tenant, credentials, e, &step.id, template, &spec)
                    .await?
            }
            Action::Branch { condition, .. } => {
                let met = match condition {
                    Condition::Opened { step } => {
                        let sent = effect_key(e.id, step);
                        self.store
                            .engaged(tenant, sent, Engagement::Opened, "")
                            .await?
                    }
                    Condition::Clicked { step, link } => {
                        let sent = effect_key(e.id, step);
                        self.store
                            .engaged(tenant, sent, Engagement::Clicked, link)
                            .await?
                    }
                    Condition::MatchesFilter { filter } => {
                        self.directory
                            .matches(credentials, &e.contact, filter)
                            .await?
                    }
                };
                StepResult::Done {
                    outcome: if met { "then" } else { "else" }.into(),
                    condition_met: Some(met),
                }
            }
            Action::UpdateContact {
                add_tags,
                remove_tags,
                lifecycle_stage,
                custom_fields,
            } => {
                let change = ContactChange {
                    add_tags: add_tags.clone(),
                    remove_tags: remove_tags.clone(),
                    lifecycle_stage: lifecycle_stage.clone(),
                    custom_fields: custom_fields.clone(),
                };
                self.directory
                    .change_contact(credentials, &e.contact, &change)
                    .await?;
                done("contact updated")
            }
            Action::CreateTask {
                title,
                due_in_seconds,
                owner,
            } => {
                let due = e.step_start_time + chrono::TimeDelta::seconds(*due_in_seconds);
                let task = Task {
                    title: title.clone(),
                    due_time: Some(crm_shared::convert::to_timestamp(due)),
                    owner: owner.trim_start_matches("users/").to_owned(),
                    contact: e.contact.clone(),
                    ..Default::default()
                };
                let name = self.sales.create_task(credentials, key, task).await?;
                done(format!("created {name}"))
            }
            Action::CreateLead { source } => {
                let profiles = self
                    .directory
                    .profiles(credentials, std::slice::from_ref(&e.contact))
                    .await?;
                let Some(person) = profiles.get(&e.contact) else {
                    return Err(ApiError::FailedPrecondition(format!(
                        "{} is gone",
                        e.contact
                    )));
                };
                let p = &person.recipient;
                let source = if source.is_empty() {
                    DEFAULT_LEAD_SOURCE
                } else {
                    source
                };
                let lead = Lead {
                    given_name: p.given_name.clone(),
                    family_name: p.family_name.clone(),
                    email: p.email.clone(),
                    company_name: p.company.clone(),
                    title: p.job_title.clone(),
                    source: LeadSource::from_str_name(&format!("LEAD_SOURCE_{source}"))
                        .unwrap_or(LeadSource::Campaign) as i32,
                    ..Default::default()
                };
                let name = self.sales.create_lead(credentials, key, lead).await?;
                done(format!("created {name}"))
            }
        })
    }

    /// A SendEmail step: the message is a ledger row keyed by the step, so
    /// it goes out at most once whatever happens to this runner; the step
    /// is done once the row is settled (sent, failed, suppressed, uncertain).
    async fn send(
        &self,
        tenant: &Tenant,
        credentials: &Credentials,
        e: &Enrollment,
        step: &str,
        template: &str,
        spec: &MessageSpec<'_>,
    ) -> Result<StepResult, ApiError> {
        let key = spec.id;
        match self.settled(tenant, key).await? {
            Some(settled) => return Ok(settled),
            None => {
                // One row per message: queued once, whoever the contact is now.
                self.store
                    .note_journey_message(tenant, key, e, step)
                    .await?;
                self.store
                    .queue_recipients(tenant, key, &[(e.contact.clone(), Variant::Rest)])
                    .await?;
            }
        }
        let compiled = self
            .store
            .get_template(tenant, crate::store::id_of(template))
            .await?
            .draft
            .compile()?;
        let pass = Uuid::now_v7().to_string();
        let claimed = self
            .store
            .claim_recipients(tenant, key, &pass, 1, false)
            .await?;
        let Some(recipient) = claimed.first() else {
            // Taken by a pass that stopped, or waiting for its retry.
            return Ok(self
                .settled(tenant, key)
                .await?
                .unwrap_or(StepResult::Later(Utc::now() + RETRY_AFTER)));
        };
        let sent = self
            .send_claimed(tenant, credentials, spec, &compiled, recipient, &pass)
            .await;
        // Whatever the pass did not get to goes back to the queue.
        self.store.release_claims(tenant, key, &pass).await?;
        sent?;
        Ok(self
            .settled(tenant, key)
            .await?
            .unwrap_or(StepResult::Later(Utc::now() + RETRY_AFTER)))
    }

    async fn send_claimed(
        &self,
        tenant: &Tenant,
        credentials: &Credentials,
        spec: &MessageSpec<'_>,
        template: &CompiledTemplate,
        recipient: &Claimed,
        pass: &str,
    ) -> Result<(), ApiError> {
        let profiles = self
            .directory
            .profiles(credentials, std::slice::from_ref(&recipient.contact))
            .await?;
        self.postman.wait_for_slot(tenant).await;
        self.postman
            .send_one(
                tenant,
                spec,
                template,
                recipient,
                profiles.get(&recipient.contact),
                pass,
            )
            .await?;
        Ok(())
    }

    /// The step's result once its message's row is settled; `None` while
    /// it is not queued or waiting to be sent; a later time while a retry
    /// is due or another pass holds it.
    async fn settled(&self, tenant: &Tenant, key: Uuid) -> Result<Option<StepResult>, ApiError> {
        let Some(row) = self.store.message_row(tenant, key).await? else {
            return Ok(None);
        };
        Ok(match row.state {
            RecipientState::Sent => Some(done("sent")),
            RecipientState::Failed | RecipientState::Suppressed => {
                Some(done(format!("not sent: {}", row.reason)))
            }
            RecipientState::Uncertain => Some(done("perhaps sent (the sender stopped)")),
            RecipientState::Queued => match row.next_attempt_time {
                Some(at) if at > Utc::now() => Some(StepResult::Later(at)),
                _ => None,
            },
            RecipientState::Claimed | RecipientState::Sending => {
                Some(StepResult::Later(Utc::now() + RETRY_AFTER))
            }
        })
    }
}

#[tonic::async_trait]
impl Job for JourneyRunner {
    async fn run_once(&self) -> Result<u64, ApiError> {
        let deadline = Instant::now() + PASS_BUDGET;
        let mut handled = self.look_at_segments().await?;
        for (tenant, e) in self.store.due_enrollments(Utc::now(), BATCH).await? {
            if Instant::now() >= deadline {
                break;
            }
            let name = e.name();
            // One enrolment's trouble must not hold the others back.
            match self.run(&tenant, e).await {
                Ok(()) => handled += 1,
                Err(error) => {
                    tracing::warn!(enrollment = %name, %error, "journey step failed; trying again next pass")
                }
            }
        }
        Ok(handled)
    }
}
